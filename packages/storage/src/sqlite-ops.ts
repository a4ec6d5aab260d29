import { existsSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { kvRowCrc } from './kv-checksums.js';
import { forEachPackedRow } from './kv-row-pack.js';
import { purgeGeneration } from './sqlite-kv-partition.js';
import { type KvRow, rowCrcHolds } from './sqlite-kv-rows.js';
import { type KvStatements, prepareKvStatements } from './sqlite-kv-statements.js';
import { type Statements, prepareStatements } from './sqlite-statements.js';
import { holdAtPin } from './sqlite-view-pin.js';
import { putRevisions } from './types.js';

/** The write statements a job may run, by name (both statement sets of a connection). */
export type WriteStatement = keyof Statements | keyof KvStatements;

/**
 * One statement run with positional arguments, or `putRows`: the `put`
 * statement once per row of a {@link packRows} buffer (a snapshot install's
 * rows), into generation `gen`; or `putOver` (see {@link PutOver}).
 */
export type Op = [statement: WriteStatement, ...args: unknown[]] | ['putRows', gen: number, rows: Uint8Array] | PutOver;

/**
 * A put over whatever row the key has (a `SET` that needs nothing of the old
 * row): the runner reads the row (its page is read to write it anyway),
 * carries its create revision and version on unless the row expired by `now`
 * (the write's log time), computes the new row's CRC and writes it. What it
 * found is reported per op ({@link JobRunner.takeResults}).
 */
export type PutOver = [
  'putOver',
  gen: number,
  key: Uint8Array,
  value: Uint8Array,
  revision: number,
  expiresAt: number | null,
  type: number,
  now: number,
  partition: string,
];

/** What {@link JobRunner.takeResults} gives per `putOver`: its row's create revision, its version, and {@link OVER_INSERTED} or the like. */
export const OVER_RESULT_SLOTS = 3;
/** A `putOver` that found a row (expired or not). */
export const OVER_REPLACED = 0;
/** A `putOver` that found no row: the partition has one more. */
export const OVER_INSERTED = 1;
/**
 * A `putOver` whose old row failed its CRC: the new row is written with a CRC that fails too (its create
 * revision and version came from a corrupt row), so the partition reads as corrupt until repaired.
 */
export const OVER_CORRUPT = 2;

/**
 * One unit of work for the writer: either statements committed atomically,
 * or the purge of a KV generation (deleted in bounded transactions of its own).
 */
export interface Job {
  /** Increasing: jobs commit in this order, and "committed up to" reports refer to it. */
  seq: number;
  /** Whether its commit is fsynced (`synchronous=FULL`); a later durable commit makes it durable too (WAL order). */
  durable: boolean;
  /**
   * Only log appends (entries, group rows, or an acceptor's promise and votes; {@link isLogOnly}): the writer
   * may commit it before earlier {@link deferrable} jobs, which touch none of its rows. Its commit is reported
   * apart (`logUpTo`).
   */
  logOnly?: boolean;
  /**
   * An apply transaction, or a deletion of rows a compaction left ({@link isPurge}): need not be durable, and
   * nothing waits for it, so the writer may hold it to commit with others in a larger transaction, letting
   * {@link logOnly} jobs after it commit first. Every other job commits after every job before it, held ones
   * included.
   */
  deferrable?: boolean;
  ops: Op[];
  /** A generation to purge instead of `ops`. */
  purge?: number;
  /**
   * A mark instead of `ops` (see `PartitionKv.pinView`): once every job before it committed, the
   * writer waits for a reader on another thread to take a snapshot there ({@link holdAtPin}).
   */
  pin?: SharedArrayBuffer;
}

/**
 * The statements of a log append (`SqliteLogWriter`): they touch the entries and groups tables only; and of
 * a Vertical Paxos acceptor's write without a compaction (its promise and votes, its log).
 */
const LOG_STATEMENTS: ReadonlySet<string> = new Set([
  'insEntry',
  'delFrom',
  'updGroup',
  'insGroup',
  'vpPromise',
  'vpVote',
]);

/**
 * Whether `ops` only append to logs (entries, their truncation, group rows; an acceptor's promise and
 * votes), so they may commit before earlier apply transactions: those write KV rows, sessions and
 * partition rows, never these. A log compaction, a snapshot or an acceptor's compaction is not: it must
 * follow the applies it stands for (on a restart, the log replays what the file's machines had not applied;
 * an acceptor refuses to start with votes compacted past its machine's applied slot). Held deletions of rows
 * a compaction left ({@link isPurge}) touch only rows at or below a compaction point, which a later append
 * never needs: whichever of the two commits first, the rows left there are dropped ones.
 */
export function isLogOnly(ops: readonly Op[]): boolean {
  if (ops.length === 0) return false;
  for (const op of ops) if (!LOG_STATEMENTS.has(op[0])) return false;
  return true;
}

/**
 * Whether `ops` only delete rows a compaction left: log entries (`delRange`; see `SqliteLogWriter.purge`) or
 * an acceptor's votes (`vpDropVotes`; see `VoteRows`). Such a job is {@link Job.deferrable}: it commits with
 * the held apply transactions, never on its own, and its ops count neither toward the writer's batch of them
 * nor in the hold's tuning (deleting rows reads their pages).
 */
export function isPurge(ops: readonly Op[]): boolean {
  if (ops.length === 0) return false;
  for (const op of ops) if (op[0] !== 'delRange' && op[0] !== 'vpDropVotes') return false;
  return true;
}

/** Options of {@link JobRunner}. */
export interface JobRunnerOptions {
  /**
   * A test hook: while this file exists, each commit waits before it starts,
   * as if the disk stalled on an fsync.
   */
  commitGate?: string;
  /**
   * A test hook: while this file exists, the database file may not grow
   * (`PRAGMA max_page_count` set to its size on the writer's connection), so
   * a commit that needs a new page fails with SQLite's own SQLITE_FULL, as on
   * a full disk. Checked before each commit; removing the file lifts the cap.
   */
  diskFullGate?: string;
}

const gateWait = new Int32Array(new SharedArrayBuffer(4));

/**
 * The session writes of `group` that a later write of the same session in it
 * makes moot: `putSession` rewrites the whole row and `delSession` removes it,
 * and no statement of a job reads the sessions table, so only a session's last
 * write in a commit decides what the commit leaves. Pipelined writes on one
 * connection write its session once a command, several times a commit (a
 * commit of `redis-benchmark -P 16` at 50 connections held ~300 commands).
 */
export function supersededSessionWrites(group: readonly Job[]): Set<Op> | undefined {
  let seen: Set<string> | undefined;
  let moot: Set<Op> | undefined;
  for (let j = group.length - 1; j >= 0; j--) {
    const ops = (group[j] as Job).ops;
    for (let i = ops.length - 1; i >= 0; i--) {
      const op = ops[i] as Op;
      if (op[0] !== 'putSession' && op[0] !== 'delSession') continue;
      // The sessions table's key: generation and client id.
      const key = `${op[1] as number}\u0000${op[2] as string}`;
      seen ??= new Set();
      if (!seen.has(key)) {
        seen.add(key);
        continue;
      }
      moot ??= new Set();
      moot.add(op);
    }
  }
  return moot;
}

/**
 * Runs jobs on the connection that owns every write of a node's database:
 * consecutive statement jobs are committed together in one transaction
 * (group commit), fsynced if any of them is durable.
 */
export class JobRunner {
  private readonly stmts: Record<string, Database.Statement>;
  private readonly inTxn: (fn: () => void) => void;
  private sync: 'FULL' | 'NORMAL' = 'FULL';
  /** Transactions committed fsynced (`synchronous=FULL`) so far; the others held no durable job (apply transactions, purges). */
  durableCommits = 0;
  /**
   * While set, the read system calls the calling thread made so far (`threadReads` of thread-io.ts): the
   * runner then counts those its transactions' statements make in {@link statementReads}, their commits' (a
   * checkpoint's) left out. Set around the commits whose reads matter: each count reads a file.
   */
  countReads: (() => number) | undefined;
  /** Read system calls the statements of its transactions made while {@link countReads} was set. */
  statementReads = 0;
  /** {@link OVER_RESULT_SLOTS} numbers per `putOver` committed and not taken yet, in op order. */
  private results: number[] = [];

  constructor(
    private readonly db: Database.Database,
    private readonly opts: JobRunnerOptions = {},
  ) {
    this.stmts = { ...prepareStatements(db), ...prepareKvStatements(db) } as unknown as Record<
      string,
      Database.Statement
    >;
    this.inTxn = db.transaction((fn: () => void) => fn());
  }

  /**
   * Runs `jobs` in order; returns the number of transactions committed. On
   * the first failure what the failed transaction held is rolled back and
   * {@link JobsFailed} says how many jobs committed before it: the rest can
   * be run again, in order (a purge half done is purged again from the start).
   */
  run(jobs: readonly Job[]): number {
    const done = { jobs: 0, commits: 0 };
    try {
      this.runJobs(jobs, done);
    } catch (err) {
      throw new JobsFailed(err as Error, done.jobs, done.commits);
    }
    return done.commits;
  }

  /** Runs `jobs`, counting in `done` the jobs and transactions committed so far. */
  private runJobs(jobs: readonly Job[], done: { jobs: number; commits: number }): void {
    let i = 0;
    while (i < jobs.length) {
      const job = jobs[i] as Job;
      if (job.pin !== undefined) {
        // Everything before it committed (a group ends at a mark): the reader's snapshot is exactly that.
        holdAtPin(job.pin);
        done.jobs = ++i;
        continue;
      }
      if (job.purge !== undefined) {
        this.gate();
        purgeGeneration(this.kvStatements(), job.purge, (fn) => {
          this.commit(fn, false);
          done.commits++;
        });
        done.jobs = ++i;
        continue;
      }
      let j = i;
      let durable = false;
      while (j < jobs.length && (jobs[j] as Job).purge === undefined && (jobs[j] as Job).pin === undefined) {
        durable ||= (jobs[j] as Job).durable;
        j++;
      }
      const group = jobs.slice(i, j);
      const moot = supersededSessionWrites(group);
      this.gate();
      this.commit(() => {
        for (const g of group) for (const op of g.ops) if (moot?.has(op) !== true) this.exec(op);
      }, durable);
      done.commits++;
      done.jobs = i = j;
    }
  }

  /**
   * What the `putOver`s committed since the last call found ({@link OVER_RESULT_SLOTS} numbers each, in
   * the order they ran); a rolled-back transaction's are not among them.
   */
  takeResults(): number[] {
    const r = this.results;
    this.results = [];
    return r;
  }

  private commit(fn: () => void, durable: boolean): void {
    const want = durable ? 'FULL' : 'NORMAL';
    if (this.sync !== want) {
      // WAL order: a later synchronous=FULL commit makes a NORMAL one before it durable too.
      this.db.pragma(`synchronous = ${want}`);
      this.sync = want;
    }
    const mark = this.results.length;
    const count = this.countReads;
    try {
      this.inTxn(
        count === undefined
          ? fn
          : () => {
              const before = count();
              fn();
              this.statementReads += count() - before;
            },
      );
    } catch (err) {
      this.results.length = mark;
      throw err;
    }
    if (durable) this.durableCommits++;
  }

  private exec(op: Op): void {
    if (op[0] === 'putOver') {
      this.putOver(op as PutOver);
      return;
    }
    if (op[0] === 'putRows') {
      const [, gen, rows] = op;
      const put = this.kvStatements().put;
      forEachPackedRow(rows, (r) =>
        put.run(gen, r.key, r.value, r.createRevision, r.modifyRevision, r.expiresAt, r.crc, r.version, r.type),
      );
      return;
    }
    const stmt = this.stmts[op[0]];
    if (stmt === undefined) throw new Error(`unknown statement ${op[0]}`);
    const args = op.slice(1).map(bindable);
    stmt.run(...args);
  }

  private putOver(op: PutOver): void {
    const [, gen, key, value, revision, expiresAt, type, now, partition] = op;
    const st = this.kvStatements();
    const k = bindable(key) as Buffer;
    const v = bindable(value) as Buffer;
    const old = st.get.get(gen, k) as KvRow | undefined;
    const replaced = old && {
      createRevision: old.create_rev,
      version: old.version ?? 1,
      expiresAt: old.expires_at ?? undefined,
    };
    const { createRevision: create, version } = putRevisions(replaced, revision, now);
    let found = old === undefined ? OVER_INSERTED : OVER_REPLACED;
    let crc = kvRowCrc(partition, k, v, create, revision, expiresAt ?? undefined, version, type);
    if (old !== undefined && !rowCrcHolds(partition, old)) {
      found = OVER_CORRUPT;
      crc = (crc ^ 1) >>> 0;
    }
    st.put.run(gen, k, v, create, revision, expiresAt, crc, version, type);
    this.results.push(create, version, found);
  }

  private kvStatements(): KvStatements {
    return this.stmts as unknown as KvStatements;
  }

  private gate(): void {
    const file = this.opts.commitGate;
    if (file !== undefined) while (existsSync(file)) Atomics.wait(gateWait, 0, 0, 5);
    this.limitGrowth();
  }

  private maxPages: number | undefined;

  /** The {@link JobRunnerOptions.diskFullGate} hook: caps the file at its size while the gate file exists. */
  private limitGrowth(): void {
    const file = this.opts.diskFullGate;
    if (file === undefined) return;
    const full = existsSync(file);
    if (full && this.maxPages === undefined) {
      this.maxPages = this.db.pragma('max_page_count', { simple: true }) as number;
      const pages = this.db.pragma('page_count', { simple: true }) as number;
      this.db.pragma(`max_page_count = ${pages}`);
    } else if (!full && this.maxPages !== undefined) {
      this.db.pragma(`max_page_count = ${this.maxPages}`);
      this.maxPages = undefined;
    }
  }
}

/** A {@link JobRunner.run} that failed after its first `jobsDone` jobs committed (in `commits` transactions). */
export class JobsFailed extends Error {
  override readonly name = 'JobsFailed';
  constructor(
    readonly reason: Error,
    readonly jobsDone: number,
    readonly commits: number,
  ) {
    super(reason.message);
  }
}

/** Free bytes below which an I/O error of a commit counts as the disk being full. */
const LOW_SPACE_BYTES = 4 * 1024 * 1024;

/**
 * Whether a failed commit failed for want of space, so it may succeed once
 * space is freed: SQLite's SQLITE_FULL, an ENOSPC, or an I/O error (a failed
 * write or fsync) while the file system of `file` is nearly full. Anything
 * else (corruption, other I/O errors) is not.
 */
export function isOutOfSpace(err: Error, file: string): boolean {
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') return true;
  if (/\bENOSPC\b|no space left on device/i.test(err.message)) return true;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_IOERR')) return false;
  try {
    const s = statfsSync(dirname(file));
    return s.bavail * s.bsize < LOW_SPACE_BYTES;
  } catch {
    return false;
  }
}

/** better-sqlite3 binds Buffers as blobs; a Uint8Array that crossed threads arrives as a plain view. */
function bindable(arg: unknown): unknown {
  if (arg instanceof Uint8Array && !Buffer.isBuffer(arg))
    return Buffer.from(arg.buffer, arg.byteOffset, arg.byteLength);
  return arg;
}
