import { setTimeout as sleep } from 'node:timers/promises';
import type { KvOperation } from '@cohort/sim';
import { Redis } from 'ioredis';
import type { ChaosNode } from './cluster.ts';

/**
 * Refusals of a probe read that say "not now" rather than answer: the forwards' circuit to the leader open,
 * no quorum or no leader yet, a retry asked for. {@link Workload.probeReads} asks again on these.
 */
const RETRYABLE = /^(CIRCUIT_OPEN|CLUSTERDOWN|TRYAGAIN|UNAVAILABLE)\b/;
/** How long after its first refusal a probe read is asked again, and the gap between tries. */
const PROBE_RETRY_MS = 3000;
const PROBE_RETRY_GAP_MS = 100;

/** Options of {@link Workload}. */
export interface WorkloadOptions {
  nodes: ChaosNode[];
  /** Concurrent clients; each has one operation outstanding at a time. */
  clients: number;
  /** Register keys the checked history is about (few keys, many operations on each). */
  keys: number;
  /** How long one command may take before its outcome counts as unknown. */
  commandTimeoutMs: number;
  /** A seeded source in [0, 1). */
  random: () => number;
}

/** Counts of what the clients saw. */
export interface WorkloadStats {
  ok: number;
  failed: number;
  /** Writes whose outcome is unknown (a timeout, a dropped connection, an error after sending). */
  unknown: number;
}

/**
 * Clients that drive the cluster over RESP and record what they saw, with
 * the harness's monotonic clock: each operation's invocation and completion
 * on register keys (SET with values unique to the run, GET) for the
 * linearizability checker, and every acknowledged write to a key of its own
 * (`ack:<client>:<seq>`), which must all be readable at the end.
 */
export class Workload {
  readonly history: KvOperation[] = [];
  /** Acknowledged writes of keys written once: key to value. */
  readonly acknowledged = new Map<string, string>();
  readonly stats: WorkloadStats = { ok: 0, failed: 0, unknown: 0 };
  private readonly conns: Redis[][];
  private stopped = false;
  /** Per client: whether its last operation failed. */
  private readonly failedLast: boolean[] = [];
  private running: Promise<void>[] = [];
  private readonly opts: WorkloadOptions;

  constructor(opts: WorkloadOptions) {
    this.opts = opts;
    // One connection per client and node: a client sends each operation to a node picked at random.
    this.conns = Array.from({ length: opts.clients }, () => opts.nodes.map((n) => connect(n, opts.commandTimeoutMs)));
  }

  start(): void {
    this.running = this.conns.map((_, c) => this.client(c));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }

  close(): void {
    for (const row of this.conns) for (const r of row) r.disconnect();
  }

  /**
   * GETs every register key through `conn` (a connection to a node about to
   * be paused, with a timeout longer than the pause), recorded in the history
   * as client `client`: the node reads them from its socket the moment it is
   * resumed, before its timers run, which is when a stale lease could answer.
   * Returns how many were answered. A read the node refuses for now (see
   * `RETRYABLE`: on a loaded machine its peer connections are often still
   * coming back) is asked again of the same node for up to 3 s.
   */
  async probeReads(conn: Redis, client: number): Promise<number> {
    let answered = 0;
    await Promise.all(
      Array.from({ length: this.opts.keys }, async (_, k) => {
        const key = `reg:${k}`;
        // Asked again on the same connection (the same node) after a refusal for now; its answer is checked too.
        let until: number | undefined;
        for (;;) {
          const call = performance.now();
          try {
            const v = await conn.get(key);
            this.history.push({
              client: client + k,
              input: { op: 'get', key },
              output: v ?? '',
              call,
              ret: performance.now(),
            });
            answered++;
            return;
          } catch (err) {
            // Refused or timed out: no answer to check.
            if (!RETRYABLE.test((err as Error).message)) return;
            until ??= performance.now() + PROBE_RETRY_MS;
            if (performance.now() > until) return;
            await sleep(PROBE_RETRY_GAP_MS);
          }
        }
      }),
    );
    return answered;
  }

  /** One linearizable GET of every register key, recorded in the history (after the faults healed). */
  async finalReads(): Promise<void> {
    for (let k = 0; k < this.opts.keys; k++) {
      for (let attempt = 0; attempt < 20; attempt++) {
        const conn = this.pick(0);
        const call = performance.now();
        try {
          const v = await conn.get(`reg:${k}`);
          this.history.push({
            client: 0,
            input: { op: 'get', key: `reg:${k}` },
            output: v ?? '',
            call,
            ret: performance.now(),
          });
          break;
        } catch {
          await sleep(200);
        }
      }
    }
  }

  /** Reads back every acknowledged `ack:` write; answers the keys missing or holding another value. */
  async lostWrites(): Promise<string[]> {
    const keys = [...this.acknowledged.keys()];
    const lost: string[] = [];
    for (let i = 0; i < keys.length; i += 200) {
      const batch = keys.slice(i, i + 200);
      let values: (string | null)[] | undefined;
      for (let attempt = 0; attempt < 20 && values === undefined; attempt++) {
        try {
          values = await this.pick(0).mget(...batch);
        } catch {
          await sleep(200);
        }
      }
      if (values === undefined)
        throw new Error('the cluster answered no MGET of acknowledged keys after the faults healed');
      batch.forEach((k, j) => {
        if (values[j] !== this.acknowledged.get(k)) lost.push(k);
      });
    }
    return lost;
  }

  /**
   * A connection to a node picked at random among those not paused (a paused
   * node would hold the client for its whole timeout, and few writes would
   * happen meanwhile for a stale read to miss).
   */
  private pick(client: number): Redis {
    const row = this.conns[client] as Redis[];
    const live = row.filter((_, i) => this.opts.nodes[i]?.paused !== true);
    const from = live.length > 0 ? live : row;
    return from[Math.floor(this.opts.random() * from.length)] as Redis;
  }

  private async client(c: number): Promise<void> {
    let seq = 0;
    while (!this.stopped) {
      seq++;
      this.failedLast[c] = false;
      const conn = this.pick(c);
      const r = this.opts.random();
      if (r < 0.1) {
        await this.ackWrite(conn, c, seq);
        if (this.failedLast[c]) await sleep(20);
        continue;
      }
      const key = `reg:${Math.floor(this.opts.random() * this.opts.keys)}`;
      const call = performance.now();
      if (r < 0.5) {
        // Unique values, none containing another (what the history pruning relies on).
        const value = `[${c}.${seq}]`;
        try {
          await conn.set(key, value);
          this.stats.ok++;
          this.history.push({
            client: c,
            input: { op: 'set', key, value },
            output: 'ok',
            call,
            ret: performance.now(),
          });
        } catch (err) {
          this.noteFailure(err, c);
          // It may have taken effect at any time since it was sent.
          this.history.push({
            client: c,
            input: { op: 'set', key, value },
            output: undefined,
            call,
            ret: Number.POSITIVE_INFINITY,
          });
        }
      } else {
        try {
          const v = await conn.get(key);
          this.stats.ok++;
          this.history.push({ client: c, input: { op: 'get', key }, output: v ?? '', call, ret: performance.now() });
        } catch {
          // A read that failed changed nothing: it stays out of the history.
          this.stats.failed++;
          this.failedLast[c] = true;
        }
      }
      // A failure costs the next attempt a short wait, so a client facing a dead node does not spin.
      if (this.failedLast[c]) await sleep(20);
    }
  }

  private async ackWrite(conn: Redis, c: number, seq: number): Promise<void> {
    const key = `ack:${c}:${seq}`;
    const value = `v${seq}`;
    try {
      await conn.set(key, value);
      this.acknowledged.set(key, value);
      this.stats.ok++;
    } catch (err) {
      this.noteFailure(err, c);
    }
  }

  private noteFailure(err: unknown, c: number): void {
    this.failedLast[c] = true;
    if (sentNothing(err)) this.stats.failed++;
    else this.stats.unknown++;
  }
}

/** Whether the command never left the client (no connection): it cannot have taken effect. */
function sentNothing(err: unknown): boolean {
  return err instanceof Error && /Stream isn't writeable/.test(err.message);
}

function connect(node: ChaosNode, commandTimeoutMs: number): Redis {
  const r = new Redis({
    host: '127.0.0.1',
    port: node.resp,
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 1000,
    // Reconnect soon after a node comes back; a killed node refuses connections until then.
    retryStrategy: () => 200,
  });
  r.on('error', () => {});
  return r;
}
