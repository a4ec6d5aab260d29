import type { ConfChange, ConfState, GroupId, LogIndex, Message, NodeId, RaftLogReader, Term } from '@cohort/core';
import type { ForcedConfiguration } from '../force-config.js';
import type { LeaseRead } from '../lease.js';
import type { BasicStatus, LostEntries } from '../status.js';
import type { RaftOptions, Ready, StateRole } from '../types.js';

/** What the host reads of an engine's state for status reports. */
export interface EngineStatus {
  term: Term;
  lead: NodeId;
  role: StateRole;
  commit: LogIndex;
  lastIndex: LogIndex;
  confState: ConfState;
  /**
   * How many times this node, as leader, found a follower had lost entries it acknowledged (its storage
   * was wiped or replaced); never decreases. The host logs each increase. Absent: the engine does not tell.
   */
  lostEntries?: number;
  /** The latest such finding. */
  lastLostEntries?: LostEntries;
  /** On a leader handing its leadership over: the voter it goes to. Absent: none (or the engine does not tell). */
  leadTransferee?: NodeId;
}

/**
 * The part of the engine the host drives. `RawNode` provides it; tests and
 * the simulator may wrap it, which is why the host depends on this and not on
 * the class.
 */
export interface RaftEngine {
  tick(): void;
  step(m: Message): void;
  /** Appends `data` as a new entry when leader; returns its position, or throws (ProposalDroppedError, NotLeaderError). */
  propose(data: Uint8Array): { index: LogIndex; term: Term };
  /**
   * Appends a membership change as a new entry when leader (one at a time); returns its position,
   * or throws (ProposalDroppedError, NotLeaderError).
   */
  proposeConfChange(cc: ConfChange): { index: LogIndex; term: Term };
  /** Starts a ReadIndex round; its result comes back as a `ReadState` carrying `context`. */
  readIndex(context: Uint8Array): void;
  /** Applies a committed membership change; returns the resulting configuration. */
  applyConfChange(cc: ConfChange): ConfState;
  hasReady(): boolean;
  ready(): Ready;
  advance(): void;
  /** Tells the leader a message to `id` could not be delivered, so it probes instead of streaming. */
  reportUnreachable(id: NodeId): void;
  /**
   * Tells the leader how a snapshot stream to `id` ended (`ok`: the follower installed it); `index`: the
   * index of the snapshot the follower installed, when the host streamed a later state than the engine asked for.
   */
  reportSnapshot(id: NodeId, ok: boolean, index?: LogIndex): void;
  /** Starts an election now. */
  campaign(): void;
  /**
   * Unsafe recovery: rewrites the membership to `voters` without consensus (see
   * `RawNode.forceConfiguration`). Absent: the engine cannot, and the host refuses.
   */
  forceConfiguration?(voters: NodeId[]): ForcedConfiguration;
  /** On a leader, hands leadership to `to` (a voter), which campaigns once it has caught up. */
  transferLeadership(to: NodeId): void;
  /** On a leader whose lease holds, the lease a read may be served under; absent: the engine has no leases. */
  leaseRead?(): LeaseRead | undefined;
  /**
   * Holds back committed entries from the next Readies (true) or hands them out again (false);
   * nothing else stops. Absent: the engine cannot, and the host never pauses it.
   */
  pauseApplying?(paused: boolean): void;
  /**
   * Commit notices (with `deferCommitNotice`): on a leader, the commit index some follower was not told
   * yet (0: none). Absent: the engine sends commit indexes at once.
   */
  commitNoticeOwed?(): LogIndex;
  /** Tells commit index `upTo` to the followers not told it yet (messages in the next Ready). */
  flushCommitNotice?(upTo: LogIndex): void;
  /**
   * With ReadIndex rounds that ask only a quorum: asks the other followers to confirm the newest pending
   * round (messages in the next Ready); false when none is pending. Absent: rounds ask every follower.
   */
  hedgeReadIndex?(): boolean;
  /** The highest index known committed, read cheaply; absent: the host reads `status().commit`. */
  commitIndex?(): LogIndex;
  /** On a leader, the highest index known replicated on each peer (itself included); undefined elsewhere. */
  matchIndexes(): Record<NodeId, LogIndex> | undefined;
  status(): EngineStatus;
  /** Term, leader, role and last index, read cheaply; absent: the host reads them from `status()`. */
  basicStatus?(): BasicStatus;
  /**
   * Quiescence (optional: an engine without it never quiesces). On an idle leader: stops its clock
   * and returns what to tell the followers; undefined when not idle. `down`: peers the liveness
   * source reports down, which need not be caught up.
   */
  quiesce?(down: (id: NodeId) => boolean): { term: Term; commit: LogIndex; peers: NodeId[] } | undefined;
  /** A quiesce heartbeat arrived: true when this follower quiesced, false to step it as a heartbeat. */
  quiesceFollower?(from: NodeId, term: Term, commit: LogIndex): boolean;
  /** Wakes a quiescent engine; true when it was quiescent. */
  wake?(): boolean;
  /** Whether the engine is quiescent (the host does not tick it). */
  isQuiescent?(): boolean;
}

/**
 * Creates an engine over a group's durable log: a restart when `bootstrapPeers`
 * is undefined, else a brand-new member of a group founded by those voters.
 * The host passes `asyncStorageWrites: true` and relies on it: a leader's
 * appends leave before its own write is durable, so the engine must count the
 * leader toward a commit only once `advance()` reports its entries durable,
 * and hand out for applying only entries durable locally.
 */
export type EngineFactory = (
  options: RaftOptions,
  storage: RaftLogReader,
  bootstrapPeers?: NodeId[],
  /** The group the engine runs (a factory shared by many groups may tell them apart). */
  group?: GroupId,
) => RaftEngine;
