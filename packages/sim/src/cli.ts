#!/usr/bin/env node
import { Presets, SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { COVERAGE_KINDS, missingCoverage } from './raft/coverage.js';
import {
  type BatchSummary,
  type RunOptions,
  addToSummary,
  emptySummary,
  replayCommandFor,
  runSeed,
} from './raft/run.js';
import { formatSeed, formatSummary } from './summary.js';

function int(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function share(v: string): number {
  const x = Number(v);
  if (!(x >= 0 && x <= 1)) throw new InvalidArgumentError('--disk-fault-share must be between 0 and 1');
  return x;
}

function range(v: string): [number, number] {
  const [lo, hi] = v.split(',').map(Number);
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || (lo as number) < 0 || (hi as number) < (lo as number)) {
    throw new InvalidArgumentError('--client-think-ms must be min,max in milliseconds (0 <= min <= max)');
  }
  return [lo as number, hi as number];
}

const WEEK_MS = 7 * 24 * 3_600_000;

const program = new Command()
  .name('cohort-sim')
  .description('Runs Raft clusters from seeds under faults; checks safety invariants and linearizability.')
  .option('--seed <n>', 'run one seed and print what it did (replays a failure exactly)', int('--seed'))
  .option('--seeds <count>', 'run this many seeds', int('--seeds'))
  .option('--from <n>', 'first seed of a batch', int('--from'), 1)
  .option('--soak', 'long run: at least one simulated week over its seeds')
  .option('--sim-seconds <s>', 'simulated seconds of faults per seed', int('--sim-seconds'))
  .option('--no-faults', 'no faults or operator actions (clients only)')
  .addOption(
    new Option(
      '--reads <mode>',
      'mixed: a quarter of the seeds read by lease; safe: all by ReadIndex; lease: all by lease (no tick skew)',
    )
      .choices(['mixed', 'safe', 'lease'])
      .default('mixed'),
  )
  .option('--disk-fault-share <x>', 'share of the seeds that damage a disk (0 to 1; default 0.25)', share)
  .option(
    '--groups <n>',
    "Raft groups per node besides the clients' one, written by a background load",
    int('--groups'),
  )
  .option('--quiesce', 'hosts quiesce idle groups, told of peers down and up by a simulated liveness source')
  .option('--client-think-ms <min,max>', 'pause of clients between operations (default 20,400)', range)
  .option('--no-progress', 'no progress bar');

program.parse();
const opts = program.opts<{
  seed?: number;
  seeds?: number;
  from: number;
  soak?: boolean;
  simSeconds?: number;
  faults: boolean;
  reads: 'mixed' | 'safe' | 'lease';
  diskFaultShare?: number;
  groups?: number;
  quiesce?: boolean;
  clientThinkMs?: [number, number];
  progress: boolean;
}>();

const run: RunOptions = { faults: opts.faults, reads: opts.reads };
if (opts.simSeconds !== undefined) run.simMs = opts.simSeconds * 1000;
if (opts.diskFaultShare !== undefined) run.diskFaultShare = opts.diskFaultShare;
if (opts.groups !== undefined) run.groups = opts.groups;
if (opts.quiesce) run.quiesce = true;
if (opts.clientThinkMs !== undefined) run.clientThinkMs = opts.clientThinkMs;

if (opts.seed !== undefined) {
  try {
    console.log(formatSeed(await runSeed(opts.seed, run)));
  } catch (e) {
    console.error(`seed ${opts.seed} FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  }
} else {
  let count = opts.seeds ?? 100;
  if (opts.soak) {
    run.simMs ??= 600_000;
    const perSeed = run.simMs + 6_000;
    count = Math.max(opts.seeds ?? 0, Math.ceil(WEEK_MS / perSeed));
  }
  const bar = opts.progress
    ? new SingleBar(
        { format: 'seeds [{bar}] {value}/{total} | {eta_formatted} left | seed {seed}' },
        Presets.shades_classic,
      )
    : undefined;
  bar?.start(count, 0, { seed: opts.from });
  const summary: BatchSummary = emptySummary();
  const started = performance.now();
  let seed = opts.from;
  try {
    for (; seed < opts.from + count; seed++) {
      addToSummary(summary, await runSeed(seed, run));
      bar?.increment(1, { seed });
      if (!bar && summary.seeds % 50 === 0) {
        // Without a progress bar (logs, CI), report every 50 seeds so a long run shows where it is.
        const h = (summary.simMs / 3_600_000).toFixed(1);
        const wall = ((performance.now() - started) / 1000).toFixed(0);
        console.log(`${summary.seeds}/${count} seeds ok, ${h} simulated h, ${wall} s wall`);
      }
    }
  } catch (e) {
    bar?.stop();
    console.error(`\nseed ${seed} FAILED: ${e instanceof Error ? e.message : String(e)}`);
    console.error(`replay: ${replayCommandFor(seed, run)}`);
    process.exitCode = 1;
  }
  bar?.stop();
  console.log(formatSummary(summary, performance.now() - started, process.exitCode !== 1));
  // A read mode that rules out a kind of read does not count it as missing.
  const ruledOut =
    opts.reads === 'safe' ? ['leaseRead'] : opts.reads === 'lease' ? ['readIndexServed', 'readHedged'] : [];
  const quiesceOnly = run.quiesce ? [] : ['groupQuiesced', 'groupWoke', 'livenessReport'];
  const goals = COVERAGE_KINDS.filter((k) => !ruledOut.includes(k) && !quiesceOnly.includes(k));
  const missing = missingCoverage(summary.coverage, Object.fromEntries(goals.map((k) => [k, 1])));
  if (process.exitCode !== 1 && missing.length > 0 && summary.seeds >= 50) {
    console.error(`coverage never reached: ${missing.join(', ')}`);
    process.exitCode = 1;
  }
}
