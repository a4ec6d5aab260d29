// `npm run bench:compare`: Cohort against a 3-node etcd cluster and a single
// Redis with appendfsync always, on this machine, the same workloads through
// the same load generators, over alternating rounds. See README.md.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitedChildrenCpuSeconds } from '@cohort/scale-bench/cluster';
import { CommanderError } from 'commander';
import { type Options, parseOptions } from './args.ts';
import { INSTALL, findBinary } from './binaries.ts';
import { type HttpLoadSpec, type HttpRun, runHttp } from './http-load.ts';
import { type PlannedRun, type Workload, checkTargets, keysLabel, schedule, warmUpPlan, workloads } from './plan.ts';
import { Progress } from './progress.ts';
import { runRedisBenchmark, sizeRedisBenchmark } from './resp-load.ts';
import {
  type OpCpu,
  type RunResult,
  SYSTEM_TITLES,
  type SystemName,
  comparisonTable,
  cpuTable,
  formatMs,
  formatRate,
  formatTable,
  opCpu,
  round,
  summarize,
} from './stats.ts';
import { CohortSystem, EtcdSystem, RedisSystem, type System } from './systems.ts';
import { type WriteCost, medianCost, writeCost } from './write-phases.ts';
import { runWrk } from './wrk-load.ts';

let opts: Options;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.code === 'commander.helpDisplayed' ? 0 : 2);
  throw err;
}

const progress = new Progress();
const log = (line: string): void => progress.log(line);

// Which systems can run here.
const available: SystemName[] = ['cohort'];
const skipped: string[] = [];
function need(binary: string, what: string): string | undefined {
  const path = findBinary(binary);
  if (path) return path;
  const missing = `${binary} is not installed: ${INSTALL[binary]} (Debian, Ubuntu)`;
  if (opts.requireAll) {
    process.stderr.write(`bench: ${missing}; --require-all: stopping\n`);
    process.exit(1);
  }
  skipped.push(`${missing}; ${what}`);
  process.stderr.write(`bench: ${missing}; ${what}\n`);
  return undefined;
}
if (!CohortSystem.built()) {
  process.stderr.write('bench: the cohort binary is not built: run `pnpm turbo run build --filter=@cohort/node...`\n');
  process.exit(1);
}
// HTTP load: wrk where installed (it costs the two cores a third of what autocannon in this process does),
// else autocannon, saying so; the report names the one used.
const wrkBin = opts.httpLoad === 'autocannon' ? undefined : findBinary('wrk');
if (opts.httpLoad === 'wrk' && wrkBin === undefined) {
  process.stderr.write(`bench: wrk is not installed: ${INSTALL.wrk} (Debian, Ubuntu); --http-load wrk: stopping\n`);
  process.exit(1);
}
const httpLoad = wrkBin === undefined ? 'autocannon' : 'wrk';
if (opts.httpLoad === undefined && wrkBin === undefined)
  process.stderr.write(
    `bench: wrk is not installed (${INSTALL.wrk}): the HTTP workloads run on autocannon in this process, which takes ` +
      'more of the CPU the servers share: its figures are not comparable with runs on wrk\n',
  );
/** One HTTP run with the load generator in use. */
function httpRun(spec: HttpLoadSpec): Promise<HttpRun> {
  return wrkBin === undefined ? runHttp(spec) : runWrk(wrkBin, spec);
}
/** CPU seconds the HTTP load generator has used so far: this process's, or its exited children's (wrk). */
const httpLoadCpuSeconds = (): number => (wrkBin === undefined ? ownCpuSeconds() : exitedChildrenCpuSeconds());

const etcdBin = opts.systems.includes('etcd') ? need('etcd', 'skipping etcd') : undefined;
const benchmarkBin = need('redis-benchmark', 'skipping the RESP workloads');
const redisBin = opts.systems.includes('redis') && benchmarkBin ? need('redis-server', 'skipping Redis') : undefined;
if (etcdBin) available.push('etcd');
if (redisBin) available.push('redis');

const list = workloads(opts).filter((w) => w.protocol === 'http' || benchmarkBin !== undefined);
const stages = [{ label: keysLabel(opts.smallKeys), from: 0, keys: opts.smallKeys }];
if (opts.keys > 0) stages.push({ label: keysLabel(opts.keys), from: opts.smallKeys, keys: opts.keys });
const plan: PlannedRun[] = stages.flatMap((s) => schedule(s.label, opts.rounds, list, available));
const warmups = plan.filter((r) => r.round === 1).length;
const estimate =
  plan.length * (opts.seconds + 0.5) +
  warmups * Math.max(opts.warmup, 1) +
  available.length * opts.systemWarmup +
  20 +
  (opts.keys / 1e6) * 150;

const root = mkdtempSync(join(tmpdir(), 'cohort-bench-compare-'));
const systems = new Map<SystemName, System>();
systems.set('cohort', new CohortSystem(join(root, 'cohort'), opts.cohortFlags, opts.nodeFlags));
if (etcdBin) systems.set('etcd', new EtcdSystem(join(root, 'etcd'), etcdBin));
if (redisBin) systems.set('redis', new RedisSystem(join(root, 'redis'), redisBin));

let stopping = false;
async function shutdown(): Promise<void> {
  progress.stop();
  await Promise.all([...systems.values()].map((s) => s.stop().catch(() => {})));
  if (!opts.keep) rmSync(root, { recursive: true, force: true });
  else log(`data kept in ${root}`);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    // After a hangup the terminal may be gone: say nothing, clean up.
    if (signal !== 'SIGHUP') process.stderr.write(`\nbench: ${signal}: stopping every system\n`);
    void shutdown().finally(() => process.exit(130));
  });
}

const results: RunResult[] = [];
const loads: { stage: string; system: SystemName; keys: number; keysPerSec: number }[] = [];
/** The last measured rate of each RESP (stage, workload, system): it sizes the next round's run. */
const respRate = new Map<string, number>();
const keyOfRun = (r: PlannedRun): string => `${r.stage}/${r.workload.workload}/${r.system}`;

/** The HTTP run of workload `w` against `system` for `seconds`. */
async function httpSpec(w: Workload, system: System, keySpace: number, seconds: number): Promise<HttpLoadSpec> {
  const url = await system.httpUrl();
  return {
    url,
    api: system.http!,
    op: w.op,
    connections: w.connections,
    seconds,
    keySpace,
    valueBytes: opts.valueBytes,
    putAnswer: opts.putAnswer,
  };
}

/** redis-benchmark's runs of RESP workload `w` against `port`, for runs of about `seconds`. */
function respSpec(w: Workload, port: number, keySpace: number, seconds: number) {
  return {
    port,
    op: w.op === 'put' ? ('set' as const) : ('get' as const),
    connections: w.connections,
    pipeline: w.pipeline,
    keySpace,
    valueBytes: opts.valueBytes,
    timeoutSeconds: seconds * 5 + 30,
  };
}

/** Runs `name`'s warm-up (see warmUpPlan): unmeasured load on a key space of `keySpace` keys. */
async function warmUp(name: SystemName, keySpace: number): Promise<void> {
  const system = systems.get(name)!;
  for (const { workload: w, seconds } of warmUpPlan(name, list, available, opts.systemWarmup)) {
    if (w.protocol === 'http') {
      await httpRun(await httpSpec(w, system, keySpace, seconds));
      continue;
    }
    const r = await sizeRedisBenchmark(respSpec(w, await system.respPort(), keySpace, seconds), seconds, seconds);
    if (r.error !== undefined) throw new Error(`${SYSTEM_TITLES[name]}: warm-up ${w.title}: ${r.error}`);
  }
}

/** CPU seconds this process has used so far, every thread: autocannon's, when it runs here. */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * Runs `fn` and reads the CPU that `system`'s servers and the load generator used meanwhile, the latter
 * by `load`: {@link ownCpuSeconds} for autocannon, which runs in this process; `exitedChildrenCpuSeconds`
 * for wrk and redis-benchmark, children waited for before `fn` resolves.
 */
async function withCpu<R extends { ops: number }>(
  system: System,
  load: () => number,
  fn: () => Promise<R>,
): Promise<R & { cpuPerOp?: OpCpu }> {
  const server0 = system.cpuSeconds();
  const load0 = load();
  const r = await fn();
  const load1 = load();
  const server1 = system.cpuSeconds();
  const cpuPerOp = opCpu(r.ops, { before: server0, after: server1 }, { before: load0, after: load1 });
  return cpuPerOp === undefined ? r : { ...r, cpuPerOp };
}

async function measure(run: PlannedRun, keySpace: number): Promise<RunResult> {
  const system = systems.get(run.system)!;
  const w: Workload = run.workload;
  const base = { stage: run.stage, workload: w.workload, system: run.system, round: run.round };
  // Cohort's writes also say where their time went: the leader's counters around the measured part.
  const cohort = system instanceof CohortSystem && w.op === 'put' ? system : undefined;
  const costed = async <R extends { ops: number }>(fn: () => Promise<R>): Promise<R & { writeCost?: WriteCost }> => {
    const before = await cohort?.counters();
    const r = await fn();
    const after = await cohort?.counters();
    if (before === undefined || after === undefined) return r;
    const lead = before.nodes.indexOf(before.leader);
    const cost = writeCost(
      r.ops,
      { before: before.leader, after: after.leader },
      before.nodes.flatMap((b, i) => (i === lead ? [] : [{ before: b, after: after.nodes[i] ?? b }])),
    );
    return cost === undefined ? r : { ...r, writeCost: cost };
  };
  if (w.protocol === 'http') {
    if (run.round === 1 && opts.warmup > 0) await httpRun(await httpSpec(w, system, keySpace, opts.warmup));
    const spec = await httpSpec(w, system, keySpace, opts.seconds);
    const r = await costed(() => withCpu(system, httpLoadCpuSeconds, () => httpRun(spec)));
    return { ...base, ...r };
  }
  const spec = respSpec(w, await system.respPort(), keySpace, opts.seconds);
  let requests: number;
  const known = respRate.get(keyOfRun(run));
  if (known === undefined) {
    const sized = await sizeRedisBenchmark(spec, opts.seconds, run.round === 1 ? opts.warmup : 0);
    if (sized.error !== undefined)
      return {
        ...base,
        ops: 0,
        errors: 1,
        seconds: 0,
        opsPerSec: 0,
        p50Ms: Number.NaN,
        p99Ms: Number.NaN,
        firstError: sized.error,
      };
    requests = sized.requests;
  } else {
    requests = Math.max(1000, Math.round(known * opts.seconds));
  }
  const r = await costed(() =>
    withCpu(system, exitedChildrenCpuSeconds, async () => {
      const b = await runRedisBenchmark({ ...spec, requests });
      return { ...b, ops: b.error === undefined ? b.requests : 0 };
    }),
  );
  if (r.error === undefined) respRate.set(keyOfRun(run), r.opsPerSec);
  const result: RunResult = {
    ...base,
    ops: r.error === undefined ? r.requests : 0,
    errors: r.error === undefined ? 0 : 1,
    seconds: round(r.seconds),
    opsPerSec: Math.round(r.opsPerSec),
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
  };
  if (r.error !== undefined) result.firstError = r.error;
  if (r.writeCost !== undefined) result.writeCost = r.writeCost;
  if (r.cpuPerOp !== undefined) result.cpuPerOp = r.cpuPerOp;
  return result;
}

function writeReport(report: unknown): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const file = opts.json
    ? resolve(opts.json)
    : join(here, '..', 'results', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

let exitCode = 0;
try {
  const startedAt = Date.now();
  log(
    `systems: ${available.map((s) => SYSTEM_TITLES[s]).join(', ')}; ${stages.map((s) => `${s.label} keys`).join(', then ')}; ` +
      `${opts.rounds} round(s) of ${plan.length / stages.length / opts.rounds} runs of ${opts.seconds} s; about ${Math.ceil(estimate / 60)} min`,
  );
  log(
    `machine: ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; data in ${root}`,
  );
  await Promise.all(
    [...systems.values()].map(async (s) => {
      await s.start();
      log(`${SYSTEM_TITLES[s.name]} started`);
    }),
  );
  const durability: Partial<Record<SystemName, string>> = {};
  for (const s of systems.values()) durability[s.name] = await s.durability();

  progress.start(plan.length + stages.length * systems.size + (opts.systemWarmup > 0 ? systems.size : 0));
  for (const stage of stages) {
    for (const s of systems.values()) {
      const loading = `${stage.label}: loading ${SYSTEM_TITLES[s.name]}`;
      progress.step(loading);
      const keysPerSec = await s.load(stage.from, stage.keys, opts.valueBytes, (n) =>
        progress.step(`${loading}, ${n} keys`),
      );
      // The load went through: the first and last keys hold what was written.
      await s.check(stage.from, opts.valueBytes);
      await s.check(stage.keys - 1, opts.valueBytes);
      loads.push({ stage: stage.label, system: s.name, keys: stage.keys - stage.from, keysPerSec });
      log(`${SYSTEM_TITLES[s.name]}: ${stage.keys - stage.from} keys loaded at ${formatRate(keysPerSec)}`);
      progress.advance();
    }
    // Once, after the first load: the clusters keep running (and warm) through the later stages.
    if (stage === stages[0] && opts.systemWarmup > 0) {
      for (const s of systems.values()) {
        progress.step(`${stage.label}: warming up ${SYSTEM_TITLES[s.name]} (${opts.systemWarmup} s)`);
        await warmUp(s.name, stage.keys);
        progress.advance();
      }
    }
    for (const run of plan.filter((r) => r.stage === stage.label)) {
      const label = `${stage.label} round ${run.round}: ${run.workload.title}, ${SYSTEM_TITLES[run.system]}`;
      progress.step(label);
      const r = await measure(run, stage.keys);
      results.push(r);
      log(
        `${label}: ${formatRate(r.opsPerSec)} p50 ${formatMs(r.p50Ms)} p99 ${formatMs(r.p99Ms)} ms` +
          (r.errors > 0 ? `, ${r.errors} errors (${r.firstError ?? '?'})` : ''),
      );
      progress.advance();
    }
  }
  progress.stop();

  const summaries = summarize(results);
  const rows = stages.flatMap((s) => list.map((w) => ({ ...w, stage: s.label })));
  const targets = checkTargets(summaries, list, results);
  const out: string[] = [];
  out.push(
    `Medians over ${opts.rounds} round(s) of ${opts.seconds} s runs; ${opts.valueBytes}-byte values, random keys; ` +
      `ops/s, p50 and p99 latency (ms). HTTP: ${httpLoad}; RESP: redis-benchmark.`,
    '',
    comparisonTable(rows, summaries),
    '',
    'Durability as run:',
    ...[...systems.keys()].map((s) => `  ${SYSTEM_TITLES[s]}: ${durability[s]}`),
    ...(systems.has('cohort')
      ? [
          '',
          opts.putAnswer === 'minimal'
            ? "Cohort's HTTP puts ask for the key and revision (Prefer: return=minimal), as etcd's put answers its revision; --put-answer record asks for the key's record"
            : "Cohort's HTTP puts ask for the key's record (its default answer; --put-answer record), etcd's for its revision",
        ]
      : []),
  );
  const cpu = cpuTable(rows, summaries);
  if (cpu !== undefined)
    out.push(
      '',
      "CPU per operation (medians, µs of user + system time over every thread): the system's server processes +",
      `the load generator (${httpLoad === 'wrk' ? 'wrk' : "autocannon in the bench's process"}, redis-benchmark). This machine has ${cpus().length} cores: a`,
      'system whose run kept them busy could not go faster than cores / (server + load generator) operations a second.',
      cpu,
    );
  const costRows = rows.flatMap((w) => {
    const c = medianCost(
      results
        .filter((r) => r.system === 'cohort' && r.stage === w.stage && r.workload === w.workload)
        .flatMap((r) => (r.writeCost ? [r.writeCost] : [])),
    );
    if (c === undefined) return [];
    const ms = (x: number): string => (Number.isNaN(x) ? '-' : x.toFixed(2));
    const us = (x: number): string => (Number.isNaN(x) ? '-' : String(x));
    return [
      [
        w.stage,
        w.title,
        ms(c.persistedMs),
        ms(c.committedMs),
        ms(c.appliedMs),
        ms(c.repliedMs),
        c.commitsPerWrite.toFixed(2),
        ms(c.commitMs),
        ms(c.commitWaitMs),
        Number.isNaN(c.followerCommitsPerWrite) ? '-' : c.followerCommitsPerWrite.toFixed(2),
        ms(c.followerWaitMs),
        String(c.leaderCpuUs),
        us(c.leaderMainUs),
        us(c.leaderWorkersUs),
        us(c.leaderV8Us),
        String(c.clusterCpuUs),
        String(c.diskBytes),
        c.aheadKeysPerWrite.toFixed(2),
        c.loopColdPer1k.toFixed(1),
      ],
    ];
  });
  if (costRows.length > 0) {
    out.push(
      '',
      "Cohort writes, where the time goes (medians; ms from the leader's proposal to each phase; the leader's store",
      'commits per write, ms per commit on its writer thread (fsync included) and ms its jobs waited for that thread',
      "(to wake up and take them, or to finish earlier commits) per commit; the followers' commits per write (apply",
      'transactions that commit alone add to it) and their wait per commit; CPU and disk bytes per write; of the',
      "leader's CPU, its event loop's thread, its worker threads (the store's writer) and V8's helper threads (GC, JIT);",
      'keys read ahead per write and event-loop reads that went to the disk per 1,000 writes, both over every node):',
      formatTable(
        [
          'keys',
          'workload',
          'persisted',
          'committed',
          'applied',
          'replied',
          'commits/w',
          'commit ms',
          'wait ms',
          'flw commits/w',
          'flw wait ms',
          'leader CPU us/w',
          'loop',
          'writer',
          'V8 thr.',
          'cluster CPU us/w',
          'disk B/w',
          'ahead/w',
          'cold/1k',
        ],
        costRows,
        2,
      ),
    );
  }
  if (targets.length > 0) {
    // With more than one round, each round's own comparison too: the machine's speed drifts between rounds.
    const rounds = targets.some((t) => (t.byRound?.length ?? 0) > 1);
    out.push(
      '',
      formatTable(
        ['keys', 'target', 'measured', 'met', ...(rounds ? ['each round'] : [])],
        targets.map((t) => [
          t.stage,
          t.target,
          t.measured,
          t.met ? 'yes' : 'NO',
          ...(rounds ? [t.byRound?.join(' ') ?? '-'] : []),
        ]),
        3,
      ),
    );
  }
  if (skipped.length > 0) out.push('', 'Skipped:', ...skipped.map((s) => `  ${s}`));
  const failed = results.filter((r) => r.errors > 0);
  if (failed.length > 0)
    out.push(
      '',
      'Runs with errors:',
      ...failed.map(
        (r) =>
          `  ${r.stage} round ${r.round} ${r.workload} ${r.system}: ${r.errors} errors, first: ${r.firstError ?? '?'}`,
      ),
    );
  const report = {
    startedAt: new Date(startedAt).toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt) / 1000),
    machine: { cores: cpus().length, model: cpus()[0]?.model, node: process.version, loadAverageAtEnd: loadavg() },
    options: opts,
    loadGenerators: { http: httpLoad, resp: 'redis-benchmark' },
    durability,
    skipped,
    loads,
    summaries,
    targets,
    runs: results,
  };
  const file = writeReport(report);
  out.push('', `JSON report: ${file}`, `took ${((Date.now() - startedAt) / 60_000).toFixed(1)} min`);
  process.stdout.write(`\n${out.join('\n')}\n`);
  if (failed.length > 0) exitCode = 1;
} catch (err) {
  log(`failed: ${(err as Error).stack ?? err}`);
  exitCode = 1;
} finally {
  if (!stopping) {
    stopping = true;
    await shutdown();
  }
}
process.exit(exitCode);
