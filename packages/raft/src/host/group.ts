import type { GroupId, HardState, LogIndex, NodeId, SnapshotMeta, Term } from '@cohort/core';
import type { StateRole } from '../types.js';
import type { DurableStateMachine } from './durable-state-machine.js';
import type { RaftEngine } from './engine.js';
import type { PendingWork } from './pending.js';
import type { RepairState } from './replica-repair.js';

/** What the host keeps for one hosted group. */
export interface Group {
  id: GroupId;
  engine: RaftEngine;
  sm: DurableStateMachine<unknown>;
  pending: PendingWork<unknown>;
  /** The machine's applied position (index, term, membership after it). */
  applied: SnapshotMeta;
  /**
   * The last committed entry whose membership change (if any) the engine has
   * applied: the engine's applied index. Ahead of `applied` while the machine
   * repairs, behind it after the machine installed a newer snapshot.
   */
  confApplied: LogIndex;
  /** Set while the machine's state is being restored from a healthy replica. */
  repair?: RepairState | undefined;
  /** The applied position as of the start of the last completed store write: durable. Compaction stops there. */
  durable: SnapshotMeta;
  /** Index of the log's latest snapshot marker. */
  snapshotIndex: LogIndex;
  role: StateRole;
  lead: NodeId;
  /** Term and vote of the last hard state handed to the store (durable once no round is in flight). */
  term: Term;
  vote: NodeId;
  /**
   * Rounds in flight whose write changes this group's term or vote: while any is, every message of
   * the group waits for its round's write (term and vote are durable before anything sent under them).
   */
  termVoteWrites: number;
  /** A log compaction of this group is under way (one at a time). */
  compacting: boolean;
  /** A hard state whose only change is the commit index, not yet written. */
  deferredHardState?: HardState | undefined;
  /** The engine's tick count (it starts at 1 and grows by one per tick). */
  ticks: number;
  /** The monotonic time each recent tick count was reached, at `ticks % 256`. */
  tickTimes: number[];
  /**
   * The reads waiting for the next ReadIndex round: they wait as one (one pending read, its context the
   * round's, and one promise they all get), so a read costs no context, promise or map entry of its own.
   */
  readBatch: { ctx: string; done: Promise<void> } | undefined;
  /**
   * The ReadIndex rounds in flight by their context (their batch's), oldest first, with when (host clock, ms)
   * each started. A round's answer also ends every earlier one.
   */
  readRounds: Map<string, { at: number }>;
  /** The engine's `lostEntries` count already logged. */
  lostEntriesLogged: number;
  /** The host last saw the engine quiescent (it does not tick it). */
  quiescent: boolean;
  /** Consecutive ticks the group was idle as leader (nothing pending, commit unchanged). */
  idleTicks: number;
  /** The commit index at the last tick, to tell idle ticks. */
  idleCommit: LogIndex;
  /** The host tick at which a message of this group last came from each peer. */
  heard: Map<NodeId, number>;
  /** When the quorum was last found not lost (host tick, liveness reports then); see `RaftHost.quorumLost`. */
  quorumOkAt: { tick: number; reports: number };
  /** The last host tick with evidence of a live leader (this replica leading a quorum it heard from, or a message from its leader). */
  healthyAt: number;
}
