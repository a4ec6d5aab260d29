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
