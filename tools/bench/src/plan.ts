// What a comparison runs, in which order, and what it checks: pure, so it is
// tested without starting anything.
import type { Options } from './args.ts';
import {
  type RunResult,
  type Summary,
  type SystemName,
  type WorkloadRow,
  formatMs,
  formatRatio,
  ratio,
} from './stats.ts';

/** One workload: the same requests against Cohort and the system it is compared with. */
export interface Workload extends Omit<WorkloadRow, 'stage'> {
  protocol: 'http' | 'resp';
  op: 'put' | 'get';
  connections: number;
  /** Commands in flight per connection (redis-benchmark -P); 1 over HTTP. */
  pipeline: number;
}

/** A key count as the table shows it: `10k`, `1M`, `2.5M`, `750`. */
export function keysLabel(n: number): string {
  if (n >= 1_000_000) return `${Number((n / 1_000_000).toPrecision(3))}M`;
  if (n >= 1000) return `${Number((n / 1000).toPrecision(3))}k`;
  return String(n);
}

const conns = (n: number): string => `${n} conn${n === 1 ? '' : 's'}`;

/** The workloads of a stage: HTTP put and get at each connection count, then RESP SET and GET without and with pipelining. */
export function workloads(o: Pick<Options, 'httpConnections' | 'respConnections' | 'pipeline'>): Workload[] {
  const out: Workload[] = [];
  for (const op of ['put', 'get'] as const) {
    for (const c of o.httpConnections) {
      out.push({
        workload: `http-${op}-c${c}`,
        title: `HTTP ${op === 'put' ? 'put' : 'linearizable get'}, ${conns(c)}`,
        versus: 'etcd',
        protocol: 'http',
        op,
        connections: c,
        pipeline: 1,
      });
    }
  }
  for (const pipeline of [1, o.pipeline]) {
    for (const op of ['put', 'get'] as const) {
      const name = op === 'put' ? 'SET' : 'GET';
      out.push({
        workload: `resp-${op}-c${o.respConnections}${pipeline > 1 ? `-P${pipeline}` : ''}`,
        title: `RESP ${name}, ${conns(o.respConnections)}${pipeline > 1 ? `, -P ${pipeline}` : ''}`,
        versus: 'redis',
        protocol: 'resp',
        op,
        connections: o.respConnections,
        pipeline,
      });
    }
  }
  return out;
}

/** Which systems run a workload: Cohort and, when it is running, the one it is compared with. */
export function systemsFor(w: Workload, available: readonly SystemName[]): SystemName[] {
  return (['cohort', w.versus] as SystemName[]).filter((s) => available.includes(s));
}

/** One measured run in the schedule. */
export interface PlannedRun {
  stage: string;
  round: number;
  workload: Workload;
  system: SystemName;
}

/**
 * The runs of a stage in order: round after round, each workload in turn,
 * Cohort first in odd rounds and last in even ones, so neither side always
 * runs right after the other's load.
 */
export function schedule(
  stage: string,
  rounds: number,
  list: readonly Workload[],
  available: readonly SystemName[],
): PlannedRun[] {
  const runs: PlannedRun[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const workload of list) {
      const order = systemsFor(workload, available);
      if (round % 2 === 0) order.reverse();
      for (const system of order) runs.push({ stage, round, workload, system });
    }
  }
  return runs;
}

/**
 * What `system` runs to warm up once it is started and loaded, before any measured run: of each
 * request kind it serves (protocol and operation), the workload with the most requests in flight, each
 * for an equal share of `seconds`. Every system gets the same time: Cohort's hot paths are only
 * optimized by Node's JIT after tens of seconds under load (its CPU per write at 64 connections falls
 * by a third over the first 30 s), while etcd's and Redis's are compiled ahead of time.
 */
export function warmUpPlan(
  system: SystemName,
  list: readonly Workload[],
  available: readonly SystemName[],
  seconds: number,
): { workload: Workload; seconds: number }[] {
  const best = new Map<string, Workload>();
  for (const w of list) {
    if (!systemsFor(w, available).includes(system)) continue;
    const kind = `${w.protocol}-${w.op}`;
    const b = best.get(kind);
    if (b === undefined || w.connections * w.pipeline > b.connections * b.pipeline) best.set(kind, w);
  }
  if (seconds <= 0 || best.size === 0) return [];
  return [...best.values()].map((workload) => ({ workload, seconds: seconds / best.size }));
}

/** A target of the comparison and whether this run met it. */
export interface TargetCheck {
  stage: string;
  target: string;
  measured: string;
  met: boolean;
  /**
   * The same comparison within each round that ran both sides (their runs close in time), in round order:
   * how far the machine's drift between rounds moved it. The verdict is the medians'; absent without runs.
   */
  byRound?: string[];
}

/**
 * The project's speed targets, checked on each stage's medians: put at 1
 * connection with p50 at or below etcd's; put at 64 connections at 1.5x
 * etcd's throughput with p99 at or below; linearizable get at 64 at 4x etcd;
 * RESP SET at 0.3x Redis; pipelined SET at 3x Cohort's own unpipelined SET.
 * A target whose workloads did not run is left out.
 */
export function checkTargets(
  summaries: readonly Summary[],
  list: readonly Workload[],
  runs: readonly RunResult[] = [],
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const at = (stage: string, workload: string | undefined, system: SystemName): Summary | undefined =>
    summaries.find((s) => s.stage === stage && s.workload === workload && s.system === system);
  /** `show` of each round's two runs of `a` and `b` (stage, workload, system), for the rounds that ran both. */
  const byRound = (
    a: Summary | undefined,
    b: Summary | undefined,
    show: (a: RunResult, b: RunResult) => string,
  ): { byRound?: string[] } => {
    const of = (s: Summary | undefined): RunResult[] =>
      runs.filter((r) => s && r.stage === s.stage && r.workload === s.workload && r.system === s.system);
    const theirs = of(b);
    const pairs = of(a).flatMap((x) => {
      const y = theirs.find((t) => t.round === x.round);
      return y ? [{ round: x.round, shown: show(x, y) }] : [];
    });
    return pairs.length === 0 ? {} : { byRound: pairs.sort((x, y) => x.round - y.round).map((p) => p.shown) };
  };
  const respSet = list.find((w) => w.protocol === 'resp' && w.op === 'put' && w.pipeline === 1);
  const respSetPipelined = list.find((w) => w.protocol === 'resp' && w.op === 'put' && w.pipeline > 1);
  for (const stage of new Set(summaries.map((s) => s.stage))) {
    /** `a`'s throughput at least `min` times `b`'s, and `also` when given. */
    const faster = (
      target: string,
      a: Summary | undefined,
      b: Summary | undefined,
      min: number,
      also?: { measured: string; met: boolean },
    ): void => {
      if (!a || !b) return;
      const r = ratio(a.opsPerSec, b.opsPerSec);
      const measured = formatRatio(r) + (also ? `, ${also.measured}` : '');
      checks.push({
        stage,
        target,
        measured,
        met: (r ?? 0) >= min && (also?.met ?? true),
        ...byRound(a, b, (x, y) => formatRatio(ratio(x.opsPerSec, y.opsPerSec))),
      });
    };
    const put1 = [at(stage, 'http-put-c1', 'cohort'), at(stage, 'http-put-c1', 'etcd')] as const;
    if (put1[0] && put1[1])
      checks.push({
        stage,
        target: 'HTTP put, 1 conn: p50 at or below etcd',
        measured: `p50 ${formatMs(put1[0].p50Ms)} vs ${formatMs(put1[1].p50Ms)} ms`,
        met: put1[0].p50Ms <= put1[1].p50Ms,
        ...byRound(put1[0], put1[1], (x, y) => `${formatMs(x.p50Ms)}/${formatMs(y.p50Ms)}`),
      });
    const put64 = [at(stage, 'http-put-c64', 'cohort'), at(stage, 'http-put-c64', 'etcd')] as const;
    faster('HTTP put, 64 conns: 1.5x etcd, p99 at or below', put64[0], put64[1], 1.5, {
      measured: `p99 ${formatMs(put64[0]?.p99Ms ?? Number.NaN)} vs ${formatMs(put64[1]?.p99Ms ?? Number.NaN)} ms`,
      met: (put64[0]?.p99Ms ?? Number.POSITIVE_INFINITY) <= (put64[1]?.p99Ms ?? 0),
    });
    faster(
      'HTTP linearizable get, 64 conns: 4x etcd',
      at(stage, 'http-get-c64', 'cohort'),
      at(stage, 'http-get-c64', 'etcd'),
      4,
    );
    const set = at(stage, respSet?.workload, 'cohort');
    faster(`${respSet?.title}: 0.3x Redis`, set, at(stage, respSet?.workload, 'redis'), 0.3);
    faster(
      `${respSetPipelined?.title}: 3x Cohort unpipelined`,
      at(stage, respSetPipelined?.workload, 'cohort'),
      set,
      3,
    );
  }
  return checks;
}
