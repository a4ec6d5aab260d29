import type { LogIndex } from '@cohort/core';

/**
 * Append messages sent to one follower and not yet acknowledged, bounded in
 * count and bytes (flow control: a slow follower cannot make the leader
 * buffer without limit).
 */
export class Inflights {
  private readonly items: { index: LogIndex; bytes: number }[] = [];
  private bytes = 0;

  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number,
  ) {}

  /** Records an append whose last entry is `index`. */
  add(index: LogIndex, bytes: number): void {
    this.items.push({ index, bytes });
    this.bytes += bytes;
  }

  /** Frees every append whose last entry is at or below `index` (the follower acknowledged it). */
  freeLE(index: LogIndex): void {
    let n = 0;
    while (n < this.items.length && (this.items[n]?.index ?? Number.POSITIVE_INFINITY) <= index) {
      this.bytes -= this.items[n]?.bytes ?? 0;
      n++;
    }
    if (n > 0) this.items.splice(0, n);
  }

  /** True once the count or byte bound is reached: no more appends until some are acknowledged. */
  full(): boolean {
    return this.items.length >= this.maxCount || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  /** Bytes of entries in the appends in flight. */
  bytesInFlight(): number {
    return this.bytes;
  }

  count(): number {
    return this.items.length;
  }

  reset(): void {
    this.items.length = 0;
    this.bytes = 0;
  }
}
