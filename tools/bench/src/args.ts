import { Command, InvalidArgumentError, Option } from 'commander';
import { PUT_ANSWERS, type PutAnswer } from './http-load.ts';
import type { SystemName } from './stats.ts';

/** What one comparison run does. */
export interface Options {
  quick: boolean;
  rounds: number;
  /** Length of each measured run, in seconds. */
  seconds: number;
  /** Length of the warm-up before each workload's first measured run, in seconds (0: none). */
  warmup: number;
  /** Seconds of load each system gets once, after its first load and before any measured run (see warmUpPlan). */
  systemWarmup: number;
  httpConnections: number[];
  respConnections: number;
  pipeline: number;
  /** Keys every system holds during the first stage. */
  smallKeys: number;
  /** Keys every system holds during the loaded stage; 0 skips it. */
  keys: number;
  valueBytes: number;
  systems: SystemName[];
  /** Extra `cohort start` flags of every Cohort node (for comparing settings). */
  cohortFlags: string[];
  /** Extra Node/V8 flags of every Cohort node, after the ones it always runs with (for comparing settings). */
  nodeFlags: string[];
  requireAll: boolean;
  /** Where the JSON report goes; undefined: the default under tools/bench/results. */
  json: string | undefined;
  keep: boolean;
  /** The HTTP load generator; undefined: wrk where it is installed, else autocannon. */
  httpLoad: HttpLoad | undefined;
  /** What Cohort's HTTP puts ask to be answered with (see `COHORT_PUT_HEADERS` in http-load.ts). */
  putAnswer: PutAnswer;
}

/** HTTP load generators: Debian's `wrk` (C) or autocannon (Node, in the tool's process). */
export type HttpLoad = 'wrk' | 'autocannon';
const HTTP_LOADS: readonly HttpLoad[] = ['wrk', 'autocannon'];

/** The defaults of a full run, and those `--quick` changes. */
export const DEFAULTS = {
  rounds: 3,
  seconds: 5,
  warmup: 2,
  systemWarmup: 30,
  httpConnections: [1, 64],
  respConnections: 50,
  pipeline: 16,
  smallKeys: 10_000,
  keys: 1_000_000,
  valueBytes: 100,
} as const;
export const QUICK = { rounds: 1, seconds: 2, warmup: 0.5, systemWarmup: 4, keys: 20_000 } as const;

const SYSTEMS: readonly SystemName[] = ['cohort', 'etcd', 'redis'];

/** A commander parser of whole numbers of at least `min`. */
export function wholeNumber(min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`expected a whole number of at least ${min}, got '${v}'`);
    return n;
  };
}

function seconds(min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min)
      throw new InvalidArgumentError(`expected a number of seconds of at least ${min}, got '${v}'`);
    return n;
  };
}

function connectionList(v: string): number[] {
  const parse = wholeNumber(1);
  const list = v.split(',').map((s) => parse(s.trim()));
  return [...new Set(list)];
}

function systemList(v: string): SystemName[] {
  const list = v.split(',').map((s) => s.trim().toLowerCase());
  for (const s of list) {
    if (!SYSTEMS.includes(s as SystemName))
      throw new InvalidArgumentError(`unknown system '${s}'; choose among ${SYSTEMS.join(', ')}`);
  }
  if (!list.includes('cohort'))
    throw new InvalidArgumentError('the systems must include cohort: it is what is compared');
  return SYSTEMS.filter((s) => list.includes(s));
}

/** The command line of `npm run bench:compare -- [flags]`. */
export function program(): Command {
  return new Command('bench:compare')
    .description(
      'Compares a 3-node Cohort cluster with a 3-node etcd cluster (HTTP) and a single Redis with appendfsync always ' +
        '(RESP), all on 127.0.0.1 with fsync on, over alternating rounds; prints medians and writes a JSON report.',
    )
    .option('--quick', `a smoke run: ${QUICK.rounds} round of ${QUICK.seconds} s runs, ${QUICK.keys} keys loaded`)
    .option('--rounds <n>', `rounds, the systems alternating (default ${DEFAULTS.rounds})`, wholeNumber(1))
    .option('--seconds <s>', `length of each measured run (default ${DEFAULTS.seconds})`, seconds(0.5))
    .option(
      '--warmup <s>',
      `warm-up before each workload's first run, 0 for none (default ${DEFAULTS.warmup})`,
      seconds(0),
    )
    .option(
      '--system-warmup <s>',
      `load each system gets once, before its first measured run, so that all run at their steady state (Cohort's ` +
        `JIT needs tens of seconds), 0 for none (default ${DEFAULTS.systemWarmup})`,
      seconds(0),
    )
    .option(
      '--http-connections <list>',
      `HTTP connections, comma-separated (default ${DEFAULTS.httpConnections.join(',')})`,
      connectionList,
    )
    .option(
      '--resp-connections <n>',
      `redis-benchmark connections (default ${DEFAULTS.respConnections})`,
      wholeNumber(1),
    )
    .option('--pipeline <n>', `redis-benchmark -P of the pipelined runs (default ${DEFAULTS.pipeline})`, wholeNumber(2))
    .option('--small-keys <n>', `keys of the first stage (default ${DEFAULTS.smallKeys})`, wholeNumber(1))
    .option('--keys <n>', `keys of the loaded stage, 0 to skip it (default ${DEFAULTS.keys})`, wholeNumber(0))
    .option('--value-bytes <n>', `value size (default ${DEFAULTS.valueBytes})`, wholeNumber(1))
    .addOption(
      new Option('--systems <list>', 'systems to run, comma-separated (default cohort,etcd,redis)').argParser(
        systemList,
      ),
    )
    .option(
      '--cohort-flags <flags>',
      'extra `cohort start` flags for every Cohort node, space-separated, e.g. "--row-cache-bytes 0" (default none)',
    )
    .option(
      '--node-flags <flags>',
      'extra Node/V8 flags for every Cohort node, after those it always runs with, space-separated, e.g. "--trace-gc" (default none)',
    )
    .option('--require-all', 'fail instead of skipping a system whose binary is not installed')
    .option('--json <file>', 'where to write the JSON report (default tools/bench/results/compare-<time>.json)')
    .option('--keep', 'keep the data directories')
    .addOption(
      new Option(
        '--http-load <generator>',
        'HTTP load generator: wrk (Debian `wrk`, whole seconds) or autocannon (default wrk where installed, else autocannon)',
      ).choices(HTTP_LOADS),
    )
    .addOption(
      new Option(
        '--put-answer <answer>',
        "what Cohort's HTTP puts ask for: minimal (Prefer: return=minimal, the key and revision, as etcd's put answers) or record (its default answer, the key's record)",
      )
        .choices(PUT_ANSWERS)
        .default('minimal'),
    )
    .allowExcessArguments(false);
}

/** The space-separated words of a flag list (none when not given). */
export function words(list: string | undefined): string[] {
  return (list ?? '').split(' ').filter((f) => f !== '');
}

/**
 * Parses `argv` (the arguments after the script's name); throws commander's
 * CommanderError on a bad flag or value, and for --help.
 */
export function parseOptions(argv: readonly string[], cmd: Command = program()): Options {
  cmd.exitOverride();
  // npm and pnpm may pass a literal `--` before the script's arguments.
  cmd.parse(
    argv.filter((a) => a !== '--'),
    { from: 'user' },
  );
  const o = cmd.opts<{
    quick?: boolean;
    rounds?: number;
    seconds?: number;
    warmup?: number;
    systemWarmup?: number;
    httpConnections?: number[];
    respConnections?: number;
    pipeline?: number;
    smallKeys?: number;
    keys?: number;
    valueBytes?: number;
    systems?: SystemName[];
    cohortFlags?: string;
    nodeFlags?: string;
    requireAll?: boolean;
    json?: string;
    keep?: boolean;
    httpLoad?: HttpLoad;
    putAnswer?: PutAnswer;
  }>();
  const quick = o.quick === true;
  const keys = o.keys ?? (quick ? QUICK.keys : DEFAULTS.keys);
  const smallKeys = o.smallKeys ?? DEFAULTS.smallKeys;
  if (keys !== 0 && keys <= smallKeys)
    cmd.error(`error: --keys (${keys}) must be above --small-keys (${smallKeys}), or 0 to skip the loaded stage`, {
      exitCode: 2,
      code: 'bench.keys',
    });
  return {
    quick,
    rounds: o.rounds ?? (quick ? QUICK.rounds : DEFAULTS.rounds),
    seconds: o.seconds ?? (quick ? QUICK.seconds : DEFAULTS.seconds),
    warmup: o.warmup ?? (quick ? QUICK.warmup : DEFAULTS.warmup),
    systemWarmup: o.systemWarmup ?? (quick ? QUICK.systemWarmup : DEFAULTS.systemWarmup),
    httpConnections: o.httpConnections ?? [...DEFAULTS.httpConnections],
    respConnections: o.respConnections ?? DEFAULTS.respConnections,
    pipeline: o.pipeline ?? DEFAULTS.pipeline,
    smallKeys,
    keys,
    valueBytes: o.valueBytes ?? DEFAULTS.valueBytes,
    systems: o.systems ?? [...SYSTEMS],
    cohortFlags: words(o.cohortFlags),
    nodeFlags: words(o.nodeFlags),
    requireAll: o.requireAll === true,
    json: o.json,
    keep: o.keep === true,
    httpLoad: o.httpLoad,
    putAnswer: o.putAnswer ?? 'minimal',
  };
}
