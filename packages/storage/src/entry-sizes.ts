import type { LogIndex } from '@cohort/core';
import { StorageError } from '@cohort/core/errors';

/** A buffer that values of {@link EntrySizes} share, and how much of it any of them has written. */
interface Shared {
  /** Running totals: `sums[k]` is the bytes of the buffer's first `k` entries (`sums[0]` is 0). */
  sums: Float64Array;
  /** Positions written so far: a value whose last entry is the last written may append in place. */
  used: number;
}

/** A buffer's first size, in entries. */
const MIN_CAPACITY = 64;

/**
 * The data sizes of a log's entries `(base, last]` as running totals, so that
 * the bytes of any run of them are two reads: what a log's byte counters need
 * when it is compacted, cut or snapshotted, without reading its rows back.
 *
 * A value never changes: each change returns another, which shares its buffer
 * with the one before wherever both can see the same totals (a Go slice's
 * rule: an append writes in place only past the last total any value wrote;
 * otherwise, as after a cut, it copies its own totals to a new buffer first).
 * So a working copy of a group's state can be dropped without undoing it.
 */
export class EntrySizes {
  private constructor(
    private readonly shared: Shared,
    /** Position in `shared.sums` of the total at `base`. */
    private readonly at: number,
    /** The entries held are those after `base`, through `last`. */
    readonly base: LogIndex,
    readonly last: LogIndex,
  ) {}

  /** No entries, the next one at `base + 1`. */
  static empty(base: LogIndex): EntrySizes {
    return new EntrySizes({ sums: new Float64Array(MIN_CAPACITY), used: 1 }, 0, base, base);
  }

  /** Entries `base + 1` on, of these sizes in order. */
  static of(base: LogIndex, sizes: Iterable<number>): EntrySizes {
    let s = EntrySizes.empty(base);
    for (const n of sizes) s = s.append(n);
    return s;
  }

  /** How many entries it holds. */
  get count(): number {
    return this.last - this.base;
  }

  /** Bytes of entries `lo` through `hi`, all held; 0 when `lo > hi`. */
  sum(lo: LogIndex, hi: LogIndex): number {
    if (lo > hi) return 0;
    if (lo <= this.base || hi > this.last) {
      throw new StorageError(`entry sizes: ${lo}..${hi} is outside the ${this.base + 1}..${this.last} held`);
    }
    const sums = this.shared.sums;
    return (sums[this.at + hi - this.base] as number) - (sums[this.at + lo - 1 - this.base] as number);
  }

  /** One more entry, of `bytes`, at `last + 1`. */
  append(bytes: number): EntrySizes {
    let shared = this.shared;
    let at = this.at;
    const end = at + this.count;
    if (end + 1 !== shared.used || end + 1 >= shared.sums.length) {
      // Another value wrote past this one's end, or the buffer is full: a buffer of this value's own.
      const sums = new Float64Array(Math.max(MIN_CAPACITY, 2 * (this.count + 1)));
      sums.set(shared.sums.subarray(at, end + 1));
      shared = { sums, used: this.count + 1 };
      at = 0;
    }
    const pos = at + this.count + 1;
    shared.sums[pos] = (shared.sums[pos - 1] as number) + bytes;
    shared.used = pos + 1;
    return new EntrySizes(shared, at, this.base, this.last + 1);
  }

  /** Without the entries from `first` on (a conflicting append cuts the log there). */
  cut(first: LogIndex): EntrySizes {
    if (first <= this.base) {
      throw new StorageError(`entry sizes: cannot cut at ${first}, at or before the base ${this.base}`);
    }
    if (first > this.last) return this;
    return new EntrySizes(this.shared, this.at, this.base, first - 1);
  }

  /** Without the entries through `index` (their rows were deleted). */
  dropTo(index: LogIndex): EntrySizes {
    if (index <= this.base) return this;
    if (index > this.last) {
      throw new StorageError(`entry sizes: cannot drop to ${index}, past the last entry ${this.last}`);
    }
    return new EntrySizes(this.shared, this.at + index - this.base, index, this.last);
  }
}
