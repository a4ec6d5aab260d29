import type { LogIndex } from '@cohort/core';
import { Inflights } from './inflights.js';

/** How the leader replicates to one follower: probing for the match point, streaming, or shipping a snapshot. */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** The leader's view of one follower (or learner): what it has and how to send it more. */
export class Progress {
  /** Highest index known to be stored on the follower. */
  match: LogIndex;
  /** Next index to send. */
  next: LogIndex;
  state: ProgressState = 'probe';
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot: LogIndex = 0;
  /** Ticks spent in snapshot state, to give up on a snapshot whose chunks were lost. */
  snapshotTicks = 0;
  /** The commit index carried by the last append sent (to skip redundant commit-only appends). */
  sentCommit: LogIndex = 0;
  /** Leader tick carried by the newest heartbeat this follower answered in this term (0: none); see lease.ts. */
  leaseAckTick = 0;
  /**
   * When this follower last answered a ReadIndex round still pending (an answer that counted toward it), as
   * a count of such answers this node received as leader (0: none); the most recent the highest. Rounds
   * with `readIndexFanout: 'quorum'` ask those that answered most recently. Answers to rounds already
   * ended (a slow follower's) and to heartbeats without a round do not count.
   */
  readAnswerSeq = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** In probe state, one append was sent and we wait for its answer (or a heartbeat round). */
  msgAppFlowPaused = false;
  /**
   * In probe state, an append went out since the state was entered: only then can a rejection at `next - 1`
   * answer a probe. One arriving before (an answer from before a snapshot, delayed on the network, which
   * can reject exactly the index the snapshot resumes from) is stale.
   */
  probeSent = false;
  /**
   * In replicate state, a heartbeat answer came since the last append sent past the catch-up window: one
   * more may go (etcd lets one through a full window per heartbeat answer). Appends lost in flight are
   * never acknowledged, so without it a full window would stall; the one let through reaches the follower
   * past the gap, whose rejection makes the leader probe again.
   */
  heartbeatAllowance = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(next: LogIndex, maxInflightMsgs: number, maxInflightBytes: number, isLearner: boolean) {
    this.match = 0;
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.probeSent = false;
    this.heartbeatAllowance = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      // Resume right after the snapshot (or what the follower already has).
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: LogIndex): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** Records that entries up to `lastIndex` (totalling `bytes`) were just sent. */
  sentEntries(lastIndex: LogIndex, count: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        // Pipelining: assume success and send the next batch without waiting.
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === 'probe') {
      this.msgAppFlowPaused = true;
      this.probeSent = true;
    }
  }

  /** An acknowledgement of `n`; returns false if it told nothing new. */
  maybeUpdate(n: LogIndex): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the append at `rejected`; `matchHint` is the follower's
   * guess of the last index that may match. Returns false for stale rejections.
   */
  maybeDecrTo(rejected: LogIndex, matchHint: LogIndex): boolean {
    if (this.state === 'replicate') {
      // Stale unless it rejects what we think matched next.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the last probe's rejection counts.
    if (!this.probeSent || this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * The follower lost entries it had acknowledged (its storage was wiped or replaced, see
   * `lostAcknowledgedEntries` in step-leader.ts): nothing is known to be stored on it any more, so match
   * drops to 0 (the hint is the follower's guess, not an acknowledgement), and probing resumes at `next`.
   */
  forgetMatch(next: LogIndex): void {
    this.resetState('probe');
    this.match = 0;
    this.next = Math.max(next, 1);
    this.sentCommit = 0;
  }

  /** Whether the leader must hold back appends to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.msgAppFlowPaused;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
      default: {
        const never: never = this.state;
        throw new Error(`unknown progress state ${String(never)}`);
      }
    }
  }
}
