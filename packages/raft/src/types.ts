import type { Entry, HardState, LogIndex, Message, NodeId, Random, Snapshot } from '@cohort/core';

export type { Message, MessageType } from '@cohort/core';

/**
 * The public shapes of the engine: messages in, `Ready` batches out. This file
 * is the contract between the engine, its hosts and the simulator: extend it,
 * do not break it.
 */

export type StateRole = 'follower' | 'candidate' | 'preCandidate' | 'leader';

/** Volatile state worth reporting; changes are reported in `Ready.softState`. */
export interface SoftState {
  lead: NodeId; // '' when unknown
  role: StateRole;
}

/** A linearizable read: once `index` is applied locally, reads for `context` may be served. */
export interface ReadState {
  index: LogIndex;
  context: Uint8Array;
}

/**
 * A batch of work for the host. The host persists (`hardState`, `entries`,
 * `snapshot`: durably when `mustSync`), then sends `messages`, applies
 * `committedEntries`, and calls `advance()`. Its entries are the engine's own
 * objects, shared with its log and its messages: read them, never modify them.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
  mustSync: boolean;
}

/** Engine configuration. Durations are in ticks; the host decides how long a tick is. */
export interface RaftOptions {
  id: NodeId;
  /** Ticks without a heartbeat before a follower campaigns, at least: the timeout is randomized in [electionTick, electionTickMax]. @default 10 */
  electionTick: number;
  /** The longest randomized election timeout, in ticks (>= electionTick). @default 2 * electionTick - 1 */
  electionTickMax?: number;
  /** Ticks between leader heartbeats. @default 1 */
  heartbeatTick: number;
  /** Randomness for election timeouts; seed it in simulation. */
  random: Random;
  /** Max bytes of entries per append message. @default 1 MiB */
  maxSizePerMsg?: number;
  /** Max append messages in flight per follower in replicate state. @default 256 */
  maxInflightMsgs?: number;
  /** Max bytes of entries in flight per follower (0 = unbounded). @default 0 */
  maxInflightBytes?: number;
  /**
   * Max bytes of entries in flight to a follower that is catching up: one in replicate state still
   * lacking committed entries the leader has not sent it yet (after a snapshot, a restart or a
   * partition). Such a backlog is read from storage and buffered at both ends, so it gets a smaller
   * window than a follower that keeps up; at least one append is always in flight. 0 = `maxInflightBytes`.
   * @default 0
   */
  maxCatchUpInflightBytes?: number;
  /** Max bytes of uncommitted entries the leader accepts before dropping proposals (0 = unbounded). @default 0 */
  maxUncommittedEntriesSize?: number;
  /** Pre-vote phase before a real election (§9.6). @default true */
  preVote?: boolean;
  /** Leader steps down without hearing from a quorum for an election timeout. @default true */
  checkQuorum?: boolean;
  /**
   * Read-only mode: 'safe' (ReadIndex, quorum-confirmed), 'leaseBased' (ReadIndex answered under the
   * leader's lease while it holds) or 'leaseOnRequest' (ReadIndex stays quorum-confirmed; voters back the
   * lease and the leader serves lease reads asked for through `RawNode.leaseRead`). Both lease modes need
   * checkQuorum. @default 'safe'
   */
  readOnlyOption?: 'safe' | 'leaseBased' | 'leaseOnRequest';
  /**
   * Who a leader asks to confirm a ReadIndex round: 'all' its followers (etcd's way), or 'quorum': only
   * as many voters as make a quorum with it, those that answered a pending round most recently (one follower
   * of two, two of four). A joint configuration always asks all. With 'quorum' the host asks the rest
   * when the first ones are slow to answer (`RawNode.hedgeReadIndex`), and the next heartbeat carries the
   * round to everyone anyway. Halves the messages of a three-voter group's reads. @default 'all'
   */
  readIndexFanout?: 'all' | 'quorum';
  /** The host's durable writes complete asynchronously (leader counts itself only once durable). @default false */
  asyncStorageWrites?: boolean;
  /**
   * A commit index that moved is not sent at once in an append of its own: it rides the next append or
   * heartbeat, and the host sends what is still owed after a short delay of its choosing
   * (`RawNode.commitNoticeOwed`, `RawNode.flushCommitNotice`). Saves a message each way per follower
   * and write when writes come one at a time; followers learn commits up to that delay later.
   * @default false
   */
  deferCommitNotice?: boolean;
  /**
   * How many `Ready`s carrying entries, a snapshot or committed entries may be out at once, awaiting
   * `advance()` (acknowledged oldest first; Readies of only messages or hard state are not counted).
   * Above 1 a host may take the next Ready while the previous one's write is in flight: each carries
   * only the entries and committed entries no earlier one carried. Needs `asyncStorageWrites`. @default 1
   */
  maxOutstandingReadies?: number;
  /**
   * Max bytes of committed entries one `Ready` hands out for applying (etcd's MaxCommittedSizePerReady;
   * at least one entry): a follower catching up applies its backlog in bounded batches, the rest in the
   * next Readies. 0 = unbounded. @default 0
   */
  maxCommittedSizePerReady?: number;
  /** Snapshot chunk size for InstallSnapshot. @default 1 MiB */
  snapshotChunkBytes?: number;
  /** Last applied index when restarting. @default 0 */
  applied?: LogIndex;
}
