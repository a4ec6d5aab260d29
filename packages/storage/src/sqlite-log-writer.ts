import type { Entry, LogIndex, SnapshotMeta, Term } from '@cohort/core';
import { chunkCrc, entryCrc, entryTypeCode, groupRowCrc, snapshotRowCrc } from './checksums.js';
import { splitChunks } from './chunks.js';
import { EntrySizes } from './entry-sizes.js';
import { type WritePlan, cloneMeta } from './log-rules.js';
import type { GroupState } from './sqlite-group.js';
import type { Op } from './sqlite-ops.js';

/** What a {@link SqliteLogWriter} needs from its store. */
export interface LogWriterHost {
  /** Adds a statement to the job being built. */
  emit(op: Op): void;
  /** A new snapshot row id. */
  newSnapshotId(): number;
  /** The term at `index` as the working state `s` sees it (cache, then table). */
  termAt(s: GroupState, index: LogIndex): Term;
  /** Entries from `first` on are (re)written by the job being built. */
  appended(s: GroupState, first: LogIndex): void;
}

/**
 * The SQL side of a {@link SqliteNodeStore} write: turns plans into
 * statements for the store's writer and mirrors each change in the group's
 * working state (bounds, byte counters, cached tail) at once. The tail keeps
 * every entry appended: the store trims it once the writer committed them.
 */
export class SqliteLogWriter {
  constructor(
    private readonly host: LogWriterHost,
    private readonly chunkBytes: number,
  ) {}

  writePlan(s: GroupState, plan: WritePlan): void {
    if (plan.snapshot) {
      const snap = plan.snapshot;
      const meta = cloneMeta(snap.meta);
      const confJson = JSON.stringify(meta.confState);
      const sid = this.host.newSnapshotId();
      this.host.emit(['insSnap', sid, s.gid, meta.index, meta.term, confJson]);
      const chunks = splitChunks(snap.data, this.chunkBytes);
      chunks.forEach((c, seq) => this.host.emit(['insChunk', sid, seq, c, chunkCrc(sid, seq, c)]));
      this.host.emit([
        'completeSnap',
        snap.data.length,
        chunks.length,
        snapshotRowCrc(s.gid, meta, confJson, snap.data.length, chunks.length),
        sid,
      ]);
      this.installSnapshot(s, sid, meta, snap.data.length, chunks.length);
      this.replaceLog(s, meta);
    }
    if (plan.entries) this.append(s, plan.entries);
    if (plan.hardState) s.hardState = plan.hardState;
    this.saveRow(s);
  }

  private append(s: GroupState, entries: Entry[]): void {
    const first = (entries[0] as Entry).index;
    this.host.appended(s, first);
    if (first <= s.lastIndex) {
      // An entry at an existing index conflicts: the log is cut from there (Raft §5.3).
      s.bytes -= s.sizes.sum(first, s.lastIndex);
      s.bytesSinceSnapshot -= s.sizes.sum(Math.max(first, s.snapMeta.index + 1), s.lastIndex);
      s.sizes = s.sizes.cut(first);
      this.host.emit(['delFrom', s.gid, first]);
      const tailStart = s.tail.length > 0 ? (s.tail[0] as Entry).index : first;
      if (first <= tailStart) {
        s.tail = [];
        s.tailBytes = 0;
      } else {
        for (const e of s.tail.splice(first - tailStart)) s.tailBytes -= e.data.length;
      }
    }
    for (const e of entries) {
      const code = entryTypeCode(e.type);
      this.host.emit([
        'insEntry',
        s.gid,
        e.index,
        e.term,
        code,
        e.data,
        entryCrc(s.name, e.index, e.term, code, e.data),
      ]);
      s.bytes += e.data.length;
      if (e.index > s.snapMeta.index) s.bytesSinceSnapshot += e.data.length;
      s.sizes = s.sizes.append(e.data.length);
      // The cache keeps the caller's entry (as etcd's MemoryStorage does): entries are immutable once written.
      // Unless its data is a view of a larger buffer: then a copy of its own, or every cached entry would
      // keep a whole buffer alive (see ownedData).
      s.tail.push(ownedData(e));
      s.tailBytes += e.data.length;
    }
    s.lastIndex = (entries[entries.length - 1] as Entry).index;
  }

  installSnapshot(s: GroupState, sid: number, meta: SnapshotMeta, size: number, chunks: number): void {
    this.host.emit(['delOldChunks', s.gid, sid]);
    this.host.emit(['delOldSnaps', s.gid, sid]);
    s.snapEpoch++;
    s.snapId = sid;
    s.snapMeta = meta;
    s.snapSize = size;
    s.snapChunks = chunks;
  }

  /**
   * The log becomes empty at the snapshot's index. Rows after it go now
   * (entries there would conflict with those that follow the snapshot); those
   * at or before it stay until the store deletes them in small jobs, as a
   * compaction's ({@link purge}): a follower's log of thousands of rows
   * deleted in the install's commit held its writes behind it for hundreds of
   * milliseconds. Rows an earlier install left and not deleted yet go now.
   */
  replaceLog(s: GroupState, meta: SnapshotMeta): void {
    if (s.lastIndex > meta.index) this.host.emit(['delFrom', s.gid, meta.index + 1]);
    const older = s.installLeft;
    if (older !== undefined) this.host.emit(['delRange', s.gid, older.base, older.last]);
    const left = s.sizes.base >= meta.index ? undefined : s.sizes.cut(meta.index + 1);
    s.installLeft = left !== undefined && left.count > 0 ? left : undefined;
    s.compactIndex = meta.index;
    s.compactTerm = meta.term;
    s.lastIndex = meta.index;
    s.bytes = 0;
    s.bytesSinceSnapshot = 0;
    s.sizes = EntrySizes.empty(meta.index);
    s.tail = [];
    s.tailBytes = 0;
  }

  /**
   * The log starts after `index`. Its rows up to there stay in the file until
   * the store deletes them in small jobs of their own ({@link purge}):
   * deleting thousands of rows in the compaction's commit held every write
   * behind it for hundreds of milliseconds. Nothing reads them (reads stop at
   * the compaction point), and a restart deletes what is left of them.
   */
  compactState(s: GroupState, index: LogIndex): void {
    if (index <= s.compactIndex) return;
    s.compactTerm = this.host.termAt(s, index);
    s.bytes -= s.sizes.sum(s.compactIndex + 1, index);
    s.compactIndex = index;
    const tailStart = s.tail.length > 0 ? (s.tail[0] as Entry).index : index + 1;
    if (index >= tailStart) {
      for (const e of s.tail.splice(0, index - tailStart + 1)) s.tailBytes -= e.data.length;
    }
  }

  /**
   * Deletes the rows of entries a compaction dropped, from the oldest: at most
   * `maxRows` of them and about `maxBytes` of their data (at least one).
   * Returns whether there were any.
   */
  purge(s: GroupState, maxBytes: number, maxRows: number): boolean {
    const left = s.installLeft;
    if (left !== undefined) {
      const to = this.deleteRows(s, left, left.last, maxBytes, maxRows);
      s.installLeft = to < left.last ? left.dropTo(to) : undefined;
      return true;
    }
    if (s.compactIndex <= s.sizes.base) return false;
    s.sizes = s.sizes.dropTo(this.deleteRows(s, s.sizes, s.compactIndex, maxBytes, maxRows));
    return true;
  }

  /**
   * Deletes rows of `sizes` from its first on, through `last` at most, `maxRows` of them and about
   * `maxBytes` of their data (at least one). Returns the last index deleted.
   */
  private deleteRows(s: GroupState, sizes: EntrySizes, last: LogIndex, maxBytes: number, maxRows: number): LogIndex {
    const from = sizes.base;
    const until = Math.min(last, from + maxRows);
    let to = from + 1;
    while (to < until && sizes.sum(from + 1, to + 1) <= maxBytes) to++;
    this.host.emit(['delRange', s.gid, from, to]);
    return to;
  }

  saveRow(s: GroupState): void {
    const hs = s.hardState;
    const crc = groupRowCrc({
      name: s.name,
      hardState: hs,
      compactIndex: s.compactIndex,
      compactTerm: s.compactTerm,
      lastIndex: s.lastIndex,
      snapId: s.snapId,
    });
    this.host.emit([
      'updGroup',
      hs.term,
      hs.vote,
      hs.commit,
      s.compactIndex,
      s.compactTerm,
      s.lastIndex,
      s.snapId,
      crc,
      s.gid,
    ]);
  }
}

/**
 * `e`, or a copy of it whose data has a buffer of its own when `e`'s data is a view of a larger one. An
 * encoded command is a view of Node's shared `Buffer` pool (64 KiB slabs in Node 24) and a received entry a
 * view of its message, and the tail keeps up to `cacheEntries` entries for seconds: a heap snapshot of a
 * leader after RESP `SET`s at 64 connections found 639 cached entries keeping 39.9 MB of pool slabs alive.
 */
function ownedData(e: Entry): Entry {
  const d = e.data;
  if (d.byteOffset === 0 && d.byteLength === d.buffer.byteLength) return e;
  return { ...e, data: new Uint8Array(d) };
}
