import type { MessagePort } from 'node:worker_threads';
import type { Job } from './sqlite-ops.js';

/** What the writer thread starts with. */
export interface WriterData {
  file: string;
  /** A BigInt64Array's buffer: the slots below. */
  ctrl: SharedArrayBuffer;
  port: MessagePort;
  commitGate?: string;
}

/** Slot of the last committed job's seq. */
export const CTRL_COMMITTED = 0;
/** Slot set to 1 once a write failed (the writer takes no more). */
export const CTRL_FAILED = 1;
/** Slot set to 1 once the writer closed its connection. */
export const CTRL_CLOSED = 2;
export const CTRL_SLOTS = 3;

export type ToWriter = { type: 'jobs'; jobs: Job[] } | { type: 'close' };
/** `committed`: jobs up to `upTo` committed; `jobs` of them in `commits` transactions that took `ms` on the writer (fsyncs included). */
export type ToMain =
  | { type: 'committed'; upTo: number; jobs: number; commits: number; ms: number }
  | { type: 'failed'; message: string };
