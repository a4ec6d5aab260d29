import type {
  GroupId,
  GroupWrite,
  HardState,
  LogIndex,
  LogStats,
  NodeStore,
  RaftLogReader,
  Snapshot,
} from '@cohort/core';
import { StorageError } from '@cohort/core';
import type { MemoryNodeStore } from '@cohort/storage';
import type { Scheduler } from '../scheduler.js';

/** What a {@link SimDisk} reports as writes reach the disk. */
export interface DiskObserver {
  /** Everything written so far is durable; `hardState` is the group's hard state on disk. */
  onDurable(group: GroupId, hardState: HardState): void;
  /** A snapshot the application took is durable and the log is compacted up to `compactTo`. */
  onCompacted(group: GroupId, compactTo: LogIndex): void;
  /** A read met a corrupt entry (its checksum failed); the store threw `err` instead of serving it. */
  onCorruption(err: StorageError): void;
}

/**
 * One process's view of a simulated disk: a {@link NodeStore} over storage's
 * {@link MemoryNodeStore} (in `autoSync: false` mode) where each write takes
 * `latency()` simulated milliseconds. A write is visible to reads at once and
 * durable when it completes (in order); a crash in between loses it, so a
 * crash can fall in the middle of a host's Ready round. The machines' applies
 * stay volatile while the plain log appends after them become durable (as the
 * node's writer may hold them), until a snapshot or a compaction after them
 * makes them durable first. After {@link crash},
 * no write of this process ever completes: a new process opens a new SimDisk
 * over the same store.
 */
export class SimDisk implements NodeStore {
  /** A write returns at once and completes later, as the node's writer thread does: the host takes the same path. */
  readonly writesOffThread = true;
  private dead = false;
  /** Writes started and not yet durable. */
  private inFlight = 0;
  /** When the last write started completes (writes complete in order). */
  private lastDone = 0;

  constructor(
    readonly store: MemoryNodeStore,
    private readonly scheduler: Scheduler,
    private readonly latency: () => number,
    private readonly observer: DiskObserver,
  ) {}

  /** Whether a write is under way (a crash now lands mid-round). */
  get busy(): boolean {
    return this.inFlight > 0;
  }

  group(group: GroupId): RaftLogReader {
    const reader = this.store.group(group);
    const observer = this.observer;
    return {
      initialState: () => reader.initialState(),
      entries(lo: LogIndex, hi: LogIndex, maxBytes: number) {
        try {
          return reader.entries(lo, hi, maxBytes);
        } catch (err) {
          if (err instanceof StorageError) observer.onCorruption(err);
          throw err;
        }
      },
      term: (i) => reader.term(i),
      firstIndex: () => reader.firstIndex(),
      lastIndex: () => reader.lastIndex(),
      snapshot: () => reader.snapshot(),
    };
  }

  write(batch: GroupWrite[]): Promise<void> {
    return this.io(() => this.store.writeSync(batch, { sync: false }), (batch[0]?.group ?? '') as GroupId);
  }

  saveSnapshot(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): Promise<void> {
    return this.io(
      () => this.store.saveSnapshotSync(group, snapshot, compactTo),
      group,
      () => this.observer.onCompacted(group, compactTo),
    );
  }

  stats(group: GroupId): LogStats {
    return this.store.stats(group);
  }

  admitProposal(group: GroupId, bytes: number): void {
    this.store.admitProposal(group, bytes);
  }

  close(): void {}

  /**
   * The process died: writes in flight never complete, and the store loses
   * what was not synced; with `tornLastWrite` the last durable log write is
   * torn too (its last entry fails its checksum from now on).
   */
  crash(tornLastWrite = false): void {
    this.dead = true;
    this.store.crash({ tornLastWrite });
  }

  private io(write: () => void, group: GroupId, done?: () => void): Promise<void> {
    if (this.dead) return new Promise<void>(() => {});
    try {
      write();
    } catch (err) {
      return Promise.reject(err);
    }
    this.inFlight++;
    this.lastDone = Math.max(this.lastDone, this.scheduler.now() + this.latency());
    return new Promise<void>((resolve) => {
      this.scheduler.at(this.lastDone, () => {
        if (this.dead) return;
        this.inFlight--;
        // As the node's writer may: applies stay volatile (a crash loses them) while plain appends after
        // them become durable, until a write that keeps its place (a snapshot, a compaction) follows them.
        this.store.sync({ holdApplies: true });
        this.observer.onDurable(group, this.store.group(group).initialState().hardState);
        done?.();
        resolve();
      });
    });
  }
}
