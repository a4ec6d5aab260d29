import {
  CircuitOpenError,
  type Clock,
  ClusterDownError,
  CohortError,
  ErrorCode,
  InternalError,
  type LogIndex,
  type Logger,
  type NodeId,
  Protocols,
  type QuorumStatus,
  type ReplicatedGroup,
  type Transport,
  UnavailableError,
  decodeForwardRequest,
  decodeForwardResponse,
  describeQuorumLoss,
  encodeForwardRequest,
  encodeForwardResponse,
  silentLogger,
} from '@cohort/core';
import { CorruptStateError, NotLeaderError, StaleEpochError, StorageError, clockSignal } from '@cohort/core';
import { type CircuitBreakerOptions, CircuitBreakers } from './circuit-breaker.js';
import { InvalidExpireError, type KvClientRequest, isRelative, toCommand } from './client-request.js';
import { type KvCommand, type KvOp, type TxnBranch, encodeCommand } from './command.js';
import {
  type KvRequest,
  type KvResponse,
  decodeBatchResponse,
  decodeForwardedRequest,
  decodeResponse,
  encodeBatchRequest,
  encodeBatchResponse,
  encodeRequest,
  encodeResponse,
} from './request.js';
import type { KvResult } from './result.js';
import type { KvStateMachine } from './state-machine.js';
import { opKeys } from './txn/op-keys.js';
import {
  IntentResolver,
  type IntentResolverOptions,
  type Resolution,
  allPending,
  lockedError,
} from './txn/resolver.js';
import type { TxnParticipant } from './txn/types.js';

/** Options of {@link KvService}. */
export interface KvServiceOptions {
  /** The group whose state machine this service serves (Raft or any other engine). */
  group: ReplicatedGroup;
  /**
   * This replica's state machine of the group, which reads are served from;
   * absent on a node that holds no replica of the group, which forwards
   * every request to a replica (see {@link serveForwardedRequests}).
   */
  machine?: KvStateMachine;
  /**
   * The group's partition epoch in this node's partition map: forwards carry
   * it, and a forward carrying an older one is refused as stale (STALE_EPOCH).
   * Absent (or 0): forwards are not fenced by epoch.
   */
  epoch?: () => number;
  /**
   * Called when a forward of this node was refused as stale: resolves once
   * this node's partition map moved on (or it gave up waiting by `deadline`),
   * and the request is retried.
   */
  refreshEpoch?: (deadline: number) => Promise<void>;
  transport: Transport;
  clock: Clock;
  logger?: Logger;
  /** How long a request may wait for a leader, forwarding included. @default 5000 */
  requestTimeoutMs?: number;
  /**
   * Wall-clock Unix milliseconds. The leader stamps each write with it when it
   * proposes, so every replica applies the write at the same time, and
   * evaluates expiry of reads with it. @default Date.now
   */
  wallClock?: () => number;
  /**
   * Called when serving a request met damaged storage. A `CorruptStateError`
   * (a KV row failing its checksum) means the replica restores its state from
   * a healthy one (the host's `repair`), and the request fails with a
   * retryable UNAVAILABLE; any other storage error means the replica must
   * stop serving (the host's `fail`), and the request fails with it.
   */
  onStorageFailure?: (err: StorageError) => void;
  /**
   * The per-peer circuit breakers of forwarding, shared by the services of a
   * node's groups (a peer failing for one group fails for all). Absent: the
   * service keeps its own, tuned by `circuitBreaker`.
   */
  circuitBreakers?: CircuitBreakers;
  /** Tuning of the service's own breakers when `circuitBreakers` is absent; see {@link CircuitBreakerOptions}. */
  circuitBreaker?: Partial<CircuitBreakerOptions>;
  /**
   * For how long after a circuit to the leader opened a request it refuses
   * keeps waiting (within the request timeout) for the group to elect another
   * leader, which the request then goes to (nothing was sent, so any request
   * may be retried); past it, CIRCUIT_OPEN is answered at once. About two
   * election timeouts rides out a leader's crash. @default 2000
   */
  openCircuitWaitMs?: number;
  /**
   * Cross-partition transactions: how this node reaches every partition
   * (to read, abort and resolve a transaction whose intent a command met),
   * and how often the leader looks for intents past their deadline that
   * nobody met (every `resolveEveryMs`, default 1000). Absent: a command
   * meeting an intent waits for it to go (resolved by others) until the
   * request timeout, then answers TRYAGAIN.
   */
  transactions?: {
    participant: (p: number) => TxnParticipant;
    resolveEveryMs?: number;
    random?: () => number;
    /** Told when this node resolved a transaction it met (a reader's or the sweeper's doing). */
    onResolve?: (txn: string, branch: TxnBranch | 'abort') => void;
  };
}

type WriteRequest = Extract<KvRequest, { kind: 'write' }>;
type ReadRequest = Extract<KvRequest, { kind: 'read' }>;

/** Whether serving `req` twice answers as serving it once: a read, or a write in a client session. */
function idempotent(req: KvRequest): boolean {
  return req.kind === 'read' || req.command.session !== undefined;
}

/**
 * The most times a request is forwarded from node to node: from the node a
 * client reached to a replica of the group (when that node holds none), to
 * its leader, and once more while leadership moves. Past it, a request is
 * refused rather than forwarded again, so nodes that disagree on the leader
 * cannot bounce it forever.
 */
export const MAX_FORWARD_HOPS = 3;

/**
 * A node serving a forwarded request answers this much (at most; a tenth of
 * the sender's wait if that is less) before the sender stops waiting, so the
 * answer, even one saying time ran out, reaches it in time.
 */
const FORWARD_MARGIN_MS = 100;

/**
 * A request is tried again only with at least this much of its timeout left.
 * With less, another node could not answer in time (it keeps a tenth of the
 * wait for the answer's way back): the attempt would time out here, report
 * the node asked instead of the failure it was about to relay, and count
 * against that node's circuit breaker. The failure so far is the answer.
 */
const MIN_RETRY_MS = 20;

/**
 * Answers the requests other nodes forward on `transport` (`/cohort/kv/1`),
 * each by the service of its group that `serviceOf` names; a group served by
 * none is refused with NOT_LEADER. One node registers this once for all the
 * groups it serves.
 */
export function serveForwardedRequests(
  transport: Transport,
  serviceOf: (group: string) => Pick<KvService, 'serveForwarded'> | undefined,
): void {
  transport.handleRequest(Protocols.kv, async (from, frame) => {
    let fwd: ReturnType<typeof decodeForwardRequest>;
    try {
      fwd = decodeForwardRequest(frame, { maxBytes: transport.maxFrameBytes });
    } catch (err) {
      return encodeForwardResponse({ ok: true, result: encodeResponse(failure(err)) });
    }
    const service = serviceOf(fwd.group);
    if (service === undefined) {
      const res = failure(new NotLeaderError(undefined, undefined, `group ${fwd.group} is not served here`));
      return encodeForwardResponse({ ok: true, result: encodeResponse(res) });
    }
    return service.serveForwarded(from, fwd.op, fwd.hops ?? 0, fwd.epoch, fwd.timeoutMs);
  });
}

/**
 * `res` without the records of its successful conditional writes (an EXEC's too), as a write asking for
 * its `revision` only is answered: their create revision and version would read the rows the writes
 * replaced. A failed condition keeps the record it failed on.
 */
function withoutRecords(res: KvResponse): KvResponse {
  if (res.type === 'cond') {
    return res.succeeded && res.record !== undefined ? { type: 'cond', succeeded: true, revision: res.revision } : res;
  }
  if (res.type === 'list' && res.items !== null && res.items.some((i) => i.type === 'cond')) {
    return { ...res, items: res.items.map((i) => withoutRecords(i) as typeof i) };
  }
  return res;
}

/** The keys a read looks at, for the intents it may meet. */
function readKeys(req: ReadRequest): Uint8Array[] | 'all' | { start: Uint8Array; end: Uint8Array | undefined } {
  switch (req.op) {
    case 'keys':
    case 'scan':
    case 'dbsize':
    case 'randomkey':
      return 'all';
    case 'range':
      return { start: req.keys[0] ?? new Uint8Array(), end: req.keys[1] };
    case 'txnRecord':
      return [];
    default:
      return req.keys;
  }
}

function isLocked(r: KvResponse): r is Extract<KvResult, { type: 'locked' }> {
  return r.type === 'locked';
}

/** Markers of a proposal still waiting, and of one refused at once. */
const PROPOSED = Promise.resolve('proposed' as const);
const REFUSED = 'refused' as const;

function failure(err: unknown): KvResponse {
  if (err instanceof CohortError) {
    const res: KvResponse = { type: 'failure', code: err.code, message: err.message };
    if (err instanceof NotLeaderError && err.leaderId) res.leaderId = err.leaderId;
    return res;
  }
  return { type: 'failure', code: ErrorCode.Internal, message: String((err as Error)?.message ?? err) };
}

/** The command of `req` at the leader's wall-clock `now`, a relative deadline counted from it. */
function stamp(req: WriteRequest, now: number): KvCommand {
  const shift = req.relativeTo === undefined ? 0 : now - req.relativeTo;
  return { ...shifted(req.command, shift), now };
}

/**
 * `op` with its deadlines moved by `shift` ms. Only deadlines that came from
 * a relative time are ever stamped with a `relativeTo`; within an EXEC,
 * absolute deadlines move too (by the forwarding delay, a few ms).
 */
function shifted<T extends KvOp>(op: T, shift: number): T {
  if (shift === 0) return op;
  switch (op.op) {
    case 'set':
      return op.expiresAt === 0 ? op : { ...op, expiresAt: op.expiresAt + shift };
    case 'expire':
      return { ...op, deadline: op.deadline + shift };
    case 'getex':
      return op.expiry === 'at' ? { ...op, deadline: op.deadline + shift } : op;
    case 'exec':
      return { ...op, ops: op.ops.map((o) => shifted(o, shift)) };
    case 'cond':
      return op.action.kind === 'put' && op.action.expiresAt !== 0
        ? { ...op, action: { ...op.action, expiresAt: op.action.expiresAt + shift } }
        : op;
    default:
      return op;
  }
}

/**
 * Serves KV requests linearizably on one group: on the leader, writes are
 * proposed and answered once applied, reads wait for a ReadIndex round; on a
 * follower, requests are forwarded to the leader (`/cohort/kv/1`) and its
 * answer returned. Failures are values (`type: 'failure'` with a core code).
 */
export class KvService {
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly wallClock: () => number;
  /** The circuit breakers of forwarding, one per peer (see {@link KvServiceOptions.circuitBreakers}). */
  readonly breakers: CircuitBreakers;
  private readonly openWaitMs: number;

  private readonly resolver: IntentResolver | undefined;
  private sweep: ReturnType<Clock['setTimeout']> | undefined;
  private sweeping = false;

  constructor(private readonly opts: KvServiceOptions) {
    this.log = (opts.logger ?? silentLogger).child({ group: opts.group.id });
    this.timeoutMs = opts.requestTimeoutMs ?? 5000;
    this.wallClock = opts.wallClock ?? Date.now;
    this.breakers = opts.circuitBreakers ?? new CircuitBreakers(opts.circuitBreaker);
    this.openWaitMs = opts.openCircuitWaitMs ?? 2000;
    const t = opts.transactions;
    if (t !== undefined) {
      const o: IntentResolverOptions = {
        participant: t.participant,
        local: (req) => this.execute(req),
        clock: opts.clock,
        wallClock: this.wallClock,
      };
      if (t.random) o.random = t.random;
      if (t.onResolve) o.onResolve = t.onResolve;
      const machine = opts.machine;
      if (machine) o.holds = (txn) => machine.intents().some((i) => i.txn === txn);
      this.resolver = new IntentResolver(o);
      if (opts.machine) this.scheduleSweep(t.resolveEveryMs ?? 1000);
    }
  }

  /** Stops the leader's periodic resolution of stale intents. */
  close(): void {
    if (this.sweep !== undefined) this.opts.clock.clearTimeout(this.sweep);
    this.sweep = undefined;
    this.sweeping = true;
  }

  /**
   * Resolves, on the leader, every intent whose deadline passed and which
   * nobody met: so no intent outlives its transaction's timeout by more
   * than about one period. Resolves once done (tests drive it directly).
   */
  async resolveStaleIntents(): Promise<number> {
    const machine = this.opts.machine;
    if (machine === undefined || this.resolver === undefined || this.opts.group.status().role !== 'leader') return 0;
    const stale = machine.staleIntents(this.wallClock());
    const deadline = this.opts.clock.now() + this.timeoutMs;
    for (const s of stale) {
      await this.resolver.resolve({ type: 'locked', write: true, ...s }, false, deadline);
    }
    return stale.length;
  }

  private scheduleSweep(every: number): void {
    if (this.sweeping) return;
    this.sweep = this.opts.clock.setTimeout(() => {
      this.resolveStaleIntents()
        .catch((err) => this.log.debug('resolving stale intents failed', { err: (err as Error).message }))
        .finally(() => this.scheduleSweep(every));
    }, every);
  }

  /**
   * Gets `lock` out of the way of a command (a read passes a pending
   * transaction); without transactions configured, waits for others to.
   */
  private async meet(
    lock: Extract<KvResult, { type: 'locked' }>,
    reader: boolean,
    deadline: number,
  ): Promise<Resolution> {
    if (this.resolver) return this.resolver.resolve(lock, reader, deadline);
    if (this.opts.clock.now() + 20 >= deadline) return { kind: 'timeout', why: 'it was not resolved in time' };
    await new Promise<void>((r) => this.opts.clock.setTimeout(r, 20));
    return { kind: 'retry' };
  }

  /** Answers requests other nodes forward to this one (the only group served on this transport). */
  start(): void {
    serveForwardedRequests(this.opts.transport, (group) => (group === this.opts.group.id ? this : undefined));
  }

  /**
   * Serves a request another node forwarded (`hops` nodes forwarded it
   * before that one): here when this node leads the group; else on to the
   * leader this node knows, one hop more, up to {@link MAX_FORWARD_HOPS}
   * (a node that is no replica of the group forwards to a replica, which
   * forwards to its leader); past it, or with no leader known, refused with
   * NOT_LEADER, which the first node retries while leadership moves.
   */
  async serveForwarded(
    from: NodeId,
    op: Uint8Array,
    hops: number,
    epoch?: number,
    timeoutMs?: number,
  ): Promise<Uint8Array> {
    let res: KvResponse;
    // Served within what the sender waits (less a margin for the answer's way back), when it said.
    const budget =
      timeoutMs !== undefined && timeoutMs > 0
        ? Math.min(this.timeoutMs, Math.max(1, timeoutMs - Math.min(FORWARD_MARGIN_MS, timeoutMs / 10)))
        : this.timeoutMs;
    const deadline = this.opts.clock.now() + budget;
    try {
      const req = decodeForwardedRequest(op);
      const items = Array.isArray(req) ? req : [req];
      const s = this.opts.group.status();
      const mine = this.opts.epoch?.() ?? 0;
      let answers: KvResponse[];
      if (epoch !== undefined && epoch < mine) {
        // Routed by an older partition map: refused unserved; the sender refreshes its map and retries.
        const stale = failure(
          new StaleEpochError(
            `${from} routed the request with epoch ${epoch} of ${this.opts.group.id}, which is at epoch ${mine} here: the partition was reconfigured; retry with a refreshed partition map`,
          ),
        );
        answers = items.map(() => stale);
      } else if (s.role === 'leader' || s.leader === '' || s.leader === from)
        answers = await this.localAll(items, deadline);
      else if (hops + 1 >= MAX_FORWARD_HOPS) {
        const refused = failure(
          new NotLeaderError(
            s.leader,
            undefined,
            `the request was forwarded ${hops + 1} times without reaching the leader of ${this.opts.group.id} (at most ${MAX_FORWARD_HOPS} hops); its leadership is moving: retry`,
          ),
        );
        answers = items.map(() => refused);
      } else answers = await this.forwardAll(s.leader, items, deadline, hops + 1);
      if (Array.isArray(req)) return encodeForwardResponse({ ok: true, result: encodeBatchResponse(answers) });
      res = answers[0]!;
    } catch (err) {
      this.log.debug('forwarded request failed', { from, err: (err as Error).message });
      res = failure(err);
    }
    return encodeForwardResponse({ ok: true, result: encodeResponse(res) });
  }

  /**
   * Serves a request wherever the leader is, retrying while leadership moves,
   * until the request timeout. A client request's relative expiry times
   * become deadlines here, at this node's wall clock; the leader stamps the
   * write's own time when it proposes. A request already in wire form
   * (`KvRequest`, as a forwarding node or a test client builds it) is routed
   * as it is, its time restamped by the leader too.
   */
  async execute(req: KvClientRequest | KvRequest): Promise<KvResponse> {
    // `executeAll` of one request, without its bookkeeping: a lone read or write comes this way.
    const r = this.wire(req);
    if ('type' in r) return r;
    const [res] = await this.routeAll([r]);
    return res!;
  }

  /**
   * Serves a client's pipeline: the answers are those of serving each request
   * after the one before it was answered, in the order of `reqs`, with as few
   * Raft rounds as that allows. Each run of consecutive writes is proposed at
   * once (one round for the run); reads right after a run are served as soon
   * as its writes are applied, with no ReadIndex round of their own (see
   * `localAll`); reads before the first write share one ReadIndex round.
   * A later write is proposed only once the reads before it were served, so a
   * read never sees a write that follows it.
   *
   * While leadership moves, the pipeline is retried from its first failed
   * request on, until the request timeout (see `routeAll` for what is
   * retried). A retry never reorders writes: a proposal refused at once ends
   * its run, and an entry dropped from the log takes the later entries of its
   * run with it, so no write after a failed one applied before it.
   */
  async executeAll(reqs: (KvClientRequest | KvRequest)[]): Promise<KvResponse[]> {
    const out: KvResponse[] = new Array(reqs.length);
    const items: KvRequest[] = [];
    const at: number[] = [];
    reqs.forEach((req, i) => {
      const r = this.wire(req);
      if ('type' in r) out[i] = r;
      else {
        items.push(r);
        at.push(i);
      }
    });
    if (items.length > 0) {
      const res = await this.routeAll(items);
      res.forEach((r, k) => {
        out[at[k]!] = r;
      });
    }
    return out;
  }

  /** Proposes the expiry sweeper's delete of `keys`, each only if still expired when it applies. */
  deleteExpired(keys: Uint8Array[]): Promise<KvResponse> {
    return this.execute({ kind: 'write', write: { op: 'delExpired', keys } });
  }

  /**
   * Proposes a checksum entry, so every replica records a digest of its rows
   * at the same index; resolves with that index. Throws `UnavailableError`
   * when it could not be proposed within the request timeout.
   */
  async checksum(): Promise<LogIndex> {
    const res = await this.execute({ kind: 'write', write: { op: 'checksum' } });
    if (res.type === 'int') return Number(res.value);
    if (res.type === 'failure') throw new UnavailableError(`checksum not proposed: ${res.code} ${res.message}`);
    throw new InternalError(`checksum answered ${res.type}, not its log index`);
  }

  /** `req` in wire form, its relative deadline reckoned from this node's wall clock; or the error it gets at once. */
  /**
   * Serves a read from this replica's state machine as it stands, without
   * asking the leader: a stale read, as of the applied index it reports
   * (`revision` of a range). Expiry is judged by this node's wall clock.
   */
  readLocal(req: Extract<KvClientRequest, { kind: 'read' }>): KvResponse {
    const wire = this.wire(req) as ReadRequest;
    try {
      // A stale read: as of this replica's applied state, before any intent (atomic within the partition).
      return this.serveRead(wire, this.wallClock(), 'all');
    } catch (err) {
      if (err instanceof StorageError) this.opts.onStorageFailure?.(err);
      return failure(err);
    }
  }

  /**
   * Serves a read on this node, the leader, under its lease (no ReadIndex
   * round); on a follower, answers NOT_LEADER naming the leader, for the
   * client to send the read there.
   */
  async leaseRead(req: Extract<KvClientRequest, { kind: 'read' }>): Promise<KvResponse> {
    const { group } = this.opts;
    const s = group.status();
    if (s.role !== 'leader') {
      return failure(
        new NotLeaderError(
          s.leader || undefined,
          undefined,
          `lease reads are served by the leader only; the leader is ${s.leader || 'not known'}`,
        ),
      );
    }
    if (group.leaseRead === undefined) {
      return failure(new UnavailableError('this node serves no lease reads; read with consistency=linearizable'));
    }
    try {
      const now = this.wallClock();
      await group.leaseRead();
      const res = this.serveRead(this.wire(req) as ReadRequest, now);
      // A transaction's intent is resolved on the linearizable path.
      return res.type === 'locked' ? await this.execute(req) : res;
    } catch (err) {
      if (err instanceof StorageError) this.opts.onStorageFailure?.(err);
      return failure(err);
    }
  }

  private wire(req: KvClientRequest | KvRequest): KvRequest | KvResponse {
    if (req.kind === 'read') {
      const read: KvRequest = { kind: 'read', op: req.op, keys: req.keys, now: 0 };
      if (req.args !== undefined) read.args = req.args;
      if (req.limit !== undefined) read.limit = req.limit;
      return read;
    }
    if ('command' in req) return req;
    const now = this.wallClock();
    let command: KvCommand;
    try {
      command = toCommand(req.write, now, req.session);
    } catch (err) {
      if (err instanceof InvalidExpireError) return { type: 'error', message: err.message };
      throw err;
    }
    const write: KvRequest = isRelative(req.write)
      ? { kind: 'write', command, relativeTo: now }
      : { kind: 'write', command };
    if (req.answer === 'revision') write.answer = 'revision';
    return write;
  }

  /**
   * Serves `items` wherever the leader is, retrying while leadership moves,
   * until the request timeout; a retry starts at the first failed request.
   */
  private async routeAll(items: KvRequest[]): Promise<KvResponse[]> {
    const deadline = this.opts.clock.now() + this.timeoutMs;
    // Every attempt answers the requests from `from` on; one always runs unless the timeout is not above 0.
    const out: KvResponse[] = new Array(items.length);
    let from = 0;
    for (let attempt = 0; this.opts.clock.now() < deadline; attempt++) {
      const rest = from === 0 ? items : items.slice(from);
      const group = this.opts.group;
      const lost = this.quorumLost();
      let part: KvResponse[];
      if (lost !== undefined) {
        // No leader for about an election timeout and too few voters answer: say so now, not at the
        // timeout. Final: no retry, whatever another node said before.
        const down = failure(new ClusterDownError(describeQuorumLoss(lost)));
        for (let k = from; k < items.length; k++) out[k] = down;
        return out;
      }
      const status = group.leadership ? group.leadership() : group.status();
      if (status.role === 'leader') part = await this.localAll(rest, deadline);
      else if (status.leader !== '') part = await this.forwardAll(status.leader, rest, deadline);
      else {
        const none: KvResponse = {
          type: 'failure',
          code: ErrorCode.NotLeader,
          message: 'no leader is known; an election is under way',
        };
        part = rest.map(() => none);
      }
      let k = -1;
      for (let j = 0; j < part.length; j++) {
        const r = part[j]!;
        out[from + j] = r;
        if (k < 0 && r.type === 'failure') k = j;
      }
      if (k < 0) return out;
      // "Not the leader" is safe to retry (nothing was applied), and so is a dropped proposal (refused or
      // replaced in the log; the writes after it were dropped with it). A write outside a session that may
      // have reached a leader is not retried: the client decides, knowing it may have applied. A write in
      // a session applies once however often it is sent, so retrying it after a lost leader is safe.
      const last = part[k] as Extract<KvResponse, { type: 'failure' }>;
      if (last.code === ErrorCode.StaleEpoch) await this.opts.refreshEpoch?.(deadline);
      // Nothing was sent past an open circuit: the request goes to another leader once this node learns
      // of one (it has a breaker of its own). While the circuit opened only lately, the leader may have
      // crashed and an election be under way: wait for it. Past that, the answer is final, at once.
      const elsewhere = (): boolean => {
        const now = group.leadership ? group.leadership() : group.status();
        if (now.role === 'leader' || (now.leader !== '' && now.leader !== status.leader)) return true;
        const b = this.breakers.of(status.leader);
        return b.state(this.opts.clock.now()) !== 'closed' && this.opts.clock.now() - b.openedAt < this.openWaitMs;
      };
      const retry =
        last.code === ErrorCode.NotLeader ||
        last.code === ErrorCode.StaleEpoch ||
        last.code === ErrorCode.ProposalDropped ||
        ((last.code === ErrorCode.Unavailable ||
          last.code === ErrorCode.Timeout ||
          // A leader cut off from the others says CLUSTERDOWN; the rest may have elected another one. This
          // node's own view decides on the next attempt (above): lost here too, the answer is final.
          last.code === ErrorCode.ClusterDown) &&
          rest.slice(k).every(idempotent)) ||
        (last.code === ErrorCode.CircuitOpen && elsewhere());
      if (!retry) return out;
      from += k;
      const pause = Math.min(20 * 2 ** attempt, 200);
      if (deadline - this.opts.clock.now() - pause < MIN_RETRY_MS) return out;
      await new Promise<void>((r) => this.opts.clock.setTimeout(r, pause));
    }
    for (let k = 0; k < out.length; k++) {
      out[k] ??= { type: 'failure', code: ErrorCode.NotLeader, message: 'no leader is known' };
    }
    return out;
  }

  /**
   * Serves `items` in order on this node, which must lead the group, run by
   * run: a run of writes is proposed in one turn (one Raft round) and awaited;
   * a run of reads is served from the state machine. Reads after a run of
   * writes need no ReadIndex round: the writes were proposed after the reads
   * arrived, so once one of them is committed, every write committed before
   * the reads arrived precedes it in the log (Raft's log matching and leader
   * completeness) and is applied here too; the reads are linearized at that
   * commit. The first run with a failure ends the pipeline: the requests
   * after it get its failure and were not served.
   */
  private async localAll(items: KvRequest[], deadline: number): Promise<KvResponse[]> {
    const out: KvResponse[] = [];
    let wrote = false;
    for (let i = 0; i < items.length; ) {
      const kind = items[i]!.kind;
      let j = i + 1;
      while (j < items.length && items[j]!.kind === kind) j++;
      // The whole pipeline one run (a lone request among them): its answers are the pipeline's.
      if (j - i === items.length) {
        return kind === 'write' ? this.writeRun(items, deadline) : this.readRun(items, false, deadline);
      }
      const run = items.slice(i, j);
      const res = kind === 'write' ? await this.writeRun(run, deadline) : await this.readRun(run, wrote, deadline);
      out.push(...res);
      const failed = res.find((r) => r.type === 'failure');
      if (failed) {
        while (out.length < items.length) out.push(failed);
        return out;
      }
      wrote ||= kind === 'write';
      i = j;
    }
    return out;
  }

  /**
   * Proposes a run of writes, getting transaction intents out of the way:
   * before proposing, an intent on a write's keys (as this leader's state
   * stands) is resolved first; a write that still met one as it applied
   * (an intent laid meanwhile) did nothing, and is resolved and proposed
   * again when it is the run's last write; otherwise it answers TRYAGAIN, as
   * proposing it again would order it after the writes that followed it.
   */
  private async writeRun(run: KvRequest[], deadline: number): Promise<KvResponse[]> {
    const machine = this.opts.machine;
    if (machine !== undefined) {
      for (const req of run) {
        const cmd = (req as WriteRequest).command;
        // The sweeper's deletes and checksums pass intents; a transaction's prepare answers its conflicts itself.
        if (cmd.op === 'delExpired' || cmd.op === 'checksum' || cmd.op.startsWith('txn')) continue;
        const keys = opKeys(cmd);
        for (let lock = machine.writeLock(keys); lock !== undefined; lock = machine.writeLock(keys)) {
          const r = await this.meet(lock, false, deadline);
          if (r.kind === 'timeout') break;
        }
      }
    }
    const res = await this.proposeRun(run);
    for (let k = 0; k < res.length; k++) {
      let r = res[k]!;
      while (r.type === 'locked') {
        const lock = r;
        const resolved = k === res.length - 1 ? await this.meet(lock, false, deadline) : undefined;
        if (resolved === undefined || resolved.kind !== 'retry') {
          r = lockedError(lock, resolved?.kind === 'timeout' ? resolved.why : 'met as a pipeline applied');
          break;
        }
        [r] = (await this.proposeRun([run[k]!])) as [KvResponse];
      }
      res[k] = (run[k] as WriteRequest).answer === 'revision' ? withoutRecords(r) : r;
    }
    return res;
  }

  /**
   * Proposes `run` in one turn, so its entries share one Raft round, and
   * waits until each is applied. A proposal refused at once (not the leader,
   * a full log) ends the run there: nothing after it is proposed, so the
   * run's writes apply in order or not at all past the failed one.
   */
  private async proposeRun(run: KvRequest[]): Promise<KvResponse[]> {
    // The leader's clock is the time of the write, whichever node took the request.
    const now = this.wallClock();
    const answers: Promise<KvResponse>[] = [];
    for (const req of run) {
      let p: Promise<KvResult>;
      try {
        p = this.opts.group.propose<KvResult>(encodeCommand(stamp(req as WriteRequest, now)));
      } catch (err) {
        p = Promise.reject(err);
      }
      answers.push(p.then((r): KvResponse => r, failure));
      // A promise already rejected settles the race first (its reaction is queued before the marker's).
      if (run.length > 1 && (await Promise.race([p, PROPOSED]).catch(() => REFUSED)) === REFUSED) break;
    }
    const res = await Promise.all(answers);
    const failed = res.find((r) => r.type === 'failure');
    while (failed && res.length < run.length) res.push(failed);
    return res;
  }

  /** Serves the reads of `run` after one ReadIndex round, or at once after writes of the same pipeline. */
  private async readRun(run: KvRequest[], afterWrites: boolean, deadline: number): Promise<KvResponse[]> {
    try {
      // The leader's clock is the time of the read, whichever node took the request.
      const now = this.wallClock();
      if (!afterWrites) await this.opts.group.read();
      let res: KvResponse[] = new Array(run.length);
      for (let i = 0; i < run.length; i++) res[i] = this.serveRead(run[i] as ReadRequest, now);
      if (res.find(isLocked) === undefined) return res;
      // A read meeting a transaction's intent: the transaction is finished, or (pending) passed, and the whole
      // run served again, so its reads stay one view (a client pairs MGET with the keys' revisions). A run
      // that passed pending transactions answers only if they are still pending after it was served: it then
      // linearizes before their commit points.
      const pass = new Map<string, number>();
      for (;;) {
        const lock = res.find(isLocked);
        if (lock === undefined) {
          if (pass.size === 0 || this.opts.transactions === undefined) break;
          if (await allPending(this.opts.transactions.participant, pass)) break;
          pass.clear();
        } else {
          const resolved = await this.meet(lock, true, deadline);
          if (resolved.kind === 'timeout') {
            res = res.map((r) =>
              isLocked(r) ? lockedError(r, r === lock ? resolved.why : 'not resolved in time') : r,
            );
            break;
          }
          if (resolved.kind === 'pass') pass.set(resolved.txn, lock.recordPartition);
        }
        if (this.opts.clock.now() >= deadline) {
          const gave = failure(
            new UnavailableError('the keys read were locked by transactions that did not finish in time: retry'),
          );
          return run.map(() => gave);
        }
        // Past what was learnt: everything committed before it is applied here.
        await this.opts.group.read();
        const at = this.wallClock();
        const passing = new Set(pass.keys());
        res = run.map((req) => this.serveRead(req as ReadRequest, at, passing));
      }
      return res;
    } catch (err) {
      if (err instanceof CorruptStateError) {
        this.log.error('a read met corrupt state; this replica restores it from a healthy replica', {
          err: err.message,
        });
        this.opts.onStorageFailure?.(err);
        const res = failure(
          new UnavailableError(
            'this replica found its copy of the data corrupt and is restoring it; retry the request',
          ),
        );
        return run.map(() => res);
      }
      if (err instanceof StorageError) {
        this.log.error('a read met damaged storage; this replica stops serving', { err: err.message });
        this.opts.onStorageFailure?.(err);
      }
      const res = failure(err);
      return run.map(() => res);
    }
  }

  /**
   * Serves a read from this replica's state machine; a key under a
   * transaction's intent (not in `pass`) answers `locked` (`pass` `all`: the
   * state before every intent, for stale reads).
   */
  private serveRead(req: ReadRequest, now: number, pass?: ReadonlySet<string> | 'all'): KvResponse {
    const kv = this.opts.machine;
    if (kv === undefined) {
      throw new UnavailableError(`this node holds no replica of ${this.opts.group.id}: read from one of its replicas`);
    }
    if (pass !== 'all') {
      const lock = kv.readLock(readKeys(req), pass);
      if (lock !== undefined) return lock;
    }
    if (req.op === 'range') {
      const { records, more } = kv.range(req.keys[0] ?? new Uint8Array(), req.keys[1], req.limit ?? 0, now);
      return { type: 'range', records, more, revision: kv.appliedIndex };
    }
    const res = kv.read(req.op, req.keys, req.args ?? [], now);
    if (res.type !== 'list' || req.op === 'collection') return res;
    // Reads answer their lists of values as arrays (nil for absent).
    return { type: 'array', values: (res.items ?? []).map((r) => (r.type === 'bulk' ? r.value : null)) };
  }

  /**
   * Forwards `items` to `leader` as one pipeline. A leader of an older build,
   * which cannot decode a pipeline (it answers CODEC and serves none of it),
   * gets the requests one at a time, in order, until one fails.
   */
  private async forwardAll(leader: NodeId, items: KvRequest[], deadline: number, hops = 0): Promise<KvResponse[]> {
    const res = await this.forward(leader, items, deadline, hops);
    const first = res[0];
    if (items.length === 1 || first?.type !== 'failure' || first.code !== ErrorCode.Codec) return res;
    const out: KvResponse[] = [];
    for (const item of items) {
      const [r] = (await this.forward(leader, [item], deadline, hops)) as [KvResponse];
      out.push(r);
      if (r.type === 'failure') break;
    }
    while (out.length < items.length) out.push(out[out.length - 1]!);
    return out;
  }

  /** The group's quorum status while this replica finds the quorum lost; undefined while it is not. */
  private quorumLost(): QuorumStatus | undefined {
    const group = this.opts.group;
    if (group.quorumLost) return group.quorumLost();
    const q = group.status().quorum;
    return q?.state === 'lost' ? q : undefined;
  }

  /** A signal aborted once the group reports its quorum lost (checked every 50 ms until cleared). */
  private watchQuorum(): { signal: AbortSignal; aborted: Promise<never>; clear: () => void } {
    const ac = new AbortController();
    const aborted = new Promise<never>((_, reject) => {
      ac.signal.addEventListener('abort', () => reject(ac.signal.reason), { once: true });
    });
    // Only awaited while a request is in flight; unobserved otherwise.
    aborted.catch(() => {});
    let handle: ReturnType<Clock['setTimeout']> | undefined;
    const check = (): void => {
      // A timer callback must not throw (it would stop the process): a failing status check ends the wait.
      let lost: QuorumStatus | undefined;
      try {
        lost = this.quorumLost();
      } catch (err) {
        ac.abort(err);
        return;
      }
      if (lost !== undefined) ac.abort(new Error('the quorum is lost'));
      else handle = this.opts.clock.setTimeout(check, 50);
    };
    handle = this.opts.clock.setTimeout(check, 50);
    return {
      signal: ac.signal,
      aborted,
      clear: () => {
        if (handle !== undefined) this.opts.clock.clearTimeout(handle);
        handle = undefined;
      },
    };
  }

  /**
   * Forwards `items` to `leader` (one request, or a pipeline in one frame) and
   * returns its answers. The forward asks the circuit breaker of `leader`
   * first: while it is open, the answer is CIRCUIT_OPEN at once, sending
   * nothing. Its outcome feeds the breaker: a transport failure or no answer
   * in time is a failure of the peer; any answer (NOT_LEADER and STALE_EPOCH
   * included) is a success; a forward abandoned because this node finds the
   * quorum lost says nothing of the peer.
   */
  private async forward(leader: NodeId, items: KvRequest[], deadline: number, hops: number): Promise<KvResponse[]> {
    const breaker = this.breakers.of(leader);
    const admitted = breaker.admit(this.opts.clock.now());
    if (!admitted.ok) {
      const inMs = Math.max(0, Math.ceil(admitted.probeAt - this.opts.clock.now()));
      const open = failure(
        new CircuitOpenError(
          `forwarding to ${leader} is suspended (circuit open): ${admitted.reason}; it is probed again in ${inMs} ms: try again then`,
          leader,
          inMs,
        ),
      );
      return items.map(() => open);
    }
    let outcome: 'success' | 'failure' | 'release' = 'release';
    try {
      // One request goes as one, which every version of the protocol serves.
      const op = items.length === 1 ? encodeRequest(items[0]!) : encodeBatchRequest(items);
      const epoch = this.opts.epoch?.() ?? 0;
      const waitMs = Math.max(1, Math.ceil(deadline - this.opts.clock.now()));
      const frame = encodeForwardRequest({
        group: this.opts.group.id,
        op,
        ...(hops > 0 ? { hops } : {}),
        ...(epoch > 0 ? { epoch } : {}),
        timeoutMs: waitMs,
      });
      const timer = clockSignal(this.opts.clock, waitMs);
      // A leader that died may leave the request hanging on a dead connection: stop waiting once this
      // node finds the quorum lost, and say so, rather than at the request timeout.
      const watch = this.watchQuorum();
      let raw: Uint8Array;
      try {
        const sent = this.opts.transport.request(leader, Protocols.kv, frame, {
          signal: AbortSignal.any([timer.signal, watch.signal]),
        });
        // A transport may not notice the abort while it dials: stop waiting for it regardless (its late
        // failure is then nobody's to hear).
        sent.catch(() => {});
        raw = await Promise.race([sent, watch.aborted]);
        outcome = 'success';
      } catch (err) {
        const q = this.quorumLost();
        if (watch.signal.aborted && q !== undefined) {
          const down = failure(new ClusterDownError(describeQuorumLoss(q)));
          return items.map(() => down);
        }
        outcome = 'failure';
        throw err;
      } finally {
        timer.clear();
        watch.clear();
      }
      const answer = decodeForwardResponse(raw);
      if (!answer.ok) {
        const res: KvResponse = { type: 'failure', code: answer.code, message: answer.message };
        if (answer.leaderId) res.leaderId = answer.leaderId;
        return items.map(() => res);
      }
      return items.length === 1 ? [decodeResponse(answer.result)] : decodeBatchResponse(answer.result, items.length);
    } catch (err) {
      this.log.debug('forwarding failed', { leader, err: (err as Error).message });
      const res: KvResponse =
        err instanceof CohortError
          ? failure(err)
          : {
              type: 'failure',
              code: ErrorCode.Unavailable,
              message: `leader ${leader} unreachable: ${(err as Error).message}`,
            };
      return items.map(() => res);
    } finally {
      const now = this.opts.clock.now();
      if (outcome === 'success') {
        breaker.success(now, admitted.probe);
        if (admitted.probe) this.log.info('circuit to peer closed: its probe was answered', { peer: leader });
      } else if (outcome === 'failure') {
        const opensBefore = breaker.opens;
        breaker.failure(now, admitted.probe);
        if (breaker.opens > opensBefore) {
          this.log.warn('circuit to peer opened: forwards to it are refused until it is probed', { peer: leader });
        }
      } else breaker.release(now, admitted.probe);
    }
  }
}
