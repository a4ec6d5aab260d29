import { Redis } from 'ioredis';

/** Throughput and latency of one measured phase. */
export interface PhaseResult {
  name: string;
  ops: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The first error seen, to tell a failure mode from a slow run. */
  firstError?: string;
  /**
   * CPU each process used during the phase, in cores (CPU seconds per second):
   * one entry per node, and `bench` for the load generator.
   */
  cpu?: Record<string, number>;
  /**
   * Where the phase's time went, from the nodes' metrics before and after it: on the leader, the
   * p50/p99 of each proposal phase (upper bucket bounds, ms); on every node, GC, the writer's commits
   * and the event loop's longest delay.
   */
  where?: {
    leaderPhasesMs: Record<string, { p50: number | null; p99: number | null }>;
    nodes: Record<
      string,
      {
        /** `leader`, or `wiped` for the follower wiped for the catch-up; absent for the others. */
        role?: 'leader' | 'wiped';
        gcMs: number;
        commits: number;
        commitMsMean: number | null;
        loopLagMaxMs: number | null;
      }
    >;
  };
}

/** A RESP client that gives up fast instead of queueing while a node is down. */
export function client(port: number): Redis {
  const c = new Redis({
    port,
    host: '127.0.0.1',
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    lazyConnect: false,
  });
  // A node the bench restarts refuses connections for a while: the requests fail and count as
  // errors; the reconnect attempts need no line each.
  c.on('error', () => {});
  return c;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Key `i` of the loaded key space. */
export function keyOf(i: number): string {
  return `key:${String(i).padStart(8, '0')}`;
}

/** A value of `bytes` bytes that still tells which key and round wrote it. */
export function valueFor(i: number, bytes: number): string {
  const head = `v${i}:`;
  return head + 'x'.repeat(Math.max(0, bytes - head.length));
}

/**
 * Runs `op` in a closed loop on each of `clients` for `seconds` (or until
 * `stop` resolves), recording each operation's latency.
 */
export async function closedLoop(
  name: string,
  clients: Redis[],
  seconds: number,
  op: (r: Redis, n: number) => Promise<unknown>,
  stop?: Promise<unknown>,
  /** Called with the time (`Date.now()`) each operation succeeded. */
  onDone?: (at: number) => void,
): Promise<PhaseResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let done = false;
  const timer = setTimeout(() => {
    done = true;
  }, seconds * 1000);
  void stop?.then(() => {
    done = true;
  });
  const started = performance.now();
  let n = 0;
  await Promise.all(
    clients.map(async (r) => {
      while (!done) {
        const t0 = performance.now();
        try {
          await op(r, n++);
          latencies.push(performance.now() - t0);
          onDone?.(Date.now());
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
          // A failing node answers at once: do not spin on it.
          await new Promise((res) => setTimeout(res, 10));
        }
      }
    }),
  );
  clearTimeout(timer);
  const elapsed = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  const result: PhaseResult = {
    name,
    ops: latencies.length,
    errors,
    seconds: round(elapsed),
    opsPerSec: Math.round(latencies.length / elapsed),
    p50Ms: round(quantile(sorted, 0.5)),
    p99Ms: round(quantile(sorted, 0.99)),
    maxMs: round(sorted.length ? sorted[sorted.length - 1]! : Number.NaN),
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

/** Rounds to two decimals. */
export function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** Which keys {@link loadKeys} writes: `[from, count)`, named by `key`. */
export interface KeyRange {
  /** The first key's number. @default 0 */
  from?: number;
  /** The name of key `i`. @default keyOf */
  key?: (i: number) => string;
}

/**
 * Loads keys `[from, count)` with pipelined MSETs of `batch` keys, `depth`
 * commands in flight on each client. Resolves with keys per second.
 */
export async function loadKeys(
  clients: Redis[],
  count: number,
  valueBytes: number,
  batch = 100,
  depth = 8,
  onProgress?: (loaded: number) => void,
  range: KeyRange = {},
): Promise<number> {
  const key = range.key ?? keyOf;
  const first = range.from ?? 0;
  const started = performance.now();
  let next = first;
  let loaded = 0;
  let reported = 0;
  const worker = async (r: Redis): Promise<void> => {
    for (;;) {
      const from = next;
      if (from >= count) return;
      next = Math.min(count, from + batch);
      const args: string[] = [];
      for (let i = from; i < next; i++) args.push(key(i), valueFor(i, valueBytes));
      await msetRetrying(r, args);
      loaded += args.length / 2;
      if (onProgress && loaded - reported >= 100_000) {
        reported = loaded;
        onProgress(loaded);
      }
    }
  };
  await Promise.all(clients.flatMap((r) => Array.from({ length: depth }, () => worker(r))));
  return Math.round((count - first) / ((performance.now() - started) / 1000));
}

/**
 * MSET, sent again while the cluster answers that it did not apply it (a leader change dropped the
 * proposal, or the node is not the leader for a moment): an MSET sets the same values however often
 * it applies, so a retry is safe. Other errors, and ten refusals in a row, end the load.
 */
async function msetRetrying(r: Redis, args: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await r.mset(...args);
      return;
    } catch (err) {
      const message = (err as Error).message;
      if (attempt >= 10 || !/^(PROPOSAL_DROPPED|NOT_LEADER|UNAVAILABLE)/.test(message)) throw err;
      await new Promise((res) => setTimeout(res, 100 * attempt));
    }
  }
}
