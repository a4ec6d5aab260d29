import { type CarvedHolder, holdsCarved, slabOf, slabStale, unpinnedRecord } from './byte-slabs.js';
import type { KvRecord } from './types.js';

/**
 * What an entry costs besides its key's and value's bytes: the entry, its
 * slot in the map, the key string, the record and its two byte arrays with
 * their buffers. Measured with rows of 100-byte values read through a store:
 * 730-740 bytes of heap and external memory a row, 126 of them its bytes.
 */
export const ENTRY_OVERHEAD_BYTES = 600;

/** An entry, and its place in the recency list. */
interface Entry {
  /** Its partition's keys, and its key among them. */
  scope: KvRowCacheScope;
  key: string;
  /** The partition's epoch when cached: an entry of an older epoch is stale. */
  epoch: number;
  /** Null: the key has no row. */
  rec: KvRecord | null;
  bytes: number;
  /** Toward the least recently used. */
  older: Entry | undefined;
  /** Toward the most recently used. */
  newer: Entry | undefined;
}

/**
 * Budget bytes per key the admission filter remembers between two resets:
 * about as many keys as the budget holds rows (rounded up to a power of two).
 */
const BYTES_PER_REMEMBERED_KEY = 512;

/** Bits of the admission filter per key it remembers: with three bits a key, under 0.5% false positives. */
const FILTER_BITS_PER_KEY = 16;

/** What a cache has done since it was made (running totals). */
export interface KvRowCacheStats {
  /** Reads answered from the cache (clients', and a write's of the row it replaces). */
  hits: number;
  /** Client reads that missed, their rows read from the file ({@link KvRowCache.admit}). */
  misses: number;
  /** Of those, rows cached (a miss of a key that had missed or been written recently). */
  admitted: number;
  /** Rows writes cached ({@link KvRowCache.offer}): a cached key's new row, or a key met recently. */
  written: number;
  /** Rows in the cache now (stale ones included until met), and their bytes. */
  entries: number;
  bytes: number;
}

/**
 * One partition's keys in a {@link KvRowCache} ({@link KvRowCache.scope}): a map of its own, so a key is
 * looked up as the partition holds it (a row key string whose hash V8 keeps once worked out), not as a
 * string made for the lookup (a partition prefix and the key, which V8 copied into one flat string and
 * hashed again on every read and write: 3% of a leader's event loop under pipelined `SET`s).
 */
export class KvRowCacheScope {
  /** @internal The scope's cached keys. */
  readonly rows = new Map<string, Entry>();

  /** @internal Mixed into its keys' hashes for the admission filter, so equal keys of two scopes differ there. */
  readonly salt: number;

  /** @internal */
  constructor(
    /** The cache it is a scope of. */
    readonly cache: KvRowCache,
    id: number,
  ) {
    this.salt = Math.imul(id + 1, 0x9e3779b1);
  }

  /** {@link KvRowCache.get} of this scope's `key`. */
  get(key: string, epoch: number): KvRecord | null | undefined {
    return this.cache.get(this, key, epoch);
  }

  /** {@link KvRowCache.has} of this scope's `key`. */
  has(key: string, epoch: number): boolean {
    return this.cache.has(this, key, epoch);
  }

  /** {@link KvRowCache.admit} of this scope's `key`. */
  admit(key: string): boolean {
    return this.cache.admit(this, key);
  }

  /** {@link KvRowCache.offer} of this scope's `key`. */
  offer(key: string, epoch: number, rec: KvRecord | null): void {
    this.cache.offer(this, key, epoch, rec);
  }

  /** {@link KvRowCache.set} of this scope's `key`. */
  set(key: string, epoch: number, rec: KvRecord | null): void {
    this.cache.set(this, key, epoch, rec);
  }
}

/** FNV-1a over a string's UTF-16 code units, its bits then mixed (MurmurHash3's finalizer), as a 32-bit integer. */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

function bitSet(bits: Int32Array, i: number): boolean {
  return ((bits[i >>> 5] ?? 0) & (1 << (i & 31))) !== 0;
}

function setBit(bits: Int32Array, i: number): void {
  bits[i >>> 5] = (bits[i >>> 5] ?? 0) | (1 << (i & 31));
}

/**
 * The rows of a store's partitions as last read or written, up to a budget
 * of bytes shared by all of them (the least recently used goes first), so a
 * hot key's reads need not go to SQLite. Only the partition owning a row
 * writes it, and it hands the cache the row it wrote ({@link offer}); a partition that cannot
 * vouch for its entries any more (a rolled-back transaction, a new
 * generation) raises its epoch, which makes all of them stale at once.
 * Records are kept as given (callers copy), or as equal copies of their own once
 * their bytes' slab is stale (see byte-slabs.ts).
 *
 * Recency is a linked list through the entries, not the `Map`'s insertion
 * order: evicting from the front of a `Map` that is deleted from in order
 * leaves the deleted slots for its iterator to walk over, and with 57,000
 * rows and keys read at random from a million, a read that missed took 15-25
 * µs to evict one (under 1 µs this way).
 *
 * A row read from the file is cached on its key's second miss
 * ({@link admit}): a Bloom filter (three bits a key, TinyLFU's "doorkeeper")
 * remembers the keys that missed, and is emptied once it took in about as
 * many keys as the budget holds rows. Over a working set that fits, every
 * key is cached from its second read on; over a key space read at random that
 * does not fit, few are (a key must come back within about as many misses as
 * the cache holds rows, where it would have been evicted unread), so misses
 * do not fill the cache with rows that only the collector sees again. A table
 * of one hash a slot, overwritten by the next key to miss there, was tried
 * first: two keys of a working set sharing a slot took it from each other on
 * every miss, and neither was ever cached (a quarter of 10,000 keys with 32,768
 * slots).
 */
export class KvRowCache implements CarvedHolder {
  /** Entries of all scopes. */
  private count = 0;
  private bytes = 0;
  private nextScope = 0;
  /** The least recently used entry. */
  private oldest: Entry | undefined;
  /** The most recently used entry. */
  private newest: Entry | undefined;

  /** The admission filter's bits (none without a budget). */
  private readonly seen: Int32Array;
  /** Bit positions are hashes masked by this (a power of two, less one). */
  private readonly seenMask: number;
  /** Keys the filter took in since it was last emptied, and how many it takes before it is. */
  private seenKeys = 0;
  private readonly seenLimit: number;
  private readonly totals = { hits: 0, misses: 0, admitted: 0, written: 0 };
  /**
   * Entries given a row carved from a slab (a write's, see byte-slabs.ts), in the order given, each with its
   * slab's number: once that slab is stale, an entry still holding that row gets a copy of its own, so the
   * cache keeps at most `SLABS_KEPT` slabs alive, however long it keeps rows. An entry given another row is
   * queued again; a key rewritten before its slab goes stale (a hot key's) is never copied.
   */
  private carved: (Entry | undefined)[] = [];
  private carvedSlabs: number[] = [];
  private carvedHead = 0;

  constructor(readonly budgetBytes: number) {
    let keys = 1024;
    while (keys < budgetBytes / BYTES_PER_REMEMBERED_KEY && keys < 1 << 22) keys *= 2;
    this.seenLimit = keys;
    const bits = budgetBytes > 0 ? keys * FILTER_BITS_PER_KEY : 0;
    this.seen = new Int32Array(bits / 32);
    this.seenMask = bits - 1;
    if (budgetBytes > 0) holdsCarved(this);
  }

  /** A scope of its own for one partition's keys. */
  scope(): KvRowCacheScope {
    return new KvRowCacheScope(this, this.nextScope++);
  }

  /** The cached row of `key` of `scope` (null: no row), or undefined when not cached at `epoch`. */
  get(scope: KvRowCacheScope, key: string, epoch: number): KvRecord | null | undefined {
    const e = scope.rows.get(key);
    if (e === undefined) return undefined;
    if (e.epoch !== epoch) {
      this.remove(e);
      return undefined;
    }
    if (e !== this.newest) {
      this.unlink(e);
      this.append(e);
    }
    this.totals.hits++;
    return e.rec;
  }

  /** Whether `key` of `scope` is cached at `epoch` (counts nothing, moves nothing). */
  has(scope: KvRowCacheScope, key: string, epoch: number): boolean {
    return scope.rows.get(key)?.epoch === epoch;
  }

  /**
   * Counts a miss of `key` (its row read from the file) and says whether to
   * cache the row ({@link set}): true if the admission filter holds the key
   * (it missed recently, or a false positive), else the filter takes it in.
   */
  admit(scope: KvRowCacheScope, key: string): boolean {
    const t = this.totals;
    t.misses++;
    if (!this.remembered(scope, key)) return false;
    t.admitted++;
    return true;
  }

  /**
   * A write of `key` left `rec` (null: no row) as its row at `epoch`: a
   * cached key's row is replaced, and a key the admission filter holds (read
   * or written recently) is cached; any other is only remembered. So a key
   * written again and again (every replica applies every write, reading the
   * row it replaces first) is read from memory from its third write on, and a
   * key a client reads keeps its row across writes instead of going back to
   * the file after each. The row must be what the file will hold once the
   * write commits: reads meanwhile are the caller's (its overlay), and a write
   * that rolls back must make the entry stale (a new epoch).
   */
  offer(scope: KvRowCacheScope, key: string, epoch: number, rec: KvRecord | null): void {
    const e = scope.rows.get(key);
    if (e === undefined && !this.remembered(scope, key)) return;
    if (this.keep(scope, key, e, epoch, rec)) this.totals.written++;
  }

  /** Whether the admission filter holds `key` of `scope`; if not, it takes the key in (emptied first when full). */
  private remembered(scope: KvRowCacheScope, key: string): boolean {
    const seen = this.seen;
    if (seen.length === 0) return false;
    const h = hashKey(key) ^ scope.salt;
    // Three bit positions from one 32-bit hash (double hashing): the step is its halves swapped, so its low bits
    // come from the hash's high ones (a multiple of it would have low bits that follow from the first position's);
    // odd, so the positions differ.
    const step = (h >>> 16) | (h << 16) | 1;
    const mask = this.seenMask;
    const a = h & mask;
    const b = (h + step) & mask;
    const c = (h + 2 * step) & mask;
    if (bitSet(seen, a) && bitSet(seen, b) && bitSet(seen, c)) return true;
    if (this.seenKeys >= this.seenLimit) {
      seen.fill(0);
      this.seenKeys = 0;
    }
    setBit(seen, a);
    setBit(seen, b);
    setBit(seen, c);
    this.seenKeys++;
    return false;
  }

  /** Caches `rec` (null: no row) as the row of `key` of `scope` at `epoch`. */
  set(scope: KvRowCacheScope, key: string, epoch: number, rec: KvRecord | null): void {
    this.keep(scope, key, scope.rows.get(key), epoch, rec);
  }

  /** {@link set}, with `key`'s entry already looked up (`e`; undefined: none); false when the row alone exceeds the budget. */
  private keep(
    scope: KvRowCacheScope,
    key: string,
    e: Entry | undefined,
    epoch: number,
    rec: KvRecord | null,
  ): boolean {
    const bytes = key.length + (rec === null ? 0 : rec.value.byteLength + rec.key.byteLength) + ENTRY_OVERHEAD_BYTES;
    if (bytes > this.budgetBytes) {
      if (e !== undefined) this.remove(e);
      return false;
    }
    if (e === undefined) {
      e = { scope, key, epoch, rec, bytes, older: undefined, newer: undefined };
      scope.rows.set(key, e);
      this.count++;
      this.append(e);
    } else {
      // A key's new row takes its entry over (a write of a cached key): no new object to outlive the young generation.
      this.bytes -= e.bytes;
      e.epoch = epoch;
      e.rec = rec;
      e.bytes = bytes;
      if (e !== this.newest) {
        this.unlink(e);
        this.append(e);
      }
    }
    this.bytes += bytes;
    while (this.bytes > this.budgetBytes && this.oldest !== undefined) this.remove(this.oldest);
    const slab = rec === null ? 0 : slabOf(rec.key);
    if (slab !== 0) {
      this.carved.push(e);
      this.carvedSlabs.push(slab);
    }
    return true;
  }

  /** Copies out the rows of entries whose slab went stale ({@link carved}). */
  unpinStale(): void {
    const q = this.carved;
    const slabs = this.carvedSlabs;
    let i = this.carvedHead;
    for (; i < q.length && slabStale(slabs[i] as number); i++) {
      const e = q[i] as Entry;
      q[i] = undefined;
      const rec = e.rec;
      if (rec === null || e.scope.rows.get(e.key) !== e) continue;
      // Still holding a row of that slab, not one given since (queued again).
      const slab = slabOf(rec.key);
      if (slab !== 0 && slab <= (slabs[i] as number)) e.rec = unpinnedRecord(rec);
    }
    this.carvedHead = i;
    if (i > 4096 && i * 2 > q.length) {
      this.carved = q.slice(i);
      this.carvedSlabs = slabs.slice(i);
      this.carvedHead = 0;
    }
  }

  /** Hits, misses, admissions and rows writes cached so far, and what the cache holds. */
  stats(): KvRowCacheStats {
    return { ...this.totals, entries: this.count, bytes: this.bytes };
  }

  private remove(e: Entry): void {
    e.scope.rows.delete(e.key);
    this.count--;
    this.unlink(e);
    this.bytes -= e.bytes;
  }

  /** Takes `e` out of the recency list. */
  private unlink(e: Entry): void {
    if (e.older === undefined) this.oldest = e.newer;
    else e.older.newer = e.newer;
    if (e.newer === undefined) this.newest = e.older;
    else e.newer.older = e.older;
    e.older = undefined;
    e.newer = undefined;
  }

  /** Puts `e` at the most recently used end of the list. */
  private append(e: Entry): void {
    e.older = this.newest;
    e.newer = undefined;
    if (this.newest === undefined) this.oldest = e;
    else this.newest.newer = e;
    this.newest = e;
  }
}
