/**
 * Packs every publishable package of the workspace (`packages/*`) with `pnpm pack`, installs the tarballs
 * into a scratch project outside the workspace and checks that each one works there on its own:
 *
 * - the packed package.json: publishing metadata, no `workspace:`/`catalog:`/`link:`/`file:` range left, every
 *   `@cohort/*` dependency one of the packed packages at its packed version;
 * - the tarball: LICENSE (the root's) and README, every file that `exports`/`bin` names, every relative import of
 *   its JavaScript and declarations resolving inside the tarball, every bare import a declared dependency (or a
 *   Node builtin), every source map's sources inside the tarball, no absolute path of this checkout;
 * - the scratch project: each entry point imports from plain Node ESM, and `tsc --noEmit` type-checks a
 *   TypeScript file importing them all against the packed declarations.
 *
 * Nothing is fetched: the tarballs are unpacked into the scratch project's node_modules and each third-party
 * dependency is linked, nested under the package that declares it, to the copy this workspace installed from
 * its lockfile (so an undeclared dependency cannot be found through hoisting).
 *
 * Run it with `node src/pack-check.ts` (or `pnpm --filter @cohort/pack-check run check`); it prints one line per
 * problem and exits non-zero when there is one. `test/pack-check.test.ts` runs it under `npm test`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The workspace root (this file is tools/pack-check/src/pack-check.ts). */
export const WORKSPACE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** One package as packed. */
export interface PackedPackage {
  /** The package's directory, relative to the root it was found under (`packages/core`). */
  readonly dir: string;
  readonly name: string;
  readonly version: string;
  readonly tarball: string;
  /** The packed package.json. */
  readonly manifest: Manifest;
  /** Paths inside the tarball, without the leading `package/`. */
  readonly files: ReadonlySet<string>;
  /** Where it is unpacked in the scratch project. */
  readonly installedAt: string;
}

/** The fields of a package.json the check reads. */
export interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  license?: string;
  keywords?: string[];
  engines?: Record<string, string>;
  sideEffects?: boolean | string[];
  files?: string[];
  repository?: { type?: string; url?: string; directory?: string };
  publishConfig?: { access?: string };
  exports?: Record<string, string | Record<string, string>>;
  bin?: string | Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

export interface PackCheckOptions {
  /** The workspace whose packages are checked. @default WORKSPACE_ROOT */
  readonly root?: string;
  /** Folders under `root` holding the publishable packages. @default ['packages'] */
  readonly packageDirs?: readonly string[];
  /** Keep the scratch project (its path is in the result) instead of deleting it. @default false */
  readonly keep?: boolean;
  /** Skip the TypeScript check. @default false */
  readonly skipTypes?: boolean;
  /**
   * Folder under `root` whose `<example>/src/main.ts` files are copied into the scratch project, type-checked
   * with the smoke file and run with Node against the packed packages. @default 'examples'
   */
  readonly examplesDir?: string | undefined;
}

export interface PackCheckResult {
  readonly problems: string[];
  readonly packages: PackedPackage[];
  /** The scratch project (deleted unless `keep`). */
  readonly scratch: string;
  /** What the Node ESM import printed: entry point -> number of exported names. */
  readonly exportCounts: Record<string, number>;
  /** The examples run against the packed packages, by name, with what they printed. */
  readonly examples: Record<string, string>;
}

const WORKSPACE_ONLY_RANGE = /^(workspace|catalog|link|file|portal):/;
const builtins = new Set(builtinModules);

async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await readFile(file, 'utf8')) as T;
}

/** The package name a bare specifier names (`@scope/name/sub` -> `@scope/name`). */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

/** Every module specifier a JavaScript or declaration file imports, re-exports or dynamically imports. */
export function importSpecifiers(source: string): string[] {
  const out = new Set<string>();
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\/\/\/\s*<reference\s+path=['"]([^'"]+)['"]/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) if (m[1]) out.add(m[1]);
  return [...out];
}

/** The entry points a manifest's `exports` declares (`.` -> the package name), package.json left out. */
export function entryPoints(manifest: Manifest): string[] {
  const exp = manifest.exports ?? { '.': '' };
  return Object.keys(exp)
    .filter((k) => k !== './package.json')
    .map((k) => (k === '.' ? manifest.name : `${manifest.name}/${k.slice(2)}`));
}

/** Checks the packed manifest's publishing metadata and its dependency ranges. */
function checkManifest(pkg: PackedPackage, all: Map<string, PackedPackage>, problems: string[]): void {
  const m = pkg.manifest;
  const p = (msg: string) => problems.push(`${m.name}: ${msg}`);
  if (m.private) p('is private');
  if (m.publishConfig?.access !== 'public') p('publishConfig.access is not "public"');
  if (!m.license) p('no license');
  if (!m.repository?.url) p('no repository.url');
  if (m.repository?.directory !== pkg.dir) p(`repository.directory is ${m.repository?.directory}, not ${pkg.dir}`);
  if (!m.keywords?.length) p('no keywords');
  if (!m.engines?.node) p('no engines.node');
  if (m.sideEffects === undefined) p('no sideEffects');
  if (!m.files?.length) p('no files list');
  if (!m.exports) p('no exports');
  for (const [key, target] of Object.entries(m.exports ?? {})) {
    if (key === './package.json') continue;
    if (typeof target === 'string' || !target.types) p(`exports["${key}"] has no types`);
    const targets = typeof target === 'string' ? [target] : Object.values(target);
    for (const t of targets)
      if (!pkg.files.has(posix.normalize(t))) p(`exports["${key}"] names ${t}, not in the tarball`);
  }
  const bins = typeof m.bin === 'string' ? [m.bin] : Object.values(m.bin ?? {});
  for (const b of bins) if (!pkg.files.has(posix.normalize(b))) p(`bin ${b} is not in the tarball`);
  const deps = { ...m.dependencies, ...m.peerDependencies, ...m.optionalDependencies };
  for (const [dep, range] of Object.entries(deps)) {
    if (WORKSPACE_ONLY_RANGE.test(range)) p(`dependency ${dep} has the workspace-only range "${range}"`);
    if (dep.startsWith('@cohort/')) {
      const target = all.get(dep);
      if (!target) p(`depends on ${dep}, which is not a published package of this workspace`);
      else if (range !== target.version && range !== `^${target.version}` && range !== `~${target.version}`)
        p(`depends on ${dep}@${range}, but the packed ${dep} is ${target.version}`);
    }
  }
}

/** Checks the tarball's files: license, readme, imports, source maps, absolute paths. */
async function checkFiles(
  pkg: PackedPackage,
  all: Map<string, PackedPackage>,
  license: string,
  root: string,
  problems: string[],
): Promise<void> {
  const p = (msg: string) => problems.push(`${pkg.name}: ${msg}`);
  if (!pkg.files.has('LICENSE')) p('no LICENSE in the tarball');
  else if ((await readFile(join(pkg.installedAt, 'LICENSE'), 'utf8')) !== license)
    p("LICENSE differs from the repository's");
  if (!pkg.files.has('README.md')) p('no README.md in the tarball');
  const deps = new Set(
    Object.keys({
      ...pkg.manifest.dependencies,
      ...pkg.manifest.peerDependencies,
      ...pkg.manifest.optionalDependencies,
    }),
  );
  for (const file of pkg.files) {
    const text = /\.(js|mjs|cjs|ts|mts|map|json)$/.test(file)
      ? await readFile(join(pkg.installedAt, file), 'utf8')
      : '';
    if (text.includes(root)) p(`${file} contains the absolute path of this checkout (${root})`);
    if (file.endsWith('.map')) {
      const map = JSON.parse(text) as { sources?: string[] };
      for (const s of map.sources ?? []) {
        const target = posix.normalize(posix.join(posix.dirname(file), s));
        if (!pkg.files.has(target)) p(`${file} points to ${s}, outside the tarball`);
      }
      continue;
    }
    if (!/\.(m|c)?js$|\.d\.(m|c)?ts$/.test(file)) continue;
    for (const spec of importSpecifiers(text)) {
      if (spec.startsWith('.')) {
        const target = posix.normalize(posix.join(posix.dirname(file), spec));
        const candidates = file.endsWith('.ts')
          ? [target.replace(/\.(m|c)?js$/, '.d.$1ts'), target, `${target}.d.ts`, `${target}/index.d.ts`]
          : [target];
        if (target.startsWith('..') || !candidates.some((c) => pkg.files.has(c)))
          p(`${file} imports ${spec}, which is not in the tarball`);
      } else if (spec.startsWith('/') || /^[A-Za-z]:[\\/]/.test(spec)) {
        p(`${file} imports the absolute path ${spec}`);
      } else if (spec.startsWith('node:') || builtins.has(spec)) {
        // a Node builtin
      } else {
        const name = packageOf(spec);
        if (name === pkg.name) continue;
        if (!deps.has(name)) {
          p(`${file} imports ${spec}, but ${name} is not among its dependencies`);
          continue;
        }
        const sibling = all.get(name);
        if (sibling && !entryPoints(sibling.manifest).includes(spec))
          p(`${file} imports ${spec}, which ${name} does not export`);
      }
    }
  }
}

/** Links each third-party dependency of `pkg` (nested under it) to the copy this workspace installed. */
async function linkDependencies(pkg: PackedPackage, root: string, problems: string[]): Promise<void> {
  const deps = { ...pkg.manifest.dependencies, ...pkg.manifest.optionalDependencies };
  for (const [dep, range] of Object.entries(deps)) {
    if (dep.startsWith('@cohort/')) continue;
    const installed = join(root, pkg.dir, 'node_modules', dep);
    if (!existsSync(installed)) {
      problems.push(`${pkg.name}: dependency ${dep} is not installed in the workspace (run pnpm install)`);
      continue;
    }
    const real = await realpath(installed);
    const { version } = await readJson<{ version: string }>(join(real, 'package.json'));
    if (/^\d+\.\d+\.\d+/.test(range) && range !== version)
      problems.push(`${pkg.name}: dependency ${dep}@${range}, but the workspace has ${version}`);
    const link = join(pkg.installedAt, 'node_modules', dep);
    await mkdir(dirname(link), { recursive: true });
    await symlink(real, link, 'dir');
  }
}

async function pnpmPack(dir: string, dest: string): Promise<{ filename: string; files: string[] }> {
  const { stdout } = await run('pnpm', ['pack', '--json', '--pack-destination', dest], {
    cwd: dir,
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = JSON.parse(stdout) as { filename: string; files: { path: string }[] };
  return { filename: out.filename, files: out.files.map((f) => f.path) };
}

/** Packs, installs and checks every package; see the module comment. */
export async function packCheck(options: PackCheckOptions = {}): Promise<PackCheckResult> {
  const root = options.root ?? WORKSPACE_ROOT;
  const problems: string[] = [];
  const scratch = await mkdtemp(join(tmpdir(), 'cohort-pack-check-'));
  const tarballs = join(scratch, 'tarballs');
  const modules = join(scratch, 'node_modules');
  await mkdir(tarballs, { recursive: true });

  const dirs: string[] = [];
  for (const base of options.packageDirs ?? ['packages']) {
    for (const name of (await readdir(join(root, base))).sort()) {
      const dir = posix.join(base, name);
      if (!existsSync(join(root, dir, 'package.json'))) continue;
      const manifest = await readJson<Manifest>(join(root, dir, 'package.json'));
      if (manifest.private) continue;
      dirs.push(dir);
    }
  }

  // Pack two at a time (this machine has two cores), then unpack each into node_modules/<name>.
  const packed: PackedPackage[] = [];
  for (let i = 0; i < dirs.length; i += 2) {
    const batch = dirs.slice(i, i + 2);
    const results = await Promise.all(batch.map((dir) => pnpmPack(join(root, dir), tarballs)));
    for (const [j, res] of results.entries()) {
      const dir = batch[j] as string;
      const staging = join(scratch, 'unpacked', dir);
      await mkdir(staging, { recursive: true });
      await run('tar', ['-xzf', res.filename, '-C', staging, '--strip-components=1']);
      const manifest = await readJson<Manifest>(join(staging, 'package.json'));
      const installedAt = join(modules, ...manifest.name.split('/'));
      await mkdir(dirname(installedAt), { recursive: true });
      await run('mv', [staging, installedAt]);
      packed.push({
        dir,
        name: manifest.name,
        version: manifest.version,
        tarball: res.filename,
        manifest,
        files: new Set(res.files.map((f) => posix.normalize(f))),
        installedAt,
      });
    }
  }
  const byName = new Map(packed.map((p) => [p.name, p]));
  const license = await readFile(join(root, 'LICENSE'), 'utf8');
  for (const pkg of packed) {
    checkManifest(pkg, byName, problems);
    await checkFiles(pkg, byName, license, root, problems);
    await linkDependencies(pkg, root, problems);
  }

  const entries = packed.flatMap((p) => entryPoints(p.manifest));
  await writeFile(
    join(scratch, 'package.json'),
    `${JSON.stringify({ name: 'cohort-pack-check-scratch', private: true, type: 'module' }, null, 2)}\n`,
  );

  // The examples, copied as a user would copy one; run and type-checked below.
  const examples: Record<string, string> = {};
  const examplesDir = options.examplesDir === undefined ? 'examples' : options.examplesDir;
  const exampleFiles = new Map<string, string>();
  if (examplesDir && existsSync(join(root, examplesDir))) {
    await mkdir(join(scratch, 'examples'), { recursive: true });
    for (const name of (await readdir(join(root, examplesDir))).sort()) {
      const main = join(root, examplesDir, name, 'src', 'main.ts');
      if (!existsSync(main)) continue;
      const file = posix.join('examples', `${name}.ts`);
      await writeFile(join(scratch, file), await readFile(main));
      exampleFiles.set(name, file);
    }
  }

  // Plain Node ESM: every entry point imports, and prints how many names it exports.
  const exportCounts: Record<string, number> = {};
  const nodeImports = async (): Promise<void> => {
    const smokeJs = [
      'const counts = {};',
      'const errors = {};',
      ...entries.map(
        (e) =>
          `try { counts[${JSON.stringify(e)}] = Object.keys(await import(${JSON.stringify(e)})).length; } catch (err) { errors[${JSON.stringify(e)}] = String(err); }`,
      ),
      'console.log(JSON.stringify({ counts, errors }));',
      // libp2p and better-sqlite3 keep no handle open after an import; exit anyway so a stray one cannot hang the check.
      'process.exit(0);',
    ].join('\n');
    await writeFile(join(scratch, 'smoke.mjs'), `${smokeJs}\n`);
    try {
      const { stdout } = await run(process.execPath, ['smoke.mjs'], { cwd: scratch, timeout: 30_000 });
      const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
        counts: Record<string, number>;
        errors: Record<string, string>;
      };
      Object.assign(exportCounts, out.counts);
      for (const e of entries) {
        if (exportCounts[e] === undefined)
          problems.push(`${e}: did not import from Node: ${out.errors[e] ?? 'no answer'}`);
      }
    } catch (err) {
      problems.push(`importing the entry points from Node ESM failed: ${(err as { stderr?: string }).stderr ?? err}`);
    }
  };

  // The examples run with Node against the packed packages, one after the other.
  const runExamples = async (): Promise<void> => {
    for (const [name, file] of exampleFiles) {
      try {
        const { stdout } = await run(process.execPath, [file], { cwd: scratch, timeout: 30_000 });
        examples[name] = stdout;
      } catch (err) {
        const e = err as { stderr?: string; killed?: boolean };
        problems.push(`example ${name} failed against the packed packages: ${e.killed ? 'timed out' : e.stderr}`);
      }
    }
  };

  // TypeScript: one file importing every entry point, and the examples, type-checked against the packed declarations.
  const typeCheck = async (): Promise<void> => {
    const ts = [
      ...entries.map((e, i) => `import * as m${i} from ${JSON.stringify(e)};`),
      `export const modules = [${entries.map((_, i) => `m${i}`).join(', ')}];`,
    ].join('\n');
    await writeFile(join(scratch, 'smoke.ts'), `${ts}\n`);
    await writeFile(
      join(scratch, 'tsconfig.json'),
      `${JSON.stringify(
        {
          compilerOptions: {
            target: 'ES2023',
            // libp2p's declarations (under @cohort/transport) use DOM event and key types, as libp2p's users know.
            lib: ['ES2023', 'DOM'],
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            types: ['node'],
            strict: true,
            noEmit: true,
            skipLibCheck: false,
            // What Node runs as is: types only, erased.
            erasableSyntaxOnly: true,
          },
          files: ['smoke.ts', ...exampleFiles.values()],
        },
        null,
        2,
      )}\n`,
    );
    await mkdir(join(modules, '@types'), { recursive: true });
    await symlink(await realpath(join(root, 'node_modules', '@types', 'node')), join(modules, '@types', 'node'), 'dir');
    const tsc = join(await realpath(join(root, 'node_modules', 'typescript')), 'bin', 'tsc');
    try {
      await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: scratch, timeout: 120_000 });
    } catch (err) {
      const out = (err as { stdout?: string }).stdout ?? String(err);
      for (const line of out.split('\n').filter((l) => l.includes('error TS'))) {
        // Paths inside node_modules name the package they come from.
        problems.push(`tsc --noEmit against the packed types: ${line.replace(`${modules}/`, '')}`);
      }
      if (!out.includes('error TS')) problems.push(`tsc --noEmit against the packed types failed: ${out}`);
    }
  };

  // tsc is the long part: the imports and the examples run beside it.
  await Promise.all([options.skipTypes ? undefined : typeCheck(), nodeImports().then(runExamples)]);

  if (!options.keep) await rm(scratch, { recursive: true, force: true });
  return { problems, packages: packed, scratch, exportCounts, examples };
}

/** Relative path for messages. */
export function rel(path: string, root = WORKSPACE_ROOT): string {
  return normalize(relative(root, path));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const keep = process.argv.includes('--keep');
  const result = await packCheck({ keep });
  for (const pkg of result.packages)
    console.log(`${pkg.name}@${pkg.version}: ${pkg.files.size} files, ${entryPoints(pkg.manifest).join(', ')}`);
  for (const [name, out] of Object.entries(result.examples)) console.log(`example ${name}: ${out.trim()}`);
  if (keep) console.log(`scratch project kept at ${result.scratch}`);
  for (const problem of result.problems) console.error(`problem: ${problem}`);
  console.log(
    result.problems.length ? `${result.problems.length} problems` : 'every package packs and installs cleanly',
  );
  process.exitCode = result.problems.length ? 1 : 0;
}
