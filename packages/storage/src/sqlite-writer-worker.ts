// The writer thread of a SqliteNodeStore in thread mode: it owns every write
// to the node's database on its own connection. Jobs arrive in order on the
// port; everything queued while the previous commit (and its fsync) ran is
// committed together. Progress is posted back and mirrored in a shared
// counter, so the main thread can also wait for it synchronously.
//
// A commit that fails for want of space (SQLITE_FULL, ENOSPC) was rolled back
// whole: it stays at the head of the backlog and is retried with backoff,
// together with every job queued behind it and in the same order, until the
// disk has room again. Any other failure is final.
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { DEFAULT_PAGE_CACHE_BYTES, setPageCache } from './page-cache.js';
import { type Job, JobRunner, JobsFailed, isOutOfSpace } from './sqlite-ops.js';
import {
  CTRL_CLOSED,
  CTRL_COMMITTED,
  CTRL_FAILED,
  CTRL_STALLED,
  type ToMain,
  type ToWriter,
  type WriterData,
} from './sqlite-writer-protocol.js';

/** Backoff of a commit retried for want of space: from this, doubling, up to the next. */
const RETRY_FIRST_MS = 20;
const RETRY_MAX_MS = 1000;

const data = workerData as WriterData;
const port: MessagePort = data.port;
const ctrl = new BigInt64Array(data.ctrl);
let runner: JobRunner | undefined;
let db: Database.Database | undefined;
let failed: string | undefined;
/** Jobs received and not committed yet, in order. */
let backlog: Job[] = [];
/** When the oldest job of the backlog was handed over (`performance.timeOrigin + performance.now()`). */
let backlogSince = 0;
/** The next retry of a commit that found the disk full, and the wait before the one after it. */
let retry: ReturnType<typeof setTimeout> | undefined;
let retryMs = RETRY_FIRST_MS;

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
  retry = undefined;
  try {
    db?.close();
  } finally {
    Atomics.store(ctrl, CTRL_CLOSED, 1n);
    Atomics.notify(ctrl, CTRL_COMMITTED);
    port.close();
  }
}

function handle(first: ToWriter): void {
  let closing = false;
  for (let m: ToWriter | undefined = first; m !== undefined; ) {
    if (m.type === 'close') closing = true;
    else {
      if (backlog.length === 0) backlogSince = m.postedAt;
      for (const j of m.jobs) backlog.push(j);
    }
    const next = receiveMessageOnPort(port);
    m = next === undefined ? undefined : (next.message as ToWriter);
  }
  // While a retry is due, what arrived waits behind the commit that found the disk full.
  if (retry === undefined) commit();
  if (closing) close();
}

/** Commits the backlog; on a full disk, keeps what did not commit and retries it later. */
function commit(): void {
  if (backlog.length === 0) return;
  if (failed !== undefined) {
    backlog = [];
    post({ type: 'failed', message: failed });
    return;
  }
  const jobs = backlog;
  const started = performance.now();
  // Clocks of two threads: each is the process's, read as `timeOrigin + now()`.
  const waitMs = Math.max(0, performance.timeOrigin + started - backlogSince);
  const durableBefore = (runner as JobRunner).durableCommits;
  let done = jobs.length;
  let commits = 0;
  let error: Error | undefined;
  try {
    commits = (runner as JobRunner).run(jobs);
  } catch (err) {
    const f = err instanceof JobsFailed ? err : new JobsFailed(err as Error, 0, 0);
    done = f.jobsDone;
    commits = f.commits;
    error = f.reason;
  }
  if (done > 0) {
    const upTo = (jobs[done - 1] as Job).seq;
    const over = (runner as JobRunner).takeResults();
    const msg: ToMain = {
      type: 'committed',
      upTo,
      jobs: done,
      commits,
      durable: (runner as JobRunner).durableCommits - durableBefore,
      ms: performance.now() - started,
      waitMs,
    };
    if (over.length > 0) msg.over = over;
    post(msg);
    Atomics.store(ctrl, CTRL_COMMITTED, BigInt(upTo));
    Atomics.notify(ctrl, CTRL_COMMITTED);
  }
  backlog = done === jobs.length ? [] : jobs.slice(done);
  // What stays (a commit that found the disk full) waited up to now already: its report counts from here.
  if (done > 0 && backlog.length > 0) backlogSince = performance.timeOrigin + performance.now();
  if (error === undefined) {
    if (Atomics.load(ctrl, CTRL_STALLED) === 1n) {
      Atomics.store(ctrl, CTRL_STALLED, 0n);
      retryMs = RETRY_FIRST_MS;
      post({ type: 'resumed' });
    }
    return;
  }
  if (!isOutOfSpace(error, data.file)) {
    backlog = [];
    fail(error.message);
    return;
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
}

port.on('message', handle);
