/** Milliseconds; a monotonic reading, never wall time, unless said otherwise. */
export type Millis = number;

/**
 * The only way Cohort code reads time. Engines never take one (they count
 * ticks); hosts take a real one in production and a simulated one in `sim`.
 */
export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin. */
  now(): Millis;
  /** Runs `fn` after `ms`; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: Millis): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /**
   * Runs `fn` soon, after the current task and any I/O already waiting
   * (`setImmediate` in production, a zero-delay event in simulation). Hosts
   * coalesce the work of one turn with it.
   */
  defer(fn: () => void): void;
}

/** Opaque timer handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = { readonly __timer: unique symbol } | object;

/** A {@link Clock} over `performance.now()` and the runtime's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof globalThis.setTimeout>),
  defer: (fn) => {
    setImmediate(fn);
  },
};

/** An `AbortSignal` that fires after `ms` of `clock` time, and a way to disarm it once the call it bounds is over. */
export interface ClockSignal {
  signal: AbortSignal;
  /** Cancels the pending timer (call it when the bounded call ends, however it ends). */
  clear(): void;
}

/**
 * An abort signal driven by an injected {@link Clock} instead of the
 * runtime's timers, so a simulated node times its network calls out in
 * simulated time. Aborts with an `Error` named `TimeoutError`, as
 * `AbortSignal.timeout` does.
 */
export function clockSignal(clock: Clock, ms: Millis): ClockSignal {
  const ac = new AbortController();
  const handle = clock.setTimeout(() => {
    const err = new Error(`timed out after ${Math.round(ms)} ms`);
    err.name = 'TimeoutError';
    ac.abort(err);
  }, ms);
  return { signal: ac.signal, clear: () => clock.clearTimeout(handle) };
}
