import type { Entry, LogIndex, SnapshotMeta, Term } from '@cohort/core';
import { chunkCrc, entryCrc, entryTypeCode, groupRowCrc, snapshotRowCrc } from './checksums.js';
import { splitChunks } from './chunks.js';
import { type WritePlan, cloneMeta } from './log-rules.js';
import type { GroupState } from './sqlite-group.js';
import type { Statements } from './sqlite-statements.js';

/**
 * The SQL side of a {@link SqliteNodeStore} write: applies plans to the
 * tables inside the caller's transaction and mirrors each change in the
 * group's working state (bounds, byte counters, cached tail).
 */
export class SqliteLogWriter {
  constructor(
    private readonly st: Statements,
    private readonly chunkBytes: number,
    private readonly cacheEntries: number,
    private readonly cacheBytes: number,
    /** The term at `index` as the working state `s` sees it (cache, then table). */
    private readonly termAt: (s: GroupState, index: LogIndex) => Term,
  ) {}

  writePlan(s: GroupState, plan: WritePlan): void {
    if (plan.snapshot) {
      const snap = plan.snapshot;
      const meta = cloneMeta(snap.meta);
      const confJson = JSON.stringify(meta.confState);
      const sid = Number(this.st.insSnap.run(s.gid, meta.index, meta.term, confJson).lastInsertRowid);
      const chunks = splitChunks(snap.data, this.chunkBytes);
      chunks.forEach((c, seq) => this.st.insChunk.run(sid, seq, c, chunkCrc(sid, seq, c)));
      this.st.completeSnap.run(
        snap.data.length,
        chunks.length,
        snapshotRowCrc(s.gid, meta, confJson, snap.data.length, chunks.length),
        sid,
      );
      this.installSnapshot(s, sid, meta, snap.data.length, chunks.length);
      this.replaceLog(s, meta);
    }
    if (plan.entries) this.append(s, plan.entries);
    if (plan.hardState) s.hardState = plan.hardState;
    this.saveRow(s);
  }

  private append(s: GroupState, entries: Entry[]): void {
    const first = (entries[0] as Entry).index;
    if (first <= s.lastIndex) {
      // An entry at an existing index conflicts: the log is cut from there (Raft §5.3).
      s.bytes -= this.sum(s.gid, first, s.lastIndex);
      s.bytesSinceSnapshot -= this.sum(s.gid, Math.max(first, s.snapMeta.index + 1), s.lastIndex);
      this.st.delFrom.run(s.gid, first);
      const tailStart = s.tail.length > 0 ? (s.tail[0] as Entry).index : first;
      if (first <= tailStart) {
        s.tail = [];
        s.tailBytes = 0;
      } else {
        for (const e of s.tail.splice(first - tailStart)) s.tailBytes -= e.data.length;
      }
    }
    const ins = this.st.insEntry;
    for (const e of entries) {
      const code = entryTypeCode(e.type);
      ins.run(s.gid, e.index, e.term, code, e.data, entryCrc(s.name, e.index, e.term, code, e.data));
      s.bytes += e.data.length;
      if (e.index > s.snapMeta.index) s.bytesSinceSnapshot += e.data.length;
      // The cache keeps the caller's entry (as etcd's MemoryStorage does): entries are immutable once written.
      s.tail.push(e);
      s.tailBytes += e.data.length;
    }
    s.lastIndex = (entries[entries.length - 1] as Entry).index;
    let drop = 0;
    while (s.tail.length - drop > 1 && (s.tail.length - drop > this.cacheEntries || s.tailBytes > this.cacheBytes)) {
      s.tailBytes -= (s.tail[drop] as Entry).data.length;
      drop++;
    }
    if (drop > 0) s.tail = s.tail.slice(drop);
  }

  installSnapshot(s: GroupState, sid: number, meta: SnapshotMeta, size: number, chunks: number): void {
    this.st.delOldChunks.run(s.gid, sid);
    this.st.delOldSnaps.run(s.gid, sid);
    s.snapId = sid;
    s.snapMeta = meta;
    s.snapSize = size;
    s.snapChunks = chunks;
  }

  /** The log becomes empty at the snapshot's index. */
  replaceLog(s: GroupState, meta: SnapshotMeta): void {
    this.st.delUpTo.run(s.gid, Number.MAX_SAFE_INTEGER);
    s.compactIndex = meta.index;
    s.compactTerm = meta.term;
    s.lastIndex = meta.index;
    s.bytes = 0;
    s.bytesSinceSnapshot = 0;
    s.tail = [];
    s.tailBytes = 0;
  }

  compactState(s: GroupState, index: LogIndex): void {
    if (index <= s.compactIndex) return;
    s.compactTerm = this.termAt(s, index);
    s.bytes -= this.sum(s.gid, s.compactIndex + 1, index);
    this.st.delUpTo.run(s.gid, index);
    s.compactIndex = index;
    const tailStart = s.tail.length > 0 ? (s.tail[0] as Entry).index : index + 1;
    if (index >= tailStart) {
      for (const e of s.tail.splice(0, index - tailStart + 1)) s.tailBytes -= e.data.length;
    }
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
    this.st.updGroup.run(hs.term, hs.vote, hs.commit, s.compactIndex, s.compactTerm, s.lastIndex, s.snapId, crc, s.gid);
  }

  sum(gid: number, lo: LogIndex, hi: LogIndex): number {
    if (lo > hi) return 0;
    return this.st.sumBytes.get(gid, lo, hi) as number;
  }
}
