import type { ConfState, Entry, Snapshot, SnapshotMeta } from '@cohort/core';
import type { AppliedState, ApplyOutcome, DurableStateMachine, SnapshotReader, SnapshotWriter } from '@cohort/raft';

/**
 * Wraps the production durable state machine so that every entry of a batch
 * (commands, leader no-ops, membership changes) is reported to `onApply`, in
 * log order, before the machine applies it.
 */
export class ObservedMachine<R> implements DurableStateMachine<R> {
  constructor(
    private readonly inner: DurableStateMachine<R>,
    private readonly onApply: (entry: Entry) => void,
    /** A received snapshot replaced the machine's state. */
    private readonly onInstall: (meta: SnapshotMeta) => void = () => {},
  ) {}

  applied(): AppliedState {
    return this.inner.applied();
  }

  applyBatch(entries: Entry[], confState: ConfState): (ApplyOutcome<R> | undefined)[] {
    for (const e of entries) this.onApply(e);
    return this.inner.applyBatch(entries, confState);
  }

  openSnapshot(): SnapshotReader | Promise<SnapshotReader> {
    return this.inner.openSnapshot();
  }

  receiveSnapshot(meta: SnapshotMeta): SnapshotWriter {
    const w = this.inner.receiveSnapshot(meta);
    return {
      write: (seq, chunk) => w.write(seq, chunk),
      commit: () => {
        w.commit();
        this.onInstall(meta);
      },
      abort: () => w.abort(),
    };
  }

  restoreLegacy(snapshot: Snapshot): void {
    this.inner.restoreLegacy?.(snapshot);
  }
}
