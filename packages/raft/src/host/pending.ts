import { type LogIndex, ProposalDroppedError, type Term, TimeoutError, UnavailableError } from '@cohort/core';
import type { ProposalTiming } from './host-options.js';

interface Waiter<R> {
  resolve(value: R): void;
  reject(err: Error): void;
  deadline: number;
}

interface Proposal<R> extends Waiter<R> {
  term: Term;
  /** When it was proposed, found durable locally and found committed (the clock's milliseconds). */
  proposed: number;
  persisted?: number;
  committed?: number;
}

/** Where the proposals' phase times go: `record` is undefined while nobody listens. */
export interface PhaseClock {
  now(): number;
  record(): ((t: ProposalTiming) => void) | undefined;
}

export type ProposalPhase = 'persisted' | 'committed';

interface Read extends Waiter<void> {
  /** The read index once the leader confirmed it; undefined while the round runs. */
  index?: LogIndex;
}

/**
 * The proposals and reads of one group that wait for the log: proposals by
 * the index and term they were appended at, reads by their ReadIndex context.
 */
export class PendingWork<R> {
  private readonly proposals = new Map<LogIndex, Proposal<R>>();
  private readonly reads = new Map<string, Read>();
  /** The highest index stamped with each phase. */
  private readonly stamped = { persisted: 0, committed: 0 };

  constructor(private readonly clock: PhaseClock = { now: () => 0, record: () => undefined }) {}

  get size(): number {
    return this.proposals.size + this.reads.size;
  }

  /** Whether some proposal waits. */
  get hasProposals(): boolean {
    return this.proposals.size > 0;
  }

  addProposal(index: LogIndex, term: Term, deadline: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      // A proposal at an index already waited on means the earlier one lost its entry here to a newer leader's.
      this.replacedAt(index, term);
      this.proposals.set(index, { term, deadline, resolve, reject, proposed: this.clock.now() });
    });
  }

  /**
   * This node's log now holds an entry of `term` at `index` (a newer leader's replaced what was
   * there): a proposal waiting at that index with another term lost its entry here. Its outcome is
   * unknown, not dropped: a replica that kept the entry may still lead later and commit it (with five
   * voters, three that never saw the newer entries can elect one of them), so a retry could apply the
   * write twice. The answer is UNAVAILABLE at once (a write in a client session may be retried: it
   * applies once), rather than a timeout later. Only an applied entry of another term at that index
   * ({@link applied}) proves the proposal dropped.
   */
  replacedAt(index: LogIndex, term: Term): void {
    const p = this.proposals.get(index);
    if (p === undefined || p.term === term) return;
    this.proposals.delete(index);
    p.reject(
      new UnavailableError(
        `entry ${index} of term ${p.term} was replaced in this replica's log by one of term ${term} (a new leader's); it may still commit through a replica that kept it: outcome unknown`,
      ),
    );
  }

  /**
   * The log reached `phase` up to `upTo`: this node's log is durable there (a write of the entries
   * from `from` on completed), or the group committed there. Stamps the proposals waiting in that
   * range that were not stamped yet.
   */
  reached(phase: ProposalPhase, upTo: LogIndex, from = this.stamped[phase] + 1): void {
    // A write from below the mark replaced entries there (a new leader's): stamp from its start.
    if (upTo < from) return;
    this.stamped[phase] = upTo;
    if (this.proposals.size === 0 || this.clock.record() === undefined) return;
    const now = this.clock.now();
    if (upTo - from < this.proposals.size) {
      for (let i = from; i <= upTo; i++) {
        const p = this.proposals.get(i);
        if (p !== undefined) p[phase] ??= now;
      }
    } else {
      for (const [i, p] of this.proposals) if (i >= from && i <= upTo) p[phase] ??= now;
    }
  }

  /** The entry at `index` with `term` was applied with `result`. */
  applied(index: LogIndex, term: Term, result: R): void {
    const p = this.proposals.get(index);
    if (p === undefined) return;
    this.proposals.delete(index);
    if (p.term !== term) {
      p.reject(new ProposalDroppedError(`entry ${index} of term ${p.term} was replaced by one of term ${term}`));
      return;
    }
    p.resolve(result);
    const record = this.clock.record();
    if (record === undefined) return;
    const now = this.clock.now();
    // A phase the host did not see on its own (the commit moved inside another call) is dated by the apply.
    record({ proposed: p.proposed, persisted: p.persisted ?? now, committed: p.committed ?? now, applied: now });
  }

  /** The entry at `index` could not be applied; its proposer gets `err`. */
  failed(index: LogIndex, err: Error): void {
    const p = this.proposals.get(index);
    if (p === undefined) return;
    this.proposals.delete(index);
    p.reject(err);
  }

  addRead(context: string, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.reads.set(context, { deadline, resolve, reject });
    });
  }

  /** Whether the read of `context` still waits (not yet released, refused or expired). */
  hasRead(context: string): boolean {
    return this.reads.has(context);
  }

  /** The read of `context` cannot be served; its caller gets `err`. */
  failRead(context: string, err: Error): void {
    const r = this.reads.get(context);
    if (r === undefined) return;
    this.reads.delete(context);
    r.reject(err);
  }

  /** The leader confirmed it led at `index` when the read of `context` started. */
  readConfirmed(context: string, index: LogIndex): void {
    const r = this.reads.get(context);
    if (r !== undefined) r.index = index;
  }

  /** Resolves the confirmed reads whose index is applied. */
  releaseReads(applied: LogIndex): void {
    for (const [ctx, r] of this.reads) {
      if (r.index !== undefined && r.index <= applied) {
        this.reads.delete(ctx);
        r.resolve();
      }
    }
  }

  /** Rejects everything whose deadline passed. */
  expire(now: number): void {
    for (const [index, p] of this.proposals) {
      if (p.deadline <= now) {
        this.proposals.delete(index);
        p.reject(new TimeoutError(`proposal at index ${index} was not applied in time; it may still take effect`));
      }
    }
    for (const [ctx, r] of this.reads) {
      if (r.deadline <= now) {
        this.reads.delete(ctx);
        r.reject(new TimeoutError('read index was not confirmed by a quorum in time'));
      }
    }
  }

  /** Rejects every read still waiting for its round (leadership was lost: the round cannot finish). */
  failReads(err: Error): void {
    for (const [ctx, r] of this.reads) {
      if (r.index === undefined) {
        this.reads.delete(ctx);
        r.reject(err);
      }
    }
  }

  /** Rejects everything (the host stops). */
  failAll(err: Error): void {
    for (const p of this.proposals.values()) p.reject(err);
    for (const r of this.reads.values()) r.reject(err);
    this.proposals.clear();
    this.reads.clear();
  }
}
