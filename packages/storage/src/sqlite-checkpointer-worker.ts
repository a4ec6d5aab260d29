// The checkpointer thread of a SqliteNodeStore in thread mode: it copies the
// WAL's committed pages back into the database file on its own connection, so
// the writer's commits never pay for it. SQLite's automatic checkpoint runs
// inside the commit that crosses its threshold: with a large store every put
// dirties a different page, each checkpoint writes a thousand scattered pages
// plus an fsync, and the commit that ran it (with every write queued behind it)
// waited that long.
//
// A PASSIVE checkpoint never blocks the writer nor waits for readers; it runs
// after commits, at most every `intervalMs`. The writer keeps a high automatic
// threshold as a backstop, should this thread fall behind. A failed checkpoint
// loses nothing (the pages stay in the WAL): it is counted and retried later.
//
// The loop is synchronous: it sleeps in Atomics.wait on the writer's commit
// counter and stops when the store sets the stop slot.
import { workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import {
  CKPT_CLOSED,
  CKPT_COUNT,
  CKPT_FAILURES,
  CKPT_MICROS,
  CKPT_STOP,
  CKPT_WAL_FRAMES,
  CTRL_COMMITTED,
  type CheckpointerData,
} from './sqlite-writer-protocol.js';

const data = workerData as CheckpointerData;
const ctrl = new BigInt64Array(data.ctrl);
const stopped = (): boolean => Atomics.load(ctrl, CKPT_STOP) === 1n;

/** Sleeps up to `ms`, waking early when the store stops this thread. */
function pause(ms: number): void {
  if (!stopped()) Atomics.wait(ctrl, CKPT_STOP, 0n, ms);
}

let db: Database.Database | undefined;
try {
  db = new Database(data.file, { fileMustExist: true });
  db.pragma('synchronous = FULL');
  // A checkpoint copies frames without the page cache: keep this connection's small.
  db.pragma('cache_size = 16');
  let seen = Atomics.load(ctrl, CTRL_COMMITTED);
  while (!stopped()) {
    // Woken by the writer's notify after a commit (or by the stop, which notifies this slot too).
    Atomics.wait(ctrl, CTRL_COMMITTED, seen, 1000);
    if (stopped()) break;
    const now = Atomics.load(ctrl, CTRL_COMMITTED);
    if (now === seen) continue;
    seen = now;
    const started = performance.now();
    try {
      const r = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
      Atomics.add(ctrl, CKPT_COUNT, 1n);
      // The WAL's frames when it ran (it restarts from the beginning once all were copied and no reader needs them).
      Atomics.store(ctrl, CKPT_WAL_FRAMES, BigInt(Math.max(0, r[0]?.log ?? 0)));
    } catch {
      // Out of space, or the disk failed: the pages stay in the WAL, and the writer hears of the disk itself.
      Atomics.add(ctrl, CKPT_FAILURES, 1n);
      pause(data.intervalMs * 10);
    }
    Atomics.add(ctrl, CKPT_MICROS, BigInt(Math.round((performance.now() - started) * 1000)));
    pause(data.intervalMs);
  }
} catch {
  // Could not open: the writer's automatic checkpoints still run.
  Atomics.add(ctrl, CKPT_FAILURES, 1n);
} finally {
  try {
    db?.close();
  } finally {
    Atomics.store(ctrl, CKPT_CLOSED, 1n);
    Atomics.notify(ctrl, CKPT_CLOSED);
  }
}
