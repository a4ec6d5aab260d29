// The writer thread of a SqliteNodeStore in thread mode: it owns every write
// to the node's database on its own connection. Jobs arrive in order on the
// port; everything queued while the previous commit (and its fsync) ran is
// committed together. Progress is posted back and mirrored in a shared
// counter, so the main thread can also wait for it synchronously.
//
// Apply transactions (`Job.deferrable`) may be held for up to `applyBatchMs`
// (or `applyBatchOps` ops) and committed together, while the log appends
// queued after them (`Job.logOnly`) commit ahead: a commit writes every page
// it dirtied, so a KV row's page is written once for many writes instead of
// once a group commit (SQLite's CPU a write drops by a third from 300 writes
// a commit to 1,500). Any other job, a flush or a close commits everything
// received, in order. While the writer commits held applies, log appends
// wait: the hold shrinks while those commits' statements read a page from the
// file system for most of their ops (`HELD_READS_PER_OP`: writes scattered over
// more pages than the connection caches, each op reading and writing a page
// of its own, so holding them saves nothing and only makes the appends wait
// longer) and grows back while they read few. Where the kernel does not count
// a thread's reads, the commits' time an op stands in (`HELD_OP_US`).
//
// A commit that fails for want of space (SQLITE_FULL, ENOSPC) was rolled back
// whole: it stays at the head of the backlog and is retried with backoff,
// together with every job queued behind it and in the same order, until the
// disk has room again. Any other failure is final.
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { DEFAULT_PAGE_CACHE_BYTES, setPageCache } from './page-cache.js';
import { type Job, JobRunner, JobsFailed, isOutOfSpace, isPurge } from './sqlite-ops.js';
import {
  CTRL_CLOSED,
  CTRL_COMMITTED,
  CTRL_FAILED,
  CTRL_STALLED,
  type ToMain,
  type ToWriter,
  type WriterData,
} from './sqlite-writer-protocol.js';
import { threadReads } from './thread-io.js';

/**
 * A commit of held applies whose statements read more pages than this an op from the file system (see
 * `threadReads`) shortens the hold by a quarter; one under half of it lengthens the hold by a quarter, up to
 * `applyBatchMs`. About none over 10,000 keys (the pages cached and rewritten many times a commit), most ops
 * one or more over 100,000 and beyond. Unlike the commit's time an op (below), it does not depend on how fast
 * the machine is or how busy: on a slower machine the time rule shortened the hold over 10,000 keys too.
 */
const HELD_READS_PER_OP = 0.5;
/**
 * Where the kernel does not count a thread's reads: a commit of held applies taking more than this an op, in
 * µs, shortens the hold by a quarter; one under two thirds of it lengthens the hold by a quarter. Measured on a
 * 2-vCPU machine under load: 8-12 µs an op over 10,000 keys, 15-33 over 100,000.
 */
const HELD_OP_US = 16;
/** The shortest hold the writer shrinks to. */
const HOLD_MIN_MS = 5;
/** Fewer held ops than this in a commit leave the hold as it is: a commit's own costs dominate theirs. */
const TUNE_MIN_OPS = 100;
/** Backoff of a commit retried for want of space: from this, doubling, up to the next. */
const RETRY_FIRST_MS = 20;
const RETRY_MAX_MS = 1000;

const data = workerData as WriterData;
const port: MessagePort = data.port;
const ctrl = new BigInt64Array(data.ctrl);
let runner: JobRunner | undefined;
let db: Database.Database | undefined;
let failed: string | undefined;
/** A job as the writer keeps it: with when it was handed over (`ToWriter`'s `postedAt`). */
type Received = Job & { postedAt: number };
/** Jobs received and not committed yet, in order. */
let backlog: Received[] = [];
/**
 * Of the backlog: the apply transactions held (see `holds`), their ops, the deletions of rows compactions left
 * (log entries, acceptor votes) held with them (`isPurge`: counted in `held`, not in `heldOps`), and jobs that
 * commit only in order.
 */
let held = 0;
let heldOps = 0;
let heldPurges = 0;
let ordered = 0;
/** When the oldest held apply transaction arrived (`performance.now()`). */
let heldSince = 0;
/** How long apply transactions are held now: up to `applyBatchMs`, less while their commits are slow. */
let holdMs = data.applyBatchMs;
/** Commits the held apply transactions once the oldest was held `holdMs`. */
let holdTimer: ReturnType<typeof setTimeout> | undefined;
/** A flush or a close asked for every job received to commit now. */
let flushAsked = false;
let closeAsked = false;
/** The last job committed: every log-only job up to it committed (they are never held). */
let lastCommitted = 0;
/** The next retry of a commit that found the disk full, and the wait before the one after it. */
let retry: ReturnType<typeof setTimeout> | undefined;
let retryMs = RETRY_FIRST_MS;
/** Whether the kernel counts this thread's reads: held commits are then tuned on them (see `HELD_READS_PER_OP`). */
const countsReads = threadReads() !== undefined;
const countThreadReads = (): number => threadReads() ?? 0;

function post(msg: ToMain): void {
  port.postMessage(msg);
}

function fail(message: string): void {
  failed = message;
  post({ type: 'failed', message });
  Atomics.store(ctrl, CTRL_FAILED, 1n);
  Atomics.notify(ctrl, CTRL_COMMITTED);
}

try {
  db = new Database(data.file, { fileMustExist: true });
  db.pragma('synchronous = FULL');
  if (data.walSizeLimitBytes !== undefined) db.pragma(`journal_size_limit = ${data.walSizeLimitBytes}`);
  setPageCache(db, data.pageCacheBytes ?? DEFAULT_PAGE_CACHE_BYTES);
  runner = new JobRunner(db, {
    ...(data.commitGate === undefined ? {} : { commitGate: data.commitGate }),
    ...(data.diskFullGate === undefined ? {} : { diskFullGate: data.diskFullGate }),
  });
} catch (err) {
  fail(`cannot open the database for writing: ${(err as Error).message}`);
}

function close(): void {
  if (retry !== undefined) clearTimeout(retry);
  if (holdTimer !== undefined) clearTimeout(holdTimer);
  retry = holdTimer = undefined;
  try {
    db?.close();
  } finally {
    Atomics.store(ctrl, CTRL_CLOSED, 1n);
    Atomics.notify(ctrl, CTRL_COMMITTED);
    port.close();
  }
}

function handle(first: ToWriter): void {
  for (let m: ToWriter | undefined = first; m !== undefined; ) {
    if (m.type === 'close') closeAsked = true;
    else if (m.type === 'flush') flushAsked = true;
    else for (const j of m.jobs) receive(j as Received, m.postedAt);
    const next = receiveMessageOnPort(port);
    m = next === undefined ? undefined : (next.message as ToWriter);
  }
  // While a retry is due, what arrived waits behind the commit that found the disk full.
  if (retry === undefined) commit();
  if (closeAsked) close();
}

/** Whether `job` may wait on the writer for other apply transactions to commit with. */
function holds(job: Job): boolean {
  return job.deferrable === true && data.applyBatchMs > 0;
}

function receive(job: Received, postedAt: number): void {
  job.postedAt = postedAt;
  backlog.push(job);
  if (held === 0 && holds(job)) heldSince = performance.now();
  tally(job);
}

/** Counts `job` among the backlog's held or ordered jobs (a log append is neither). */
function tally(job: Job): void {
  if (holds(job)) {
    held++;
    if (isPurge(job.ops)) heldPurges++;
    else heldOps += job.ops.length;
  } else if (job.logOnly !== true) ordered++;
}

/** Counts the backlog's held and ordered jobs again (after a commit took some). */
function recount(): void {
  held = heldOps = heldPurges = ordered = 0;
  for (const j of backlog) tally(j);
  if (held === 0) heldSince = 0;
  if (backlog.length === 0) flushAsked = false;
}

/** Whether the next commit takes the whole backlog, in order, rather than its log appends alone. */
function commitsAll(): boolean {
  return (
    held === 0 ||
    ordered > 0 ||
    flushAsked ||
    closeAsked ||
    heldOps >= data.applyBatchOps ||
    performance.now() - heldSince >= holdMs
  );
}

/** Commits the backlog (or its log appends); on a full disk, keeps what did not commit and retries it later. */
function commit(): void {
  if (holdTimer !== undefined) {
    clearTimeout(holdTimer);
    holdTimer = undefined;
  }
  if (backlog.length === 0) {
    flushAsked = false;
    return;
  }
  if (failed !== undefined) {
    backlog = [];
    recount();
    post({ type: 'failed', message: failed });
    return;
  }
  const all = commitsAll();
  // With applies held and no job that keeps its place queued, the log appends go first, in a commit of their own
  // (fsynced, and reported at once); then, when due, the rest in order: held applies alone commit without an fsync.
  if (held > 0 && ordered === 0) {
    const appends = backlog.filter((j) => j.logOnly === true);
    if (appends.length > 0 && !run(appends, false)) return;
  }
  if (!all) {
    holdHeld();
    return;
  }
  // Held applies due by their own measure (not asked for, nor before a job that keeps its place) tune the hold;
  // not with a deletion of rows a compaction left among them (log entries, votes), whose reads are not the applies'.
  const tune = heldOps >= TUNE_MIN_OPS && ordered === 0 && heldPurges === 0 && !flushAsked && !closeAsked ? heldOps : 0;
  if (run(backlog, true, tune)) holdHeld();
}

/**
 * Shortens the hold after a commit of held applies whose ops mostly read their pages from the file system
 * (`readsPerOp`; without those counts, one that cost much an op: `usPerOp`), lengthens it after one that did not.
 */
function adjustHold(readsPerOp: number | undefined, usPerOp: number): void {
  const [cost, high, low] =
    readsPerOp === undefined
      ? [usPerOp, HELD_OP_US, (HELD_OP_US * 2) / 3]
      : [readsPerOp, HELD_READS_PER_OP, HELD_READS_PER_OP / 2];
  if (cost > high) holdMs = Math.max(Math.min(HOLD_MIN_MS, data.applyBatchMs), holdMs * 0.75);
  else if (cost < low) holdMs = Math.min(data.applyBatchMs, holdMs * 1.25);
}

/**
 * Commits `jobs`: the whole backlog in order (`all`), or its log appends; reports what committed. False when
 * the commit failed: then the writer retries it later (a full disk) or takes no more. `tuneOps`: the held
 * ops among them, when their commit's cost tunes the hold ({@link adjustHold}).
 */
function run(jobs: Received[], all: boolean, tuneOps = 0): boolean {
  const started = performance.now();
  // Clocks of two threads: each is the process's, read as `timeOrigin + now()`.
  const waitMs = Math.max(0, performance.timeOrigin + started - (jobs[0] as Received).postedAt);
  const durableBefore = (runner as JobRunner).durableCommits;
  const readsBefore = (runner as JobRunner).statementReads;
  let done = jobs.length;
  let commits = 0;
  let error: Error | undefined;
  // Only a commit that tunes the hold counts its reads (two reads of a file a transaction).
  if (tuneOps > 0 && countsReads) (runner as JobRunner).countReads = countThreadReads;
  try {
    commits = (runner as JobRunner).run(jobs);
  } catch (err) {
    const f = err instanceof JobsFailed ? err : new JobsFailed(err as Error, 0, 0);
    done = f.jobsDone;
    commits = f.commits;
    error = f.reason;
  } finally {
    (runner as JobRunner).countReads = undefined;
  }
  if (error === undefined && tuneOps > 0) {
    const reads = countsReads ? ((runner as JobRunner).statementReads - readsBefore) / tuneOps : undefined;
    adjustHold(reads, ((performance.now() - started) * 1000) / tuneOps);
  }
  if (done > 0) {
    // Log appends alone are one transaction: all of them committed, or (above) none.
    if (all) backlog = done === jobs.length ? [] : backlog.slice(done);
    else backlog = backlog.filter((j) => j.logOnly !== true);
    recount();
    lastCommitted = Math.max(lastCommitted, (jobs[done - 1] as Job).seq);
    const upTo = backlog.length === 0 ? lastCommitted : (backlog[0] as Job).seq - 1;
    const over = (runner as JobRunner).takeResults();
    const msg: ToMain = {
      type: 'committed',
      upTo,
      logUpTo: lastCommitted,
      jobs: done,
      commits,
      durable: (runner as JobRunner).durableCommits - durableBefore,
      ms: performance.now() - started,
      waitMs,
      holdMs,
    };
    if (over.length > 0) msg.over = over;
    post(msg);
    Atomics.store(ctrl, CTRL_COMMITTED, BigInt(upTo));
    Atomics.notify(ctrl, CTRL_COMMITTED);
    // What stays (a commit that found the disk full) waited up to now already: its report counts from here.
    if (error !== undefined) for (const j of backlog) j.postedAt = performance.timeOrigin + performance.now();
  }
  if (error === undefined) {
    if (Atomics.load(ctrl, CTRL_STALLED) === 1n) {
      Atomics.store(ctrl, CTRL_STALLED, 0n);
      retryMs = RETRY_FIRST_MS;
      post({ type: 'resumed' });
    }
    return true;
  }
  if (!isOutOfSpace(error, data.file)) {
    backlog = [];
    recount();
    fail(error.message);
    return false;
  }
  if (Atomics.load(ctrl, CTRL_STALLED) === 0n) {
    // The message first: whoever sees the flag finds it on the port.
    post({ type: 'stalled', message: error.message });
    Atomics.store(ctrl, CTRL_STALLED, 1n);
    Atomics.notify(ctrl, CTRL_COMMITTED);
  }
  retry = setTimeout(() => {
    retry = undefined;
    commit();
  }, retryMs);
  retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  return false;
}

/** Commits the held apply transactions once the oldest of them was held `holdMs`. */
function holdHeld(): void {
  if (held === 0 || holdTimer !== undefined) return;
  const wait = Math.max(0, heldSince + holdMs - performance.now());
  holdTimer = setTimeout(() => {
    holdTimer = undefined;
    if (retry === undefined) commit();
  }, wait);
}

port.on('message', handle);
