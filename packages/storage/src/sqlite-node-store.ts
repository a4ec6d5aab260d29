import { join } from 'node:path';
import type { Entry, GroupId, GroupWrite, LogIndex, Logger, RaftLogReader, Snapshot, SnapshotMeta } from '@cohort/core';
import { StorageError } from '@cohort/core/errors';
import { silentLogger } from '@cohort/core/logger';
import Database from 'better-sqlite3';
import {
  type AcceptorStateStore,
  type StoredAcceptorState,
  type StoredVote,
  acceptorRowCrc,
  checkAcceptorWrite,
  compactionRowCrc,
  voteRowCrc,
} from './acceptor-state.js';
import { DATA_FILE_NAME } from './check-data-dir.js';
import { chunkCrc, snapshotRowCrc } from './checksums.js';
import { DEFAULT_CHUNK_BYTES, Rechunker, makeStats } from './chunks.js';
import { checkCompact, checkSnapshotSave, cloneMeta, logFullError, planBatch } from './log-rules.js';
import { DEFAULT_PAGE_CACHE_BYTES, setPageCache } from './page-cache.js';
import { migrate } from './schema.js';
import {
  type EntryRow,
  type GroupSource,
  type GroupState,
  SqliteLogReader,
  cloneGroupState,
  hasLeftRows,
  newGroupState,
  positionOf,
} from './sqlite-group.js';
import { removeStaleImages } from './sqlite-kv-image.js';
import type { OverPut } from './sqlite-kv-over.js';
import { purgeAbandonedGenerations } from './sqlite-kv-partition.js';
import { KvRowCache } from './sqlite-kv-row-cache.js';
import { type PartitionHost, SqlitePartitionKv } from './sqlite-kv.js';
import { loadGroups } from './sqlite-load.js';
import { SqliteLogWriter } from './sqlite-log-writer.js';
import { type Job, OVER_RESULT_SLOTS, type Op, isLogOnly, isPurge } from './sqlite-ops.js';
import { READ_AHEAD_MODES, ReadAhead, type ReadAheadMode, type ReadAheadOptions } from './sqlite-prefetch.js';
import { type Statements, prepareStatements } from './sqlite-statements.js';
import { abandonPin } from './sqlite-view-pin.js';
import { InlineWriteQueue, ThreadWriteQueue, type WriteQueue } from './sqlite-write-queue.js';
import {
  type DurableNodeStore,
  type LogLimits,
  type LogStats,
  type PartitionKv,
  type ResolvedLogLimits,
  type SnapshotSink,
  type SnapshotSource,
  type TransactionOptions,
  type WriteStall,
  type WriterStats,
  resolveLimits,
} from './types.js';
import { VoteRows, loadVoteRows } from './vote-rows.js';
import { scanWal } from './wal-scan.js';

/** Jobs of a bulk load (a snapshot install) that may wait for the writer at once. */
const MAX_BULK_BACKLOG = 4;

/**
 * Entry data (or acceptor votes) whose rows one job deletes after a
 * compaction, and its rows at most: a few milliseconds of the writer's time
 * (about 2 ms a MiB on this project's machines), where the 10,000 entries of a
 * compaction deleted at once took it 250-315 ms, and the 10,000 slots of
 * votes of a busy Vertical Paxos partition 100-460 ms.
 */
const PURGE_JOB_BYTES = 256 * 1024;
const PURGE_JOB_ROWS = 1024;

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
  /**
   * Where writes run. `inline`: on the caller's thread, a write is durable
   * when the call returns (tools, tests, recovery). `thread`: on a writer
   * thread with its own connection, which commits everything queued while
   * the previous fsync ran at once (group commit); the caller's thread keeps
   * serving meanwhile, and `write` resolves once durable.
   * @default 'inline'
   */
  writer?: 'inline' | 'thread';
  /**
   * With the `thread` writer: how long a transaction that need not be durable (a machine's apply)
   * waits for the next durable write to cross to the writer and commit with (one message, one
   * commit); 0 sends it at the end of its turn. @default 5
   */
  writerHoldMs?: number;
  /**
   * With the `thread` writer: how long the writer may hold apply transactions to commit them together,
   * while the log writes after them commit (and are reported durable) first, in ms; 0 holds none.
   * See `ThreadWriteQueueOptions.applyBatchMs`. @default 100
   */
  writerApplyBatchMs?: number;
  /**
   * The size, in bytes, the WAL file is cut back to whenever SQLite starts it over after a checkpoint
   * (`PRAGMA journal_size_limit`). A WAL grows past its usual few megabytes while a reader holds an old
   * snapshot (a snapshot's copy, a consistency check's) and the writes go on; without a limit the file
   * keeps that size for good. Above the 5-7 MB a WAL holds in steady use, so the file is cut only
   * after such a reader. @default 16 MiB
   */
  walSizeLimitBytes?: number;
  /**
   * SQLite's page cache of each of the store's two long-lived connections (the caller's reads and the
   * `thread` writer's), in bytes: how many database pages each keeps in memory between reads (see
   * `page-cache.ts`; better-sqlite3's own default is 16 MB a connection). @default 4 MiB
   */
  pageCacheBytes?: number;
  /**
   * Bytes of KV rows (keys, values and 600 bytes each besides) kept in
   * memory as last read or written, shared by the store's partitions: a read
   * of a recently read or written key (an apply's of the row it replaces
   * included) is not looked up in SQLite. A key is cached on its second miss
   * or write (see {@link KvRowCache}); a write of a cached key replaces its
   * row; a write's own reads that miss are not kept. 0 keeps none (the node
   * keeps 16 MiB). @default 0
   */
  rowCacheBytes?: number;
  /**
   * Whether KV rows the event loop is about to read (the keys of entries being appended, which their
   * apply reads) are read first on a thread of its own, so their pages are in
   * memory when the event loop reads them (see {@link ReadAhead}): `auto` while reads go to the
   * disk, `on`, `off`; or its options in full. @default 'auto' with the `thread` writer, else 'off'
   */
  readAhead?: ReadAheadMode | Omit<ReadAheadOptions, 'logger'>;
  /**
   * A test hook of the `thread` writer: while this file exists, the writer
   * holds each commit before it starts, as a stalled fsync would.
   */
  commitGate?: string;
  /**
   * A test hook of the `thread` writer: while this file exists, the database
   * file may not grow, so commits fail with SQLite's SQLITE_FULL as on a full
   * disk (and are retried until the file is removed).
   */
  diskFullGate?: string;
}

/** The default of {@link SqliteNodeStoreOptions.walSizeLimitBytes}. */
const DEFAULT_WAL_SIZE_LIMIT = 16 * 1024 * 1024;

/** The default of {@link SqliteNodeStoreOptions.rowCacheBytes}. */
const DEFAULT_ROW_CACHE_BYTES = 0;

/** A byte-count option's value (its default when unset); throws on one that is not a whole number of bytes. */
function wholeBytes(name: string, bytes: number | undefined, dflt: number): number {
  const v = bytes ?? dflt;
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new StorageError(`${name} must be a whole number of bytes, 0 or more; got ${v}`);
  }
  return v;
}

/** The transaction being built by {@link SqliteNodeStore.transaction}. */
interface OpenTransaction {
  ops: Op[];
  durable: boolean;
  /** Undoes its in-memory changes, in reverse order, if it rolls back. */
  undo: (() => void)[];
  /** Jobs to queue after its own: purges of generations, marks of views (`pin`). */
  after: Job[];
  /** Its `putOver` ops' puts, in op order: each learns what the writer found. */
  overs: OverPut[];
}

/** Entries a queued job appended to a group: the tail keeps them until the writer committed the job. */
interface Pin {
  seq: number;
  group: GroupId;
  from: LogIndex;
}

/**
 * The durable {@link DurableNodeStore}: one SQLite file per node in WAL mode
 * with `synchronous=FULL`; a `write` resolves once on disk. Every entry,
 * hard state and snapshot chunk carries a CRC-32C checked on read.
 *
 * Every write becomes a job of statements for one writer (the caller's
 * thread, or a writer thread: see {@link SqliteNodeStoreOptions.writer}),
 * run in order. The in-memory state moves at once: group states (bounds,
 * hard state, a tail of recent entries that holds every entry not yet
 * committed) and each partition's overlay of uncommitted KV rows, so reads
 * on this thread see every write before the writer committed it.
 */
export class SqliteNodeStore implements DurableNodeStore, AcceptorStateStore {
  private readonly states = new Map<GroupId, GroupState>();
  private readonly limits: ResolvedLogLimits;
  private readonly chunkBytes: number;
  private readonly cacheEntries: number;
  private readonly cacheBytes: number;
  private readonly st: Statements;
  private readonly w: SqliteLogWriter;
  private readonly src: (group: GroupId) => GroupSource;
  /** Runs a function in a read transaction: one consistent snapshot of the file. */
  private readonly inRead: (fn: () => unknown) => unknown;
  private readonly partitions = new Map<string, SqlitePartitionKv>();
  /** The rows read or written last, seen from outside: its budget and `stats()`; undefined: none (`rowCacheBytes` 0). */
  get rowCache(): Pick<KvRowCache, 'budgetBytes' | 'stats'> | undefined {
    return this.cachedRows;
  }
  private readonly cachedRows: KvRowCache | undefined;
  /** The store's read ahead (in `off` mode, only its count of slow reads); undefined for a database in memory. */
  readonly readAhead: ReadAhead | undefined;
  private readonly host: PartitionHost;
  private queue: WriteQueue;
  /** The last job queued. */
  private seq = 0;
  /** The last job the writer committed. */
  private committedSeq = 0;
  /** Waits handed out by {@link settled}, released early once commits wait for disk space. */
  private settleWaits: { seq: number; release: () => void }[] = [];
  private tx: OpenTransaction | undefined;
  /** A transaction with `snapshotReads` runs: its reads share one read transaction of this connection. */
  private snapshotReads = false;
  /** Commits reported while it (or a read scope) ran, taken once it ended. */
  private committedLater: number | undefined;
  /**
   * Puts over whatever row their key had (`putOver` ops), submitted and not reported yet, in op order:
   * the writer reports what it found for each, in that order. Taken from {@link awaitingHead} on.
   */
  private awaiting: (OverPut | undefined)[] = [];
  private awaitingHead = 0;
  /** A read scope is open: this turn's reads share one read transaction (see {@link enterReadScope}). */
  private readScope = false;
  /** Read transactions (`inRead`) running: a read scope under them cannot end before they do. */
  private readDepth = 0;
  private readonly beginRead: Database.Statement;
  private readonly endRead: Database.Statement;
  /** Ops of the log write being built. */
  private building: Op[] | undefined;
  /** A job deleting rows a compaction left is queued and not committed yet (see {@link purgeSoon}). */
  private purging = false;
  /** Each Vertical Paxos acceptor's vote rows in the file (see {@link saveAcceptor}). */
  private voteRows = new Map<GroupId, VoteRows>();
  /** Whether the last log write's job was a plain append (`Job.logOnly`). */
  private lastLogOnly = false;
  /** The first index each group's entries are written from in the log write being built. */
  private appendedFrom: Map<GroupId, LogIndex> | undefined;
  private readonly pins: Pin[] = [];
  private nextGid = 1;
  private nextSid = 1;
  private nextGen = 1;
  private closed = false;
  private readonly log: Logger;

  private constructor(
    private readonly db: Database.Database,
    readonly file: string,
    opts: SqliteNodeStoreOptions,
  ) {
    this.log = opts.logger ?? silentLogger;
    this.limits = resolveLimits(opts.limits);
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.cacheEntries = opts.cacheEntries ?? 1024;
    this.cacheBytes = opts.cacheBytes ?? 16 * 1024 * 1024;
    const rowCacheBytes = wholeBytes('rowCacheBytes', opts.rowCacheBytes, DEFAULT_ROW_CACHE_BYTES);
    this.cachedRows = rowCacheBytes > 0 ? new KvRowCache(rowCacheBytes) : undefined;
    const ra = opts.readAhead ?? (opts.writer === 'thread' ? 'auto' : 'off');
    const raOpts = typeof ra === 'string' ? { mode: ra } : ra;
    if (!READ_AHEAD_MODES.includes(raOpts.mode)) {
      throw new StorageError(`readAhead must be one of ${READ_AHEAD_MODES.join(', ')}; got ${String(raOpts.mode)}`);
    }
    // A database in memory has no file for another connection to read. In `off` it only counts the
    // event loop's reads that went to the disk.
    this.readAhead = file === ':memory:' ? undefined : new ReadAhead(file, { ...raOpts, logger: this.log });
    this.st = prepareStatements(db);
    this.w = new SqliteLogWriter(
      {
        emit: (op) => this.emitLog(op),
        newSnapshotId: () => this.nextSid++,
        termAt: (s, index) => new SqliteLogReader({ ...this.src(s.name), state: () => s }).term(index),
        appended: (s, first) => {
          const cur = this.appendedFrom?.get(s.name);
          if (cur === undefined || first < cur) this.appendedFrom?.set(s.name, first);
        },
      },
      this.chunkBytes,
    );
    const inRead = db.transaction((fn: () => unknown) => fn());
    this.inRead = (fn) => {
      this.readDepth++;
      try {
        return inRead(fn);
      } finally {
        this.readDepth--;
      }
    };
    this.beginRead = db.prepare('BEGIN');
    this.endRead = db.prepare('COMMIT');
    this.queue = new InlineWriteQueue(db, file);
    this.queue.onCommitted = (upTo) => this.committed(upTo);
    this.queue.onResolved = (results) => this.resolved(results);
    this.host = {
      run: (fn, durable) => this.transaction(fn, { durable }),
      emit: (op) => this.openTx().ops.push(op),
      over: (m) => this.openTx().overs.push(m),
      seq: () => this.seq + 1,
      undo: (fn) => this.openTx().undo.push(fn),
      newGeneration: () => this.nextGen++,
      barrier: (upTo) => this.queue.barrier(upTo),
      written: () => this.queue.drained(),
      pin: (ctrl) => {
        if (!(this.queue instanceof ThreadWriteQueue)) return false;
        if (this.tx) this.tx.after.push({ seq: 0, durable: false, ops: [], pin: ctrl });
        else this.submit({ seq: 0, durable: false, ops: [], pin: ctrl });
        return true;
      },
      throttle: () => this.queue.barrier(this.seq - MAX_BULK_BACKLOG),
      purge: (gen) => {
        if (this.tx) this.tx.after.push({ seq: 0, durable: false, ops: [], purge: gen });
        else this.submit({ seq: 0, durable: false, ops: [], purge: gen });
      },
      read: <T>(fn: () => T) => this.inRead(fn) as T,
      scope: () => this.enterReadScope(),
      writing: () => this.tx !== undefined,
      readAhead: this.readAhead,
    };
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
    const stale = removeStaleImages(file);
    if (stale > 0) log.info('removed partition images left by an earlier run', { file, images: stale });
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
      const pageCache = wholeBytes('pageCacheBytes', opts.pageCacheBytes, DEFAULT_PAGE_CACHE_BYTES);
      setPageCache(db, pageCache);
      const walLimit = wholeBytes('walSizeLimitBytes', opts.walSizeLimitBytes, DEFAULT_WAL_SIZE_LIMIT);
      db.pragma(`journal_size_limit = ${walLimit}`);
      if (opts.quickCheck ?? true) {
        const result = db.pragma('quick_check', { simple: true });
        if (result !== 'ok') throw new StorageError(`${file}: SQLite quick_check failed: ${String(result)}`);
      }
      migrate(db, file);
      const store = new SqliteNodeStore(db, file, opts);
      const inTxn = db.transaction((fn: () => void) => fn());
      purgeAbandonedGenerations(db, (fn) => inTxn(fn));
      for (const s of loadGroups(db, file, log, store.cacheEntries)) store.states.set(s.name, s);
      store.voteRows = loadVoteRows(db, file, log);
      store.nextGid = (db.prepare('SELECT coalesce(max(gid), 0) FROM groups').pluck().get() as number) + 1;
      store.nextSid = (db.prepare('SELECT coalesce(max(sid), 0) FROM snapshots').pluck().get() as number) + 1;
      store.nextGen = (db.prepare('SELECT coalesce(max(gen_id), 0) FROM kv_generations').pluck().get() as number) + 1;
      if (opts.writer === 'thread') {
        // A checkpoint now, so the writer thread starts from a short WAL.
        db.pragma('wal_checkpoint(TRUNCATE)');
        store.queue = new ThreadWriteQueue(file, {
          ...(opts.writerHoldMs === undefined ? {} : { holdMs: opts.writerHoldMs }),
          ...(opts.writerApplyBatchMs === undefined ? {} : { applyBatchMs: opts.writerApplyBatchMs }),
          walSizeLimitBytes: walLimit,
          pageCacheBytes: pageCache,
          ...(opts.commitGate === undefined ? {} : { commitGate: opts.commitGate }),
          ...(opts.diskFullGate === undefined ? {} : { diskFullGate: opts.diskFullGate }),
        });
        store.queue.onCommitted = (upTo) => store.committed(upTo);
        store.queue.onResolved = (results) => store.resolved(results);
        store.queue.onStall = (stall) => store.stalled(stall);
      }
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
      const seq = this.writeLog(batch);
      // A plain append may commit before the apply transactions the writer holds (see `Job.logOnly`).
      return this.lastLogOnly ? this.queue.logDone(seq) : this.queue.done(seq);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  get writesOffThread(): boolean {
    return this.queue instanceof ThreadWriteQueue;
  }

  startWrites(): void {
    this.queue.post();
  }

  settled(slack = 0): Promise<void> | undefined {
    // On a full disk the writer cannot catch up until space is freed: waiting for it would stall the
    // caller (the Raft host's rounds, its reads and heartbeats with them) instead of bounding a backlog.
    if (!this.queue.pending || this.queue.stall !== undefined || this.seq - this.committedSeq <= slack)
      return undefined;
    const seq = this.seq;
    // Held apply transactions go now, here and on the writer: the caller waits for them.
    this.queue.post(true);
    return new Promise<void>((resolve, reject) => {
      this.settleWaits.push({ seq, release: resolve });
      this.queue.done(seq).then(resolve, reject);
    });
  }

  writerStats(): WriterStats {
    return { ...this.queue.stats };
  }

  writeStall(): WriteStall | undefined {
    return this.queue.stall;
  }

  watchWriteStall(fn: (stall: WriteStall | undefined) => void): void {
    this.stallWatchers.push(fn);
  }

  private readonly stallWatchers: ((stall: WriteStall | undefined) => void)[] = [];

  private stalled(stall: WriteStall | undefined): void {
    if (stall)
      this.log.warn('disk full: commits wait for space and are retried in order', {
        file: this.file,
        reason: stall.reason,
      });
    else this.log.warn('disk space is back: the waiting commits went through', { file: this.file });
    if (stall) {
      const waits = this.settleWaits;
      this.settleWaits = [];
      for (const w of waits) w.release();
    }
    for (const fn of this.stallWatchers) fn(stall);
  }

  writeSync(batch: GroupWrite[]): void {
    this.writeLog(batch);
    this.queue.barrier();
  }

  /** Queues a log write; returns its job's seq. */
  private writeLog(batch: GroupWrite[]): number {
    this.assertOpen();
    const plans = planBatch(batch, (g) => positionOf(this.state(g)), this.file);
    return this.commit((work) => {
      for (const plan of plans) this.w.writePlan(work(plan.group), plan);
    }, true);
  }

  /**
   * The Vertical Paxos acceptor state of `group` (migration 7's tables); a
   * row failing its CRC throws a `StorageError` naming the file, group and slot.
   */
  loadAcceptor(group: GroupId): StoredAcceptorState {
    this.assertOpen();
    return this.inRead(() => {
      const a = this.st.vpAcceptor.get(group) as { max_ballot: number; crc: number } | undefined;
      if (a && acceptorRowCrc(group, a.max_ballot) !== a.crc) {
        throw new StorageError(`${this.file}: group ${group}: the acceptor's promise row fails its checksum`);
      }
      const c = this.st.vpCompaction.get(group) as { slot: number; crc: number } | undefined;
      if (c && compactionRowCrc(group, c.slot) !== c.crc) {
        throw new StorageError(`${this.file}: group ${group}: the acceptor's compaction row fails its checksum`);
      }
      const compacted = c?.slot ?? 0;
      const votes: StoredVote[] = [];
      for (const r of this.st.vpVotes.iterate(group) as IterableIterator<{
        slot: number;
        ballot: number;
        chosen: number;
        value: Buffer;
        crc: number;
      }>) {
        const v: StoredVote = {
          slot: r.slot,
          ballot: r.ballot,
          chosen: r.chosen === 1,
          value: new Uint8Array(r.value),
        };
        if (voteRowCrc(group, v) !== r.crc) {
          throw new StorageError(`${this.file}: group ${group}: the vote at slot ${r.slot} fails its checksum`);
        }
        // Rows at or below the compaction point are dropped votes that queued jobs have not deleted yet.
        if (v.slot > compacted) votes.push(v);
      }
      return { maxBallot: a?.max_ballot ?? 0, votes, compacted };
    }) as StoredAcceptorState;
  }

  /**
   * Stores an acceptor's promise (never lowered) and votes in one fsynced
   * commit; resolves once durable, so a 1b or 2b reply may leave after it.
   * A compaction point is recorded in the same commit; the rows of the votes
   * it drops are deleted afterwards, in held jobs of bounded size as a log
   * compaction's rows are (see {@link purgeSoon}): `loadAcceptor` skips them
   * meanwhile, and the next open deletes what a crash left.
   */
  saveAcceptor(group: GroupId, maxBallot: number | undefined, votes: StoredVote[], compactTo?: number): Promise<void> {
    try {
      this.assertOpen();
      checkAcceptorWrite(this.file, group, maxBallot, votes, compactTo);
      if (this.tx || this.building)
        throw new StorageError(`${this.file}: an acceptor write cannot run inside a transaction`);
      const ops: Op[] = [];
      let rows = this.voteRows.get(group);
      if (rows === undefined) {
        rows = new VoteRows();
        this.voteRows.set(group, rows);
      }
      if (maxBallot !== undefined) ops.push(['vpPromise', group, maxBallot, acceptorRowCrc(group, maxBallot)]);
      for (const v of votes) {
        if (compactTo !== undefined && v.slot <= compactTo) continue;
        ops.push(['vpVote', group, v.slot, v.ballot, v.chosen ? 1 : 0, v.value, voteRowCrc(group, v)]);
        rows.wrote(v.slot, v.value.byteLength);
      }
      if (compactTo !== undefined && compactTo > 0) {
        ops.push(['vpCompact', group, compactTo, compactionRowCrc(group, compactTo)]);
        rows.compacted = Math.max(rows.compacted, compactTo);
      }
      const job: Job = { seq: 0, durable: true, ops };
      // Votes and a promise may commit before the apply transactions the writer holds (see `Job.logOnly`).
      if (isLogOnly(ops)) job.logOnly = true;
      const seq = this.submit(job);
      const done = job.logOnly ? this.queue.logDone(seq) : this.queue.done(seq);
      if (rows.pending()) this.purgeSoon();
      return done;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  saveSnapshot(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): Promise<void> {
    try {
      const sink = this.snapshotSink(group, snapshot.meta);
      sink.write(snapshot.data);
      return this.queue.done(sink.queueFinish(compactTo));
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
    const sink = this.snapshotSink(group, meta);
    return {
      write: (data) => sink.write(data),
      finish: (compactTo) => {
        sink.queueFinish(compactTo);
        this.queue.barrier();
      },
      abort: () => sink.abort(),
    };
  }

  /** A snapshot sink whose finish queues the durable install and returns its job's seq. */
  private snapshotSink(
    group: GroupId,
    meta: SnapshotMeta,
  ): { write(data: Uint8Array): void; queueFinish(compactTo: LogIndex): number; abort(): void } {
    this.assertOpen();
    const snapMeta = cloneMeta(meta);
    const confJson = JSON.stringify(snapMeta.confState);
    const sid = this.nextSid++;
    let seq = 0;
    let size = 0;
    let epoch = 0;
    const insert = (chunk: Uint8Array): Op => {
      const op: Op = ['insChunk', sid, seq, chunk, chunkCrc(sid, seq, chunk)];
      seq++;
      size += chunk.length;
      return op;
    };
    // The staging row stays `complete = 0` until finish; open discards such rows as unsynced.
    this.commit((work) => {
      const s = work(group);
      epoch = s.snapEpoch;
      this.emitLog(['insSnap', sid, s.gid, snapMeta.index, snapMeta.term, confJson]);
    }, false);
    let pendingChunk: Uint8Array | undefined;
    const rechunker = new Rechunker(this.chunkBytes, (c) => {
      // Hold one chunk back so the last one lands in finish's transaction.
      if (pendingChunk) {
        this.queue.barrier(this.seq - MAX_BULK_BACKLOG);
        this.submit({ seq: 0, durable: false, ops: [insert(pendingChunk)] });
      }
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
      queueFinish: (compactIndex) => {
        assertActive();
        done = true;
        rechunker.flush();
        checkSnapshotSave(this.file, group, positionOf(this.state(group)), snapMeta, compactIndex);
        return this.commit((work) => {
          if (pendingChunk) this.emitLog(insert(pendingChunk));
          const s = work(group);
          if (s.snapEpoch !== epoch) {
            throw new StorageError(
              `${this.file}: group ${group}: a newer snapshot replaced this one while it was written`,
            );
          }
          this.emitLog(['completeSnap', size, seq, snapshotRowCrc(s.gid, snapMeta, confJson, size, seq), sid]);
          this.w.installSnapshot(s, sid, snapMeta, size, seq);
          if (snapMeta.index > s.lastIndex) this.w.replaceLog(s, snapMeta);
          else this.w.compactState(s, compactIndex);
          s.bytesSinceSnapshot = s.sizes.sum(snapMeta.index + 1, s.lastIndex);
          this.w.saveRow(s);
        }, true);
      },
      abort: () => {
        if (done) return;
        done = true;
        this.submit({
          seq: 0,
          durable: false,
          ops: [
            ['delSnapChunks', sid],
            ['delSnap', sid],
          ],
        });
      },
    };
  }

  openSnapshot(group: GroupId): SnapshotSource | undefined {
    // Chunks are read from the file: a snapshot just written must be in it.
    this.queue.barrier();
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
    }, true);
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
      kv = new SqlitePartitionKv(this.db, this.file, partition, this.host, this.cachedRows);
      this.partitions.set(partition, kv);
    }
    return kv;
  }

  transaction<T>(fn: () => T, opts: TransactionOptions = {}): T {
    this.assertOpen();
    if (this.tx) return fn();
    if (this.building) throw new StorageError(`${this.file}: a transaction cannot start inside a log write`);
    // A read scope covers runs of reads only: a transaction reads the file as it is now.
    this.endReadScope();
    const tx: OpenTransaction = { ops: [], durable: opts.durable !== false, undo: [], after: [], overs: [] };
    this.tx = tx;
    try {
      let result: T;
      if (opts.snapshotReads === true && this.queue instanceof ThreadWriteQueue) {
        // This connection only reads: one read transaction for all of `fn`'s reads instead of one per
        // statement, each of which locked the WAL index and, after any commit of the writer, started over
        // with an empty page cache. What the writer reports committed meanwhile is taken once it ended, so
        // the overlay keeps those rows and the reads stay exact.
        this.snapshotReads = true;
        try {
          result = this.inRead(fn) as T;
        } finally {
          this.snapshotReads = false;
        }
      } else {
        result = fn();
      }
      this.tx = undefined;
      if (tx.ops.length > 0) {
        // Before the job: an inline writer reports what they found as it commits, within submit.
        const list = this.awaiting;
        const mark = list.length;
        for (const m of tx.overs) list.push(m);
        try {
          this.submit(
            tx.durable
              ? { seq: 0, durable: true, ops: tx.ops }
              : { seq: 0, durable: false, ops: tx.ops, deferrable: true },
          );
        } catch (err) {
          // Never committed (nothing of it reported): no report comes for them.
          if (this.awaiting === list && this.awaitingHead <= mark) list.length = mark;
          throw err;
        }
      }
      return result;
    } catch (err) {
      this.tx = undefined;
      for (let i = tx.undo.length - 1; i >= 0; i--) (tx.undo[i] as () => void)();
      // A rolled-back transaction may have created a partition's first generation.
      for (const kv of this.partitions.values()) kv.forget();
      // A mark in it never reaches the writer: its reader need not wait for it.
      for (const job of tx.after) if (job.pin !== undefined) abandonPin(job.pin);
      tx.after = [];
      throw err;
    } finally {
      for (const job of tx.after) this.submit(job);
      const upTo = this.committedLater;
      if (upTo !== undefined) {
        this.committedLater = undefined;
        this.committed(upTo);
      }
    }
  }

  /** Blocks until the writer committed every write queued so far (tools, tests); throws if it failed. */
  flush(): void {
    this.queue.barrier();
  }

  close(): void {
    if (this.closed) return;
    this.endReadScope();
    this.purgeAll();
    this.closed = true;
    this.readAhead?.close();
    try {
      this.queue.close();
    } finally {
      this.db.close();
    }
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
   * Builds one job over working copies of the groups it touches and queues
   * it; the copies replace the cached states once it is queued (with the
   * inline writer: once it committed). Returns the job's seq.
   */
  private commit(fn: (work: (group: GroupId) => GroupState) => void, durable: boolean): number {
    this.assertOpen();
    if (this.tx || this.building) throw new StorageError(`${this.file}: a log write cannot run inside a transaction`);
    const copies = new Map<GroupId, GroupState>();
    const appendedFrom = new Map<GroupId, LogIndex>();
    const ops: Op[] = [];
    const work = (group: GroupId): GroupState => {
      let c = copies.get(group);
      if (!c) {
        c = cloneGroupState(this.state(group));
        if (c.gid === 0) {
          c.gid = this.nextGid++;
          ops.push(['insGroup', c.gid, group, 0]);
        }
        copies.set(group, c);
      }
      return c;
    };
    this.building = ops;
    this.appendedFrom = appendedFrom;
    try {
      fn(work);
    } finally {
      this.building = undefined;
      this.appendedFrom = undefined;
    }
    const job: Job = { seq: 0, durable, ops };
    if (isLogOnly(ops)) job.logOnly = true;
    else if (isPurge(ops)) job.deferrable = true;
    const seq = this.submit(job);
    this.lastLogOnly = job.logOnly === true;
    let compacted = false;
    for (const [group, c] of copies) {
      this.states.set(group, c);
      // Entries this job (re)wrote stay in the tail until it commits: the file holds no or older rows there.
      const from = appendedFrom.get(group);
      if (from !== undefined && seq > this.committedSeq) this.pins.push({ seq, group, from });
      this.trimTail(c);
      if (hasLeftRows(c)) compacted = true;
    }
    if (compacted) this.purgeSoon();
    return seq;
  }

  /**
   * Queues the deletion of rows a compaction left in the file (log entries,
   * see `SqliteLogWriter.compactState`, and those a snapshot install left, see
   * `SqliteLogWriter.replaceLog`; an acceptor's votes, see
   * {@link saveAcceptor}) in jobs of at most {@link PURGE_JOB_BYTES} of data,
   * one at a time: the next once the last committed. Each is held with the
   * apply transactions (`Job.deferrable`) and commits in their next
   * transaction, so log appends and acceptor writes never wait for more than
   * one, and no commit of its own rewrites the pages the applies' commits
   * write anyway.
   */
  private purgeSoon(): void {
    if (this.purging || this.closed) return;
    let seq: number;
    const group = [...this.states].find(([, c]) => hasLeftRows(c))?.[0];
    if (group !== undefined) {
      this.purging = true;
      seq = this.commit((work) => this.w.purge(work(group), PURGE_JOB_BYTES, PURGE_JOB_ROWS), false);
    } else {
      const acceptor = [...this.voteRows].find(([, rows]) => rows.pending());
      const upTo = acceptor?.[1].take(PURGE_JOB_BYTES, PURGE_JOB_ROWS);
      if (acceptor === undefined || upTo === undefined) return;
      this.purging = true;
      seq = this.submit({ seq: 0, durable: false, deferrable: true, ops: [['vpDropVotes', acceptor[0], upTo]] });
    }
    this.queue.done(seq).then(
      () => setImmediate(this.purgeNext),
      () => {
        this.purging = false;
      },
    );
  }

  /**
   * Queues the deletion of every row compactions left, in one job each group: on close, so that
   * only a crash leaves such rows for the next open (versions before it refuse a file holding them).
   */
  private purgeAll(): void {
    try {
      for (const group of [...this.states.keys()]) {
        // Rows a snapshot install left, then those of compactions: a job each.
        while (hasLeftRows(this.state(group))) {
          this.commit((work) => this.w.purge(work(group), Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY), false);
        }
      }
      for (const [group, rows] of this.voteRows) {
        const upTo = rows.take(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
        if (upTo !== undefined) this.submit({ seq: 0, durable: false, ops: [['vpDropVotes', group, upTo]] });
      }
    } catch {
      // The writer failed, or the store closes inside a transaction: the next open deletes them.
    }
  }

  private readonly purgeNext = (): void => {
    this.purging = false;
    this.purgeSoon();
  };

  /** Queues a job as the next one (its seq is assigned here) and returns its seq. */
  private submit(job: Job): number {
    this.assertOpen();
    job.seq = this.seq + 1;
    this.queue.submit(job);
    this.seq = job.seq;
    return job.seq;
  }

  private emitLog(op: Op): void {
    if (!this.building) throw new StorageError(`${this.file}: a log statement outside a log write`);
    this.building.push(op);
  }

  private openTx(): OpenTransaction {
    if (!this.tx) throw new StorageError(`${this.file}: a KV write outside a transaction`);
    return this.tx;
  }

  /**
   * Opens a read transaction on this connection that the point reads of
   * this turn of the event loop share, closed by a `setImmediate`. Each
   * statement outside a transaction takes and drops a WAL read lock (two
   * `fcntl` calls on the shared-memory file); the reads a ReadIndex round
   * releases together (one per waiting client) pay that once instead. A
   * transaction (a write, an apply) ends the scope before it starts. Until
   * the writer reports a commit, the overlay holds every row the scope's
   * snapshot may lack, so the reads stay exact; a commit report ends the
   * scope (or, inside a read transaction, is taken once that ended, as in a
   * `snapshotReads` transaction), so reads after it start from the file as
   * it is. Only with the writer thread: an inline writer commits on this
   * connection.
   */
  private enterReadScope(): void {
    if (this.readScope || this.closed || this.tx !== undefined || this.db.inTransaction) return;
    if (!(this.queue instanceof ThreadWriteQueue)) return;
    this.beginRead.run();
    this.readScope = true;
    setImmediate(this.endReadScope);
  }

  /** Ends the read scope, unless a read transaction runs in it; true once none is open. */
  private readonly endReadScope = (): boolean => {
    if (!this.readScope) return true;
    if (this.readDepth > 0 || this.snapshotReads) return false;
    if (this.db.inTransaction) {
      try {
        this.endRead.run();
      } catch {
        // A statement of this connection still runs (an iterator left open): the snapshot stays, and
        // commit reports wait with it, until a later turn ends it.
        if (!this.closed) setImmediate(this.endReadScope);
        return false;
      }
    }
    this.readScope = false;
    const upTo = this.committedLater;
    if (upTo !== undefined) {
      this.committedLater = undefined;
      this.committed(upTo);
    }
    return true;
  };

  /** What the writer found for the next `putOver`s it committed ({@link OVER_RESULT_SLOTS} numbers each). */
  private resolved(results: number[]): void {
    for (let i = 0; i < results.length; i += OVER_RESULT_SLOTS) {
      const m = this.awaiting[this.awaitingHead];
      if (m === undefined) {
        throw new StorageError(`${this.file}: the writer reported a put over a row that was never submitted`);
      }
      this.awaiting[this.awaitingHead++] = undefined;
      m.owner.reported(m, results[i] as number, results[i + 1] as number, results[i + 2] as number);
    }
    if (this.awaitingHead === this.awaiting.length) {
      this.awaiting = [];
      this.awaitingHead = 0;
    } else if (this.awaitingHead > 4096 && this.awaitingHead * 2 > this.awaiting.length) {
      this.awaiting = this.awaiting.slice(this.awaitingHead);
      this.awaitingHead = 0;
    }
  }

  /** The writer committed jobs up to `upTo`: what they wrote is in the file now. */
  private committed(upTo: number): void {
    // Inside a snapshot-reads transaction (a barrier ran in it), or a read scope that cannot end yet: their
    // reads predate these commits.
    if (this.snapshotReads || (this.readScope && !this.endReadScope())) {
      this.committedLater = Math.max(this.committedLater ?? 0, upTo);
      return;
    }
    this.committedSeq = upTo;
    if (this.settleWaits.length > 0) this.settleWaits = this.settleWaits.filter((w) => w.seq > upTo);
    for (const kv of this.partitions.values()) kv.committed(upTo);
    let n = 0;
    while (n < this.pins.length && (this.pins[n] as Pin).seq <= upTo) n++;
    if (n === 0) return;
    const released = this.pins.splice(0, n);
    for (const group of new Set(released.map((p) => p.group))) {
      const s = this.states.get(group);
      if (s) this.trimTail(s);
    }
  }

  /** Drops the oldest cached entries past the cache's bounds, but never one a queued job still writes. */
  private trimTail(s: GroupState): void {
    let pinFrom = Number.POSITIVE_INFINITY;
    for (const p of this.pins) if (p.group === s.name && p.from < pinFrom) pinFrom = p.from;
    let drop = 0;
    while (
      s.tail.length - drop > 1 &&
      (s.tail.length - drop > this.cacheEntries || s.tailBytes > this.cacheBytes) &&
      (s.tail[drop] as Entry).index < pinFrom
    ) {
      s.tailBytes -= (s.tail[drop] as Entry).data.length;
      drop++;
    }
    if (drop > 0) s.tail = s.tail.slice(drop);
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
    this.queue.barrier();
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
