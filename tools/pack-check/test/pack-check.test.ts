import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { WORKSPACE_ROOT, importSpecifiers, packCheck } from '../src/pack-check.ts';

const cleanup: string[] = [];
afterAll(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

describe('the packages of this workspace, packed', () => {
  it('install outside the workspace and import from Node ESM and TypeScript, with nothing missing or leaked', async () => {
    const result = await packCheck({ keep: true });
    cleanup.push(result.scratch);
    expect(result.problems).toEqual([]);
    expect(result.packages.map((p) => p.name).sort()).toEqual([
      '@cohort/core',
      '@cohort/kv',
      '@cohort/membership',
      '@cohort/raft',
      '@cohort/sim',
      '@cohort/storage',
      '@cohort/transport',
      '@cohort/vpaxos',
    ]);
    // The examples ran against the tarballs, outside the workspace.
    expect(Object.keys(result.examples).sort()).toEqual(['raft-counter', 'service-discovery']);
    expect(JSON.parse(result.examples['raft-counter'] ?? '')).toEqual({ n1: 6, n2: 6, n3: 6 });
    expect(result.examples['service-discovery']).toContain('api-1 failed');
    // Workspace ranges were rewritten to the siblings' versions.
    const kv = result.packages.find((p) => p.name === '@cohort/kv');
    expect(kv?.manifest.dependencies?.['@cohort/core']).toBe(
      result.packages.find((p) => p.name === '@cohort/core')?.version,
    );

    // The trimmed surfaces, as a user of the tarballs sees them.
    const load = (spec: string) =>
      import(pathToFileURL(join(result.scratch, 'node_modules', spec)).href) as Promise<Record<string, unknown>>;
    const core = await load('@cohort/core/dist/index.js');
    const coreTesting = await load('@cohort/core/dist/testing.js');
    expect(core.MemoryHub).toBeUndefined();
    expect(typeof coreTesting.MemoryHub).toBe('function');
    expect(typeof core.SeededRandom).toBe('function');
    const membership = await load('@cohort/membership/dist/index.js');
    for (const internal of ['GossipQueue', 'Suspicion', 'suspicionTimeout', 'LocalHealth', 'PhiAccrualDetector'])
      expect(membership[internal], internal).toBeUndefined();
    expect(typeof membership.MembershipHost).toBe('function');
    expect(typeof membership.Swim).toBe('function');
  });
});

describe('the check', () => {
  it('reads the specifiers of imports, re-exports, dynamic imports and declaration imports', () => {
    const src = [
      "import { a } from './a.js';",
      "export * from '../b.js';",
      "import 'side-effect';",
      "const c = await import('@scope/c/sub');",
      "export type { D } from 'd';",
      "type E = import('e').E;",
    ].join('\n');
    expect(importSpecifiers(src).sort()).toEqual(['../b.js', './a.js', '@scope/c/sub', 'd', 'e', 'side-effect'].sort());
  });

  it('fails on a missing file, a workspace-only dependency, an undeclared import and a leaked internal path', async () => {
    const root = await mkdtemp(join(tmpdir(), 'cohort-pack-check-fixture-'));
    cleanup.push(root);
    await writeFile(join(root, 'LICENSE'), await readFile(join(WORKSPACE_ROOT, 'LICENSE'), 'utf8'));
    const pkg = join(root, 'packages', 'bad');
    await mkdir(join(pkg, 'dist'), { recursive: true });
    await writeFile(
      join(pkg, 'package.json'),
      JSON.stringify({
        name: '@cohort/bad',
        version: '1.0.0',
        type: 'module',
        exports: {
          '.': { types: './dist/index.d.ts', import: './dist/index.js' },
          './gone': { types: './dist/gone.d.ts', import: './dist/gone.js' },
        },
        files: ['dist'],
        dependencies: { '@cohort/elsewhere': 'link:../elsewhere' },
      }),
    );
    await writeFile(
      join(pkg, 'dist', 'index.js'),
      [
        "export * from '../../core/src/index.js';",
        "import leftPad from 'left-pad';",
        `import local from '${root}/packages/bad/dist/local.js';`,
        'export const x = leftPad + local;',
      ].join('\n'),
    );
    await writeFile(join(pkg, 'dist', 'index.d.ts'), 'export declare const x: string;\n');

    const { problems } = await packCheck({ root, skipTypes: true, examplesDir: undefined });
    const text = problems.join('\n');
    expect(text).toContain('@cohort/bad: exports["./gone"] names ./dist/gone.js, not in the tarball');
    expect(text).toContain(
      '@cohort/bad: dependency @cohort/elsewhere has the workspace-only range "link:../elsewhere"',
    );
    expect(text).toContain('@cohort/bad: depends on @cohort/elsewhere, which is not a published package');
    expect(text).toContain('@cohort/bad: dist/index.js imports ../../core/src/index.js, which is not in the tarball');
    expect(text).toContain('@cohort/bad: dist/index.js imports left-pad, but left-pad is not among its dependencies');
    expect(text).toContain('@cohort/bad: dist/index.js contains the absolute path of this checkout');
    expect(text).toContain('@cohort/bad: no LICENSE in the tarball');
    expect(text).toContain('@cohort/bad: publishConfig.access is not "public"');
    expect(text).toContain('@cohort/bad/gone: did not import from Node');
  });
});
