import type { NodeId } from './ids.js';

/**
 * Closed set of error codes that may cross the wire (RESP, HTTP, peer RPC).
 * One class per condition below; tell them apart by `name` (or `code`), never
 * by message text.
 */
export const ErrorCode = {
  NotLeader: 'NOT_LEADER',
  NoQuorum: 'NO_QUORUM',
  ClusterDown: 'CLUSTERDOWN',
  Timeout: 'TIMEOUT',
  StaleTerm: 'STALE_TERM',
  /** A request routed with an older partition map than the receiver's (the partition was reconfigured since). */
  StaleEpoch: 'STALE_EPOCH',
  /**
   * Forwarding to the node that serves the request is suspended: too many
   * recent forwards to it failed (unreachable, timed out). The message names
   * the node and when it is probed again; retry after that.
   */
  CircuitOpen: 'CIRCUIT_OPEN',
  Storage: 'STORAGE',
  Config: 'CONFIG',
  Codec: 'CODEC',
  Compacted: 'COMPACTED',
  Unavailable: 'UNAVAILABLE',
  ProposalDropped: 'PROPOSAL_DROPPED',
  Internal: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every Cohort error. */
export abstract class CohortError extends Error {
  abstract readonly code: ErrorCode;
}

/** This node does not lead the group; `leaderId`/`leaderAddress` say who does, when known. */
export class NotLeaderError extends CohortError {
  override readonly name = 'NotLeaderError';
  readonly code = ErrorCode.NotLeader;
  constructor(
    readonly leaderId?: NodeId,
    readonly leaderAddress?: string,
    message?: string,
  ) {
    super(message ?? (leaderId ? `not the leader; the leader is ${leaderId}` : 'not the leader; no leader is known'));
  }
}

/** Not enough voters are reachable to make progress. */
export class NoQuorumError extends CohortError {
  override readonly name = 'NoQuorumError';
  readonly code = ErrorCode.NoQuorum;
}

/**
 * The group has lost its quorum as this node sees it: no leader is reachable
 * and too few voters answered within about an election timeout. The message
 * names the voters this node cannot reach. Answered at once instead of
 * waiting for the request timeout; a write already proposed may still apply
 * if the cluster recovers (retry it in the same session to be sure).
 */
export class ClusterDownError extends CohortError {
  override readonly name = 'ClusterDownError';
  readonly code = ErrorCode.ClusterDown;
}

/** An operation did not complete in time; it may or may not have taken effect. */
export class TimeoutError extends CohortError {
  override readonly name = 'TimeoutError';
  readonly code = ErrorCode.Timeout;
}

/** A message or request carried a term older than the receiver's. */
export class StaleTermError extends CohortError {
  override readonly name = 'StaleTermError';
  readonly code = ErrorCode.StaleTerm;
}

/** A routed request carried a partition epoch older than the receiver's map: the sender refreshes its map and retries. */
export class StaleEpochError extends CohortError {
  override readonly name = 'StaleEpochError';
  readonly code = ErrorCode.StaleEpoch;
}

/**
 * This node's circuit breaker to `peer` is open: recent forwards to it failed
 * (unreachable, timed out), so requests it would forward there are refused at
 * once until the breaker probes the peer again.
 */
export class CircuitOpenError extends CohortError {
  override readonly name = 'CircuitOpenError';
  readonly code = ErrorCode.CircuitOpen;
  constructor(
    message: string,
    /** The peer whose circuit is open, when known. */
    readonly peer?: NodeId,
    /** In how many ms the peer is probed again, when known. */
    readonly probeInMs?: number,
  ) {
    super(message);
  }
}

/** Durable storage failed or holds corrupt data; the message names the file, group and index. */
export class StorageError extends CohortError {
  override readonly name: string = 'StorageError';
  readonly code = ErrorCode.Storage;
}

/**
 * A replicated state machine's stored state failed its checksum (a KV row,
 * session or applied-state row), while the log is intact: the state can be
 * rebuilt from a healthy replica's snapshot plus this node's own log.
 */
export class CorruptStateError extends StorageError {
  override readonly name: string = 'CorruptStateError';
  constructor(
    message: string,
    /** The partition (state machine) whose state is corrupt. */
    readonly partition: string,
  ) {
    super(message);
  }
}

/**
 * The disk is full: a write could not commit for want of space. Not a
 * failure of the data: the store keeps the write queued and retries it, in
 * order, until space is freed; meanwhile the node refuses new writes and
 * serves reads. Retry later or on another node.
 */
export class DiskFullError extends CohortError {
  override readonly name = 'DiskFullError';
  readonly code = ErrorCode.Unavailable;
}

/** Configuration is invalid; the message says which field and how to fix it. */
export class ConfigError extends CohortError {
  override readonly name = 'ConfigError';
  readonly code = ErrorCode.Config;
}

/** Bytes could not be decoded (unknown version, truncated or oversized frame). */
export class CodecError extends CohortError {
  override readonly name = 'CodecError';
  readonly code = ErrorCode.Codec;
}

/** The requested log position was compacted into a snapshot. */
export class CompactedError extends CohortError {
  override readonly name = 'CompactedError';
  readonly code = ErrorCode.Compacted;
}

/** The requested log position is not (yet) available in this store. */
export class UnavailableError extends CohortError {
  override readonly name = 'UnavailableError';
  readonly code = ErrorCode.Unavailable;
}

/** A proposal was dropped (no leader, transfer in progress, or log over its size bound). */
export class ProposalDroppedError extends CohortError {
  override readonly name = 'ProposalDroppedError';
  readonly code = ErrorCode.ProposalDropped;
}

/** An unexpected failure on a remote node (or an error code this node does not know). */
export class InternalError extends CohortError {
  override readonly name = 'InternalError';
  readonly code = ErrorCode.Internal;
}
