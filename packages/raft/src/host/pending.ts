import { type LogIndex, ProposalDroppedError, type Term, TimeoutError } from '@cohort/core';

interface Waiter<R> {
  resolve(value: R): void;
  reject(err: Error): void;
  deadline: number;
}

interface Proposal<R> extends Waiter<R> {
  term: Term;
}

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

  get size(): number {
    return this.proposals.size + this.reads.size;
  }

  addProposal(index: LogIndex, term: Term, deadline: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      // A proposal at an index already waited on means the earlier one lost its entry to a new leader.
      this.proposals.get(index)?.reject(new ProposalDroppedError(`entry ${index} was replaced by a newer leader's`));
      this.proposals.set(index, { term, deadline, resolve, reject });
    });
  }

  /** The entry at `index` with `term` was applied with `result`. */
  applied(index: LogIndex, term: Term, result: R): void {
    const p = this.proposals.get(index);
    if (p === undefined) return;
    this.proposals.delete(index);
    if (p.term === term) p.resolve(result);
    else p.reject(new ProposalDroppedError(`entry ${index} of term ${p.term} was replaced by one of term ${term}`));
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
