import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { purgeGeneration } from './sqlite-kv-partition.js';
import { type KvStatements, prepareKvStatements } from './sqlite-kv-statements.js';
import { type Statements, prepareStatements } from './sqlite-statements.js';

/** The write statements a job may run, by name (both statement sets of a connection). */
export type WriteStatement = keyof Statements | keyof KvStatements;

/** One statement run with positional arguments. */
export type Op = [statement: WriteStatement, ...args: unknown[]];

/**
 * One unit of work for the writer: either statements committed atomically,
 * or the purge of a KV generation (deleted in bounded transactions of its own).
 */
export interface Job {
  /** Increasing: jobs commit in this order, and "committed up to" reports refer to it. */
  seq: number;
  /** Whether its commit is fsynced (`synchronous=FULL`); a later durable commit makes it durable too (WAL order). */
  durable: boolean;
  ops: Op[];
  /** A generation to purge instead of `ops`. */
  purge?: number;
}

/** Options of {@link JobRunner}. */
export interface JobRunnerOptions {
  /**
   * A test hook: while this file exists, each commit waits before it starts,
   * as if the disk stalled on an fsync.
   */
  commitGate?: string;
}

const gateWait = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs jobs on the connection that owns every write of a node's database:
 * consecutive statement jobs are committed together in one transaction
 * (group commit), fsynced if any of them is durable.
 */
export class JobRunner {
  private readonly stmts: Record<string, Database.Statement>;
  private readonly inTxn: (fn: () => void) => void;
  private sync: 'FULL' | 'NORMAL' = 'FULL';

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
   * Runs `jobs` in order; throws on the first failure (what a failed group held is rolled back).
   * Returns the number of transactions committed.
   */
  run(jobs: readonly Job[]): number {
    let commits = 0;
    let i = 0;
    while (i < jobs.length) {
      const job = jobs[i] as Job;
      if (job.purge !== undefined) {
        this.gate();
        purgeGeneration(this.kvStatements(), job.purge, (fn) => {
          this.commit(fn, false);
          commits++;
        });
        i++;
        continue;
      }
      let j = i;
      let durable = false;
      while (j < jobs.length && (jobs[j] as Job).purge === undefined) {
        durable ||= (jobs[j] as Job).durable;
        j++;
      }
      const group = jobs.slice(i, j);
      this.gate();
      this.commit(() => {
        for (const g of group) for (const op of g.ops) this.exec(op);
      }, durable);
      commits++;
      i = j;
    }
    return commits;
  }

  private commit(fn: () => void, durable: boolean): void {
    const want = durable ? 'FULL' : 'NORMAL';
    if (this.sync !== want) {
      // WAL order: a later synchronous=FULL commit makes a NORMAL one before it durable too.
      this.db.pragma(`synchronous = ${want}`);
      this.sync = want;
    }
    this.inTxn(fn);
  }

  private exec(op: Op): void {
    const stmt = this.stmts[op[0]];
    if (stmt === undefined) throw new Error(`unknown statement ${op[0]}`);
    const args = op.slice(1).map(bindable);
    stmt.run(...args);
  }

  private kvStatements(): KvStatements {
    return this.stmts as unknown as KvStatements;
  }

  private gate(): void {
    const file = this.opts.commitGate;
    if (file === undefined) return;
    while (existsSync(file)) Atomics.wait(gateWait, 0, 0, 5);
  }
}

/** better-sqlite3 binds Buffers as blobs; a Uint8Array that crossed threads arrives as a plain view. */
function bindable(arg: unknown): unknown {
  if (arg instanceof Uint8Array && !Buffer.isBuffer(arg))
    return Buffer.from(arg.buffer, arg.byteOffset, arg.byteLength);
  return arg;
}
