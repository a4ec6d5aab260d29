import type { ConfState, LogIndex, NodeId, Term } from '@cohort/core';
import type { Raft } from './raft.js';
import type { ProgressState } from './tracker/progress.js';
import type { StateRole } from './types.js';

/** The leader's view of one peer, as reported by {@link Status}. */
export interface ProgressStatus {
  match: LogIndex;
  next: LogIndex;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  inflight: number;
}

/**
 * A follower found, by a leader, to have lost entries it had acknowledged: its storage was wiped or
 * replaced. Its acknowledgements may have counted toward commits, so this is worth an operator's look.
 */
export interface LostEntries {
  /** The follower. */
  id: NodeId;
  /** What the leader had recorded as replicated on it. */
  match: LogIndex;
  /** The follower's reject hint: about where its log now ends. Probing resumed from here. */
  hint: LogIndex;
}

/** The part of {@link Status} a request checks on its hot path, read without copying progress or configuration. */
export interface BasicStatus {
  term: Term;
  lead: NodeId;
  role: StateRole;
  lastIndex: LogIndex;
}

/** A point-in-time view of a node's engine. */
export interface Status {
  id: NodeId;
  term: Term;
  vote: NodeId;
  lead: NodeId;
  role: StateRole;
  commit: LogIndex;
  applied: LogIndex;
  lastIndex: LogIndex;
  /** Per-peer replication progress; filled only on the leader. */
  progress: Record<NodeId, ProgressStatus>;
  confState: ConfState;
  /** The node leadership is being transferred to, or ''. */
  leadTransferee: NodeId;
  /**
   * How many times this node, as leader, found a follower had lost entries it acknowledged (since the
   * engine started; it never decreases). Hosts log each increase with {@link lastLostEntries}.
   */
  lostEntries: number;
  /** The latest such finding, if any. */
  lastLostEntries: LostEntries | undefined;
}

/** Reads a {@link Status} off the engine. */
export function statusOf(r: Raft): Status {
  const progress: Record<NodeId, ProgressStatus> = {};
  if (r.state === 'leader') {
    for (const [id, pr] of r.trk.progress) {
      progress[id] = {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        isLearner: pr.isLearner,
        recentActive: pr.recentActive,
        inflight: pr.inflights.count(),
      };
    }
  }
  return {
    id: r.id,
    term: r.term,
    vote: r.vote,
    lead: r.lead,
    role: r.state,
    commit: r.raftLog.committed,
    applied: r.raftLog.applied,
    lastIndex: r.raftLog.lastIndex(),
    progress,
    confState: r.trk.confState(),
    leadTransferee: r.leadTransferee,
    lostEntries: r.lostEntries,
    lastLostEntries: r.lastLostEntries,
  };
}
