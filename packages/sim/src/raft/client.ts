import type { NodeId, SeededRandom } from '@cohort/core';
import type { KvInput, KvOperation } from '../lin/history.js';
import type { EventHandle } from '../scheduler.js';
import type { RaftCluster } from './cluster.js';
import type { ClientResponse, ReadMode, SimMessage } from './messages.js';

/** Behaviour of simulated clients. */
export interface ClientOptions {
  /** Keys the clients touch (few keys, many conflicts). */
  keys: string[];
  /** Pause between operations, simulated ms, uniform in [min, max]. */
  thinkMs: [number, number];
  /** Wait this long for an answer before trying another node. */
  attemptTimeoutMs: number;
  /** Attempts per operation before giving up (its outcome stays unknown). */
  maxAttempts: number;
}

/**
 * A KV client against the simulated cluster: one operation at a time, retried
 * with the same (client, seq) on timeouts and redirects so it takes effect
 * once; operations it gives up on stay in the history with unknown outcome.
 */
export class SimClient {
  readonly address: NodeId;
  private seq = 0;
  private op: KvOperation | undefined;
  private read: ReadMode = 'log';
  private attempts = 0;
  private hint: NodeId = '';
  private timer: EventHandle | undefined;
  private stopped = false;

  constructor(
    readonly index: number,
    private readonly cluster: RaftCluster,
    private readonly random: SeededRandom,
    private readonly history: KvOperation[],
    private readonly options: ClientOptions,
  ) {
    this.address = `c${index}`;
    cluster.network.attach(this.address, (_from, msg) => this.receive(msg));
  }

  /** Starts issuing operations. */
  start(): void {
    this.scheduleNext();
  }

  /** Issues no new operations (the one in flight may still finish). */
  stop(): void {
    this.stopped = true;
  }

  private get now(): number {
    return this.cluster.scheduler.now();
  }

  private scheduleNext(): void {
    const [lo, hi] = this.options.thinkMs;
    this.cluster.scheduler.after(this.random.int(lo, hi), () => this.next());
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.random.int(0, xs.length - 1)] as T;
  }

  private next(): void {
    if (this.stopped) return;
    this.seq++;
    const key = this.pick(this.options.keys);
    const r = this.random.next();
    // Unique and delimited, so no value occurs inside another (see prunedKvHistory).
    const value = `[${this.index}.${this.seq}]`;
    const input: KvInput =
      r < 0.3 ? { op: 'put', key, value } : r < 0.55 ? { op: 'append', key, value } : { op: 'get', key };
    this.read = this.random.next() < 0.5 ? 'log' : 'readIndex';
    this.op = { client: this.index, input, output: undefined, call: this.now, ret: Number.POSITIVE_INFINITY };
    this.history.push(this.op);
    this.attempts = 0;
    this.attempt();
  }

  private attempt(): void {
    const op = this.op;
    if (!op) return;
    this.attempts++;
    const ids = this.cluster.nodeIds();
    const target = this.hint !== '' && this.cluster.nodes.has(this.hint) ? this.hint : this.pick(ids);
    this.cluster.network.send(this.address, target, {
      kind: 'req',
      req: { client: this.index, seq: this.seq, input: op.input, read: this.read },
    });
    this.timer = this.cluster.scheduler.after(this.options.attemptTimeoutMs, () => this.onTimeout());
  }

  private onTimeout(): void {
    this.hint = '';
    if (this.attempts >= this.options.maxAttempts) {
      // Give up: the outcome stays unknown (ret = Infinity) and the next op gets a new seq.
      this.op = undefined;
      this.scheduleNext();
      return;
    }
    this.attempt();
  }

  private receive(msg: SimMessage): void {
    if (msg.kind !== 'resp') return;
    const resp: ClientResponse = msg.resp;
    const op = this.op;
    if (!op || resp.seq !== this.seq) return;
    if (this.timer) this.cluster.scheduler.cancel(this.timer);
    if (resp.ok) {
      op.output = resp.output;
      op.ret = this.now;
      this.op = undefined;
      this.scheduleNext();
      return;
    }
    this.hint = resp.leaderHint;
    if (this.attempts >= this.options.maxAttempts) {
      this.op = undefined;
      this.scheduleNext();
      return;
    }
    // Redirected: try the hinted leader after a short pause.
    this.timer = this.cluster.scheduler.after(20, () => this.attempt());
  }
}
