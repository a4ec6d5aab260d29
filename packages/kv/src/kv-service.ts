import {
  type Clock,
  CohortError,
  ErrorCode,
  type Logger,
  type NodeId,
  Protocols,
  type ReplicatedGroup,
  type Transport,
  decodeForwardRequest,
  decodeForwardResponse,
  encodeForwardRequest,
  encodeForwardResponse,
  silentLogger,
} from '@cohort/core';
import { NotLeaderError } from '@cohort/core';
import { encodeCommand } from './command.js';
import type { KvReplica } from './replica.js';
import {
  type KvRequest,
  type KvResponse,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from './request.js';
import type { KvResult } from './result.js';

/** Options of {@link KvService}. */
export interface KvServiceOptions {
  /** The group whose state machine this service serves (Raft or any other engine). */
  group: ReplicatedGroup;
  replica: KvReplica;
  transport: Transport;
  clock: Clock;
  logger?: Logger;
  /** How long a request may wait for a leader, forwarding included. @default 5000 */
  requestTimeoutMs?: number;
}

function failure(err: unknown): KvResponse {
  if (err instanceof CohortError) {
    const res: KvResponse = { type: 'failure', code: err.code, message: err.message };
    if (err instanceof NotLeaderError && err.leaderId) res.leaderId = err.leaderId;
    return res;
  }
  return { type: 'failure', code: ErrorCode.Internal, message: String((err as Error)?.message ?? err) };
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

  constructor(private readonly opts: KvServiceOptions) {
    this.log = (opts.logger ?? silentLogger).child({ group: opts.group.id });
    this.timeoutMs = opts.requestTimeoutMs ?? 5000;
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

  /** Serves `req` wherever the leader is, retrying while leadership moves, until the request timeout. */
  async execute(req: KvRequest): Promise<KvResponse> {
    const deadline = this.opts.clock.now() + this.timeoutMs;
    let last: KvResponse = { type: 'failure', code: ErrorCode.NotLeader, message: 'no leader is known' };
    for (let attempt = 0; this.opts.clock.now() < deadline; attempt++) {
      const status = this.opts.group.status();
      if (status.role === 'leader') last = await this.local(req);
      else if (status.leader !== '') last = await this.forward(status.leader, req);
      else
        last = { type: 'failure', code: ErrorCode.NotLeader, message: 'no leader is known; an election is under way' };
      // "Not the leader" is safe to retry (nothing was applied); so is any failed read. A write that
      // may have reached a leader is not retried: the client decides, knowing it may have applied.
      if (last.type !== 'failure') return last;
      // A dropped proposal was refused or replaced in the log: certainly not applied either.
      const retry =
        last.code === ErrorCode.NotLeader ||
        last.code === ErrorCode.ProposalDropped ||
        (req.kind === 'read' && last.code === ErrorCode.Unavailable);
      if (!retry) return last;
      // The injected clock, not the runtime's timers: the simulator runs this loop in simulated time.
      await new Promise<void>((r) => this.opts.clock.setTimeout(r, Math.min(20 * 2 ** attempt, 200)));
    }
    return last;
  }

  /** Serves `req` on this node, which must lead the group. */
  private async local(req: KvRequest): Promise<KvResponse> {
    try {
      if (req.kind === 'write') {
        return await this.opts.group.propose<KvResult>(encodeCommand(req.command));
      }
      await this.opts.group.read();
      const kv = this.opts.replica.kv;
      switch (req.op) {
        case 'get': {
          const v = kv.get(req.keys[0] ?? new Uint8Array(), req.now);
          return v ? { type: 'bulk', value: v } : { type: 'nil' };
        }
        case 'mget':
          return { type: 'array', values: req.keys.map((k) => kv.get(k, req.now) ?? null) };
        case 'exists':
          return { type: 'int', value: BigInt(req.keys.filter((k) => kv.has(k, req.now)).length) };
        case 'pttl':
          return { type: 'int', value: BigInt(kv.ttl(req.keys[0] ?? new Uint8Array(), req.now)) };
        default: {
          const never: never = req.op;
          throw new Error(`unknown read ${String(never)}`);
        }
      }
    } catch (err) {
      return failure(err);
    }
  }

  private async forward(leader: NodeId, req: KvRequest): Promise<KvResponse> {
    try {
      const frame = encodeForwardRequest({ group: this.opts.group.id, op: encodeRequest(req) });
      const signal = AbortSignal.timeout(this.timeoutMs);
      const answer = decodeForwardResponse(await this.opts.transport.request(leader, Protocols.kv, frame, { signal }));
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
