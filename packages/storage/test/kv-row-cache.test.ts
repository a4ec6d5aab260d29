import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyConfState } from '@cohort/core';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ENTRY_OVERHEAD_BYTES, KvRowCache, type KvRowCacheScope, hashKey } from '../src/sqlite-kv-row-cache.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import type { KvRecord } from '../src/types.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);
const rec = (key: string, value: string): KvRecord => ({
  key: bytes(key),
  value: bytes(value),
  createRevision: 1,
  modifyRevision: 1,
  version: 1,
});

describe('KvRowCache', () => {
  it('keeps the most recently used rows within its budget of bytes', () => {
    // Three 1-byte keys with 1-byte values: 3 bytes each besides the overhead (a row-less entry: 1).
    const cache = new KvRowCache(3 * (ENTRY_OVERHEAD_BYTES + 3)).scope();
    cache.set('a', 0, rec('a', '1'));
    cache.set('b', 0, rec('b', '2'));
    cache.set('c', 0, null);
    expect(cache.cache.stats()).toMatchObject({ entries: 3, bytes: 3 * (ENTRY_OVERHEAD_BYTES + 3) - 2 });
    expect(cache.get('a', 0)?.value).toEqual(bytes('1'));
    cache.set('d', 0, rec('d', '4'));
    // 'b' was the least recently used ('a' was read since).
    expect(cache.get('b', 0)).toBeUndefined();
    expect(cache.get('a', 0)).not.toBeUndefined();
    expect(cache.get('c', 0)).toBeNull();
    expect(cache.get('d', 0)?.value).toEqual(bytes('4'));
    expect(cache.cache.stats().entries).toBe(3);
  });

  it('treats entries cached under another epoch as absent and forgets them', () => {
    const cache = new KvRowCache(1 << 20).scope();
    cache.set('a', 1, rec('a', '1'));
    expect(cache.get('a', 2)).toBeUndefined();
    expect(cache.cache.stats().entries).toBe(0);
    expect(cache.get('a', 1)).toBeUndefined();
  });

  it('keeps nothing with a budget of 0, nor a row larger than its budget', () => {
    const none = new KvRowCache(0).scope();
    none.set('a', 0, rec('a', '1'));
    expect(none.get('a', 0)).toBeUndefined();
    const small = new KvRowCache(200).scope();
    small.set('big', 0, rec('big', 'x'.repeat(100)));
    expect(small.get('big', 0)).toBeUndefined();
    expect(small.cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });

  it("evicts exactly as a least-recently-used list of the same budget does, for any gets, sets and writes' offers", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            op: fc.constantFrom('get', 'get', 'set', 'set', 'offer'),
            scope: fc.constantFrom(0, 1),
            key: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
            value: fc.nat(10),
            epoch: fc.constantFrom(0, 0, 0, 0, 0, 1),
          }),
          { maxLength: 80 },
        ),
        (ops) => {
          // Room for three entries (2 to 12 bytes each besides the overhead): most sets of a fourth key evict one.
          const budget = 3 * (ENTRY_OVERHEAD_BYTES + 15);
          const cache = new KvRowCache(budget);
          // Two partitions' scopes: the model names a key by its scope and itself.
          const scopes = [cache.scope(), cache.scope()];
          // The model: entries from least to most recently used.
          let model: { key: string; epoch: number; value: number; bytes: number }[] = [];
          // Keys a write offered while neither cached nor remembered: the admission filter holds them now.
          const met = new Set<string>();
          for (const { op, scope, key, value, epoch } of ops) {
            const part = scopes[scope] as KvRowCacheScope;
            const name = `${scope}/${key}`;
            const at = model.findIndex((m) => m.key === name);
            if (op === 'get') {
              const got = part.get(key, epoch);
              const m = model[at];
              if (m === undefined || m.epoch !== epoch) {
                expect(got).toBeUndefined();
                if (m !== undefined) model.splice(at, 1);
              } else {
                expect(got?.value.byteLength).toBe(m.value);
                model.splice(at, 1);
                model.push(m);
              }
            } else {
              const row = { ...rec(key, ''), value: new Uint8Array(value) };
              if (op === 'set') part.set(key, epoch, row);
              else part.offer(key, epoch, row);
              // An offer of a key neither cached (stale entries included) nor met before only remembers it.
              if (op === 'offer' && at === -1 && !met.has(name)) {
                met.add(name);
              } else {
                if (at >= 0) model.splice(at, 1);
                model.push({ key: name, epoch, value, bytes: key.length + value + key.length + ENTRY_OVERHEAD_BYTES });
                while (model.reduce((n, m) => n + m.bytes, 0) > budget) model = model.slice(1);
              }
            }
            expect(cache.stats()).toMatchObject({
              entries: model.length,
              bytes: model.reduce((n, m) => n + m.bytes, 0),
            });
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('takes in the row a write leaves for a key it holds or met recently, and only remembers any other', () => {
    const cache = new KvRowCache(1 << 20).scope();
    cache.offer('a', 0, rec('a', '1'));
    expect(cache.get('a', 0)).toBeUndefined();
    cache.offer('a', 0, rec('a', '2'));
    expect(text(cache.get('a', 0)?.value)).toBe('2');
    cache.offer('a', 0, null);
    expect(cache.get('a', 0)).toBeNull();
    // A key that missed a read is taken in at its first write.
    expect(cache.admit('b')).toBe(false);
    cache.offer('b', 1, rec('b', '1'));
    expect(text(cache.get('b', 1)?.value)).toBe('1');
    expect(cache.cache.stats()).toMatchObject({ hits: 3, misses: 1, admitted: 0, written: 3, entries: 2 });
    // A cached key's new row replaces it even after the filter was emptied.
    for (let i = 0; i < 4_096; i++) cache.admit(`other ${i}`);
    cache.offer('a', 0, rec('a', '3'));
    expect(text(cache.get('a', 0)?.value)).toBe('3');
    // A row larger than the whole budget is not kept (nor counted): the key's old row goes with it.
    const { written } = cache.cache.stats();
    cache.offer('a', 0, { ...rec('a', '4'), value: new Uint8Array(2 << 20) });
    expect(cache.get('a', 0)).toBeUndefined();
    expect(cache.cache.stats().written).toBe(written);
    const none = new KvRowCache(0).scope();
    none.offer('a', 0, rec('a', '1'));
    none.offer('a', 0, rec('a', '1'));
    expect(none.cache.stats()).toMatchObject({ written: 0, entries: 0 });
  });

  it('gives each partition a scope of its own: the same key in two scopes is two rows, in one budget', () => {
    const cache = new KvRowCache(2 * (ENTRY_OVERHEAD_BYTES + 3));
    const [p, q] = [cache.scope(), cache.scope()];
    p.set('a', 0, rec('a', '1'));
    expect(q.get('a', 0)).toBeUndefined();
    expect(q.has('a', 0)).toBe(false);
    q.set('a', 0, rec('a', '2'));
    expect(text(p.get('a', 0)?.value)).toBe('1');
    expect(text(q.get('a', 0)?.value)).toBe('2');
    // The least recently used row of either goes first: p's, read before q's.
    p.set('b', 0, rec('b', '3'));
    expect(p.get('a', 0)).toBeUndefined();
    expect(text(q.get('a', 0)?.value)).toBe('2');
    expect(cache.stats()).toMatchObject({ entries: 2 });
    // The admission filter tells them apart too: a miss in one scope is not one in the other.
    expect(p.admit('c')).toBe(false);
    expect(q.admit('c')).toBe(false);
    expect(p.admit('c')).toBe(true);
  });
});

describe.each(['inline', 'thread'] as const)('SqliteNodeStore (%s writer): the row cache', (writer) => {
  let dir: string;
  let n = 0;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-row-cache-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A store with a row cache of `rowCacheBytes` (1 MiB unless given). */
  const open = (file: string, rowCacheBytes = 1 << 20): SqliteNodeStore =>
    SqliteNodeStore.open(file, { writer, rowCacheBytes });
  const newFile = (): string => join(dir, `node-${n++}.db`);

  /** Changes a row's stored value behind the store's back (its checksum no longer matches). */
  function tamper(store: SqliteNodeStore, key: string): void {
    store.flush();
    store.database.prepare('UPDATE kv SET value = ? WHERE key = ?').run(Buffer.from('tampered'), Buffer.from(key));
  }

  /** Runs `fn` on `store`, then closes it. */
  function withStore(store: SqliteNodeStore, fn: (store: SqliteNodeStore) => void): void {
    try {
      fn(store);
    } finally {
      store.close();
    }
  }

  it('answers reads of a row clients read from memory; a write replaces the row; by default it keeps none', () => {
    const file = newFile();
    const first = open(file);
    first.kv('p1').put(bytes('w'), bytes('written'), { revision: 1 });
    first.kv('p1').put(bytes('r'), bytes('read'), { revision: 2 });
    first.close();
    withStore(open(file), (again) => {
      const kv = again.kv('p1');
      // A row is cached on its key's second miss: the first only remembers the key.
      expect(text(kv.get(bytes('r'))?.value)).toBe('read');
      expect(text(kv.get(bytes('w'))?.value)).toBe('written');
      expect(again.rowCache?.stats()).toMatchObject({ hits: 0, misses: 2, admitted: 0, entries: 0 });
      expect(text(kv.get(bytes('r'))?.value)).toBe('read');
      expect(text(kv.get(bytes('w'))?.value)).toBe('written');
      expect(again.rowCache?.stats()).toMatchObject({ hits: 0, misses: 4, admitted: 2, entries: 2 });
      tamper(again, 'r');
      expect(text(kv.get(bytes('r'))?.value)).toBe('read');
      expect(again.rowCache?.stats()).toMatchObject({ hits: 1, misses: 4 });
      kv.put(bytes('w'), bytes('rewritten'), { revision: 3 });
      expect(again.rowCache?.stats()).toMatchObject({ written: 1, entries: 2 });
      tamper(again, 'w');
      // The write replaced its cached row with the one it wrote: the file is not read again.
      expect(kv.get(bytes('w'))).toMatchObject({ value: bytes('rewritten'), version: 2, modifyRevision: 3 });
    });
    // The default: no row cache, every read goes to the file.
    withStore(SqliteNodeStore.open(file, { writer }), (uncached) => {
      expect(() => uncached.kv('p1').get(bytes('r'))).toThrow(/KV row for key 72 is corrupt/);
      expect(uncached.rowCache?.stats()).toBeUndefined();
    });
  });

  it('caches no row read once; a key read again before its miss is forgotten is cached', () => {
    const file = newFile();
    withStore(open(file), (first) => {
      first.kv('p1').put(bytes('once'), bytes('1'), { revision: 1 });
      first.kv('p1').put(bytes('twice'), bytes('2'), { revision: 2 });
    });
    withStore(open(file), (store) => {
      const kv = store.kv('p1');
      expect(text(kv.get(bytes('once'))?.value)).toBe('1');
      expect(text(kv.get(bytes('twice'))?.value)).toBe('2');
      // Another key between the reads: a read of the key read just before is answered without the cache.
      expect(kv.get(bytes('absent'))).toBeUndefined();
      expect(text(kv.get(bytes('twice'))?.value)).toBe('2');
      tamper(store, 'once');
      tamper(store, 'twice');
      expect(() => kv.get(bytes('once'))).toThrow(/KV row for key 6f6e6365 is corrupt/);
      expect(text(kv.get(bytes('twice'))?.value)).toBe('2');
    });
  });

  it("keeps no row a write's transaction read", () => {
    const file = newFile();
    withStore(open(file), (first) => first.kv('p1').put(bytes('k'), bytes('v'), { revision: 1 }));
    withStore(open(file), (store) => {
      const kv = store.kv('p1');
      // A client's read remembers the key: a second would cache its row.
      expect(text(kv.get(bytes('k'))?.value)).toBe('v');
      expect(kv.get(bytes('other'))).toBeUndefined();
      // An apply reads the row it replaces inside its transaction.
      store.transaction(() => {
        expect(text(kv.get(bytes('k'))?.value)).toBe('v');
        kv.put(bytes('other'), bytes('o'), { revision: 2 });
      });
      tamper(store, 'k');
      expect(() => kv.get(bytes('k'))).toThrow(/KV row for key 6b is corrupt/);
    });
  });

  it('caches the row a write leaves for a key written or read before; the next write reads it from memory', () => {
    withStore(open(newFile()), (store) => {
      const kv = store.kv('p1');
      // A key's first write only remembers it; its second caches the row it leaves.
      kv.put(bytes('k'), bytes('1'), { revision: 1 });
      expect(store.rowCache?.stats()).toMatchObject({ written: 0, entries: 0 });
      kv.put(bytes('k'), bytes('2'), { revision: 2 });
      expect(store.rowCache?.stats()).toMatchObject({ written: 1, entries: 1 });
      tamper(store, 'k');
      // The third write reads the row it replaces (its version and create revision) from memory, not the file.
      store.transaction(() => kv.put(bytes('k'), bytes('3'), { revision: 3 }));
      expect(store.rowCache?.stats()).toMatchObject({ hits: 1, misses: 0, written: 2 });
      store.flush();
      expect(kv.get(bytes('k'))).toMatchObject({ value: bytes('3'), createRevision: 1, version: 3 });
      // A delete leaves no row, cached as such.
      expect(kv.delete(bytes('k'))).toBe(true);
      store.flush();
      expect(kv.get(bytes('k'))).toBeUndefined();
      // Hits: the get after the third write, the delete's own read of the row, and the get after it.
      expect(store.rowCache?.stats()).toMatchObject({ hits: 4, misses: 0, written: 3, entries: 1 });
      // Without a cache, the same writes read the file.
      const file = newFile();
      withStore(SqliteNodeStore.open(file, { writer }), (plain) => {
        plain.kv('p1').put(bytes('k'), bytes('1'), { revision: 1 });
        plain.kv('p1').put(bytes('k'), bytes('2'), { revision: 2 });
        tamper(plain, 'k');
        expect(() => plain.kv('p1').put(bytes('k'), bytes('3'), { revision: 3 })).toThrow(
          /KV row for key 6b is corrupt/,
        );
      });
    });
  });

  it('caches the row a put over whatever the key holds leaves once the writer reports it, unless a later write of the key is pending', () => {
    withStore(open(newFile()), (store) => {
      const kv = store.kv('p1');
      const now = 1000;
      // Nothing in memory knows the key: puts over whatever it holds, no row read. The first report only
      // remembers the key; the second caches the row.
      kv.put(bytes('k'), bytes('1'), { revision: 1, now });
      store.flush();
      expect(store.rowCache?.stats()).toMatchObject({ written: 0, entries: 0 });
      kv.put(bytes('k'), bytes('2'), { revision: 2, now });
      store.flush();
      expect(store.rowCache?.stats()).toMatchObject({ written: 1, entries: 1, misses: 0 });
      tamper(store, 'k');
      // The next write is a plain one, reading the row it replaces from memory.
      const third = kv.put(bytes('k'), bytes('3'), { revision: 3, now });
      expect(third).toMatchObject({ createRevision: 1, version: 3 });
      expect(store.rowCache?.stats()).toMatchObject({ hits: 1, misses: 0, written: 2 });
      store.flush();
      expect(kv.get(bytes('k'))).toMatchObject({ value: bytes('3'), createRevision: 1, version: 3 });
      // A key the cache remembers (a read missed it), put over and rewritten before the writer reported the put
      // over it: the report offers nothing (the file is to hold the later row), the later write's row stays cached.
      expect(kv.get(bytes('i'))).toBeUndefined();
      expect(kv.get(bytes('x'))).toBeUndefined();
      kv.put(bytes('i'), bytes('over'), { revision: 4, now });
      kv.put(bytes('i'), bytes('plain'), { revision: 5 });
      store.flush();
      tamper(store, 'i');
      expect(kv.get(bytes('i'))).toMatchObject({ value: bytes('plain'), createRevision: 4, version: 2 });
    });
  });

  it('refuses a row cache size that is not a whole number of bytes', () => {
    expect(() => open(newFile(), -1)).toThrow(/rowCacheBytes must be a whole number of bytes/);
    expect(() => open(newFile(), 1.5)).toThrow(/rowCacheBytes/);
  });

  it('serves no row of a rolled-back transaction, nor of the generation an install replaced', () => {
    withStore(open(newFile()), (store) => {
      const kv = store.kv('p1');
      kv.put(bytes('a'), bytes('1'), { revision: 1 });
      store.flush();
      // Read twice (another key between): cached.
      expect(text(kv.get(bytes('a'))?.value)).toBe('1');
      expect(kv.get(bytes('b'))).toBeUndefined();
      expect(text(kv.get(bytes('a'))?.value)).toBe('1');
      expect(store.rowCache?.stats()?.entries).toBe(1);
      expect(() =>
        store.transaction(() => {
          kv.put(bytes('a'), bytes('2'), { revision: 2 });
          kv.delete(bytes('a'));
          kv.put(bytes('b'), bytes('new'), { revision: 3 });
          throw new Error('rolled back');
        }),
      ).toThrow('rolled back');
      expect(text(kv.get(bytes('a'))?.value)).toBe('1');
      expect(kv.get(bytes('b'))).toBeUndefined();
      const installer = kv.beginInstall();
      installer.put({ key: bytes('c'), value: bytes('3'), createRevision: 5, modifyRevision: 5, version: 1 });
      installer.commit({ index: 9, term: 1, confState: { ...emptyConfState(), voters: ['n1'] } });
      expect(kv.get(bytes('a'))).toBeUndefined();
      expect(text(kv.get(bytes('c'))?.value)).toBe('3');
    });
  });

  it('reads what a model of the writes holds, through puts, deletes, rollbacks and evictions', () => {
    // A budget of a few rows: entries are evicted all the time.
    const model = new Map<string, { value: string; version: number }>();
    let rev = 0;
    withStore(open(newFile(), 4 * (ENTRY_OVERHEAD_BYTES + 40)), (store) => {
      fc.assert(
        fc.property(
          fc.array(
            fc.record({
              op: fc.constantFrom('put', 'put', 'delete', 'get', 'rollback', 'flush'),
              key: fc.integer({ min: 0, max: 11 }),
              value: fc.string({ maxLength: 40 }),
            }),
            { maxLength: 60 },
          ),
          (ops) => {
            const kv = store.kv('prop');
            for (const { op, key, value } of ops) {
              const name = `k${key}`;
              const k = bytes(name);
              if (op === 'put') {
                kv.put(k, bytes(value), { revision: ++rev });
                model.set(name, { value, version: (model.get(name)?.version ?? 0) + 1 });
              } else if (op === 'delete') {
                kv.delete(k);
                model.delete(name);
              } else if (op === 'rollback') {
                try {
                  store.transaction(() => {
                    kv.put(k, bytes(`lost ${value}`), { revision: ++rev });
                    throw new Error('rolled back');
                  });
                } catch {}
              } else if (op === 'flush') {
                // The writer commits: reads go past the pending writes, to the cache and the file.
                store.flush();
              }
              const read = kv.get(k);
              const want = model.get(name);
              expect(read && { value: text(read.value), version: read.version }).toEqual(want);
            }
          },
        ),
        { numRuns: 40 },
      );
    });
  });
});

describe('KvRowCache: admission', () => {
  it('admits a key on its second miss, and forgets the keys that missed once it took in as many as the cache holds rows', () => {
    // 1 MiB: the filter takes in 2,048 keys before it is emptied.
    const cache = new KvRowCache(1 << 20).scope();
    expect(cache.admit('a')).toBe(false);
    expect(cache.admit('b')).toBe(false);
    expect(cache.admit('a')).toBe(true);
    expect(cache.admit('a')).toBe(true);
    expect(cache.cache.stats()).toMatchObject({ hits: 0, misses: 4, admitted: 2 });
    // 2,000 more keys: 'b' is still remembered.
    for (let i = 0; i < 2_000; i++) cache.admit(`other ${i}`);
    expect(cache.admit('b')).toBe(true);
    // Past 2,048 the filter starts over: 'a' and 'b' missed before it did.
    for (let i = 2_000; i < 2_100; i++) cache.admit(`other ${i}`);
    expect(cache.admit('a')).toBe(false);
    expect(cache.admit('b')).toBe(false);
    expect(cache.admit('a')).toBe(true);
    expect(new KvRowCache(0).scope().admit('a')).toBe(false);
    expect(new KvRowCache(0).scope().admit('a')).toBe(false);
  });

  /** A seeded generator of whole numbers below `n` (mulberry32), uniform unlike fast-check's samples. */
  function uniform(seed: number, n: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
    };
  }

  /** Reads `reads` keys drawn by `next` through `cache` as a store does: on a miss, cached if admitted. */
  function drive(cache: KvRowCacheScope, reads: number, next: () => string): void {
    for (let i = 0; i < reads; i++) {
      const key = next();
      if (cache.get(key, 0) === undefined && cache.admit(key)) cache.set(key, 0, rec(key, 'v'));
    }
  }

  it('caches a working set that fits: nearly every read hits', () => {
    // 2 MiB holds about 3,400 of these rows; 2,000 keys read at random.
    const cache = new KvRowCache(2 << 20).scope();
    const next = uniform(7, 2_000);
    drive(cache, 40_000, () => `key:${next()}`);
    const s = cache.cache.stats();
    expect(s.entries).toBeGreaterThan(1_900);
    expect(s.hits / 40_000).toBeGreaterThan(0.85);
  });

  it("caches every key of the node's benchmark working set: 10,000 keys with the node's 16 MiB", () => {
    const cache = new KvRowCache(16 << 20).scope();
    const next = uniform(3, 10_000);
    // 20 reads a key on average: every key is read at least twice.
    drive(cache, 200_000, () => `key:${String(next()).padStart(8, '0')}`);
    expect(cache.cache.stats().entries).toBe(10_000);
  });

  it('keeps a key space read at random that does not fit mostly out: few misses cache a row', () => {
    // About 1,700 rows fit; 1,000,000 keys read at random: a plain LRU cache would cache every miss.
    const cache = new KvRowCache(1 << 20).scope();
    const next = uniform(11, 1_000_000);
    drive(cache, 50_000, () => `key:${next()}`);
    const s = cache.cache.stats();
    expect(s.misses).toBeGreaterThan(49_000);
    expect(s.admitted / s.misses).toBeLessThan(0.01);
  });

  it('spreads keys that differ in one character over the table', () => {
    // Sequential keys over 4,096 slots: about as many slots taken as by keys hashed at random (885).
    const slots = new Set<number>();
    for (let i = 0; i < 1000; i++) slots.add(hashKey(`key:${String(i).padStart(8, '0')}`) & 4095);
    expect(slots.size).toBeGreaterThan(850);
  });
});
