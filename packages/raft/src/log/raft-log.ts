import { CompactedError, type Entry, type LogIndex, type RaftLogReader, type Snapshot, type Term } from '@cohort/core';
import { Unstable } from './unstable.js';

/** Size of an entry for flow-control purposes. */
export function entrySize(e: Entry): number {
  return e.data.length;
}

/** Keeps at least one entry, then as many as fit in `maxBytes`. */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySize(ents[0] as Entry);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySize(ents[n] as Entry);
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

/** The log as the engine sees it: durable entries in storage followed by unstable ones in memory. */
export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known committed. Never decreases. */
  committed: LogIndex;
  /** Highest index the application has applied. */
  applied: LogIndex;

  constructor(readonly storage: RaftLogReader) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): LogIndex {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): LogIndex {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): Term {
    return this.term(this.lastIndex());
  }

  /**
   * Term of entry `i`: 0 past the end, undefined before the snapshot (compacted).
   * The engine's own lookups use this: a compacted index is an expected outcome
   * (a lagging follower, a stale hint), not an exception to build and catch.
   */
  termOrUndefined(i: LogIndex): Term | undefined {
    const u = this.unstable.maybeTerm(i);
    if (u !== undefined) return u;
    if (i > this.lastIndex()) return 0;
    if (i < this.firstIndex() - 1) return undefined;
    try {
      return this.storage.term(i);
    } catch (e) {
      // The storage's own view of its compaction point wins.
      if (e instanceof CompactedError) return undefined;
      throw e;
    }
  }

  /** Term of entry `i`: 0 past the end; throws `CompactedError` before the snapshot. */
  term(i: LogIndex): Term {
    const t = this.termOrUndefined(i);
    if (t === undefined) throw new CompactedError(`log index ${i} is compacted`);
    return t;
  }

  /** Like {@link term} but 0 for compacted indexes. */
  termOrZero(i: LogIndex): Term {
    return this.termOrUndefined(i) ?? 0;
  }

  /** Whether entry `i` exists with term `t` (false past the end and for compacted indexes). */
  matchTerm(i: LogIndex, t: Term): boolean {
    if (i > this.lastIndex()) return false;
    return this.termOrUndefined(i) === t;
  }

  /** Whether a candidate with this last entry is at least as up to date as this log (§5.4.1). */
  isUpToDate(lastIndex: LogIndex, term: Term): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lastIndex >= this.lastIndex());
  }

  /** Index of the first entry of `ents` that conflicts with the log (or is new); 0 if all match. */
  findConflict(ents: Entry[]): LogIndex {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term: the
   * follower's hint for fast backtracking (the leader can skip whole terms).
   */
  findConflictByTerm(index: LogIndex, term: Term): { index: LogIndex; term: Term } {
    for (let i = Math.min(index, this.lastIndex()); i >= 0; i--) {
      const t = this.termOrUndefined(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  /**
   * Appends a leader's entries following (`index`, `logTerm`) if that entry
   * matches (§5.3 log matching); returns the new last index, or undefined on mismatch.
   */
  maybeAppend(index: LogIndex, logTerm: Term, committed: LogIndex, ents: Entry[]): LogIndex | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) {
        throw new Error(`invariant: entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      }
      this.append(ents.slice(ci - (index + 1)));
    }
    // §5.3: commit no further than what the leader's message proves we share.
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): LogIndex {
    const first = ents[0];
    if (!first) return this.lastIndex();
    if (first.index - 1 < this.committed) {
      throw new Error(`invariant: append at ${first.index} would overwrite committed ${this.committed}`);
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Commit never moves back, and never past what we hold. */
  commitTo(toCommit: LogIndex): void {
    if (this.committed >= toCommit) return;
    if (this.lastIndex() < toCommit) {
      throw new Error(`invariant: commit ${toCommit} beyond last index ${this.lastIndex()}`);
    }
    this.committed = toCommit;
  }

  /** §5.4.2: the leader commits by counting replicas only entries of its own term. */
  maybeCommit(maxIndex: LogIndex, term: Term): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  appliedTo(i: LogIndex): void {
    if (i === 0) return;
    if (this.committed < i || i < this.applied) {
      throw new Error(`invariant: applied ${i} outside [${this.applied}, ${this.committed}]`);
    }
    this.applied = i;
  }

  /** Highest index the host has persisted. */
  stableIndex(): LogIndex {
    // While a received snapshot awaits persistence nothing past it is durable.
    if (this.unstable.snapshot) return 0;
    return this.unstable.offset - 1;
  }

  /**
   * Committed entries after `applying` (by default the applied index: entries handed out for
   * applying and not acknowledged yet are skipped), up to `maxIndex` and about `maxBytes`.
   */
  nextCommittedEntries(maxIndex: LogIndex, maxBytes: number, applying: LogIndex = this.applied): Entry[] {
    const lo = Math.max(applying + 1, this.applied + 1, this.firstIndex());
    const hi = Math.min(this.committed, maxIndex);
    if (hi < lo) return [];
    return this.slice(lo, hi + 1, maxBytes);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Entries from `i` to the end, about `maxBytes` in total. */
  entries(i: LogIndex, maxBytes: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxBytes);
  }

  /** Replaces the log with a snapshot received from the leader. */
  restore(s: Snapshot): void {
    this.committed = s.meta.index;
    this.unstable.restore(s);
  }

  /** Entries in [lo, hi), limited to about `maxBytes` (at least one). */
  slice(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) throw new CompactedError(`log index ${lo} is compacted`);
    if (hi > this.lastIndex() + 1) throw new Error(`invariant: slice [${lo},${hi}) past last ${this.lastIndex()}`);
    let ents: Entry[] = [];
    if (lo < this.unstable.offset) {
      const stored = this.storage.entries(lo, Math.min(hi, this.unstable.offset), maxBytes);
      // Storage returned less than asked: it hit the size limit.
      if (stored.length < Math.min(hi, this.unstable.offset) - lo) return stored;
      ents = stored;
    }
    if (hi > this.unstable.offset) {
      const u = this.unstable.slice(Math.max(lo, this.unstable.offset), hi);
      ents = ents.length > 0 ? ents.concat(u) : u;
    }
    return limitSize(ents, maxBytes);
  }
}
