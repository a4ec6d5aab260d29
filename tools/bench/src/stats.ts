// The pure part of the comparison: percentiles of one run, medians over
// rounds, ratios between systems, and the text table.
import type { PhaseResult } from '@cohort/scale-bench/load';
import type { WriteCost } from './write-phases.ts';

/** A system the comparison runs. */
export type SystemName = 'cohort' | 'etcd' | 'redis';

export const SYSTEM_TITLES: Record<SystemName, string> = { cohort: 'Cohort', etcd: 'etcd', redis: 'Redis' };

/**
 * Throughput and latency of one measured run of one workload against one
 * system. `errors` counts failed operations over HTTP; redis-benchmark stops at
 * the first error reply, so a failed RESP run counts 1.
 */
export interface RunResult extends Omit<PhaseResult, 'name' | 'maxMs'> {
  stage: string;
  workload: string;
  system: SystemName;
  round: number;
  /** Cohort's write runs: where a write's time went (see write-phases.ts). */
  writeCost?: WriteCost;
  /** CPU per operation over the measured run, when it was read. */
  cpuPerOp?: OpCpu;
}

/** CPU µs (user + system, every thread) per operation of a run: the system's server processes, and the load generator. */
export interface OpCpu {
  serverUs: number;
  loadUs: number;
}

/** CPU per operation from CPU seconds read before and after a run of `ops` operations; undefined when none completed. */
export function opCpu(
  ops: number,
  server: { before: number; after: number },
  load: { before: number; after: number },
): OpCpu | undefined {
  if (ops <= 0) return undefined;
  const us = (r: { before: number; after: number }): number => Math.round(((r.after - r.before) / ops) * 1e6);
  return { serverUs: us(server), loadUs: us(load) };
}

/** The medians over rounds of one workload against one system. */
export interface Summary {
  stage: string;
  workload: string;
  system: SystemName;
  rounds: number;
  opsPerSec: number;
  minOpsPerSec: number;
  maxOpsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Medians of the runs' CPU per operation (see {@link OpCpu}); absent when no run read it. */
  serverCpuUs?: number;
  loadCpuUs?: number;
}

/** The median of `xs` (the mean of the middle two for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The `q` quantile (0 to 1) of ascending `sorted`, by nearest rank: the
 * smallest value at or above which lie at least `q` of the samples.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** p50 and p99 of latencies in milliseconds, in any order. */
export function latencySummary(latencies: ArrayLike<number>): { p50Ms: number; p99Ms: number } {
  const sorted = Float64Array.from(latencies).sort();
  return { p50Ms: round(percentile(sorted, 0.5), 3), p99Ms: round(percentile(sorted, 0.99), 3) };
}

/** `x` rounded to `digits` decimals. */
export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** `a / b`, or undefined when either is missing or `b` is not above 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return undefined;
  return a / b;
}

/** Medians over rounds of every (stage, workload, system), in the order they first ran. */
export function summarize(results: readonly RunResult[]): Summary[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const k = `${r.stage}\u0000${r.workload}\u0000${r.system}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  return [...groups.values()].map((g) => {
    const rates = g.map((r) => r.opsPerSec);
    const cpu = g.flatMap((r) => (r.cpuPerOp ? [r.cpuPerOp] : []));
    const cpuMedians =
      cpu.length > 0
        ? { serverCpuUs: median(cpu.map((c) => c.serverUs)), loadCpuUs: median(cpu.map((c) => c.loadUs)) }
        : {};
    return {
      stage: g[0]!.stage,
      workload: g[0]!.workload,
      system: g[0]!.system,
      rounds: g.length,
      opsPerSec: Math.round(median(rates)),
      minOpsPerSec: Math.min(...rates),
      maxOpsPerSec: Math.max(...rates),
      p50Ms: round(median(g.map((r) => r.p50Ms)), 3),
      p99Ms: round(median(g.map((r) => r.p99Ms)), 3),
      errors: g.reduce((n, r) => n + r.errors, 0),
      ...cpuMedians,
    };
  });
}

/** `12,345/s`. */
export function formatRate(opsPerSec: number): string {
  return `${Math.round(opsPerSec).toLocaleString('en-US')}/s`;
}

/** Milliseconds with three significant digits: `0.412`, `1.95`, `23.4`, `160`. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  if (ms >= 100) return String(Math.round(ms));
  return String(Number(ms.toPrecision(3)));
}

/** `2.90x`, or `-` when there is no ratio. */
export function formatRatio(r: number | undefined): string {
  return r === undefined ? '-' : `${r.toFixed(2)}x`;
}

/** One cell of a system: `7,612/s p50 1.95 p99 23.4` (ms), with the error count when there were errors. */
export function formatCell(s: Summary | undefined): string {
  if (!s) return '-';
  const errors = s.errors > 0 ? ` (${s.errors} errors)` : '';
  return `${formatRate(s.opsPerSec)} p50 ${formatMs(s.p50Ms)} p99 ${formatMs(s.p99Ms)}${errors}`;
}

/** A table with a header row and a rule, columns padded; columns after `leftColumns` align right. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], leftColumns = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A workload as the table names it, and which other system Cohort is compared with. */
export interface WorkloadRow {
  stage: string;
  workload: string;
  title: string;
  /** The system Cohort's throughput is divided by. */
  versus: SystemName;
}

/** The (stage, workload, system) summary of `summaries`. */
function finder(summaries: readonly Summary[]) {
  return (r: WorkloadRow, system: SystemName): Summary | undefined =>
    summaries.find((s) => s.stage === r.stage && s.workload === r.workload && s.system === system);
}

/** The comparison table: one row per (stage, workload), a cell per system, the ratios of Cohort's throughput. */
export function comparisonTable(rows: readonly WorkloadRow[], summaries: readonly Summary[]): string {
  const find = finder(summaries);
  const body = rows
    .filter((r) => summaries.some((s) => s.stage === r.stage && s.workload === r.workload))
    .map((r) => {
      const cohort = find(r, 'cohort');
      const etcd = find(r, 'etcd');
      const redis = find(r, 'redis');
      return [
        r.stage,
        r.title,
        formatCell(cohort),
        formatCell(etcd),
        formatCell(redis),
        r.versus === 'etcd' ? formatRatio(ratio(cohort?.opsPerSec, etcd?.opsPerSec)) : '',
        r.versus === 'redis' ? formatRatio(ratio(cohort?.opsPerSec, redis?.opsPerSec)) : '',
      ];
    });
  return formatTable(['keys', 'workload', 'Cohort', 'etcd', 'Redis', 'Cohort/etcd', 'Cohort/Redis'], body, 5);
}

/** One system's CPU cell: `412 + 38` (µs per operation: its servers, the load generator). */
function formatCpu(s: Summary | undefined): string {
  if (s?.serverCpuUs === undefined || s.loadCpuUs === undefined) return '-';
  return `${Math.round(s.serverCpuUs)} + ${Math.round(s.loadCpuUs)}`;
}

/**
 * CPU per operation: a row per (stage, workload) that read it, a cell per system (its server processes'
 * µs, plus the load generator's), and how many times the other system's server CPU Cohort's is.
 */
export function cpuTable(rows: readonly WorkloadRow[], summaries: readonly Summary[]): string | undefined {
  const find = finder(summaries);
  const body = rows
    .filter((r) =>
      summaries.some((s) => s.stage === r.stage && s.workload === r.workload && s.serverCpuUs !== undefined),
    )
    .map((r) => {
      const cohort = find(r, 'cohort');
      const other = find(r, r.versus);
      return [
        r.stage,
        r.title,
        formatCpu(cohort),
        formatCpu(find(r, 'etcd')),
        formatCpu(find(r, 'redis')),
        formatRatio(ratio(cohort?.serverCpuUs, other?.serverCpuUs)),
      ];
    });
  if (body.length === 0) return undefined;
  return formatTable(['keys', 'workload', 'Cohort', 'etcd', 'Redis', 'Cohort server CPU / other'], body, 2);
}
