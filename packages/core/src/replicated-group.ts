import type { GroupId, LogIndex, NodeId, Term } from './ids.js';

/** A replica's part in its group: Raft's roles; a primary-backup engine reports `leader` for its primary. */
export type GroupRole = 'follower' | 'candidate' | 'preCandidate' | 'leader';

/** What a {@link ReplicatedGroup} reports about itself. */
export interface ReplicatedGroupStatus {
  group: GroupId;
  role: GroupRole;
  /** The engine's epoch (Raft term, Paxos ballot number). */
  term: Term;
  /** The replica that serves writes; '' when none is known. */
  leader: NodeId;
  commit: LogIndex;
  applied: LogIndex;
}

/**
 * One replicated group as its users see it, whatever engine replicates it
 * (Raft today, Vertical Paxos II later): propose a command, wait until a
 * linearizable read may be served locally, report status.
 */
export interface ReplicatedGroup {
  readonly id: GroupId;
  /**
   * Proposes `data`; resolves with the state machine's result once applied on
   * this replica. Rejects with `NotLeaderError` (naming the leader when
   * known), `ProposalDroppedError` or `TimeoutError`. A proposal refused
   * before it is appended comes back already rejected, so a caller proposing
   * several in one turn can stop at the first one refused and keep its order.
   */
  propose<R>(data: Uint8Array): Promise<R>;
  /**
   * Resolves once this replica may serve a linearizable read from its state
   * machine (ReadIndex confirmed and applied). Rejects like {@link propose}.
   */
  read(): Promise<void>;
  /**
   * Resolves once this replica, the leader, may serve a read under its
   * lease, without a ReadIndex round: the lease holds by the monotonic clock
   * now and everything committed when the lease was checked is applied.
   * Rejects with `NotLeaderError`, or `UnavailableError` when the lease does
   * not hold. Absent: the engine serves no lease reads.
   */
  leaseRead?(): Promise<void>;
  status(): ReplicatedGroupStatus;
}
