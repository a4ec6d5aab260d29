import type { GroupId, GroupWrite, LogIndex, NodeStore, RaftLogReader, Snapshot } from '@cohort/core';
import { MemoryStorage } from '../../src/memory-storage.js';

/** A NodeStore over one MemoryStorage per group that records its writes, for host tests. */
export class MemoryNodeStore implements NodeStore {
  readonly groups = new Map<GroupId, MemoryStorage>();
  /** Every `write` batch, in order. */
  readonly writes: GroupWrite[][] = [];
  /** Every `saveSnapshot`, in order. */
  readonly snapshots: { group: GroupId; snapshot: Snapshot; compactTo: LogIndex }[] = [];
  /** Called after each durable write: what shares this store's disk (a state machine) is synced with it. */
  readonly onDurable: (() => void)[] = [];
  closed = false;

  group(group: GroupId): RaftLogReader {
    return this.storage(group);
  }

  storage(group: GroupId): MemoryStorage {
    let s = this.groups.get(group);
    if (!s) {
      s = new MemoryStorage();
      this.groups.set(group, s);
    }
    return s;
  }

  async write(batch: GroupWrite[]): Promise<void> {
    this.writes.push(batch);
    for (const fn of this.onDurable) fn();
    for (const w of batch) {
      const s = this.storage(w.group);
      if (w.snapshot) s.applySnapshot(w.snapshot);
      if (w.entries) s.append(w.entries);
      if (w.hardState) s.setHardState(w.hardState);
    }
  }

  async saveSnapshot(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): Promise<void> {
    this.snapshots.push({ group, snapshot, compactTo });
    for (const fn of this.onDurable) fn();
    const s = this.storage(group);
    s.createSnapshot(snapshot.meta.index, snapshot.meta.confState, snapshot.data);
    if (compactTo >= s.firstIndex()) s.compact(compactTo);
  }

  close(): void {
    this.closed = true;
  }
}
