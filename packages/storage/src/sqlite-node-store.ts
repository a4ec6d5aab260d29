import { join } from 'node:path';
import type { GroupId, GroupWrite, LogIndex, Logger, RaftLogReader, Snapshot, SnapshotMeta } from '@cohort/core';
import { StorageError } from '@cohort/core/errors';
import { silentLogger } from '@cohort/core/logger';
import Database from 'better-sqlite3';
import { DATA_FILE_NAME } from './check-data-dir.js';
import { chunkCrc, snapshotRowCrc } from './checksums.js';
import { DEFAULT_CHUNK_BYTES, Rechunker, makeStats } from './chunks.js';
import { checkCompact, checkSnapshotSave, cloneMeta, logFullError, planBatch } from './log-rules.js';
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
import { purgeAbandonedGenerations } from './sqlite-kv-partition.js';
import { SqlitePartitionKv } from './sqlite-kv.js';
import { loadGroups } from './sqlite-load.js';
import { SqliteLogWriter } from './sqlite-log-writer.js';
import { type Statements, prepareStatements } from './sqlite-statements.js';
import {
  type DurableNodeStore,
  type LogLimits,
  type LogStats,
  type PartitionKv,
  type ResolvedLogLimits,
  type SnapshotSink,
  type SnapshotSource,
  type TransactionOptions,
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
  private readonly st: Statements;
  private readonly w: SqliteLogWriter;
  private readonly src: (group: GroupId) => GroupSource;
  /** Runs a function in a transaction (nested calls become savepoints); built once, as building it per write costs. */
  private readonly inTxn: (fn: () => unknown) => unknown;
  private readonly partitions = new Map<string, SqlitePartitionKv>();
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
    this.st = prepareStatements(db);
    this.w = new SqliteLogWriter(this.st, this.chunkBytes, this.cacheEntries, this.cacheBytes, (s, index) =>
      new SqliteLogReader({ ...this.src(s.name), state: () => s }).term(index),
    );
    this.inTxn = db.transaction((fn: () => unknown) => fn());
    const st = this.st;
    this.src = (group) => ({
      file,
      state: () => this.state(group),
      rows: (gid, lo, hi) => st.range.iterate(gid, lo, hi) as IterableIterator<EntryRow>,
      row: (gid, index) => st.at.get(gid, index) as EntryRow | undefined,
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
      purgeAbandonedGenerations(db, (fn, durable) => store.transaction(fn, { durable }));
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

  write(batch: GroupWrite[]): Promise<void> {
    try {
      this.writeSync(batch);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  writeSync(batch: GroupWrite[]): void {
    this.assertOpen();
    const plans = planBatch(batch, (g) => positionOf(this.state(g)), this.file);
    this.commit((work) => {
      for (const plan of plans) this.w.writePlan(work(plan.group), plan);
    });
  }

  saveSnapshot(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): Promise<void> {
    try {
      this.saveSnapshotSync(group, snapshot, compactTo);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  saveSnapshotSync(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): void {
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
      this.st.insChunk.run(sid, seq, chunk, chunkCrc(sid, seq, chunk));
      seq++;
      size += chunk.length;
    };
    // The staging row stays `complete = 0` until finish; open discards such rows as unsynced.
    this.commit((work) => {
      const s = work(group);
      sid = Number(this.st.insSnap.run(s.gid, snapMeta.index, snapMeta.term, confJson).lastInsertRowid);
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
          const completed = this.st.completeSnap.run(
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
          this.w.installSnapshot(s, sid, snapMeta, size, seq);
          if (snapMeta.index > s.lastIndex) this.w.replaceLog(s, snapMeta);
          else this.w.compactState(s, compactIndex);
          s.bytesSinceSnapshot = this.w.sum(s.gid, snapMeta.index + 1, s.lastIndex);
          this.w.saveRow(s);
        });
      },
      abort: () => {
        if (done) return;
        done = true;
        this.inTxn(() => {
          this.st.delSnapChunks.run(sid);
          this.st.delSnap.run(sid);
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
      this.w.compactState(s, index);
      this.w.saveRow(s);
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
    let kv = this.partitions.get(partition);
    if (!kv) {
      kv = new SqlitePartitionKv(this.db, this.file, partition, (fn, durable) => this.transaction(fn, { durable }));
      this.partitions.set(partition, kv);
    }
    return kv;
  }

  transaction<T>(fn: () => T, opts: TransactionOptions = {}): T {
    this.assertOpen();
    if (this.db.inTransaction) return fn();
    const relaxed = opts.durable === false;
    // WAL order: a later synchronous=FULL commit makes this one durable too.
    if (relaxed) this.db.pragma('synchronous = NORMAL');
    try {
      return this.inTxn(fn) as T;
    } catch (err) {
      // A rolled-back transaction may have created a partition's first generation.
      for (const kv of this.partitions.values()) kv.forget();
      throw err;
    } finally {
      if (relaxed) this.db.pragma('synchronous = FULL');
    }
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
          c.gid = Number(this.st.insGroup.run(group, 0).lastInsertRowid);
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

  private readChunks(s: GroupState): (count: number) => Generator<Uint8Array> {
    const file = this.file;
    const stmt = this.st.chunk;
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
