import { ErrorCode, type NodeId, type SeededRandom } from '@cohort/core';
import { type KvRequest, type KvResponse, decodeResponse, encodeRequest } from '@cohort/kv';
import { SimClock } from '../clock.js';
import type { KvInput, KvOperation } from '../lin/history.js';
import type { SimNetwork } from '../network.js';
import type { Scheduler } from '../scheduler.js';
import { decodeText, encodeText } from '../text-codec.js';
import { type RequestIds, type SimFrame, SimTransport } from '../transport/sim-transport.js';
import { CLIENT_PROTOCOL } from './sim-node.js';

/** What a client needs of the simulated cluster it talks to (a Raft cluster, a partitioned one). */
export interface ClientCluster {
  readonly scheduler: Scheduler;
  readonly network: SimNetwork<SimFrame>;
  readonly ids: RequestIds;
  /** The nodes a client may reach, by id (up or down). */
  readonly nodes: ReadonlyMap<NodeId, unknown>;
  nodeIds(): NodeId[];
  /** A read was answered (for coverage). */
  readServed(): void;
}

/** Behaviour of simulated clients. */
export interface ClientOptions {
  /** Keys written by SET (few keys, many conflicts). */
  registerKeys: string[];
  /** Keys written by INCR. */
  counterKeys: string[];
  /** Pause between operations, simulated ms, uniform in [min, max]. */
  thinkMs: [number, number];
  /** Wait this long for an answer before trying another node. */
  attemptTimeoutMs: number;
  /** Attempts per operation before giving up (its outcome stays unknown). */
  maxAttempts: number;
  /**
   * Retry a write whose outcome is unknown (timed out, connection lost) with
   * the same session sequence number, which the KV applies once. When false,
   * such a write is given up on and stays in the history with unknown outcome.
   * @default true
   */
  retryWrites?: boolean;
}

/** Failures that say the write was certainly not applied, so any client may retry it (an open circuit sent nothing). */
function notApplied(res: KvResponse): boolean {
  return (
    res.type === 'failure' &&
    (res.code === ErrorCode.NotLeader || res.code === ErrorCode.ProposalDropped || res.code === ErrorCode.CircuitOpen)
  );
}

/**
 * A KV client of the simulated cluster, as an application reaches a node
 * over RESP or HTTP: it sends a request to some node, which serves it through
 * the production `KvService` (forwarding to the leader). One operation at a
 * time. Every write carries the client's session (client id, sequence
 * number), so a write whose outcome is unknown is retried on another node
 * with the same sequence number and takes effect once; operations given up
 * on after `maxAttempts` stay in the history with unknown outcome.
 */
export class SimClient {
  readonly address: NodeId;
  private readonly transport: SimTransport;
  private op: KvOperation | undefined;
  /** The session sequence number of the current operation's write (one per operation). */
  private seq = 0;
  /** Counts attempts across operations, so a late answer to an old attempt is recognised. */
  private attemptId = 0;
  private attempts = 0;
  private hint: NodeId = '';
  private stopped = false;

  constructor(
    readonly index: number,
    private readonly cluster: ClientCluster,
    private readonly random: SeededRandom,
    private readonly history: KvOperation[],
    private readonly options: ClientOptions,
  ) {
    this.address = `c${index}`;
    const clock = new SimClock(cluster.scheduler);
    this.transport = new SimTransport(this.address, cluster.network, clock, cluster.ids, {
      requestTimeoutMs: options.attemptTimeoutMs,
      // Writes carry a session: a request delivered twice must apply once.
      duplicateRequests: true,
    });
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
    const { registerKeys, counterKeys } = this.options;
    const key = this.pick([...registerKeys, ...counterKeys]);
    const write = this.random.next() < 0.45;
    // Unique and delimited, so no value occurs inside another (see prunedKvHistory).
    const value = `[${this.index}.${this.history.length}]`;
    let input: KvInput = { op: 'get', key };
    if (write) input = counterKeys.includes(key) ? { op: 'incr', key } : { op: 'set', key, value };
    this.op = { client: this.index, input, output: undefined, call: this.now, ret: Number.POSITIVE_INFINITY };
    this.seq++;
    this.history.push(this.op);
    this.attempts = 0;
    this.attempt();
  }

  private request(input: KvInput): KvRequest {
    const key = encodeText(input.key);
    // One operation at a time: every earlier one was answered or given up on, so its reply may go.
    const session = { clientId: this.address, seq: this.seq, lowWater: this.seq - 1 };
    // Commands carry wall-clock milliseconds (for expiry); simulated time starts at 0.
    const now = Math.floor(this.now);
    switch (input.op) {
      case 'set':
        return {
          kind: 'write',
          command: {
            op: 'set',
            key,
            value: encodeText(input.value),
            condition: 'always',
            expiresAt: 0,
            returnOld: false,
            now,
            session,
          },
        };
      case 'incr':
        return { kind: 'write', command: { op: 'incr', key, delta: 1n, now, session } };
      case 'get':
        return { kind: 'read', op: 'get', keys: [key], now };
      default: {
        const never: never = input;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  private attempt(): void {
    const op = this.op;
    if (!op) return;
    this.attempts++;
    const id = ++this.attemptId;
    const target =
      this.hint !== '' && this.cluster.nodes.has(this.hint) ? this.hint : this.pick(this.cluster.nodeIds());
    this.transport.request(target, CLIENT_PROTOCOL, encodeRequest(this.request(op.input))).then(
      (bytes) => {
        if (id === this.attemptId) this.onResponse(op, decodeResponse(bytes));
      },
      () => {
        if (id === this.attemptId) this.onLost(op);
      },
    );
  }

  private onResponse(op: KvOperation, res: KvResponse): void {
    if (res.type === 'failure') {
      this.hint = res.leaderId ?? '';
      this.retryOrGiveUp(op, notApplied(res));
      return;
    }
    op.output = outputOf(op.input, res);
    op.ret = this.now;
    if (op.input.op === 'get') this.cluster.readServed();
    this.finish();
  }

  /** No answer: the request or its reply was lost, or the node is down. */
  private onLost(op: KvOperation): void {
    this.hint = '';
    this.retryOrGiveUp(op, false);
  }

  private retryOrGiveUp(op: KvOperation, surelyNotApplied: boolean): void {
    const safe = surelyNotApplied || op.input.op === 'get' || this.options.retryWrites !== false;
    if (!safe || this.attempts >= this.options.maxAttempts) {
      // Give up: the outcome stays unknown (ret = Infinity).
      this.finish();
      return;
    }
    this.cluster.scheduler.after(20, () => {
      if (this.op === op) this.attempt();
    });
  }

  private finish(): void {
    this.op = undefined;
    this.attemptId++;
    this.scheduleNext();
  }
}

/** The history's output for a successful response. */
function outputOf(input: KvInput, res: KvResponse): string {
  if (res.type === 'ok') return 'ok';
  if (res.type === 'nil') return '';
  if (res.type === 'bulk') return decodeText(res.value);
  if (res.type === 'int') return res.value.toString();
  if (res.type === 'error') return 'error';
  // Anything else is not an answer to this op: the checker will reject the history.
  return `unexpected ${res.type} for ${input.op}`;
}
