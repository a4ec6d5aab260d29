import type { Entry, LogIndex } from '@cohort/core';
import type { StateMachine } from '@cohort/raft';

/** What a node's state machine applies, in order. */
export interface ApplyObserver {
  /** `entry` is about to be applied (a command) or recorded (a no-op or membership change). */
  onApply(entry: Entry): void;
  /** The entry at `index` carried no command; the observer looks it up in the log. */
  onSkip(index: LogIndex): void;
}

/** Wraps the production state machine so every applied entry is reported first. */
export class ObservedMachine<R> implements StateMachine<R> {
  constructor(
    private readonly inner: StateMachine<R>,
    private readonly observer: ApplyObserver,
  ) {}

  apply(entry: Entry): R {
    this.observer.onApply(entry);
    return this.inner.apply(entry);
  }

  skip(index: LogIndex): void {
    this.observer.onSkip(index);
    this.inner.skip?.(index);
  }

  snapshot(): Uint8Array {
    return this.inner.snapshot();
  }

  restore(data: Uint8Array): void {
    this.inner.restore(data);
  }
}
