import type { Entry, LogIndex, Snapshot, Term } from '@cohort/core';

/**
 * Entries (and possibly a snapshot) the engine holds that the host has not yet
 * persisted. `entries[i]` has index `offset + i`. Entries from `offset` up to
 * `offsetInProgress` (and the snapshot, when `snapshotInProgress`) were handed
 * to the host in a `Ready` whose write is not acknowledged yet: the next
 * `Ready` carries only what follows them.
 */
export class Unstable {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  offset: LogIndex;
  /** First index not yet handed to the host (`offset <= offsetInProgress <= offset + entries.length`). */
  offsetInProgress: LogIndex;
  /** The snapshot was handed to the host and is not acknowledged yet. */
  snapshotInProgress = false;

  constructor(offset: LogIndex) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** Entries not yet handed to the host. */
  nextEntries(): Entry[] {
    const from = this.offsetInProgress - this.offset;
    return from >= this.entries.length ? [] : this.entries.slice(from);
  }

  /** Whether some entry has not been handed to the host yet. */
  hasNextEntries(): boolean {
    return this.offsetInProgress < this.offset + this.entries.length;
  }

  /** The snapshot when it has not been handed to the host yet. */
  nextSnapshot(): Snapshot | undefined {
    return this.snapshotInProgress ? undefined : this.snapshot;
  }

  /** Marks everything held now as handed to the host (a `Ready` carries it). */
  acceptInProgress(): void {
    this.offsetInProgress = this.offset + this.entries.length;
    this.snapshotInProgress = this.snapshot !== undefined;
  }

  maybeFirstIndex(): LogIndex | undefined {
    return this.snapshot ? this.snapshot.meta.index + 1 : undefined;
  }

  maybeLastIndex(): LogIndex | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot?.meta.index;
  }

  maybeTerm(i: LogIndex): Term | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.meta.index === i) return this.snapshot.meta.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset]?.term;
  }

  /** The host persisted entries up to `i` (of term `t`): drop them unless they were replaced meanwhile. */
  stableTo(i: LogIndex, t: Term): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined || gt !== t || i < this.offset) return;
    this.entries = this.entries.slice(i + 1 - this.offset);
    this.offset = i + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapTo(i: LogIndex): void {
    if (this.snapshot && this.snapshot.meta.index === i) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(s: Snapshot): void {
    this.offset = s.meta.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  /** Appends `ents`, first dropping any suffix they overwrite (§5.3: a conflicting suffix is replaced). */
  truncateAndAppend(ents: Entry[]): void {
    const first = ents[0];
    if (!first) return;
    const after = first.index;
    if (after === this.offset + this.entries.length) {
      // A loop, not push(...ents): a large batch would overflow the argument limit.
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // Replaces everything unstable; the host overwrites from `after` on disk.
      this.offset = after;
      this.offsetInProgress = after;
      this.entries = [...ents];
    } else {
      this.entries = [...this.entries.slice(0, after - this.offset), ...ents];
      // Entries handed out from `after` on were replaced: the new ones go out in the next Ready (the
      // store overwrites the old ones, its writes applying in order).
      this.offsetInProgress = Math.min(this.offsetInProgress, after);
    }
  }

  /** Entries in [lo, hi), which must lie within the unstable range. */
  slice(lo: LogIndex, hi: LogIndex): Entry[] {
    const upper = this.offset + this.entries.length;
    if (lo > hi || lo < this.offset || hi > upper) {
      throw new Error(`invariant: unstable slice [${lo},${hi}) out of [${this.offset},${upper})`);
    }
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
