import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { DiskFullError, StorageError } from '@cohort/core/errors';
import type Database from 'better-sqlite3';
import { type Job, JobRunner, JobsFailed } from './sqlite-ops.js';
import {
  CTRL_CLOSED,
  CTRL_COMMITTED,
  CTRL_FAILED,
  CTRL_SLOTS,
  CTRL_STALLED,
  type ToMain,
  type ToWriter,
  type WriterData,
} from './sqlite-writer-protocol.js';
import type { WriteStall, WriterStats } from './types.js';

/**
 * Where a store's writes go, in submission order. Jobs commit in seq order;
 * `onCommitted(upTo)` reports each step.
 */
export interface WriteQueue {
  /** Queues a job (the inline queue runs it before returning, and throws if it fails). */
  submit(job: Job): void;
  /**
   * Resolves once job `seq` (and every job before it) committed; rejects if the writer failed.
   * While the disk is full it stays pending: the job is retried until it commits.
   */
  done(seq: number): Promise<void>;
  /**
   * Resolves once job `seq`, a log append (`Job.logOnly`), committed: it may commit before apply
   * transactions queued ahead of it (`Job.deferrable`). Rejects and waits as {@link done} does.
   */
  logDone(seq: number): Promise<void>;
  /**
   * Blocks until every submitted job up to `upTo` (all by default) committed;
   * throws if the writer failed, and `DiskFullError` while a commit waits
   * for disk space (the jobs stay queued). For rare operations, and to bound a backlog.
   */
  barrier(upTo?: number): void;
  /**
   * Resolves once every job submitted so far committed, without blocking: rejects if the writer failed,
   * and with `DiskFullError` if commits wait for disk space when called (as {@link barrier} throws).
   */
  drained(): Promise<void>;
  /** Since when, and why, commits wait for disk space; undefined while they go through. */
  readonly stall: WriteStall | undefined;
  /** Called (on the store's thread) when commits start waiting for disk space, and with undefined once they resume. */
  onStall: (stall: WriteStall | undefined) => void;
  /** Whether submitted jobs are still uncommitted. */
  readonly pending: boolean;
  /** Called (on the store's thread) each time jobs up to `upTo` committed. */
  onCommitted: (upTo: number) => void;
  /**
   * What the `putOver` ops of the jobs about to be reported committed found (`JobRunner.takeResults`), in
   * the order they were submitted; called before {@link onCommitted} reports those jobs.
   */
  onResolved: (results: number[]) => void;
  /**
   * Hands the jobs submitted so far to the writer at once (the inline queue ran them already); `flush`: and
   * has it commit every job now, apply transactions it holds included (someone waits for them).
   */
  post(flush?: boolean): void;
  /** Running totals of the work done, for metrics. */
  readonly stats: WriterStats;
  close(): void;
}

/** Runs each job on the caller's connection before `submit` returns (tools, tests, recovery). */
export class InlineWriteQueue implements WriteQueue {
  private readonly runner: JobRunner;
  onCommitted: (upTo: number) => void = () => {};
  onResolved: (results: number[]) => void = () => {};
  onStall: (stall: WriteStall | undefined) => void = () => {};
  readonly pending = false;
  /** The inline queue never waits: a write that finds the disk full throws. */
  readonly stall = undefined;

  constructor(
    db: Database.Database,
    private readonly file: string,
  ) {
    this.runner = new JobRunner(db);
  }

  readonly stats: WriterStats = { jobs: 0, commits: 0, commitMs: 0, durableCommits: 0, waitMs: 0, applyHoldMs: 0 };

  submit(job: Job): void {
    const started = performance.now();
    try {
      this.stats.commits += this.runner.run([job]);
    } catch (err) {
      throw writeFailed(this.file, err instanceof JobsFailed ? err.reason : err);
    }
    this.stats.jobs++;
    this.stats.commitMs += performance.now() - started;
    this.stats.durableCommits = this.runner.durableCommits;
    const over = this.runner.takeResults();
    if (over.length > 0) this.onResolved(over);
    this.onCommitted(job.seq);
  }

  done(): Promise<void> {
    return Promise.resolve();
  }

  logDone(): Promise<void> {
    return Promise.resolve();
  }

  barrier(): void {}

  post(): void {}

  drained(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Options of {@link ThreadWriteQueue}. */
export interface ThreadWriteQueueOptions {
  /**
   * How long a job that need not be durable (an apply transaction) waits for a durable one to cross
   * with, in ms; 0 posts it at the end of its turn. A follower's Raft host posts a round's log write
   * before its machines apply (see `startWrites`), so its apply transactions wait for the next
   * round's write: a lone client's writes come every 2-4 ms on this project's test machine, and with
   * 2 ms one apply in three went alone (a commit of its own, a message and two wake-ups). A store's
   * `settled()` hands held jobs over at once: whoever waits on it does not wait out the hold. @default 5
   */
  holdMs?: number;
  /** The writer connection's `journal_size_limit` (see `SqliteNodeStoreOptions.walSizeLimitBytes`). */
  walSizeLimitBytes?: number;
  /** The writer connection's page cache (see `SqliteNodeStoreOptions.pageCacheBytes`). */
  pageCacheBytes?: number;
  /** See {@link JobRunnerOptions.commitGate}. */
  commitGate?: string;
  /** See {@link JobRunnerOptions.diskFullGate}. */
  diskFullGate?: string;
  /**
   * How long the writer may hold apply transactions (`Job.deferrable`) to commit them together while
   * the log appends after them commit first, in ms; 0 commits them with whatever commits next. A
   * commit writes each page it dirtied, so under a steady load of writes to scattered keys a page is
   * written once for many writes (see `sqlite-writer-worker.ts`). Whoever waits on the queue
   * ({@link WriteQueue.barrier}, {@link WriteQueue.drained}, a store's `settled()`) has them committed
   * at once; a restart replays what was applied and not committed from the log. @default 100
   * ({@link DEFAULT_APPLY_BATCH_MS})
   */
  applyBatchMs?: number;
  /** Ops of held apply transactions past which the writer commits them at once. @default 4000 */
  applyBatchOps?: number;
}

/**
 * The default of {@link ThreadWriteQueueOptions.applyBatchMs}. 100 ms rather than 50 (tools/bench's README,
 * thirty-ninth session: over 10,000 keys, 6-13% more HTTP puts at 64 connections with their p99 no higher, 3-7%
 * more `SET -P 16`, in alternated runs of both orders); where writes scatter, the hold shrinks anyway.
 */
export const DEFAULT_APPLY_BATCH_MS = 100;

/** Hands jobs to the writer thread ({@link sqlite-writer-worker}), which owns its own connection. */
export class ThreadWriteQueue implements WriteQueue {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly ctrl: BigInt64Array;
  private submitted = 0;
  private committed = 0;
  /** The writer's `logUpTo`: log appends up to it committed. */
  private logCommitted = 0;
  private failure: StorageError | undefined;
  private waiters: Waiter[] = [];
  /** Waiters on log appends ({@link logDone}), by seq. */
  private logWaiters: Waiter[] = [];
  /** A flush was asked of the writer and jobs up to this seq are not all reported committed yet. */
  private flushAskedUpTo = 0;
  /** Jobs submitted and not yet posted to the writer. */
  private outbox: Job[] = [];
  /** A post of the outbox is queued for the end of this turn. */
  private flushQueued = false;
  /** The outbox holds only jobs that need not be durable: posted when this fires, or with the next durable job. */
  private holdTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly holdMs: number;
  private closed = false;
  private stalled: WriteStall | undefined;
  onCommitted: (upTo: number) => void = () => {};
  onResolved: (results: number[]) => void = () => {};
  onStall: (stall: WriteStall | undefined) => void = () => {};
  readonly stats: WriterStats = { jobs: 0, commits: 0, commitMs: 0, durableCommits: 0, waitMs: 0, applyHoldMs: 0 };

  constructor(
    private readonly file: string,
    opts: ThreadWriteQueueOptions = {},
  ) {
    this.holdMs = opts.holdMs ?? 5;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const sab = new SharedArrayBuffer(CTRL_SLOTS * 8);
    this.ctrl = new BigInt64Array(sab);
    const data: WriterData = {
      file,
      ctrl: sab,
      port: port2,
      applyBatchMs: opts.applyBatchMs ?? DEFAULT_APPLY_BATCH_MS,
      applyBatchOps: opts.applyBatchOps ?? 4000,
    };
    this.stats.applyHoldMs = data.applyBatchMs;
    if (opts.walSizeLimitBytes !== undefined) data.walSizeLimitBytes = opts.walSizeLimitBytes;
    if (opts.pageCacheBytes !== undefined) data.pageCacheBytes = opts.pageCacheBytes;
    if (opts.commitGate !== undefined) data.commitGate = opts.commitGate;
    if (opts.diskFullGate !== undefined) data.diskFullGate = opts.diskFullGate;
    this.worker = new Worker(workerModuleUrl('sqlite-writer-worker.js'), { workerData: data, transferList: [port2] });
    this.worker.unref();
    this.worker.on('error', (err) => this.failed(`the writer thread failed: ${err.message}`));
    this.worker.on('exit', (code) => {
      if (!this.closed) this.failed(`the writer thread exited (code ${code})`);
    });
    this.port.on('message', (m: ToMain) => this.handle(m));
    this.port.unref();
  }

  get pending(): boolean {
    return this.committed < this.submitted;
  }

  get stall(): WriteStall | undefined {
    return this.stalled;
  }

  submit(job: Job): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new StorageError(`${this.file}: the store is closed`);
    // Keeps the process alive while writes are in flight.
    if (!this.pending) this.port.ref();
    this.submitted = job.seq;
    // Jobs submitted in one turn (a round's log write, its apply transactions) cross to the
    // writer in one message: a postMessage costs more than the statements of a small job. A job
    // that need not be durable (an apply transaction) also waits up to `holdMs` for the next
    // durable one (the next round's log write): one message and one commit instead of two, which
    // is what a lone client's write paid twice over (apply, then its next write's log entry).
    this.outbox.push(job);
    if (job.durable || this.holdMs <= 0) {
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(this.flushQueuedJobs);
      }
    } else if (!this.flushQueued && this.holdTimer === undefined) {
      this.holdTimer = setTimeout(this.flush, this.holdMs);
    }
  }

  /** Hands the jobs submitted so far to the writer now, not at the end of the turn. */
  post(flush = false): void {
    this.flush();
    if (flush) this.askFlush(this.submitted);
  }

  /** Has the writer commit every job up to `upTo` now, held apply transactions included (once per target). */
  private askFlush(upTo: number): void {
    if (this.closed || upTo <= this.committed || upTo <= this.flushAskedUpTo) return;
    this.flushAskedUpTo = this.submitted;
    const msg: ToWriter = { type: 'flush' };
    this.port.postMessage(msg);
  }

  /**
   * The end-of-turn flush a durable job queued, unless a {@link post} did it first: the jobs submitted since (a
   * follower's apply transactions, after it posted its log write) then wait for the next durable job or `holdMs`,
   * instead of following in a message of their own that the writer, already awake, commits alone a third of the time.
   */
  private readonly flushQueuedJobs = (): void => {
    if (this.flushQueued) this.flush();
  };

  /** Hands the jobs submitted so far to the writer. */
  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.holdTimer !== undefined) {
      clearTimeout(this.holdTimer);
      this.holdTimer = undefined;
    }
    if (this.outbox.length === 0 || this.closed) return;
    const msg: ToWriter = { type: 'jobs', jobs: this.outbox, postedAt: performance.timeOrigin + performance.now() };
    const packed = packJobBytes(this.outbox);
    this.outbox = [];
    this.port.postMessage(msg, packed === undefined ? [] : [packed]);
  };

  done(seq: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (seq <= this.committed) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  logDone(seq: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (seq <= this.logCommitted) return Promise.resolve();
    return new Promise((resolve, reject) => this.logWaiters.push({ seq, resolve, reject }));
  }

  drained(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.stalled !== undefined && this.committed < this.submitted) return Promise.reject(this.fullError());
    this.post(true);
    return this.done(this.submitted);
  }

  barrier(upTo = this.submitted): void {
    const target = Math.min(upTo, this.submitted);
    this.flush();
    this.askFlush(target);
    while (this.committed < target) {
      if (this.failure) throw this.failure;
      const m = receiveMessageOnPort(this.port);
      if (m !== undefined) {
        this.handle(m.message as ToMain);
        continue;
      }
      if (Atomics.load(this.ctrl, CTRL_FAILED) === 1n) {
        // The failure message is on its way: take it on the next pass.
        Atomics.wait(this.ctrl, CTRL_CLOSED, 0n, 10);
        continue;
      }
      // Blocking this thread until space is freed would stop the node: the caller hears why instead.
      if (Atomics.load(this.ctrl, CTRL_STALLED) === 1n) {
        // The writer posts its report before it raises the flag: take it first.
        const late = receiveMessageOnPort(this.port);
        if (late !== undefined) {
          this.handle(late.message as ToMain);
          continue;
        }
        throw this.fullError();
      }
      const at = Atomics.load(this.ctrl, CTRL_COMMITTED);
      if (Number(at) < target) Atomics.wait(this.ctrl, CTRL_COMMITTED, at, 100);
    }
    if (this.failure) throw this.failure;
  }

  close(): void {
    if (this.closed) return;
    try {
      if (!this.failure) this.barrier();
    } catch {
      // The failure was reported to whoever waited on the writes.
    }
    this.closed = true;
    const msg: ToWriter = { type: 'close' };
    this.port.postMessage(msg);
    const deadline = Date.now() + 5_000;
    while (Atomics.load(this.ctrl, CTRL_CLOSED) !== 1n && Date.now() < deadline && !this.failure) {
      Atomics.wait(this.ctrl, CTRL_COMMITTED, Atomics.load(this.ctrl, CTRL_COMMITTED), 50);
    }
    // What the writer reported before it closed (commits it finished) still counts.
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      this.handle(m.message as ToMain);
    }
    this.port.close();
    if (Atomics.load(this.ctrl, CTRL_CLOSED) !== 1n) void this.worker.terminate();
    // Closed while commits waited for disk space: those writes never happened, and their callers hear so.
    const waiters = [...this.waiters, ...this.logWaiters];
    this.waiters = [];
    this.logWaiters = [];
    for (const w of waiters) w.reject(this.fullError(true));
  }

  private handle(m: ToMain): void {
    if (m.type === 'failed') {
      this.failed(m.message);
      return;
    }
    if (m.type === 'stalled' || m.type === 'resumed') {
      this.stalled = m.type === 'stalled' ? { since: Date.now(), reason: m.message } : undefined;
      this.onStall(this.stalled);
      return;
    }
    this.stats.jobs += m.jobs;
    this.stats.commits += m.commits;
    this.stats.commitMs += m.ms;
    this.stats.durableCommits += m.durable;
    this.stats.waitMs += m.waitMs;
    this.stats.applyHoldMs = m.holdMs;
    if (m.over !== undefined) this.onResolved(m.over);
    if (m.logUpTo > this.logCommitted) {
      this.logCommitted = m.logUpTo;
      resolveUpTo(this.logWaiters, m.logUpTo);
    }
    if (m.upTo <= this.committed) return;
    this.committed = m.upTo;
    if (!this.pending) this.port.unref();
    this.onCommitted(m.upTo);
    resolveUpTo(this.waiters, m.upTo);
  }

  /** Why a write waits (or, `closed`, never happened): the disk is full. */
  private fullError(closed = false): DiskFullError {
    const reason = this.stalled?.reason ?? 'database or disk is full';
    return new DiskFullError(
      closed
        ? `${this.file}: the store closed before this write, waiting for disk space (${reason}), committed`
        : `${this.file}: the disk is full (${reason}); the queued writes are kept and retried until space is freed`,
    );
  }

  private failed(message: string): void {
    if (this.failure || this.closed) return;
    this.failure = writeFailed(this.file, new Error(message));
    this.port.unref();
    const waiters = [...this.waiters, ...this.logWaiters];
    this.waiters = [];
    this.logWaiters = [];
    for (const w of waiters) w.reject(this.failure);
  }
}

/** Resolves and drops the waiters (in seq order, as pushed) up to `upTo`. */
function resolveUpTo(waiters: Waiter[], upTo: number): void {
  let n = 0;
  while (n < waiters.length && (waiters[n] as Waiter).seq <= upTo) n++;
  if (n === 0) return;
  for (const w of waiters.splice(0, n)) w.resolve();
}

/** Byte arguments up to this size are packed by {@link packJobBytes}; larger ones (snapshot chunks) cross as they are. */
const PACKED_MAX_BYTES = 16 * 1024;

/**
 * Copies the jobs' byte arguments (keys, values, entries) of up to 16 KiB into one new buffer, in place
 * (each argument becomes a view of it), and returns that buffer, to be transferred with the message
 * rather than cloned; undefined when there are none. A message clones each byte array's whole backing
 * buffer, and Node allocates small `Buffer`s as views of a shared pool (64 KiB in Node 24): a lone
 * write's log entry sent the writer 64 KiB, and cloning cost 55 µs where one packed buffer costs 7.
 * Jobs are the queue's once submitted, so their op arrays may be changed.
 */
export function packJobBytes(jobs: readonly Job[]): ArrayBuffer | undefined {
  let total = 0;
  for (const job of jobs) {
    for (const op of job.ops) {
      for (let i = 1; i < op.length; i++) {
        const a = op[i];
        if (a instanceof Uint8Array && a.byteLength <= PACKED_MAX_BYTES) total += a.byteLength;
      }
    }
  }
  if (total === 0) return undefined;
  const packed = new Uint8Array(total);
  let at = 0;
  for (const job of jobs) {
    for (const op of job.ops) {
      for (let i = 1; i < op.length; i++) {
        const a = op[i];
        if (!(a instanceof Uint8Array) || a.byteLength > PACKED_MAX_BYTES) continue;
        packed.set(a, at);
        (op as unknown[])[i] = packed.subarray(at, at + a.byteLength);
        at += a.byteLength;
      }
    }
  }
  return packed.buffer;
}

function writeFailed(file: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  return new StorageError(`${file}: write failed: ${(err as Error).message}`);
}

/**
 * A worker thread's module (`name`, a `.js` file) beside the module `base` (its `import.meta.url`; this
 * package's by default): next to it when built; from dist when it runs as TypeScript (tests).
 */
export function workerModuleUrl(name: string, base: string = import.meta.url): URL {
  const here = new URL(`./${name}`, base);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL(`../dist/${name}`, base);
}
