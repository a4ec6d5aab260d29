// `pnpm --filter @cohort/bench ab -- --arm base --arm 'hold400=--writer-apply-batch-ms 400'`: Cohort against
// itself. Each arm is a 3-node cluster on 127.0.0.1 (its own `cohort start` flags, Node flags, environment or
// build); all arms are alive at once, loaded with the same keys, and each run loads one arm's leader after the
// other's, so the machine's drift falls on every arm alike. Then a second pass starts fresh clusters in the
// reverse order (see ab-plan.ts for why). Prints each run, each pass's ratios against the first arm, and the
// two passes' geometric mean. See README.md ("A/B runs").
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import {
  AB_WORKLOADS,
  type AbRun,
  type AbWorkload,
  type Arm,
  type ArmSummary,
  buildArms,
  combinedRatio,
  passes,
  summarizePass,
} from './ab-plan.ts';
import { wholeNumber } from './args.ts';
import { INSTALL, findBinary } from './binaries.ts';
import { type HttpLoadSpec, PUT_ANSWERS, type PutAnswer, runHttp } from './http-load.ts';
import { type RespRunSpec, runRedisBenchmark, sizeRedisBenchmark } from './resp-load.ts';
import { formatMs, formatRate, formatTable, round } from './stats.ts';
import { CohortSystem } from './systems.ts';
import { writeCost } from './write-phases.ts';
import { runWrk } from './wrk-load.ts';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

const cmd = new Command('ab')
  .description(
    'Compares arms of 3-node Cohort clusters alive at once (flags, Node flags, environment or build), runs ' +
      'alternated between them, the arms started in the order given and then in reverse; the first arm is the baseline.',
  )
  .requiredOption(
    '--arm <label[=flags]>',
    'an arm: a label, then its extra `cohort start` flags after "=", e.g. "hold400=--writer-apply-batch-ms 400" (repeat; two or more)',
    collect,
  )
  .option(
    '--arm-node-flags <label=flags>',
    'extra Node/V8 flags of an arm, e.g. "a=--max-semi-space-size=32" (repeat)',
    collect,
  )
  .option('--arm-env <label:KEY=VALUE>', "a variable of an arm's nodes' environment (repeat)", collect)
  .option('--arm-cli <label=path>', "another build's apps/node/dist/cli.js for an arm (repeat)", collect)
  .addOption(new Option('--workload <w>', 'what each run sends the leader').choices(AB_WORKLOADS).default('put'))
  .option('--connections <n>', 'connections (default 64 for put and get, 50 for set)', wholeNumber(1))
  .option('--pipeline <n>', 'redis-benchmark -P of set-pipelined (default 16)', wholeNumber(2), 16)
  .option('--seconds <n>', 'length of each run (default 8)', wholeNumber(1), 8)
  .option('--runs <n>', 'runs of each arm in each pass (default 4)', wholeNumber(1), 4)
  .option(
    '--keys <n>',
    'keys loaded before the runs, and the key space of the runs (default 10000)',
    wholeNumber(1),
    10_000,
  )
  .option('--value-bytes <n>', 'value size (default 100)', wholeNumber(1), 100)
  .addOption(
    new Option(
      '--put-answer <answer>',
      "what the HTTP puts ask for: minimal (Prefer: return=minimal) or record (the key's record)",
    )
      .choices(PUT_ANSWERS)
      .default('minimal'),
  )
  .option(
    '--warmup <n>',
    "seconds of load each arm gets before its pass's runs, 0 for none (default 5)",
    wholeNumber(0),
    5,
  )
  .option('--one-order', 'run only the pass with the arms started in the order given')
  .option('--json <file>', 'also write every run and summary to this file')
  .allowExcessArguments(false);

let arms: Arm[];
let o: {
  arm: string[];
  armNodeFlags?: string[];
  armEnv?: string[];
  armCli?: string[];
  workload: AbWorkload;
  connections?: number;
  pipeline: number;
  seconds: number;
  runs: number;
  keys: number;
  valueBytes: number;
  putAnswer: PutAnswer;
  warmup: number;
  oneOrder?: boolean;
  json?: string;
};
try {
  cmd.exitOverride();
  cmd.parse(
    process.argv.slice(2).filter((a) => a !== '--'),
    { from: 'user' },
  );
  o = cmd.opts();
  arms = buildArms(o.arm, { nodeFlags: o.armNodeFlags ?? [], env: o.armEnv ?? [], cli: o.armCli ?? [] });
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.code === 'commander.helpDisplayed' ? 0 : 2);
  process.stderr.write(`ab: ${(err as Error).message}\n`);
  process.exit(2);
}

if (!CohortSystem.built() && arms.some((a) => a.cli === undefined)) {
  process.stderr.write('ab: the cohort binary is not built: run `pnpm turbo run build --filter=@cohort/node...`\n');
  process.exit(1);
}
/** `p` from where the command was typed: pnpm and npm run a script in its package's directory, the caller's in INIT_CWD. */
const fromCaller = (p: string): string => resolve(process.env.INIT_CWD ?? process.cwd(), p);
for (const a of arms) {
  if (a.cli !== undefined) a.cli = fromCaller(a.cli);
  if (a.cli !== undefined && !existsSync(a.cli)) {
    process.stderr.write(`ab: arm ${a.label}: ${a.cli} does not exist (build that checkout first)\n`);
    process.exit(1);
  }
}

const http = o.workload === 'put' || o.workload === 'get';
const connections = o.connections ?? (http ? 64 : 50);
const wrkBin = findBinary('wrk');
if (http && wrkBin === undefined)
  process.stderr.write(`ab: wrk is not installed (${INSTALL.wrk}): the runs use autocannon in this process\n`);
if (!http && findBinary('redis-benchmark') === undefined) {
  process.stderr.write(`ab: redis-benchmark is not installed: ${INSTALL['redis-benchmark']}\n`);
  process.exit(1);
}

/** What one run measured. */
interface Measured {
  ops: number;
  errors: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** One run of `seconds` against `system`'s leader (`requests` for redis-benchmark, sized in the warm-up). */
async function load(system: CohortSystem, seconds: number, requests: number): Promise<Measured> {
  if (http) {
    const spec: HttpLoadSpec = {
      url: await system.httpUrl(),
      api: 'cohort',
      op: o.workload === 'put' ? 'put' : 'get',
      connections,
      seconds,
      keySpace: o.keys,
      valueBytes: o.valueBytes,
      putAnswer: o.putAnswer,
    };
    const r = await (wrkBin === undefined ? runHttp(spec) : runWrk(wrkBin, spec));
    return { ops: r.ops, errors: r.errors, opsPerSec: r.opsPerSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms };
  }
  const r = await runRedisBenchmark({ ...respSpec(await system.respPort()), requests });
  if (r.error !== undefined) throw new Error(`redis-benchmark: ${r.error}`);
  return { ops: r.requests, errors: 0, opsPerSec: r.opsPerSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms };
}

function respSpec(port: number): Omit<RespRunSpec, 'requests'> {
  return {
    port,
    op: 'set',
    connections,
    pipeline: o.workload === 'set-pipelined' ? o.pipeline : 1,
    keySpace: o.keys,
    valueBytes: o.valueBytes,
    timeoutSeconds: o.seconds * 20 + 60,
  };
}

/** Measures one run of `arm`, reading every node's counters around it. */
async function measure(pass: number, run: number, arm: Arm, system: CohortSystem, requests: number): Promise<AbRun> {
  const before = await system.counters();
  const cpu0 = system.cpuSeconds();
  const r = await load(system, o.seconds, requests);
  const cpu1 = system.cpuSeconds();
  const after = await system.counters();
  const li = after.nodes.indexOf(after.leader);
  const pair = (i: number) => ({ before: before.nodes[i]!, after: after.nodes[i]! });
  const followers = after.nodes.map((_, i) => i).filter((i) => i !== li);
  const cost = writeCost(r.ops, pair(li), followers.map(pair));
  return {
    pass,
    run,
    arm: arm.label,
    opsPerSec: r.opsPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    serverUs: r.ops > 0 ? Math.round(((cpu1 - cpu0) / r.ops) * 1e6) : Number.NaN,
    leaderMainUs: cost?.leaderMainUs ?? Number.NaN,
    leaderWorkersUs: cost?.leaderWorkersUs ?? Number.NaN,
    leaderV8Us: cost?.leaderV8Us ?? Number.NaN,
    leaderGcUs: cost?.leaderGcUs ?? Number.NaN,
    leaderMajorGcs: cost?.leaderMajorGcs ?? Number.NaN,
    diskBytes: cost?.diskBytes ?? Number.NaN,
    errors: r.errors,
  };
}

const line = (r: AbRun): string =>
  `pass ${r.pass + 1} run ${r.run + 1} ${r.arm}: ${formatRate(r.opsPerSec)}, p50 ${formatMs(r.p50Ms)} ms, ` +
  `p99 ${formatMs(r.p99Ms)} ms; server ${r.serverUs} µs/op (leader's loop ${r.leaderMainUs}, writer ` +
  `${r.leaderWorkersUs}, V8 ${r.leaderV8Us}; GC pauses ${r.leaderGcUs}, ${r.leaderMajorGcs} full); disk ${r.diskBytes} B/op${r.errors > 0 ? `; ${r.errors} requests failed` : ''}`;

function passTable(summaries: readonly ArmSummary[]): string {
  const rows = summaries.map((s) => [
    s.label,
    formatRate(s.medianOpsPerSec),
    s.meanRatio === undefined ? 'baseline' : `${round(s.meanRatio, 3)}x`,
    s.ahead === undefined ? '' : `${s.ahead} of ${s.runs}`,
    formatMs(s.medianP99Ms),
    String(s.medianServerUs),
  ]);
  return formatTable(
    ['arm', 'ops/s (median)', 'vs baseline (mean)', 'runs ahead', 'p99 ms (median)', 'server µs/op (median)'],
    rows,
  );
}

const root = mkdtempSync(join(tmpdir(), 'cohort-bench-ab-'));
let live: CohortSystem[] = [];
const stopLive = async (): Promise<void> => {
  const systems = live;
  live = [];
  await Promise.allSettled(systems.map((s) => s.stop()));
};
process.once('SIGINT', () => {
  void stopLive().finally(() => {
    rmSync(root, { recursive: true, force: true });
    process.exit(130);
  });
});

const runs: AbRun[] = [];
const summaries: ArmSummary[][] = [];
const baseline = arms[0]!.label;
const labels = arms.map((a) => a.label);
process.stdout.write(
  `ab: ${o.workload} at ${connections} connections${o.workload === 'set-pipelined' ? `, -P ${o.pipeline}` : ''}, ` +
    `${o.keys} keys, ${o.runs} runs of ${o.seconds} s an arm a pass; arms: ${arms
      .map(
        (a) =>
          `${a.label} (${[...a.flags, ...a.nodeFlags, ...Object.entries(a.env).map(([k, v]) => `${k}=${v}`), ...(a.cli ? [a.cli] : [])].join(' ') || 'as built'})`,
      )
      .join(', ')}\n`,
);
try {
  for (const [pass, order] of passes(arms, o.oneOrder !== true).entries()) {
    process.stdout.write(`pass ${pass + 1}: started in the order ${order.map((a) => a.label).join(', ')}\n`);
    const systems = order.map(
      (a) =>
        new CohortSystem(join(root, `pass${pass + 1}-${a.label}`), a.flags, a.nodeFlags, {
          env: a.env,
          ...(a.cli === undefined ? {} : { cli: a.cli }),
        }),
    );
    live = systems;
    // One at a time, in this pass's order: the order is what the second pass reverses.
    for (const s of systems) await s.start();
    for (const s of systems) await s.load(0, o.keys, o.valueBytes, () => {});
    const requests: number[] = [];
    for (const s of systems) {
      if (http) {
        if (o.warmup > 0) await load(s, o.warmup, 0);
        requests.push(0);
      } else {
        const sized = await sizeRedisBenchmark(respSpec(await s.respPort()), o.seconds, o.warmup);
        if (sized.error !== undefined) throw new Error(`redis-benchmark: ${sized.error}`);
        requests.push(sized.requests);
      }
    }
    for (let run = 0; run < o.runs; run++) {
      for (const [i, a] of order.entries()) {
        const r = await measure(pass, run, a, systems[i]!, requests[i]!);
        runs.push(r);
        process.stdout.write(`${line(r)}\n`);
      }
    }
    await stopLive();
    const s = summarizePass(
      runs.filter((r) => r.pass === pass),
      labels,
      baseline,
    );
    summaries.push(s);
    process.stdout.write(`${passTable(s)}\n`);
  }
  if (summaries.length > 1) {
    const rows = labels.slice(1).map((l) => {
      const c = combinedRatio(summaries, l);
      return [
        l,
        c === undefined ? '-' : `${round(c, 3)}x`,
        ...summaries.map((s) => `${round(s.find((a) => a.label === l)?.meanRatio ?? Number.NaN, 3)}x`),
      ];
    });
    process.stdout.write(
      `against ${baseline}, both orders (geometric mean of the passes' mean ratios; the start order's bias cancels):\n` +
        `${formatTable(['arm', 'both orders', ...summaries.map((_, i) => `pass ${i + 1}`)], rows)}\n`,
    );
  }
  if (o.json !== undefined) {
    const file = fromCaller(o.json);
    writeFileSync(
      file,
      `${JSON.stringify({ workload: o.workload, connections, keys: o.keys, seconds: o.seconds, arms, runs, summaries }, null, 2)}\n`,
    );
    process.stdout.write(`ab: wrote ${file}\n`);
  }
} finally {
  await stopLive();
  rmSync(root, { recursive: true, force: true });
}
