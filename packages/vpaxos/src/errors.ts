import { CohortError, ErrorCode, type NodeId } from '@cohort/core';
import type { Ballot } from './types.js';

/**
 * A newer ballot exists: this replica's ballot was superseded (Raft's stale
 * term). A proposal that was already sent may still take effect (the next
 * primary may re-propose it): its outcome is unknown.
 */
export class StaleBallotError extends CohortError {
  override readonly name = 'StaleBallotError';
  readonly code = ErrorCode.StaleTerm;
  constructor(
    readonly ballot: Ballot,
    readonly newerBallot: Ballot,
  ) {
    super(`ballot ${ballot} was superseded by ballot ${newerBallot}; retry at the current primary`);
  }
}

/** This replica is not the active primary; `primaryId`/`primaryAddress` name the one it knows of. */
export class NotPrimaryError extends CohortError {
  override readonly name = 'NotPrimaryError';
  readonly code = ErrorCode.NotLeader;
  constructor(
    readonly primaryId?: NodeId,
    readonly primaryAddress?: string,
    reason?: string,
  ) {
    super(
      `${reason ?? 'not the primary'}; ${
        primaryId
          ? `the primary is ${primaryId}${primaryAddress ? ` at ${primaryAddress}` : ''}`
          : 'no primary is known'
      }`,
    );
  }
}

/**
 * The write quorum (every acceptor of the configuration) did not answer:
 * `missing` names the acceptors that did not. The configuration master must
 * replace them before writes can continue.
 */
export class QuorumNotReachedError extends CohortError {
  override readonly name = 'QuorumNotReachedError';
  readonly code = ErrorCode.NoQuorum;
  constructor(
    readonly ballot: Ballot,
    readonly missing: NodeId[],
  ) {
    super(`ballot ${ballot}: no answer from ${missing.join(', ')} (a write needs every acceptor of the configuration)`);
  }
}

/** A request did not complete in time; it may or may not have taken effect. */
export class VpTimeoutError extends CohortError {
  override readonly name = 'TimeoutError';
  readonly code = ErrorCode.Timeout;
}

/** The configuration master refused a command; `reason` says why. */
export class MasterRefusedError extends CohortError {
  override readonly name = 'MasterRefusedError';
  readonly code = ErrorCode.Config;
  constructor(readonly reason: string) {
    super(reason);
  }
}

/**
 * This replica was the only acceptor of the previous ballot, yet its durable
 * state holds no promise of that ballot (which its primary, this replica,
 * made before anything of the ballot left): its acceptor state is gone (a
 * wiped or replaced data directory). Leading a ballot that reads only this
 * state would drop every value chosen before, so it refuses.
 */
export class AcceptorStateLostError extends CohortError {
  override readonly name = 'AcceptorStateLostError';
  readonly code = ErrorCode.Storage;
  constructor(
    readonly ballot: Ballot,
    readonly prevBallot: Ballot,
    readonly maxBallot: Ballot,
  ) {
    super(
      `refusing to lead ballot ${ballot}: this replica was the only acceptor of ballot ${prevBallot} but its store promised no ballot above ${maxBallot}; its acceptor state was lost (data directory wiped or replaced?): restore the data directory, or the partition stays unavailable`,
    );
  }
}
