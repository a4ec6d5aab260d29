import {
  type Clock,
  CohortError,
  ErrorCode,
  InternalError,
  type LogIndex,
  type Logger,
  type NodeId,
  Protocols,
  type ReplicatedGroup,
  type Transport,
  UnavailableError,
  decodeForwardRequest,
  decodeForwardResponse,
  encodeForwardRequest,
  encodeForwardResponse,
  silentLogger,
} from '@cohort/core';
import { CorruptStateError, NotLeaderError, StorageError, clockSignal } from '@cohort/core';
import { InvalidExpireError, type KvClientRequest, isRelative, toCommand } from './client-request.js';
import { type KvCommand, encodeCommand } from './command.js';
import {
  type KvRequest,
  type KvResponse,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from './request.js';
import type { KvResult } from './result.js';
import type { KvStateMachine } from './state-machine.js';

/** Options of {@link KvService}. */
export interface KvServiceOptions {
  /** The group whose state machine this service serves (Raft or any other engine). */
  group: ReplicatedGroup;
  /** This replica's state machine of the group, which reads are served from. */
  machine: KvStateMachine;
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
}

/** Whether a command carries a client session, so that applying it twice is impossible and a retry is safe. */
function carriesSession(command: KvCommand): boolean {
  return command.session !== undefined;
}

function failure(err: unknown): KvResponse {
  if (err instanceof CohortError) {
    const res: KvResponse = { type: 'failure', code: err.code, message: err.message };
    if (err instanceof NotLeaderError && err.leaderId) res.leaderId = err.leaderId;
    return res;
  }
  return { type: 'failure', code: ErrorCode.Internal, message: String((err as Error)?.message ?? err) };
}

/** The command of `req` at the leader's wall-clock `now`, a relative deadline counted from it. */
function stamp(req: Extract<KvRequest, { kind: 'write' }>, now: number): KvCommand {
  const cmd = req.command;
  const shift = req.relativeTo === undefined ? 0 : now - req.relativeTo;
  if (shift !== 0 && cmd.op === 'set' && cmd.expiresAt !== 0) return { ...cmd, now, expiresAt: cmd.expiresAt + shift };
  if (shift !== 0 && cmd.op === 'expire') return { ...cmd, now, deadline: cmd.deadline + shift };
  return { ...cmd, now };
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

  constructor(private readonly opts: KvServiceOptions) {
    this.log = (opts.logger ?? silentLogger).child({ group: opts.group.id });
    this.timeoutMs = opts.requestTimeoutMs ?? 5000;
    this.wallClock = opts.wallClock ?? Date.now;
  }

  /** Answers requests other nodes forward to this one. */
  start(): void {
    this.opts.transport.handleRequest(Protocols.kv, async (from, frame) => {
      let res: KvResponse;
      try {
        const fwd = decodeForwardRequest(frame, { maxBytes: this.opts.transport.maxFrameBytes });
        if (fwd.group !== this.opts.group.id)
          throw new NotLeaderError(undefined, undefined, `group ${fwd.group} is not served here`);
        // Forwarded requests are served here or refused: never forwarded again, so they cannot loop.
        res = await this.local(decodeRequest(fwd.op));
      } catch (err) {
        this.log.debug('forwarded request failed', { from, err: (err as Error).message });
        res = failure(err);
      }
      return encodeForwardResponse({ ok: true, result: encodeResponse(res) });
    });
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
    if (req.kind === 'read') return this.route({ kind: 'read', op: req.op, keys: req.keys, now: 0 });
    if ('command' in req) return this.route(req);
    const now = this.wallClock();
    let command: KvCommand;
    try {
      command = toCommand(req.write, now, req.session);
    } catch (err) {
      if (err instanceof InvalidExpireError) return { type: 'error', message: err.message };
      throw err;
    }
    return this.route(isRelative(req.write) ? { kind: 'write', command, relativeTo: now } : { kind: 'write', command });
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

  /** Serves `req` wherever the leader is, retrying while leadership moves, until the request timeout. */
  private async route(req: KvRequest): Promise<KvResponse> {
    const deadline = this.opts.clock.now() + this.timeoutMs;
    // A write in a session applies once however often it is sent: retrying it after a lost leader is safe.
    const idempotent = req.kind === 'read' || carriesSession(req.command);
    let last: KvResponse = { type: 'failure', code: ErrorCode.NotLeader, message: 'no leader is known' };
    for (let attempt = 0; this.opts.clock.now() < deadline; attempt++) {
      const status = this.opts.group.status();
      if (status.role === 'leader') last = await this.local(req);
      else if (status.leader !== '') last = await this.forward(status.leader, req, deadline);
      else
        last = { type: 'failure', code: ErrorCode.NotLeader, message: 'no leader is known; an election is under way' };
      // "Not the leader" is safe to retry (nothing was applied), and so is a dropped proposal (refused or
      // replaced in the log). A write outside a session that may have reached a leader is not retried:
      // the client decides, knowing it may have applied.
      if (last.type !== 'failure') return last;
      const retry =
        last.code === ErrorCode.NotLeader ||
        last.code === ErrorCode.ProposalDropped ||
        (idempotent && (last.code === ErrorCode.Unavailable || last.code === ErrorCode.Timeout));
      if (!retry) return last;
      const pause = Math.min(20 * 2 ** attempt, 200, Math.max(0, deadline - this.opts.clock.now()));
      await new Promise<void>((r) => this.opts.clock.setTimeout(r, pause));
    }
    return last;
  }

  /** Serves `req` on this node, which must lead the group. */
  private async local(req: KvRequest): Promise<KvResponse> {
    try {
      // The leader's clock is the time of the write and of the read, whichever node took the request.
      const now = this.wallClock();
      if (req.kind === 'write') return await this.opts.group.propose<KvResult>(encodeCommand(stamp(req, now)));
      await this.opts.group.read();
      const kv = this.opts.machine;
      switch (req.op) {
        case 'get': {
          const v = kv.get(req.keys[0] ?? new Uint8Array(), now);
          return v ? { type: 'bulk', value: v } : { type: 'nil' };
        }
        case 'mget':
          return { type: 'array', values: req.keys.map((k) => kv.get(k, now) ?? null) };
        case 'exists':
          return { type: 'int', value: BigInt(req.keys.filter((k) => kv.has(k, now)).length) };
        case 'pttl':
          return { type: 'int', value: BigInt(kv.ttl(req.keys[0] ?? new Uint8Array(), now)) };
        default: {
          const never: never = req.op;
          throw new Error(`unknown read ${String(never)}`);
        }
      }
    } catch (err) {
      if (err instanceof CorruptStateError) {
        this.log.error('a read met corrupt state; this replica restores it from a healthy replica', {
          err: err.message,
        });
        this.opts.onStorageFailure?.(err);
        return failure(
          new UnavailableError(
            'this replica found its copy of the data corrupt and is restoring it; retry the request',
          ),
        );
      }
      if (err instanceof StorageError) {
        this.log.error('a read met damaged storage; this replica stops serving', { err: err.message });
        this.opts.onStorageFailure?.(err);
      }
      return failure(err);
    }
  }

  private async forward(leader: NodeId, req: KvRequest, deadline: number): Promise<KvResponse> {
    try {
      const frame = encodeForwardRequest({ group: this.opts.group.id, op: encodeRequest(req) });
      const timer = clockSignal(this.opts.clock, Math.max(1, Math.ceil(deadline - this.opts.clock.now())));
      let raw: Uint8Array;
      try {
        raw = await this.opts.transport.request(leader, Protocols.kv, frame, { signal: timer.signal });
      } finally {
        timer.clear();
      }
      const answer = decodeForwardResponse(raw);
      if (!answer.ok) {
        const res: KvResponse = { type: 'failure', code: answer.code, message: answer.message };
        if (answer.leaderId) res.leaderId = answer.leaderId;
        return res;
      }
      return decodeResponse(answer.result);
    } catch (err) {
      this.log.debug('forwarding failed', { leader, err: (err as Error).message });
      if (err instanceof CohortError) return failure(err);
      return {
        type: 'failure',
        code: ErrorCode.Unavailable,
        message: `leader ${leader} unreachable: ${(err as Error).message}`,
      };
    }
  }
}
