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
  /** Whether this replica can reach a quorum, when the engine tells (see {@link QuorumStatus}). */
  quorum?: QuorumStatus;
}

/**
 * Whether a replica can reach its group's quorum, as it last heard from the
 * other voters:
 * - `ok`: this replica leads and heard from a quorum of voters within the
 *   window, or it heard from a leader within the window;
 * - `electing`: no leader is known, but a quorum answered (or the window since
 *   the last leader has not passed yet): an election is under way;
 * - `lost`: no leader for at least the window, and too few voters answered
 *   within it: requests cannot be served until voters come back.
 */
export interface QuorumStatus {
  state: 'ok' | 'electing' | 'lost';
  /** The replica reporting. */
  self: NodeId;
  /** The voters (both configurations' while a membership change is under way), sorted. */
  voters: NodeId[];
  /** Voters, this replica excluded, not heard from within the window, sorted. */
  unreachable: NodeId[];
  /** How many voters a quorum needs (of the incoming configuration; both must agree while joint). */
  needed: number;
  /** Milliseconds since this replica last had a reachable leader (0 while it has one). */
  leaderlessMs: number;
  /** The window: about the longest election timeout. */
  windowMs: number;
}

/** Why a replica cannot serve requests when `q` is lost: names the voters it cannot reach. */
export function describeQuorumLoss(q: QuorumStatus): string {
  const self = q.self;
  const reach = q.voters.filter((v) => !q.unreachable.includes(v));
  return (
    `no quorum: node ${self} cannot reach ${q.unreachable.join(', ') || 'enough voters'} ` +
    `(voters ${q.voters.join(', ')}; a quorum needs ${q.needed}, reachable ${reach.length === 0 ? 'none' : reach.join(', ')}) ` +
    `and has had no leader for ${q.leaderlessMs} ms; start or reconnect the unreachable members`
  );
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
  /**
   * This replica's role and the leader it knows, read cheaply (a request checks them each time).
   * Absent: read from {@link status}.
   */
  leadership?(): { role: GroupRole; leader: NodeId };
  /**
   * The quorum status while this replica finds the quorum lost (see {@link QuorumStatus}); undefined
   * while it is not, read cheaply. Absent: read from {@link status}.
   */
  quorumLost?(): QuorumStatus | undefined;
}
