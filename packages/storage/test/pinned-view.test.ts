import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StorageError, emptyConfState } from '@cohort/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openPinnedView } from '../src/sqlite-kv-view.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import type { KvView, ViewPin } from '../src/types.js';
import { tempDir } from './harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
/** Lets the queue hand what it holds to the writer (its flush runs in a microtask). */
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const contents = (view: KvView): string[] => view.rows(undefined, 1000).map((r) => `${text(r.key)}=${text(r.value)}`);

describe('a pinned view of a partition (writer thread)', () => {
  let t: ReturnType<typeof tempDir>;
  let gate: string;
  let store: SqliteNodeStore;
  const applied = (index: number) => ({ index, term: 1, confState: { ...emptyConfState(), voters: ['n1'] } });
  const put = (key: string, value: string, index: number): void => {
    const kv = store.kv('p');
    store.transaction(() => {
      kv.put(bytes(key), bytes(value), { revision: index });
      kv.setApplied(applied(index));
    });
  };

  beforeEach(() => {
    t = tempDir();
    gate = join(t.dir, 'gate');
    store = SqliteNodeStore.open(join(t.dir, 'cohort.db'), { writer: 'thread', commitGate: gate });
  });
  afterEach(() => {
    rmSync(gate, { force: true });
    store.close();
    t.cleanup();
  });

  it('reads exactly the state at its mark, while the writes queued after it commit', async () => {
    put('a', '1', 1);
    const pin = store.kv('p').pinView?.() as ViewPin;
    expect(pin).toBeDefined();
    put('a', '2', 2);
    put('b', '1', 3);
    await turn();
    const view = openPinnedView(pin, 5000);
    try {
      expect(view.applied.index).toBe(1);
      expect(contents(view)).toEqual(['a=1']);
      await store.settled();
      // The writes after the mark are in the file, not in the pinned view.
      expect(contents(view)).toEqual(['a=1']);
    } finally {
      view.close();
    }
    // A copy is deleted with its view.
    expect(readdirSync(t.dir).filter((n) => n.includes('-image-'))).toEqual([]);
    const now = store.kv('p').openView();
    try {
      expect(now.applied.index).toBe(3);
      expect(contents(now)).toEqual(['a=2', 'b=1']);
    } finally {
      now.close();
    }
  });

  it('copies in chunks with rests when the copy is paced, to the same rows', async () => {
    const kv = store.kv('p');
    const keys = Array.from({ length: 25_000 }, (_, i) => `k${String(i).padStart(6, '0')}`);
    store.transaction(() => {
      keys.forEach((k, i) => kv.put(bytes(k), bytes(`v${i}`), { revision: i + 1 }));
      kv.setApplied(applied(keys.length));
    });
    const pin = kv.pinView?.() as ViewPin;
    put('k000000', 'later', keys.length + 1);
    put('zz', 'later', keys.length + 2);
    await turn();
    const view = openPinnedView(pin, 5000, { cpuShare: 0.5 });
    try {
      expect(view.applied.index).toBe(keys.length);
      const seen: string[] = [];
      let after: Uint8Array | undefined;
      for (;;) {
        const page = view.rows(after, 4096);
        for (const r of page) seen.push(`${text(r.key)}=${text(r.value)}`);
        if (page.length < 4096) break;
        after = page.at(-1)?.key;
      }
      expect(seen).toEqual(keys.map((k, i) => `${k}=v${i}`));
    } finally {
      view.close();
    }
  });

  it('places a mark made inside a transaction after that transaction', async () => {
    const kv = store.kv('p');
    let pin: ViewPin | undefined;
    store.transaction(() => {
      kv.put(bytes('a'), bytes('1'), { revision: 1 });
      kv.setApplied(applied(1));
      pin = kv.pinView?.();
    });
    put('b', '1', 2);
    await turn();
    const view = openPinnedView(pin as ViewPin, 5000);
    try {
      expect(view.applied.index).toBe(1);
      expect(contents(view)).toEqual(['a=1']);
    } finally {
      view.close();
    }
  });

  it('voids a mark whose transaction rolled back: its reader hears so at once', () => {
    const kv = store.kv('p');
    let pin: ViewPin | undefined;
    expect(() =>
      store.transaction(() => {
        kv.put(bytes('a'), bytes('1'), { revision: 1 });
        pin = kv.pinView?.();
        throw new Error('rolled back');
      }),
    ).toThrow('rolled back');
    const started = performance.now();
    expect(() => openPinnedView(pin as ViewPin, 30_000)).toThrow(/the writer stopped waiting for this reader/);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('lets the writer go on when no reader takes the mark; a reader coming later is refused', async () => {
    put('a', '1', 1);
    const pin = store.kv('p').pinView?.() as ViewPin;
    put('a', '2', 2);
    // The writer waits for the reader a while, then commits what follows the mark.
    await store.settled();
    expect(() => openPinnedView(pin, 5000)).toThrow(StorageError);
    expect(() => openPinnedView(pin, 5000)).toThrow(/the writer stopped waiting for this reader/);
    expect(readdirSync(t.dir).filter((n) => n.includes('-image-'))).toEqual([]);
  });

  it('voids the mark when its reader gives up before the writer got there', async () => {
    put('a', '1', 1);
    await store.settled();
    writeFileSync(gate, '');
    put('a', '2', 2);
    const pin = store.kv('p').pinView?.() as ViewPin;
    put('a', '3', 3);
    await turn();
    expect(() => openPinnedView(pin, 50)).toThrow(/the writer did not reach the mark within 50 ms/);
    rmSync(gate);
    // The writer passes the void mark and commits what follows it.
    await store.settled();
    const now = store.kv('p').openView();
    try {
      expect(contents(now)).toEqual(['a=3']);
    } finally {
      now.close();
    }
  });
});

describe('a pinned view with the writer on the caller thread', () => {
  it('is not offered: no mark can be waited at there', () => {
    const t = tempDir();
    const store = SqliteNodeStore.open(join(t.dir, 'cohort.db'), { writer: 'inline' });
    try {
      expect(store.kv('p').pinView?.()).toBeUndefined();
    } finally {
      store.close();
      t.cleanup();
    }
  });
});
