import { join } from 'node:path';
import type { Entry, GroupId, GroupWrite, LogIndex, Logger, RaftLogReader, Snapshot, SnapshotMeta } from '@cohort/core';
import { StorageError } from '@cohort/core/errors';
import { silentLogger } from '@cohort/core/logger';
import Database from 'better-sqlite3';
import { DATA_FILE_NAME } from './check-data-dir.js';
import { chunkCrc, entryCrc, entryTypeCode, groupRowCrc, snapshotRowCrc } from './checksums.js';
import { DEFAULT_CHUNK_BYTES, Rechunker, makeStats, splitChunks } from './chunks.js';
import { type WritePlan, checkCompact, planBatch } from './log-rules.js';
import { checkSnapshotSave, cloneMeta, logFullError } from './memory-node-store.js';
import { migrate } from './schema.js';
import {
  type EntryRow,
  type GroupSource,
  type GroupState,
  SqliteLogReader,
  cloneGroupState,
  newGroupState,
  positionOf,
} from './sqlite-group.js';
import { SqlitePartitionKv } from './sqlite-kv.js';
import { loadGroups } from './sqlite-load.js';
import {
  type DurableNodeStore,
  type LogLimits,
  type LogStats,
  type PartitionKv,
  type ResolvedLogLimits,
  type SnapshotSink,
  type SnapshotSource,
  resolveLimits,
} from './types.js';
import { scanWal } from './wal-scan.js';

/** Options of {@link SqliteNodeStore.open}. */
export interface SqliteNodeStoreOptions {
  limits?: LogLimits;
  /**
   * Size of a stored snapshot chunk.
   * @default 1048576
   */
  chunkBytes?: number;
  /**
   * Recent entries per group kept in memory for the engine's hot reads.
   * @default 1024
   */
  cacheEntries?: number;
  /**
   * Bytes of recent entries per group kept in memory.
   * @default 16777216
   */
  cacheBytes?: number;
  /**
   * Run SQLite's `PRAGMA quick_check` on open (a full read of the file's b-trees).
   * @default true
   */
  quickCheck?: boolean;
  /** @default silentLogger */
  logger?: Logger;
}

type Stmt = Database.Statement;

/**
 * The durable {@link DurableNodeStore}: one SQLite file per node in WAL mode
 * with `synchronous=FULL`, so a `write` is on disk when it returns. Every
 * entry, hard state and snapshot chunk carries a CRC-32C checked on read.
 */
export class SqliteNodeStore implements DurableNodeStore {
  private readonly states = new Map<GroupId, GroupState>();
  private readonly limits: ResolvedLogLimits;
  private readonly chunkBytes: number;
  private readonly cacheEntries: number;
  private readonly cacheBytes: number;
  private readonly st: Record<string, Stmt>;
  private readonly src: (group: GroupId) => GroupSource;
  /** Runs a function in a transaction (nested calls become savepoints); built once, as building it per write costs. */
  private readonly inTxn: (fn: () => unknown) => unknown;
  private closed = false;

  private constructor(
    private readonly db: Database.Database,
    readonly file: string,
    opts: SqliteNodeStoreOptions,
  ) {
    this.limits = resolveLimits(opts.limits);
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.cacheEntries = opts.cacheEntries ?? 1024;
    this.cacheBytes = opts.cacheBytes ?? 16 * 1024 * 1024;
    const p = (sql: string): Stmt => db.prepare(sql);
    this.st = {
      insGroup: p(
        "INSERT INTO groups (name, term, vote, commit_index, compact_index, compact_term, last_index, snap_id, crc) VALUES (?, 0, '', 0, 0, 0, 0, 0, ?)",
      ),
      updGroup: p(
        'UPDATE groups SET term = ?, vote = ?, commit_index = ?, compact_index = ?, compact_term = ?, last_index = ?, snap_id = ?, crc = ? WHERE gid = ?',
      ),
      insEntry: p('INSERT INTO entries (gid, idx, term, type, data, crc) VALUES (?, ?, ?, ?, ?, ?)'),
      delFrom: p('DELETE FROM entries WHERE gid = ? AND idx >= ?'),
      delUpTo: p('DELETE FROM entries WHERE gid = ? AND idx <= ?'),
      sumBytes: p('SELECT coalesce(sum(length(data)), 0) FROM entries WHERE gid = ? AND idx >= ? AND idx <= ?').pluck(),
      range: p('SELECT idx, term, type, data, crc FROM entries WHERE gid = ? AND idx >= ? AND idx < ? ORDER BY idx'),
      at: p('SELECT idx, term, type, data, crc FROM entries WHERE gid = ? AND idx = ?'),
      insSnap: p(
        'INSERT INTO snapshots (gid, idx, term, conf_state, size, chunks, complete, crc) VALUES (?, ?, ?, ?, 0, 0, 0, 0)',
      ),
      completeSnap: p('UPDATE snapshots SET size = ?, chunks = ?, complete = 1, crc = ? WHERE sid = ?'),
      insChunk: p('INSERT INTO snapshot_chunks (sid, seq, data, crc) VALUES (?, ?, ?, ?)'),
      chunk: p('SELECT data, crc FROM snapshot_chunks WHERE sid = ? AND seq = ?'),
      delOldChunks: p(
        'DELETE FROM snapshot_chunks WHERE sid IN (SELECT sid FROM snapshots WHERE gid = ? AND sid <> ?)',
      ),
      delOldSnaps: p('DELETE FROM snapshots WHERE gid = ? AND sid <> ?'),
      delSnap: p('DELETE FROM snapshots WHERE sid = ?'),
      delSnapChunks: p('DELETE FROM snapshot_chunks WHERE sid = ?'),
    };
    this.inTxn = db.transaction((fn: () => unknown) => fn());
    const st = this.st;
    this.src = (group) => ({
      file,
      state: () => this.state(group),
      rows: (gid, lo, hi) => (st.range as Stmt).iterate(gid, lo, hi) as IterableIterator<EntryRow>,
      row: (gid, index) => (st.at as Stmt).get(gid, index) as EntryRow | undefined,
      snapshotData: (s) => this.readSnapshotData(s),
    });
  }

  /**
   * Opens (creating if needed) the node's database file: checks the WAL for
   * damage, runs SQLite's quick check, migrates the schema, drops unsynced
   * leftovers and verifies every group's log bounds. Corruption throws a
   * `StorageError` naming the file, group and index.
   */
  static open(file: string, opts: SqliteNodeStoreOptions = {}): SqliteNodeStore {
    const log = opts.logger ?? silentLogger;
    const wal = scanWal(`${file}-wal`);
    if (wal.corruption) throw new StorageError(wal.corruption);
    if (wal.unsyncedTailBytes > 0) {
      log.warn('dropping an unsynced WAL tail', { file, bytes: wal.unsyncedTailBytes });
    }
    let db: Database.Database;
    try {
      db = new Database(file);
    } catch (err) {
      throw new StorageError(`${file}: cannot open the database: ${(err as Error).message}`);
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      if (opts.quickCheck ?? true) {
        const result = db.pragma('quick_check', { simple: true });
        if (result !== 'ok') throw new StorageError(`${file}: SQLite quick_check failed: ${String(result)}`);
      }
      migrate(db, file);
      const store = new SqliteNodeStore(db, file, opts);
      for (const s of loadGroups(db, file, log, store.cacheEntries)) store.states.set(s.name, s);
      return store;
    } catch (err) {
      db.close();
      if (err instanceof StorageError) throw err;
      throw new StorageError(`${file}: cannot open the database: ${(err as Error).message}`);
    }
  }

  /** Opens `<dir>/cohort.db`. */
  static openDir(dir: string, opts: SqliteNodeStoreOptions = {}): SqliteNodeStore {
    return SqliteNodeStore.open(join(dir, DATA_FILE_NAME), opts);
  }

  group(group: GroupId): RaftLogReader {
    return new SqliteLogReader(this.src(group));
  }

  groups(): GroupId[] {
    return [...this.states.values()]
      .filter((s) => s.gid !== 0)
      .map((s) => s.name)
      .sort();
  }

  write(batch: GroupWrite[]): void {
    this.assertOpen();
    const plans = planBatch(batch, (g) => positionOf(this.state(g)), this.file);
    this.commit((work) => {
      for (const plan of plans) this.writePlan(work(plan.group), plan);
    });
  }

  saveSnapshot(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): void {
    const sink = this.beginSnapshot(group, snapshot.meta);
    sink.write(snapshot.data);
    sink.finish(compactTo);
  }

  beginSnapshot(group: GroupId, meta: SnapshotMeta): SnapshotSink {
    this.assertOpen();
    const snapMeta = cloneMeta(meta);
    const confJson = JSON.stringify(snapMeta.confState);
    let sid = 0;
    let seq = 0;
    let size = 0;
    const insert = (chunk: Uint8Array): void => {
      this.st.insChunk?.run(sid, seq, chunk, chunkCrc(sid, seq, chunk));
      seq++;
      size += chunk.length;
    };
    // The staging row stays `complete = 0` until finish; open discards such rows as unsynced.
    this.commit((work) => {
      const s = work(group);
      sid = Number(this.st.insSnap?.run(s.gid, snapMeta.index, snapMeta.term, confJson).lastInsertRowid);
    });
    let pendingChunk: Uint8Array | undefined;
    const rechunker = new Rechunker(this.chunkBytes, (c) => {
      // Hold one chunk back so the last one lands in finish's transaction.
      if (pendingChunk) this.inTxn(() => insert(pendingChunk as Uint8Array));
      pendingChunk = c;
    });
    let done = false;
    const assertActive = (): void => {
      if (done) throw new StorageError(`${this.file}: group ${group}: snapshot already finished or aborted`);
    };
    return {
      write: (data) => {
        assertActive();
        rechunker.write(data);
      },
      finish: (compactIndex) => {
        assertActive();
        done = true;
        rechunker.flush();
        checkSnapshotSave(this.file, group, positionOf(this.state(group)), snapMeta, compactIndex);
        this.commit((work) => {
          if (pendingChunk) insert(pendingChunk);
          const s = work(group);
          const completed = this.st.completeSnap?.run(
            size,
            seq,
            snapshotRowCrc(s.gid, snapMeta, confJson, size, seq),
            sid,
          );
          if (completed?.changes !== 1) {
            throw new StorageError(
              `${this.file}: group ${group}: a newer snapshot replaced this one while it was written`,
            );
          }
          this.installSnapshot(s, sid, snapMeta, size, seq);
          if (snapMeta.index > s.lastIndex) this.replaceLog(s, snapMeta);
          else this.compactState(s, compactIndex);
          s.bytesSinceSnapshot = this.sum(s.gid, snapMeta.index + 1, s.lastIndex);
          this.saveRow(s);
        });
      },
      abort: () => {
        if (done) return;
        done = true;
        this.inTxn(() => {
          this.st.delSnapChunks?.run(sid);
          this.st.delSnap?.run(sid);
        });
      },
    };
  }

  openSnapshot(group: GroupId): SnapshotSource | undefined {
    const s = this.state(group);
    if (s.snapId === 0) return undefined;
    const chunks = this.readChunks(s);
    return { meta: cloneMeta(s.snapMeta), size: s.snapSize, chunks: () => chunks(s.snapChunks) };
  }

  compact(group: GroupId, index: LogIndex): void {
    this.assertOpen();
    const cur = this.state(group);
    checkCompact(group, positionOf(cur), index, this.file);
    if (index > cur.snapMeta.index) {
      throw new StorageError(
        `${this.file}: group ${group}: cannot compact to ${index}, past the snapshot at ${cur.snapMeta.index}`,
      );
    }
    if (index <= cur.compactIndex) return;
    this.commit((work) => {
      const s = work(group);
      this.compactState(s, index);
      this.saveRow(s);
    });
  }

  stats(group: GroupId): LogStats {
    const s = this.state(group);
    return makeStats(
      {
        compactIndex: s.compactIndex,
        lastIndex: s.lastIndex,
        snapshotIndex: s.snapMeta.index,
        bytes: s.bytes,
        bytesSinceSnapshot: s.bytesSinceSnapshot,
      },
      this.limits,
    );
  }

  admitProposal(group: GroupId, bytes: number): void {
    const s = this.state(group);
    if (s.bytes + bytes > this.limits.maxLogBytes) throw logFullError(this.file, group, s.bytes, this.limits);
  }

  kv(partition: string): PartitionKv {
    this.assertOpen();
    return new SqlitePartitionKv(this.db, partition);
  }

  transaction<T>(fn: () => T): T {
    this.assertOpen();
    return this.inTxn(fn) as T;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /** The underlying connection, for tests and the integrity checker. */
  get database(): Database.Database {
    return this.db;
  }

  private state(group: GroupId): GroupState {
    let s = this.states.get(group);
    if (!s) {
      s = newGroupState(group);
      this.states.set(group, s);
    }
    return s;
  }

  /**
   * Runs `fn` in one transaction over working copies of the groups it touches;
   * the copies replace the cached states only once the commit (and its fsync) succeeded.
   */
  private commit(fn: (work: (group: GroupId) => GroupState) => void): void {
    const copies = new Map<GroupId, GroupState>();
    const work = (group: GroupId): GroupState => {
      let c = copies.get(group);
      if (!c) {
        c = cloneGroupState(this.state(group));
        if (c.gid === 0) {
          c.gid = Number(this.st.insGroup?.run(group, 0).lastInsertRowid);
        }
        copies.set(group, c);
      }
      return c;
    };
    try {
      this.inTxn(() => fn(work));
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError(`${this.file}: write failed: ${(err as Error).message}`);
    }
    for (const [group, c] of copies) this.states.set(group, c);
  }

  private writePlan(s: GroupState, plan: WritePlan): void {
    if (plan.snapshot) {
      const snap = plan.snapshot;
      const meta = cloneMeta(snap.meta);
      const confJson = JSON.stringify(meta.confState);
      const sid = Number(this.st.insSnap?.run(s.gid, meta.index, meta.term, confJson).lastInsertRowid);
      const chunks = splitChunks(snap.data, this.chunkBytes);
      chunks.forEach((c, seq) => this.st.insChunk?.run(sid, seq, c, chunkCrc(sid, seq, c)));
      this.st.completeSnap?.run(
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
      this.st.delFrom?.run(s.gid, first);
      const tailStart = s.tail.length > 0 ? (s.tail[0] as Entry).index : first;
      if (first <= tailStart) {
        s.tail = [];
        s.tailBytes = 0;
      } else {
        for (const e of s.tail.splice(first - tailStart)) s.tailBytes -= e.data.length;
      }
    }
    const ins = this.st.insEntry as Stmt;
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

  private installSnapshot(s: GroupState, sid: number, meta: SnapshotMeta, size: number, chunks: number): void {
    this.st.delOldChunks?.run(s.gid, sid);
    this.st.delOldSnaps?.run(s.gid, sid);
    s.snapId = sid;
    s.snapMeta = meta;
    s.snapSize = size;
    s.snapChunks = chunks;
  }

  /** The log becomes empty at the snapshot's index. */
  private replaceLog(s: GroupState, meta: SnapshotMeta): void {
    this.st.delUpTo?.run(s.gid, Number.MAX_SAFE_INTEGER);
    s.compactIndex = meta.index;
    s.compactTerm = meta.term;
    s.lastIndex = meta.index;
    s.bytes = 0;
    s.bytesSinceSnapshot = 0;
    s.tail = [];
    s.tailBytes = 0;
  }

  private compactState(s: GroupState, index: LogIndex): void {
    if (index <= s.compactIndex) return;
    s.compactTerm = new SqliteLogReader({ ...this.src(s.name), state: () => s }).term(index);
    s.bytes -= this.sum(s.gid, s.compactIndex + 1, index);
    this.st.delUpTo?.run(s.gid, index);
    s.compactIndex = index;
    const tailStart = s.tail.length > 0 ? (s.tail[0] as Entry).index : index + 1;
    if (index >= tailStart) {
      for (const e of s.tail.splice(0, index - tailStart + 1)) s.tailBytes -= e.data.length;
    }
  }

  private saveRow(s: GroupState): void {
    const hs = s.hardState;
    const crc = groupRowCrc({
      name: s.name,
      hardState: hs,
      compactIndex: s.compactIndex,
      compactTerm: s.compactTerm,
      lastIndex: s.lastIndex,
      snapId: s.snapId,
    });
    this.st.updGroup?.run(
      hs.term,
      hs.vote,
      hs.commit,
      s.compactIndex,
      s.compactTerm,
      s.lastIndex,
      s.snapId,
      crc,
      s.gid,
    );
  }

  private sum(gid: number, lo: LogIndex, hi: LogIndex): number {
    if (lo > hi) return 0;
    return this.st.sumBytes?.get(gid, lo, hi) as number;
  }

  private readChunks(s: GroupState): (count: number) => Generator<Uint8Array> {
    const file = this.file;
    const stmt = this.st.chunk as Stmt;
    return function* (count: number) {
      for (let seq = 0; seq < count; seq++) {
        const row = stmt.get(s.snapId, seq) as { data: Uint8Array; crc: number } | undefined;
        if (!row || chunkCrc(s.snapId, seq, row.data) !== row.crc) {
          throw new StorageError(
            `${file}: group ${s.name}: snapshot at ${s.snapMeta.index}: chunk ${seq} is ${row ? 'corrupt' : 'missing'}`,
          );
        }
        yield new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength);
      }
    };
  }

  private readSnapshotData(s: GroupState): Uint8Array {
    if (s.snapId === 0) return new Uint8Array(0);
    const out = new Uint8Array(s.snapSize);
    let off = 0;
    for (const c of this.readChunks(s)(s.snapChunks)) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError(`${this.file}: the store is closed`);
  }
}
