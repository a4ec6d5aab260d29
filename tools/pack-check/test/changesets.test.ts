import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WORKSPACE_ROOT } from '../src/pack-check.ts';

/** Every workspace package's name and whether it is private (apps and tools: never versioned). */
async function workspacePackages(): Promise<Map<string, boolean>> {
  const out = new Map<string, boolean>();
  for (const dir of ['packages', 'apps', 'tools']) {
    for (const name of await readdir(join(WORKSPACE_ROOT, dir))) {
      const pkg = await readFile(join(WORKSPACE_ROOT, dir, name, 'package.json'), 'utf8').catch(() => undefined);
      if (pkg === undefined) continue;
      const { name: id, private: hidden } = JSON.parse(pkg) as { name: string; private?: boolean };
      out.set(id, hidden === true);
    }
  }
  return out;
}

describe('the changesets waiting for a release', () => {
  it('bump only packages that are published, so `changeset version` and `changeset status` accept them', async () => {
    // changesets refuses a changeset naming a private package (which it ignores) beside a published one.
    const packages = await workspacePackages();
    const dir = join(WORKSPACE_ROOT, '.changeset');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.md') && f !== 'README.md');
    const wrong: string[] = [];
    for (const file of files) {
      const text = await readFile(join(dir, file), 'utf8');
      const front = /^---\n([\s\S]*?)\n---\n/.exec(text);
      if (front === null) {
        wrong.push(`${file}: no front matter`);
        continue;
      }
      for (const line of front[1]!.split('\n').filter((l) => l.trim() !== '')) {
        const m = /^"([^"]+)": (patch|minor|major)$/.exec(line.trim());
        if (m === null) wrong.push(`${file}: '${line}' is not "<package>": patch|minor|major`);
        else if (!packages.has(m[1]!)) wrong.push(`${file}: ${m[1]} is no package of this workspace`);
        else if (packages.get(m[1]!)) wrong.push(`${file}: ${m[1]} is private, never versioned: leave it out`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
