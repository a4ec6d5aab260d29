import type { GroupId, GroupWrite, HardState, LogIndex } from '@cohort/core';
import { MemoryNodeStore } from './memory-node-store.js';

/** What a {@link GatedStore} holds durably for one group. */
export interface DurableView {
  hardState: HardState;
  lastIndex: LogIndex;
}

const NOTHING: DurableView = { hardState: { term: 0, vote: '', commit: 0 }, lastIndex: 0 };

/**
 * A store whose writes are visible to reads at once but complete (become
 * durable) only in order, and only while not held: a test holds a node's
 * writes open to see what the host sends meanwhile.
 */
export class GatedStore extends MemoryNodeStore {
  private readonly durableViews = new Map<GroupId, DurableView>();
  private gate: { opened: Promise<void>; open: () => void } | undefined;
  private tail: Promise<void> = Promise.resolve();
  /** Writes requested and not complete yet. */
  inFlight = 0;

  /** What completed writes made durable in `group`. */
  durable(group: GroupId): DurableView {
    return this.durableViews.get(group) ?? NOTHING;
  }

  /** Writes requested from now on stay in flight until {@link release}. */
  hold(): void {
    if (this.gate !== undefined) return;
    let open = (): void => {};
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.gate = { opened, open };
  }

  release(): void {
    this.gate?.open();
    this.gate = undefined;
  }

  /** Whether some write requested so far carries the entry at `index`. */
  requested(group: GroupId, index: LogIndex): boolean {
    return this.writes.some((b) => b.some((w) => w.group === group && w.entries?.some((e) => e.index === index)));
  }

  override write(batch: GroupWrite[]): Promise<void> {
    const visible = super.write(batch);
    const gate = this.gate?.opened;
    this.inFlight++;
    const done = this.tail
      .then(() => visible)
      .then(() => gate)
      .then(() => {
        this.inFlight--;
        for (const w of batch) {
          const d = { ...this.durable(w.group) };
          if (w.snapshot) d.lastIndex = w.snapshot.meta.index;
          const last = w.entries?.at(-1);
          if (last) d.lastIndex = last.index;
          if (w.hardState) d.hardState = w.hardState;
          this.durableViews.set(w.group, d);
        }
      });
    this.tail = done;
    return done;
  }
}
