import {
  CircuitOpenError,
  ClusterDownError,
  CodecError,
  CohortError,
  CompactedError,
  ConfigError,
  ErrorCode,
  InternalError,
  NoQuorumError,
  NotLeaderError,
  ProposalDroppedError,
  StaleEpochError,
  StaleTermError,
  StorageError,
  TimeoutError,
  UnavailableError,
} from '../errors.js';
import type { GroupId, NodeId } from '../ids.js';
import { type CodecOptions, guard, openEnvelopeOf, sealEnvelope } from './envelope.js';
import * as pb from './generated/cohort-wire.js';

/** A client command a follower forwards to the leader of `group`; `op` is the application's encoding. */
export interface ForwardRequest {
  group: GroupId;
  op: Uint8Array;
  /** How many nodes forwarded it before the sender (0 or absent: the node the client reached sent it). */
  hops?: number;
  /** The partition's epoch in the sender's partition map (0 or absent: not known, not fenced). */
  epoch?: number;
  /**
   * How long the sender waits for the answer, in ms from sending it (0 or absent: not known): the
   * receiver answers within it. Relative, so the nodes' clocks need not agree.
   */
  timeoutMs?: number;
}

/** The leader's answer to a {@link ForwardRequest}: the result bytes, or a wire error with a leader hint. */
export type ForwardResponse =
  | { ok: true; result: Uint8Array }
  | { ok: false; code: ErrorCode; message: string; leaderId?: NodeId; leaderAddress?: string };

const knownCodes = new Set<string>(Object.values(ErrorCode));

/** Encodes a forwarded command. */
export function encodeForwardRequest(req: ForwardRequest, options: CodecOptions = {}): Uint8Array {
  return sealEnvelope(
    'forwardRequest',
    pb.ForwardRequest.encode({
      group: req.group,
      op: req.op,
      hops: req.hops ?? 0,
      epoch: BigInt(req.epoch ?? 0),
      timeoutMs: req.timeoutMs ?? 0,
    }),
    options,
  );
}

/** Decodes a frame written by {@link encodeForwardRequest}. */
export function decodeForwardRequest(bytes: Uint8Array, options: CodecOptions = {}): ForwardRequest {
  const payload = openEnvelopeOf('forwardRequest', bytes, options);
  return guard('a forward request', () => {
    const { group, op, hops, epoch, timeoutMs } = pb.ForwardRequest.decode(payload);
    const req: ForwardRequest = hops > 0 ? { group, op, hops } : { group, op };
    if (epoch > 0n) req.epoch = Number(epoch);
    if (timeoutMs > 0) req.timeoutMs = timeoutMs;
    return req;
  });
}

/** Encodes the answer to a forwarded command. */
export function encodeForwardResponse(res: ForwardResponse, options: CodecOptions = {}): Uint8Array {
  const msg: pb.ForwardResponse = res.ok
    ? { ok: res.result }
    : {
        error: {
          code: res.code,
          message: res.message,
          leaderId: res.leaderId ?? '',
          leaderAddress: res.leaderAddress ?? '',
        },
      };
  return sealEnvelope('forwardResponse', pb.ForwardResponse.encode(msg), options);
}

/** Decodes a frame written by {@link encodeForwardResponse}. An unknown error code reads as INTERNAL. */
export function decodeForwardResponse(bytes: Uint8Array, options: CodecOptions = {}): ForwardResponse {
  const payload = openEnvelopeOf('forwardResponse', bytes, options);
  const msg = guard('a forward response', () => pb.ForwardResponse.decode(payload));
  if (msg.ok !== undefined && msg.error === undefined) return { ok: true, result: msg.ok };
  if (msg.error === undefined || msg.ok !== undefined) {
    throw new CodecError('cannot decode a forward response: it must carry exactly one of a result and an error');
  }
  const { code, message, leaderId, leaderAddress } = msg.error;
  const res: ForwardResponse = knownCodes.has(code)
    ? { ok: false, code: code as ErrorCode, message }
    : { ok: false, code: ErrorCode.Internal, message: `remote error ${code}: ${message}` };
  if (leaderId !== '') res.leaderId = leaderId;
  if (leaderAddress !== '') res.leaderAddress = leaderAddress;
  return res;
}

/**
 * Turns any thrown value into a failed {@link ForwardResponse} at the wire boundary:
 * Cohort errors keep their code (and a NotLeaderError its leader hint), anything else is INTERNAL.
 */
export function forwardResponseFromError(err: unknown): ForwardResponse {
  if (err instanceof NotLeaderError) {
    const res: ForwardResponse = { ok: false, code: err.code, message: err.message };
    if (err.leaderId !== undefined) res.leaderId = err.leaderId;
    if (err.leaderAddress !== undefined) res.leaderAddress = err.leaderAddress;
    return res;
  }
  if (err instanceof CohortError) return { ok: false, code: err.code, message: err.message };
  return { ok: false, code: ErrorCode.Internal, message: err instanceof Error ? err.message : String(err) };
}

/** The typed error a failed {@link ForwardResponse} stands for, to rethrow on the forwarding node. */
export function errorFromForwardResponse(res: Extract<ForwardResponse, { ok: false }>): CohortError {
  switch (res.code) {
    case ErrorCode.NotLeader:
      return new NotLeaderError(res.leaderId, res.leaderAddress, res.message);
    case ErrorCode.NoQuorum:
      return new NoQuorumError(res.message);
    case ErrorCode.ClusterDown:
      return new ClusterDownError(res.message);
    case ErrorCode.Timeout:
      return new TimeoutError(res.message);
    case ErrorCode.StaleTerm:
      return new StaleTermError(res.message);
    case ErrorCode.StaleEpoch:
      return new StaleEpochError(res.message);
    case ErrorCode.CircuitOpen:
      return new CircuitOpenError(res.message);
    case ErrorCode.Storage:
      return new StorageError(res.message);
    case ErrorCode.Config:
      return new ConfigError(res.message);
    case ErrorCode.Codec:
      return new CodecError(res.message);
    case ErrorCode.Compacted:
      return new CompactedError(res.message);
    case ErrorCode.Unavailable:
      return new UnavailableError(res.message);
    case ErrorCode.ProposalDropped:
      return new ProposalDroppedError(res.message);
    case ErrorCode.Internal:
      return new InternalError(res.message);
    default: {
      const never: never = res.code;
      return new InternalError(`unknown error code ${String(never)}`);
    }
  }
}
