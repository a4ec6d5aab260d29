import type { ConfState, LogIndex, NodeId } from '@cohort/core';
import { type JointConfig, jointCommitted, jointIds, jointVoteResult } from '../quorum/joint.js';
import type { VoteResult } from '../quorum/majority.js';
import type { Progress } from './progress.js';

/** A group's membership as the engine uses it. */
export interface TrackerConfig {
  voters: JointConfig;
  learners: Set<NodeId>;
  /** Outgoing voters that become learners when the joint configuration is left. */
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

/** A membership with no one in it. */
export function emptyTrackerConfig(): TrackerConfig {
  return {
    voters: { incoming: new Set(), outgoing: new Set() },
    learners: new Set(),
    learnersNext: new Set(),
    autoLeave: false,
  };
}

/** A deep copy, so a change can be computed without touching the live config. */
export function cloneTrackerConfig(c: TrackerConfig): TrackerConfig {
  return {
    voters: { incoming: new Set(c.voters.incoming), outgoing: new Set(c.voters.outgoing) },
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

const sorted = (s: Set<NodeId>): NodeId[] => [...s].sort();

/** The persisted form of a membership (sorted, so equal configs compare equal). */
export function toConfState(c: TrackerConfig): ConfState {
  return {
    voters: sorted(c.voters.incoming),
    votersOutgoing: sorted(c.voters.outgoing),
    learners: sorted(c.learners),
    learnersNext: sorted(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

/** Membership, per-peer progress and the votes of the current election. */
export class ProgressTracker {
  /** Replaced, never modified in place, on a membership change (the changer works on a copy). */
  config: TrackerConfig = emptyTrackerConfig();
  progress = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();
  private confStateOf: { config: TrackerConfig; cs: ConfState } | undefined;

  /**
   * The membership's persisted form, a fresh copy for the caller. The sorted lists are computed once
   * per config: a host reads the status (and so this) on every proposal.
   */
  confState(): ConfState {
    if (this.confStateOf?.config !== this.config) {
      this.confStateOf = { config: this.config, cs: toConfState(this.config) };
    }
    const cs = this.confStateOf.cs;
    return {
      voters: cs.voters.slice(),
      votersOutgoing: cs.votersOutgoing.slice(),
      learners: cs.learners.slice(),
      learnersNext: cs.learnersNext.slice(),
      autoLeave: cs.autoLeave,
    };
  }

  isJoint(): boolean {
    return this.config.voters.outgoing.size > 0;
  }

  voterIds(): Set<NodeId> {
    return jointIds(this.config.voters);
  }

  isVoter(id: NodeId): boolean {
    return this.config.voters.incoming.has(id) || this.config.voters.outgoing.has(id);
  }

  /** True when this node is the only voter (it may then commit and win alone). */
  isSingleton(id: NodeId): boolean {
    const v = this.config.voters;
    return v.outgoing.size === 0 && v.incoming.size === 1 && v.incoming.has(id);
  }

  /** The highest index stored on a quorum of voters. */
  committed(): LogIndex {
    return jointCommitted(this.config.voters, (id) => this.progress.get(id)?.match);
  }

  /** Whether a quorum of voters was recently active (check-quorum). */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) if (!pr.isLearner) votes.set(id, pr.recentActive);
    return jointVoteResult(this.config.voters, votes) === 'won';
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote; only the first vote from each node counts. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterIds()) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: jointVoteResult(this.config.voters, this.votes) };
  }
}
