import {
  CompactedError,
  type ConfState,
  type Entry,
  type HardState,
  type LogIndex,
  type NodeId,
  type RaftLogReader,
  type Snapshot,
  StorageError,
  type Term,
  UnavailableError,
  emptyConfState,
  emptyHardState,
} from '@cohort/core';
import { limitSize } from './log/raft-log.js';

/**
 * An in-memory Raft log store (etcd's MemoryStorage): what the engine reads,
 * plus the writes a host performs from each `Ready`. `ents[0]` is a dummy
 * entry standing for the snapshot's last index and term.
 */
export class MemoryStorage implements RaftLogReader {
  private hardState: HardState = emptyHardState();
  private snap: Snapshot = { meta: { index: 0, term: 0, confState: emptyConfState() }, data: new Uint8Array(0) };
  private ents: Entry[] = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }];

  /** A store for a new group whose initial voters are known to every member (no bootstrap entries needed). */
  static withVoters(voters: NodeId[], learners: NodeId[] = []): MemoryStorage {
    const s = new MemoryStorage();
    s.snap.meta.confState = { ...emptyConfState(), voters: [...voters], learners: [...learners] };
    return s;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: this.snap.meta.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  private offset(): LogIndex {
    return (this.ents[0] as Entry).index;
  }

  firstIndex(): LogIndex {
    return this.offset() + 1;
  }

  lastIndex(): LogIndex {
    return this.offset() + this.ents.length - 1;
  }

  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    const off = this.offset();
    if (lo <= off) throw new CompactedError(`entries from ${lo} are compacted (first index ${off + 1})`);
    if (hi > this.lastIndex() + 1) {
      throw new UnavailableError(`entries up to ${hi - 1} requested, last index is ${this.lastIndex()}`);
    }
    return limitSize(this.ents.slice(lo - off, hi - off), maxBytes);
  }

  term(i: LogIndex): Term {
    const off = this.offset();
    if (i < off) throw new CompactedError(`term of ${i} is compacted (snapshot index ${off})`);
    const e = this.ents[i - off];
    if (!e) throw new UnavailableError(`term of ${i} requested, last index is ${this.lastIndex()}`);
    return e.term;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (snap.meta.index <= this.snap.meta.index) {
      throw new StorageError(
        `snapshot at ${snap.meta.index} is not newer than the stored one at ${this.snap.meta.index}`,
      );
    }
    this.snap = snap;
    this.ents = [{ term: snap.meta.term, index: snap.meta.index, type: 'normal', data: new Uint8Array(0) }];
  }

  /** Records an application snapshot at `i` (which must be applied); call {@link compact} to drop the entries. */
  createSnapshot(i: LogIndex, confState: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.meta.index) {
      throw new StorageError(`snapshot index ${i} is not newer than the stored one at ${this.snap.meta.index}`);
    }
    if (i > this.lastIndex())
      throw new UnavailableError(`snapshot index ${i} is past the last index ${this.lastIndex()}`);
    this.snap = { meta: { index: i, term: this.term(i), confState }, data };
    return this.snap;
  }

  /** Drops entries up to and including `compactIndex`; the entries must be covered by a snapshot. */
  compact(compactIndex: LogIndex): void {
    const off = this.offset();
    if (compactIndex <= off) throw new CompactedError(`index ${compactIndex} is already compacted`);
    if (compactIndex > this.lastIndex()) {
      throw new UnavailableError(`compact index ${compactIndex} is past the last index ${this.lastIndex()}`);
    }
    const i = compactIndex - off;
    const dummy = this.ents[i] as Entry;
    this.ents = [
      { term: dummy.term, index: dummy.index, type: 'normal', data: new Uint8Array(0) },
      ...this.ents.slice(i + 1),
    ];
  }

  /** Appends entries; an entry at an existing index replaces it and everything after it. */
  append(entries: Entry[]): void {
    const first = entries[0];
    if (!first) return;
    const firstKept = this.firstIndex();
    const last = (entries[entries.length - 1] as Entry).index;
    // Entries already folded into the snapshot are skipped.
    if (last < firstKept) return;
    let ents = entries;
    if (firstKept > first.index) ents = entries.slice(firstKept - first.index);
    const start = (ents[0] as Entry).index;
    const off = start - this.offset();
    if (off > this.ents.length) {
      throw new StorageError(`gap in log: appending ${start} after last index ${this.lastIndex()}`);
    }
    // Truncate any conflicting suffix, then append in place (no copy of the kept prefix).
    this.ents.length = off;
    for (const e of ents) this.ents.push(e);
  }
}
