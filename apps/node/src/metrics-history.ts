import type { Registry } from 'prom-client';

/** One second (or one interval) of the node's own metrics, as `GET /v1/admin/metrics/history` answers it. */
export interface MetricsSample {
  /** When it was taken, ms since the epoch. */
  t: number;
  /** Client requests served per second (RESP and HTTP, every outcome). */
  requestsPerSec: number;
  /** Median and 99th percentile request latency over the interval, ms; absent with no request. */
  p50Ms?: number;
  p99Ms?: number;
  /** Proposals this node made as leader (durable in its log) per second. */
  proposalsPerSec: number;
  /** Log entries committed and applied here per second (every group, leader or follower). */
  commitsPerSec: number;
  /** Durable store writes (fsync'd group commits) per second. */
  fsyncsPerSec: number;
  /** Mean time of one durable store write over the interval, ms; absent with no write. */
  fsyncMs?: number;
}

/** Options of {@link MetricsHistory}. */
export interface MetricsHistoryOptions {
  /** How often a sample is taken. @default 1000 */
  intervalMs?: number;
  /** How many samples are kept (the oldest is dropped). @default 300 (5 minutes at 1 s) */
  capacity?: number;
}

/** The running totals read from the registry at one instant. */
interface Totals {
  at: number;
  requests: number;
  /** Cumulative counts of the latency histogram per upper bound (seconds), every label summed. */
  buckets: Map<number, number>;
  proposals: number;
  commits: number;
  storeWrites: number;
  storeWriteSeconds: number;
}

const REQUESTS = 'cohort_requests_total';
const LATENCY = 'cohort_request_duration_seconds';
const PHASES = 'cohort_raft_proposal_phase_seconds';
const APPLIED = 'cohort_raft_entries_applied_total';
const STORE_WRITES = 'cohort_raft_store_writes_total';
const STORE_WRITE_SECONDS = 'cohort_raft_store_write_seconds_total';

/**
 * A short in-memory history of the node's own Prometheus metrics, so the
 * dashboard draws live charts without a Prometheus server: every interval it
 * reads the registry's counters and histograms and keeps the rates and
 * percentiles of that interval in a ring buffer of `capacity` samples.
 */
export class MetricsHistory {
  private readonly ring: (MetricsSample | undefined)[];
  private next = 0;
  private size = 0;
  private last: Totals | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private sampling = false;
  readonly intervalMs: number;

  constructor(
    private readonly registry: Registry,
    options: MetricsHistoryOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 1000;
    const capacity = options.capacity ?? 300;
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('metrics history: capacity must be >= 1');
    this.ring = new Array(capacity);
  }

  /** Starts sampling every `intervalMs` (the timer does not keep the process alive). */
  start(): void {
    if (this.timer !== undefined) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The samples kept, oldest first; with `since` (ms), those taken after it. */
  samples(since?: number): MetricsSample[] {
    const out: MetricsSample[] = [];
    const cap = this.ring.length;
    for (let i = 0; i < this.size; i++) {
      const s = this.ring[(this.next - this.size + i + cap) % cap]!;
      if (since === undefined || s.t > since) out.push(s);
    }
    return out;
  }

  /** Takes one sample now: the rates since the previous one (the first only sets the baseline). */
  async sample(now = Date.now()): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const totals = await this.read(now);
      const prev = this.last;
      this.last = totals;
      if (prev === undefined || totals.at <= prev.at) return;
      this.push(rates(prev, totals));
    } finally {
      this.sampling = false;
    }
  }

  private push(s: MetricsSample): void {
    this.ring[this.next] = s;
    this.next = (this.next + 1) % this.ring.length;
    this.size = Math.min(this.size + 1, this.ring.length);
  }

  private async values(name: string): Promise<{ value: number; labels: Record<string, unknown>; name?: string }[]> {
    const metric = this.registry.getSingleMetric(name);
    if (metric === undefined) return [];
    const got = await metric.get();
    return got.values.map((v) => ({
      value: v.value,
      labels: v.labels as Record<string, unknown>,
      ...('metricName' in v && typeof v.metricName === 'string' ? { name: v.metricName } : {}),
    }));
  }

  private async read(at: number): Promise<Totals> {
    const sum = (vs: { value: number }[]): number => vs.reduce((a, v) => a + v.value, 0);
    const buckets = new Map<number, number>();
    let proposals = 0;
    for (const v of await this.values(LATENCY)) {
      if (v.name !== `${LATENCY}_bucket`) continue;
      const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    }
    for (const v of await this.values(PHASES)) {
      if (v.name === `${PHASES}_count` && v.labels.phase === 'persisted') proposals += v.value;
    }
    return {
      at,
      requests: sum(await this.values(REQUESTS)),
      buckets,
      proposals,
      commits: sum(await this.values(APPLIED)),
      storeWrites: sum(await this.values(STORE_WRITES)),
      storeWriteSeconds: sum(await this.values(STORE_WRITE_SECONDS)),
    };
  }
}

/** The sample of the interval between two readings of the totals. */
function rates(a: Totals, b: Totals): MetricsSample {
  const secs = (b.at - a.at) / 1000;
  // Counters restart from zero only with the process; a negative delta is clamped, never charted.
  const per = (x: number, y: number): number => round(Math.max(0, y - x) / secs);
  const writes = Math.max(0, b.storeWrites - a.storeWrites);
  const delta = new Map<number, number>();
  for (const [le, n] of b.buckets) delta.set(le, Math.max(0, n - (a.buckets.get(le) ?? 0)));
  const p50 = quantile(delta, 0.5);
  const p99 = quantile(delta, 0.99);
  return {
    t: b.at,
    requestsPerSec: per(a.requests, b.requests),
    ...(p50 !== undefined ? { p50Ms: p50 } : {}),
    ...(p99 !== undefined ? { p99Ms: p99 } : {}),
    proposalsPerSec: per(a.proposals, b.proposals),
    commitsPerSec: per(a.commits, b.commits),
    fsyncsPerSec: per(a.storeWrites, b.storeWrites),
    ...(writes > 0 ? { fsyncMs: round(((b.storeWriteSeconds - a.storeWriteSeconds) / writes) * 1000) } : {}),
  };
}

/**
 * The `q` quantile in ms of a histogram's observations over an interval
 * (cumulative counts per upper bound, seconds), interpolated linearly inside
 * its bucket as Prometheus' histogram_quantile does; undefined when empty.
 */
export function quantile(cumulative: ReadonlyMap<number, number>, q: number): number | undefined {
  const bounds = [...cumulative.keys()].sort((x, y) => x - y);
  const total = cumulative.get(Number.POSITIVE_INFINITY) ?? cumulative.get(bounds.at(-1) ?? 0) ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const le of bounds) {
    const n = cumulative.get(le) ?? 0;
    if (n >= rank) {
      // Past the last finite bound, the best known answer is that bound.
      if (!Number.isFinite(le)) return round(lower * 1000);
      const inBucket = n - below;
      const frac = inBucket > 0 ? (rank - below) / inBucket : 1;
      return round((lower + (le - lower) * frac) * 1000);
    }
    lower = le;
    below = n;
  }
  return round(lower * 1000);
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
