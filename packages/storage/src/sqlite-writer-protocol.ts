import type { MessagePort } from 'node:worker_threads';
import type { Job } from './sqlite-ops.js';

/** What the writer thread starts with. */
export interface WriterData {
  file: string;
  /** A BigInt64Array's buffer: the slots below. */
  ctrl: SharedArrayBuffer;
  port: MessagePort;
  /** `PRAGMA journal_size_limit` of the writer's connection (the one that starts the WAL over). */
  walSizeLimitBytes?: number;
  /** The writer's connection's page cache in bytes (`SqliteNodeStoreOptions.pageCacheBytes`). */
  pageCacheBytes?: number;
  commitGate?: string;
  diskFullGate?: string;
  /** How long the writer may hold apply transactions (`Job.deferrable`) to commit them together, in ms; 0 holds none. */
  applyBatchMs: number;
  /** Ops of held apply transactions past which they commit at once. */
  applyBatchOps: number;
}

/** Slot of the last committed job's seq. */
export const CTRL_COMMITTED = 0;
/** Slot set to 1 once a write failed (the writer takes no more). */
export const CTRL_FAILED = 1;
/** Slot set to 1 once the writer closed its connection. */
export const CTRL_CLOSED = 2;
/** Slot set to 1 while a commit waits for disk space (retried with backoff), back to 0 once it committed. */
export const CTRL_STALLED = 3;
export const CTRL_SLOTS = 4;

/**
 * `jobs`: to commit in order (see `Job.logOnly` and `Job.deferrable` for what may go first); `postedAt`, when
 * they were handed over (`performance.timeOrigin + performance.now()`, ms). `flush`: commit every job received,
 * held apply transactions included, now (someone waits for them). `close`: commit everything, then close.
 */
export type ToWriter = { type: 'jobs'; jobs: Job[]; postedAt: number } | { type: 'flush' } | { type: 'close' };
/**
 * `committed`: jobs up to `upTo` committed, and the log-only jobs up to `logUpTo` (the last job committed: those may
 * commit before held apply transactions, see `Job.logOnly`); `jobs` jobs in `commits` transactions (`durable` of them fsynced) that took `ms`
 * on the writer (fsyncs included), after waiting `waitMs` for it (see `WriterStats.waitMs`); `over`, what their `putOver`
 * ops found (`JobRunner.takeResults`), when they had any.
 * `stalled`: the commit after the last one reported failed for want of space (`message`, SQLite's reason); it is retried, with
 * every job queued behind it, until it commits. `resumed`: it committed (its `committed` report came first).
 * `failed`: a write failed otherwise; the writer takes no more.
 */
export type ToMain =
  | {
      type: 'committed';
      upTo: number;
      logUpTo: number;
      jobs: number;
      commits: number;
      durable: number;
      ms: number;
      waitMs: number;
      /** How long the writer holds apply transactions now (`WriterStats.applyHoldMs`). */
      holdMs: number;
      over?: number[];
    }
  | { type: 'stalled'; message: string }
  | { type: 'resumed' }
  | { type: 'failed'; message: string };
