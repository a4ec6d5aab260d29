import type { KvRecord } from './types.js';

/** What an entry costs besides its key's and value's bytes (the record, the map entry, the key string). */
const ENTRY_OVERHEAD_BYTES = 160;

interface Entry {
  /** The partition's epoch when cached: an entry of an older epoch is stale. */
  epoch: number;
  /** Null: the key has no row. */
  rec: KvRecord | null;
  bytes: number;
}

/**
 * The rows of a store's partitions as clients last read them, up to a budget
 * of bytes shared by all of them (the least recently used goes first), so a
 * hot key's reads need not go to SQLite. Only the partition owning a row
 * writes it, and it drops the row's entry as it does; a partition that cannot
 * vouch for its entries any more (a rolled-back transaction, a new
 * generation) raises its epoch, which makes all of them stale at once.
 * Records are kept as given: callers copy.
 */
export class KvRowCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private nextScope = 0;

  constructor(readonly budgetBytes: number) {}

  /** A prefix of its own for one partition's keys. */
  scope(): string {
    return `${(this.nextScope++).toString(36)}\u0000`;
  }

  /** The cached row of `key` (null: no row), or undefined when not cached at `epoch`. */
  get(key: string, epoch: number): KvRecord | null | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    if (e.epoch !== epoch) {
      this.bytes -= e.bytes;
      return undefined;
    }
    // Most recently used last: eviction takes from the front.
    this.entries.set(key, e);
    return e.rec;
  }

  /** Caches `rec` (null: no row) as `key`'s row at `epoch`. */
  set(key: string, epoch: number, rec: KvRecord | null): void {
    if (this.budgetBytes === 0) return;
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.entries.delete(key);
      this.bytes -= old.bytes;
    }
    const bytes = key.length + (rec === null ? 0 : rec.value.byteLength + rec.key.byteLength) + ENTRY_OVERHEAD_BYTES;
    if (bytes > this.budgetBytes) return;
    this.entries.set(key, { epoch, rec, bytes });
    this.bytes += bytes;
    while (this.bytes > this.budgetBytes) {
      const [k, e] = this.entries.entries().next().value as [string, Entry];
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
  }

  /** Forgets `key`'s row. */
  drop(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.entries.delete(key);
    this.bytes -= e.bytes;
  }

  /** Entries and their bytes (stale ones included until met). */
  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }
}
