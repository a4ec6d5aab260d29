import type { ConfState, Entry, HardState, LogIndex, RaftLogReader, Snapshot, SnapshotMeta, Term } from '@cohort/core';
import { CompactedError, StorageError, UnavailableError } from '@cohort/core/errors';
import { emptyConfState, emptyHardState } from '@cohort/core/raft-types';
import { entryCrc, entryTypeOf } from './checksums.js';
import { EntrySizes } from './entry-sizes.js';
import { type LogPosition, cloneMeta } from './log-rules.js';

/** A stored entry row as better-sqlite3 returns it. */
export interface EntryRow {
  idx: number;
  term: number;
  type: number;
  data: Uint8Array;
  crc: number;
}

/** One group's cached state in a {@link SqliteNodeStore}; replaced as a whole when a write commits. */
export interface GroupState {
  /** Row id in `groups`; 0 until the group is first written. */
  gid: number;
  name: string;
  hardState: HardState;
  compactIndex: LogIndex;
  compactTerm: Term;
  /** The synced marker: the last index of the log as of the last committed write. */
  lastIndex: LogIndex;
  /** Row id of the current snapshot in `snapshots`; 0 for none. */
  snapId: number;
  snapMeta: SnapshotMeta;
  snapSize: number;
  snapChunks: number;
  /** Counts snapshot installs: a snapshot being written is void once another was installed (it deleted the rows). */
  snapEpoch: number;
  /** Bytes of entry data in the log, and after the snapshot's index. */
  bytes: number;
  bytesSinceSnapshot: number;
  /**
   * The data sizes of the entries whose rows the file holds: those of the log, and before them
   * those a compaction dropped whose rows are not deleted yet (`sizes.base` is the last such row gone).
   */
  sizes: EntrySizes;
  /**
   * The data sizes of the entry rows an installed snapshot left in the file,
   * all at or before its index (its compaction point): deleted in small jobs
   * like a compaction's, before `sizes`' (`installLeft.base` is the last such
   * row gone). Undefined when there are none.
   */
  installLeft: EntrySizes | undefined;
  /**
   * The most recent entries, contiguous and ending at `lastIndex` (or empty);
   * it holds every entry the writer has not committed yet, so what lies
   * before it is on disk.
   */
  tail: Entry[];
  tailBytes: number;
}

export function newGroupState(name: string): GroupState {
  return {
    gid: 0,
    name,
    hardState: emptyHardState(),
    compactIndex: 0,
    compactTerm: 0,
    lastIndex: 0,
    snapId: 0,
    snapMeta: { index: 0, term: 0, confState: emptyConfState() },
    snapSize: 0,
    snapChunks: 0,
    snapEpoch: 0,
    bytes: 0,
    bytesSinceSnapshot: 0,
    sizes: EntrySizes.empty(0),
    installLeft: undefined,
    tail: [],
    tailBytes: 0,
  };
}

/** Whether the file holds entry rows a compaction or a snapshot install left for later jobs to delete. */
export function hasLeftRows(s: GroupState): boolean {
  return s.sizes.base < s.compactIndex || s.installLeft !== undefined;
}

export function cloneGroupState(s: GroupState): GroupState {
  return { ...s, tail: s.tail.slice() };
}

export function positionOf(s: GroupState): LogPosition {
  return {
    compactIndex: s.compactIndex,
    lastIndex: s.lastIndex,
    snapshotIndex: s.snapMeta.index,
    hardState: s.hardState,
  };
}

/** Turns a stored row into an entry after checking its CRC; a bad row stops the node. */
export function decodeEntryRow(file: string, group: string, row: EntryRow): Entry {
  const type = entryTypeOf(row.type);
  const data = new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength);
  if (type === undefined || entryCrc(group, row.idx, row.term, row.type, data) !== row.crc) {
    throw new StorageError(`${file}: group ${group}: entry ${row.idx} fails its CRC32C check; the log is corrupt`);
  }
  return { index: row.idx, term: row.term, type, data };
}

/** What the reader needs from its store. */
export interface GroupSource {
  readonly file: string;
  state(): GroupState;
  /** Rows [lo, hi) in order, lazily. */
  rows(gid: number, lo: LogIndex, hi: LogIndex): IterableIterator<EntryRow>;
  row(gid: number, index: LogIndex): EntryRow | undefined;
  snapshotData(s: GroupState): Uint8Array;
}

/** The engine's view of one group of a {@link SqliteNodeStore}: recent entries from memory, the rest from SQLite. */
export class SqliteLogReader implements RaftLogReader {
  constructor(private readonly src: GroupSource) {}

  initialState(): { hardState: HardState; confState: ConfState } {
    const s = this.src.state();
    return { hardState: { ...s.hardState }, confState: cloneMeta(s.snapMeta).confState };
  }

  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    const s = this.src.state();
    if (lo <= s.compactIndex)
      throw new CompactedError(`entries from ${lo} are compacted (first index ${s.compactIndex + 1})`);
    if (hi > s.lastIndex + 1)
      throw new UnavailableError(`entries up to ${hi - 1} requested, last index is ${s.lastIndex}`);
    const out: Entry[] = [];
    if (lo >= hi) return out;
    const tailStart = s.tail.length > 0 ? (s.tail[0] as Entry).index : Number.POSITIVE_INFINITY;
    let size = 0;
    if (lo >= tailStart) {
      for (let i = lo; i < hi; i++) {
        const e = s.tail[i - tailStart] as Entry;
        size += e.data.length;
        if (out.length > 0 && size > maxBytes) break;
        out.push(e);
      }
      return out;
    }
    // Below the tail from the table (committed rows), the rest from the tail.
    const dbHi = Math.min(hi, tailStart);
    let expect = lo;
    for (const row of this.src.rows(s.gid, lo, dbHi)) {
      const e = decodeEntryRow(this.src.file, s.name, row);
      if (e.index !== expect) {
        throw new StorageError(`${this.src.file}: group ${s.name}: entry ${expect} is missing from the log`);
      }
      expect++;
      size += e.data.length;
      if (out.length > 0 && size > maxBytes) return out;
      out.push(e);
    }
    if (out.length === 0 || expect < dbHi) {
      throw new StorageError(`${this.src.file}: group ${s.name}: entry ${expect} is missing from the log`);
    }
    for (let i = dbHi; i < hi; i++) {
      const e = s.tail[i - tailStart] as Entry;
      size += e.data.length;
      if (size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(i: LogIndex): Term {
    const s = this.src.state();
    if (i < s.compactIndex) throw new CompactedError(`term of ${i} is compacted (first index ${s.compactIndex + 1})`);
    if (i === s.compactIndex) return s.compactTerm;
    if (i > s.lastIndex) throw new UnavailableError(`term of ${i} requested, last index is ${s.lastIndex}`);
    const tailStart = s.tail.length > 0 ? (s.tail[0] as Entry).index : Number.POSITIVE_INFINITY;
    if (i >= tailStart) return (s.tail[i - tailStart] as Entry).term;
    const row = this.src.row(s.gid, i);
    if (!row) throw new StorageError(`${this.src.file}: group ${s.name}: entry ${i} is missing from the log`);
    return decodeEntryRow(this.src.file, s.name, row).term;
  }

  firstIndex(): LogIndex {
    return this.src.state().compactIndex + 1;
  }

  lastIndex(): LogIndex {
    return this.src.state().lastIndex;
  }

  snapshot(): Snapshot {
    const s = this.src.state();
    return { meta: cloneMeta(s.snapMeta), data: this.src.snapshotData(s) };
  }
}
