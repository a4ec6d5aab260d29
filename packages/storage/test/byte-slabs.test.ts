import { describe, expect, it } from 'vitest';
import {
  type CarvedHolder,
  SLABS_KEPT,
  SLABS_PER_CHECK,
  SLAB_BYTES,
  carvedKeyValue,
  holdsCarved,
  slabOf,
  slabState,
  unpinnedRecord,
} from '../src/byte-slabs.js';
import { type OverOwner, OverPut } from '../src/sqlite-kv-over.js';
import { KvRowCache } from '../src/sqlite-kv-row-cache.js';
import type { KvRecord } from '../src/types.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Carves copies until `n` more slabs were started than now. */
function startSlabs(n: number): void {
  const big = new Uint8Array(SLAB_BYTES / 8 - 1);
  const first = slabOf(carvedKeyValue(big, new Uint8Array(0))[0]);
  while (slabOf(carvedKeyValue(big, new Uint8Array(0))[0]) < first + n) {}
}

function carvedRecord(key: string, value: string): KvRecord {
  const [k, v] = carvedKeyValue(bytes(key), bytes(value));
  return { key: k, value: v, createRevision: 3, modifyRevision: 5, version: 2, expiresAt: 9 };
}

describe('byte slabs', () => {
  it('copies a key and value side by side into a slab, and large ones into a buffer of their own', () => {
    const key = bytes('k1');
    const value = bytes('hello');
    const [k, v] = carvedKeyValue(key, value);
    key[0] = 0;
    value[0] = 0;
    expect(text(k)).toBe('k1');
    expect(text(v)).toBe('hello');
    expect(k.buffer).toBe(v.buffer);
    expect(k.buffer.byteLength).toBe(SLAB_BYTES);
    expect(slabState(k)).toBe('fresh');
    // The next pair goes in the same slab, eight-byte aligned.
    const [k2] = carvedKeyValue(bytes('k2'), bytes('x'));
    expect(k2.buffer).toBe(k.buffer);
    expect(k2.byteOffset % 8).toBe(0);
    expect(k2.byteOffset).toBeGreaterThanOrEqual(v.byteOffset + v.byteLength);

    const [bk, bv] = carvedKeyValue(bytes('big'), new Uint8Array(SLAB_BYTES));
    expect(bk.buffer).toBe(bv.buffer);
    expect(bk.buffer.byteLength).toBe(3 + SLAB_BYTES);
    expect(slabState(bk)).toBe('own');
    expect(slabState(bytes('anyone'))).toBe('own');
  });

  it('calls a slab stale once SLABS_KEPT more were started, and copies a stale record out without touching it', () => {
    const rec = carvedRecord('key', 'value');
    startSlabs(SLABS_KEPT - 1);
    expect(slabState(rec.key)).toBe('fresh');
    startSlabs(1);
    expect(slabState(rec.key)).toBe('stale');

    const own = unpinnedRecord(rec);
    expect(own).not.toBe(rec);
    expect(own).toEqual(rec);
    expect(slabState(own.key)).toBe('own');
    expect(slabState(own.value)).toBe('own');
    expect(own.key.buffer).toBe(own.value.buffer);
    expect(slabState(rec.key)).toBe('stale');
    // A record of bytes of its own is its own already.
    expect(unpinnedRecord(own)).toBe(own);
  });

  it("keeps a pending put's record pending: its revisions are worked out only when read", () => {
    let resolved = 0;
    const owner: OverOwner = {
      reported: () => {},
      resolveOf: (m) => {
        resolved++;
        m.settle(4, 7);
      },
    };
    const [k, v] = carvedKeyValue(bytes('key'), bytes('value'));
    const put = new OverPut(owner, k, v, 12, 99, 0, 1, undefined, false, 'key', 'hash');
    startSlabs(SLABS_KEPT);
    const own = unpinnedRecord(put.record);
    expect(resolved).toBe(0);
    expect(slabState(own.key)).toBe('own');
    expect(text(own.value)).toBe('value');
    expect(own).toMatchObject({ modifyRevision: 12, expiresAt: 99, type: 'hash' });
    expect(own.createRevision).toBe(4);
    expect(resolved).toBe(1);
    expect(own.version).toBe(7);
    expect(put.record.version).toBe(7);
  });

  it('has the row cache copy out the rows it keeps once their slab is stale, but not a row rewritten since', async () => {
    const cache = new KvRowCache(1 << 20).scope();
    const cold = carvedRecord('cold', 'c1');
    cache.set('cold', 0, cold);
    let hot = carvedRecord('hot', 'h1');
    cache.set('hot', 0, hot);
    // A row removed from the cache is not copied.
    cache.set('gone', 0, carvedRecord('gone', 'g1'));
    cache.cache.set(cache, 'gone', 1, null);
    for (let i = 0; i < 4; i++) {
      startSlabs(SLABS_KEPT / 4);
      hot = carvedRecord('hot', `h${i + 2}`);
      cache.set('hot', 0, hot);
    }
    // Told in a microtask.
    expect(cache.get('cold', 0)).toBe(cold);
    await new Promise((resolve) => setImmediate(resolve));
    const kept = cache.get('cold', 0) as KvRecord;
    expect(kept).not.toBe(cold);
    expect(kept).toEqual(cold);
    expect(slabState(kept.key)).toBe('own');
    expect(slabState(kept.value)).toBe('own');
    // The hot key's row was rewritten within the last SLABS_KEPT slabs: kept as given.
    expect(cache.get('hot', 0)).toBe(hot);
    expect(slabState(hot.key)).toBe('fresh');
    // A row taken back by the cache since is what it is given.
    expect(cache.get('gone', 1)).toBeNull();
  });

  it('tells a holder that throws no more, with a warning, and goes on telling the others', async () => {
    let told = 0;
    let failed = 0;
    const good: CarvedHolder = { unpinStale: () => void told++ };
    const bad: CarvedHolder = {
      unpinStale: () => {
        failed++;
        throw new Error('broken');
      },
    };
    holdsCarved(bad);
    holdsCarved(good);
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 2; i++) {
        startSlabs(SLABS_PER_CHECK);
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      process.off('warning', onWarning);
    }
    expect(failed).toBe(1);
    expect(told).toBe(2);
    expect(warnings.map((w) => (w as Error & { code?: string }).code)).toEqual(['COHORT_SLAB_HOLDER']);
    expect(warnings[0]?.message).toMatch(/no longer told to: broken/);
  });
});
