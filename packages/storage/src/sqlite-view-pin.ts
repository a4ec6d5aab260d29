// The handshake behind `PartitionKv.pinView`: a mark in the writer's job queue at which a reader on
// another thread takes a read snapshot of exactly the state the jobs before it left. The writer,
// once it committed everything before the mark, waits for the reader; the reader opens its
// connection first and begins its read transaction only once the writer got there, so no commit
// after the mark can be in its snapshot. Either side may give up; the other then sees so.

/** The writer has not reached the mark yet. */
const WAITING = 0;
/** The writer committed everything before the mark and waits for the reader. */
const REACHED = 1;
/** The reader has its snapshot; the writer goes on. */
const TAKEN = 2;
/** One side gave up (the reader never came in time, or could not open): the mark is void. */
const ABANDONED = 3;

/** How long the writer waits at a mark for its reader (whose thread may still be starting). */
export const PIN_WRITER_WAIT_MS = 1_000;

/** A new handshake's shared state. */
export function newPinControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
}

/**
 * Waits up to `waitMs` while the mark's state is `from`; at the deadline voids the mark, unless the
 * other side moved it on meanwhile. Returns the state it left `from` for (`ABANDONED` when it timed out,
 * with `timedOut`).
 */
function waitWhile(a: Int32Array, from: number, waitMs: number): { state: number; timedOut: boolean } {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const state = Atomics.load(a, 0);
    if (state !== from) return { state, timedOut: false };
    const left = deadline - performance.now();
    if (left <= 0) {
      if (Atomics.compareExchange(a, 0, from, ABANDONED) === from) return { state: ABANDONED, timedOut: true };
      continue;
    }
    Atomics.wait(a, 0, from, left);
  }
}

/**
 * The writer's side, after it committed every job before the mark: tells the reader, then waits up
 * to `waitMs` for it to take its snapshot. Returns how it ended; the writer goes on either way.
 */
export function holdAtPin(ctrl: SharedArrayBuffer, waitMs = PIN_WRITER_WAIT_MS): 'taken' | 'abandoned' {
  const a = new Int32Array(ctrl);
  if (Atomics.compareExchange(a, 0, WAITING, REACHED) !== WAITING) return 'abandoned';
  Atomics.notify(a, 0);
  return waitWhile(a, REACHED, waitMs).state === TAKEN ? 'taken' : 'abandoned';
}

/**
 * The reader's side, once its connection is open: waits up to `waitMs` for the writer to reach the
 * mark. Returns `'reached'` (then take the snapshot and call {@link takePin}), or why not.
 */
export function awaitPin(ctrl: SharedArrayBuffer, waitMs: number): 'reached' | 'timeout' | 'abandoned' {
  const { state, timedOut } = waitWhile(new Int32Array(ctrl), WAITING, waitMs);
  if (timedOut) return 'timeout';
  return state === REACHED ? 'reached' : 'abandoned';
}

/** The reader took its snapshot: lets the writer go on. False if the writer stopped waiting first (the snapshot may hold later commits). */
export function takePin(ctrl: SharedArrayBuffer): boolean {
  const a = new Int32Array(ctrl);
  const ok = Atomics.compareExchange(a, 0, REACHED, TAKEN) === REACHED;
  Atomics.notify(a, 0);
  return ok;
}

/** The reader will not take the mark (it failed to open): the writer need not wait for it. */
export function abandonPin(ctrl: SharedArrayBuffer): void {
  const a = new Int32Array(ctrl);
  Atomics.store(a, 0, ABANDONED);
  Atomics.notify(a, 0);
}
