import type { ConfState, Entry, LogIndex, Snapshot, SnapshotMeta } from '@cohort/core';
import type { AppliedState, ApplyOutcome, DurableStateMachine, SnapshotReader, SnapshotWriter } from '@cohort/raft';

/** What a node's state machine applies, in order. */
export interface ApplyObserver {
  /** `entry` is about to be applied (a command) or recorded (a no-op or membership change). */
  onApply(entry: Entry): void;
  /** The entry at `index` carried no command; the observer looks it up in the log. */
  onSkip(index: LogIndex): void;
}

/** Wraps the production state machine so every applied entry is reported first. */
export class ObservedMachine<R> implements DurableStateMachine<R> {
  constructor(
    private readonly inner: DurableStateMachine<R>,
    private readonly observer: ApplyObserver,
  ) {}

  applied(): AppliedState {
    return this.inner.applied();
  }

  applyBatch(entries: Entry[], confState: ConfState): (ApplyOutcome<R> | undefined)[] {
    for (const e of entries) {
      if (e.type === 'normal' && e.data.length > 0) this.observer.onApply(e);
      else this.observer.onSkip(e.index);
    }
    return this.inner.applyBatch(entries, confState);
  }

  openSnapshot(): SnapshotReader {
    return this.inner.openSnapshot();
  }

  receiveSnapshot(meta: SnapshotMeta): SnapshotWriter {
    return this.inner.receiveSnapshot(meta);
  }

  restoreLegacy(snapshot: Snapshot): void {
    this.inner.restoreLegacy?.(snapshot);
  }
}
