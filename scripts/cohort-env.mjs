#!/usr/bin/env node
// The entry point behind `npm start`, `npm test` and `npm run bench:compare`.
// It runs on whatever Node the machine has (20 is enough) and brings in the
// rest from the npm registry:
//   1. .tooling/: pnpm and a Node 24 binary (libp2p 3, better-sqlite3 13 and
//      vitest need Node >= 22), installed once with `npm ci`;
//   2. the workspace's packages, with `pnpm install --frozen-lockfile`, skipped
//      when node_modules already matches the lockfile;
//   3. the task itself, with Node 24 first on PATH so every script uses it.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tooling = join(root, '.tooling');
const nodeBin = join(tooling, 'node_modules', 'node', 'bin');
const pnpmJs = join(tooling, 'node_modules', 'pnpm', 'bin', 'pnpm.cjs');

function log(msg) {
  process.stderr.write(`[cohort] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (res.error) throw res.error;
  return res.status ?? (res.signal ? 128 : 1);
}

function must(code, what) {
  if (code !== 0) {
    log(`${what} failed (exit ${code})`);
    process.exit(code);
  }
}

function digest(files) {
  const h = createHash('sha256');
  for (const f of files) h.update(existsSync(f) ? readFileSync(f) : '');
  return h.digest('hex');
}

function ensureTooling() {
  const stamp = join(tooling, 'node_modules', '.cohort-stamp');
  const want = digest([join(tooling, 'package-lock.json')]);
  const have = existsSync(stamp) ? readFileSync(stamp, 'utf8') : '';
  if (have === want && existsSync(join(nodeBin, 'node')) && existsSync(pnpmJs)) return;
  log('installing the toolchain (pnpm, Node 24) into .tooling/ from the npm registry');
  must(run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: tooling }), 'npm ci in .tooling');
  if (!existsSync(join(nodeBin, 'node'))) {
    log(`no Node binary at ${nodeBin}/node after install; is the npm registry reachable?`);
    process.exit(1);
  }
  writeFileSync(stamp, want);
}

function env() {
  return {
    ...process.env,
    PATH: [nodeBin, join(tooling, 'node_modules', '.bin'), join(root, 'node_modules', '.bin'), process.env.PATH].join(
      delimiter,
    ),
    // Turbo's anonymous telemetry is off: CI and developers' machines have no network.
    TURBO_TELEMETRY_DISABLED: '1',
    DO_NOT_TRACK: '1',
  };
}

function pnpm(args) {
  return run(join(nodeBin, 'node'), [pnpmJs, ...args], { env: env() });
}

/** `pnpm(args)` without blocking: resolves with its exit status. */
function pnpmAsync(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(join(nodeBin, 'node'), [pnpmJs, ...args], { stdio: 'inherit', cwd: root, env: env() });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/**
 * The packages whose suites run beside the others in a lane of their own, one
 * at a time: `@cohort/node` (its end-to-end files, the longest suite by far)
 * and small suites that fill the lane to about the other's length. In one run
 * at `--concurrency=2`, turbo started the node suite only once most others
 * had run, and it then ran alone for minutes.
 */
const NODE_LANE = [
  '@cohort/node',
  '@cohort/core',
  '@cohort/membership',
  '@cohort/vpaxos',
  '@cohort/pack-check',
  '@cohort/bench',
  '@cohort/example-raft-counter',
  '@cohort/example-service-discovery',
];

function ensureWorkspace() {
  const stamp = join(root, 'node_modules', '.cohort-stamp');
  const want = digest([join(root, 'pnpm-lock.yaml'), join(root, 'pnpm-workspace.yaml')]);
  const have = existsSync(stamp) ? readFileSync(stamp, 'utf8') : '';
  if (have === want) return;
  log('installing workspace packages (pnpm install --frozen-lockfile)');
  must(pnpm(['install', '--frozen-lockfile']), 'pnpm install');
  writeFileSync(stamp, want);
}

// Each package's vitest writes its results here; turbo caches them with the run.
const RESULTS = 'test-results.json';

/** Where each package's results would be, whether or not its suite ran. */
function resultFiles() {
  const files = [];
  for (const dir of ['packages', 'apps', 'tools', 'examples']) {
    const base = join(root, dir);
    if (!existsSync(base)) continue;
    for (const e of readdirSync(base, { withFileTypes: true }))
      if (e.isDirectory()) files.push(join(base, e.name, RESULTS));
  }
  return files;
}

/**
 * Prints one closing line over every package's results, `tests: N passed, N failed`,
 * then each failed test (its file, its name, the first lines of its message) and,
 * when `whole` (every suite was run), each package whose suite left no results.
 * CI keeps only the end of the output, where the two lanes' logs interleave: a
 * failure printed by its suite may be far out of sight by then.
 */
function summarize(whole) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const failures = [];
  for (const file of resultFiles()) {
    const pkg = relative(root, dirname(file));
    if (!existsSync(file)) {
      if (whole && hasTests(dirname(file)))
        failures.push(`${pkg}: no results (its suite did not run, or stopped before writing ${RESULTS})`);
      continue;
    }
    try {
      const r = JSON.parse(readFileSync(file, 'utf8'));
      passed += r.numPassedTests ?? 0;
      failed += (r.numFailedTests ?? 0) + (r.success === false && !r.numFailedTests ? 1 : 0);
      skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
      const named = failures.length;
      for (const suite of r.testResults ?? []) {
        const where = relative(root, suite.name ?? pkg);
        const bad = (suite.assertionResults ?? []).filter((a) => a.status === 'failed');
        for (const a of bad) failures.push(`${where} > ${a.fullName}\n${excerpt(a.failureMessages?.join('\n'))}`);
        // A file that failed to load or crashed has a message and no failed test of its own.
        if (suite.status === 'failed' && bad.length === 0) failures.push(`${where}\n${excerpt(suite.message)}`);
      }
      if (r.success === false && failures.length === named)
        failures.push(`${pkg}: its suite failed outside any test file (see its output above)`);
    } catch (err) {
      failed += 1;
      failures.push(`${pkg}: unreadable ${RESULTS} (${err.message})`);
    }
  }
  process.stdout.write(`\ntests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  for (const f of failures) process.stdout.write(`\nFAILED ${f}\n`);
}

/** Whether the package in `dir` has a test script (and so should have left results). */
function hasTests(dir) {
  try {
    return Boolean(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).scripts?.test);
  } catch {
    return false;
  }
}

/**
 * The first lines of a failure message, indented, without the stack frames of
 * vitest and Node's internals: enough to tell which assertion failed and where.
 */
function excerpt(message, lines = 12) {
  const all = String(message ?? '(no message)')
    .split('\n')
    .filter((l) => !/^\s+at .*(node_modules|node:internal|<anonymous>)/.test(l));
  const shown = all.slice(0, lines).map((l) => `    ${l}`);
  if (all.length > lines) shown.push(`    ... (${all.length - lines} more lines in the suite's output above)`);
  return shown.join('\n');
}

/** Builds the `cohort` binary and what it needs, then runs Node 24 with `args`; returns its exit status. */
function buildAndRun(args) {
  must(pnpm(['exec', 'turbo', 'run', 'build', '--filter=@cohort/node...', '--output-logs=errors-only']), 'build');
  // Ctrl-C reaches the child too (same process group); it shuts down and we
  // exit with its status instead of dying first.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  return run(join(nodeBin, 'node'), args, { env: env() });
}

const [task = 'test', ...rest] = process.argv.slice(2);
ensureTooling();
if (task === 'pnpm') {
  // `npm run pnpm -- <args>`: pnpm with the project's Node, for developers.
  process.exit(pnpm(rest));
}
ensureWorkspace();
switch (task) {
  case 'setup':
    break;
  case 'test': {
    must(pnpm(['exec', 'biome', 'check', 'scripts', 'package.json', 'turbo.json', 'biome.json']), 'lint of root files');
    must(pnpm(['exec', 'turbo', 'run', 'build', 'lint', 'typecheck', ...rest]), 'build, lint and typecheck');
    for (const f of resultFiles()) rmSync(f, { force: true });
    const reporters = ['--', '--reporter=default', '--reporter=json', `--outputFile.json=${RESULTS}`];
    let code;
    if (rest.length > 0) {
      // Two packages' suites at a time: several of them start real processes
      // and clusters, and this machine has two cores.
      code = pnpm(['exec', 'turbo', 'run', 'test', '--concurrency=2', ...rest, ...reporters]);
    } else {
      // The same two at a time, as two lanes (see NODE_LANE). `--only`: everything was built above, and
      // two turbo runs restoring the same build outputs would write files the other's tests are reading.
      // `--continue`: a failed suite does not keep the rest of its lane from running.
      const lane = (filters) =>
        pnpmAsync([
          'exec',
          'turbo',
          'run',
          'test',
          '--only',
          '--continue',
          '--concurrency=1',
          ...filters,
          ...reporters,
        ]);
      const codes = await Promise.all([
        lane(NODE_LANE.map((p) => `--filter=${p}`)),
        lane(NODE_LANE.map((p) => `--filter=!${p}`)),
      ]);
      code = codes.find((c) => c !== 0) ?? 0;
    }
    summarize(rest.length === 0);
    must(code, 'tests');
    break;
  }
  case 'start':
    process.exit(buildAndRun([join(root, 'apps', 'node', 'dist', 'cli.js'), 'dev', ...rest]));
    break;
  case 'bench:compare':
    // Cohort against etcd and Redis on this machine (tools/bench/README.md).
    process.exit(buildAndRun(['--no-warnings', join(root, 'tools', 'bench', 'src', 'main.ts'), ...rest]));
    break;
  default:
    log(`unknown task ${task}; use start, test, setup, bench:compare or pnpm`);
    process.exit(2);
}
