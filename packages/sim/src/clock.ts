import type { Clock, Millis, TimerHandle } from '@cohort/core';
import type { EventHandle, Scheduler } from './scheduler.js';

/** Options of a {@link SimClock}. */
export interface SimClockOptions {
  /** How fast this node's clock runs relative to simulated time (1.05 = 5% fast). @default 1 */
  rate?: number;
  /** Reading at simulated time 0. @default 0 */
  offset?: Millis;
}

/**
 * A core {@link Clock} over a {@link Scheduler}: hosts run on it unchanged in
 * simulation. A `rate` other than 1 models a node whose clock drifts.
 */
export class SimClock implements Clock {
  private readonly rate: number;
  private readonly offset: Millis;
  private halted = false;

  constructor(
    private readonly scheduler: Scheduler,
    options: SimClockOptions = {},
  ) {
    this.rate = options.rate ?? 1;
    this.offset = options.offset ?? 0;
    if (!(this.rate > 0)) throw new RangeError(`clock rate must be positive, got ${this.rate}`);
  }

  now(): Millis {
    return this.offset + this.scheduler.now() * this.rate;
  }

  setTimeout(fn: () => void, ms: Millis): TimerHandle {
    // A local duration of `ms` lasts `ms / rate` of simulated time.
    return this.scheduler.after(ms / this.rate, () => {
      if (!this.halted) fn();
    });
  }

  clearTimeout(handle: TimerHandle): void {
    this.scheduler.cancel(handle as EventHandle);
  }

  defer(fn: () => void): void {
    this.scheduler.after(0, () => {
      if (!this.halted) fn();
    });
  }

  /** Stops every timer and deferred call for good: the process that owned this clock crashed. */
  halt(): void {
    this.halted = true;
  }
}
