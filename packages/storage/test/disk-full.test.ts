import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskFullError, type Entry, StorageError } from '@cohort/core';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { isOutOfSpace } from '../src/sqlite-ops.js';
import type { WriteStall } from '../src/types.js';
import { tempDir, until } from './harness.js';

const enc = new TextEncoder();
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Entries lo..hi of `term`, each carrying `bytes` bytes (its index first), so a few need new pages. */
function big(lo: number, hi: number, term: number, bytes: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) {
    const data = new Uint8Array(bytes).fill(97 + (i % 26));
    data.set(enc.encode(`${i}:`));
    out.push({ index: i, term, type: 'normal', data });
  }
  return out;
}

describe('SqliteNodeStore on a full disk (SQLite reports SQLITE_FULL)', () => {
  let dir: string;
  let cleanup: () => void;
  let gate: string;
  let file: string;
  let store: SqliteNodeStore;

  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
    gate = join(dir, 'disk-full');
    file = join(dir, 'node.db');
    store = SqliteNodeStore.open(file, { writer: 'thread', diskFullGate: gate, cacheEntries: 4 });
  });
  afterEach(() => {
    rmSync(gate, { force: true });
    store.close();
    cleanup();
  });

  it('rolls a failed commit back, retries it in order with everything queued behind it, and resumes once space is freed', async () => {
    await store.write([{ group: 'g', entries: big(1, 2, 1, 100), hardState: { term: 1, vote: 'n1', commit: 0 } }]);
    const stalls: (WriteStall | undefined)[] = [];
    store.watchWriteStall((s) => stalls.push(s));
    writeFileSync(gate, '');
    // Writes of 16 KB each, with a KV transaction between them, until one finds the file unable to grow.
    const resolved: number[] = [];
    const writes: Promise<void>[] = [];
    let next = 3;
    const kv = store.kv('p');
    for (let w = 0; store.writeStall() === undefined; w++) {
      if (w > 400) throw new Error('the database never filled up');
      const lo = next;
      next += 4;
      writes.push(
        store.write([{ group: 'g', entries: big(lo, lo + 3, 1, 4096) }]).then(() => {
          resolved.push(lo);
        }),
      );
      store.transaction(() => kv.put(enc.encode(`k${lo}`), enc.encode(`v${lo}`), { revision: lo }), {
        durable: false,
      });
      // Let the writer report (a stall is noticed on this thread through a message).
      await new Promise((r) => setTimeout(r, 1));
    }
    const last = next - 1;
    expect(stalls).toHaveLength(1);
    expect(stalls[0]?.reason).toMatch(/full/);
    // Queued behind the commit that failed: it must not commit before it.
    const tailWrite = store.write([{ group: 'g', hardState: { term: 2, vote: 'n2', commit: 2 } }]);
    const stuckAt = resolved.length;
    expect(stuckAt).toBeLessThan(writes.length);
    await new Promise((r) => setTimeout(r, 100));
    expect(resolved).toHaveLength(stuckAt);
    expect(store.writeStall()).toBeDefined();
    // Reads go on over what is queued; a barrier does not block this thread but says why.
    const g = store.group('g');
    expect(g.lastIndex()).toBe(last);
    expect(text(g.entries(last, last + 1, Number.MAX_SAFE_INTEGER)[0]?.data ?? new Uint8Array()).split(':')[0]).toBe(
      String(last),
    );
    expect(text(kv.get(enc.encode(`k${last - 3}`))?.value ?? new Uint8Array())).toBe(`v${last - 3}`);
    expect(() => store.flush()).toThrow(DiskFullError);
    // On disk: exactly the writes acknowledged so far, nothing of the rolled-back one or those behind it.
    const acked = resolved.length > 0 ? Math.max(...resolved) + 3 : 2;
    const disk = new Database(file, { readonly: true });
    try {
      expect(disk.prepare('SELECT max(idx) FROM entries').pluck().get()).toBe(acked);
      expect(disk.prepare('SELECT last_index FROM groups WHERE name = ?').pluck().get('g')).toBe(acked);
      expect(disk.prepare('SELECT term FROM groups WHERE name = ?').pluck().get('g')).toBe(1);
    } finally {
      disk.close();
    }

    rmSync(gate);
    await Promise.all([...writes, tailWrite]);
    // Committed in the order they were made.
    expect(resolved).toEqual([...resolved].sort((a, b) => a - b));
    expect(resolved).toHaveLength(writes.length);
    await until('the stall to clear', () => store.writeStall() === undefined);
    expect(stalls).toEqual([stalls[0], undefined]);
    store.flush();

    store.close();
    store = SqliteNodeStore.open(file, { writer: 'thread', diskFullGate: gate });
    const h = store.group('g');
    expect(h.lastIndex()).toBe(last);
    expect(h.initialState().hardState).toEqual({ term: 2, vote: 'n2', commit: 2 });
    const all = h.entries(1, last + 1, Number.MAX_SAFE_INTEGER);
    expect(all.map((e) => Number(text(e.data).split(':')[0]))).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    for (let lo = 3; lo < last; lo += 4) {
      expect(text(store.kv('p').get(enc.encode(`k${lo}`))?.value ?? new Uint8Array())).toBe(`v${lo}`);
    }
  });

  it('does not make anyone wait on settled() for a writer stalled on a full disk, and releases the waits taken before', async () => {
    await store.write([{ group: 'g', entries: big(1, 2, 1, 100), hardState: { term: 1, vote: 'n1', commit: 0 } }]);
    writeFileSync(gate, '');
    const waits: Promise<void>[] = [];
    const writes: Promise<void>[] = [];
    let next = 3;
    for (let w = 0; store.writeStall() === undefined; w++) {
      if (w > 400) throw new Error('the database never filled up');
      writes.push(store.write([{ group: 'g', entries: big(next, next + 3, 1, 4096) }]));
      next += 4;
      const wait = store.settled();
      if (wait) waits.push(wait);
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(waits.length).toBeGreaterThan(0);
    // The writes stay queued, yet every wait handed out has ended, and no new one is handed out.
    let released = false;
    await Promise.race([
      Promise.all(waits).then(() => {
        released = true;
      }),
      new Promise((r) => setTimeout(r, 2000)),
    ]);
    expect(released).toBe(true);
    expect(store.settled()).toBeUndefined();
    expect(store.writeStall()).toBeDefined();
    rmSync(gate);
    await Promise.all(writes);
  });

  it('closed while a commit waits for space, rejects that write and keeps everything committed before it', async () => {
    await store.write([{ group: 'g', entries: big(1, 2, 1, 100) }]);
    writeFileSync(gate, '');
    const outcomes: string[] = [];
    let next = 3;
    while (store.writeStall() === undefined) {
      if (next > 2000) throw new Error('the database never filled up');
      const lo = next;
      next += 4;
      store.write([{ group: 'g', entries: big(lo, lo + 3, 1, 4096) }]).then(
        () => outcomes.push(`ok ${lo}`),
        (err: Error) => outcomes.push(`${err.name} ${lo}`),
      );
      await new Promise((r) => setTimeout(r, 1));
    }
    store.close();
    await until('every write to be answered', () => outcomes.length === (next - 3) / 4);
    const firstRefused = outcomes.findIndex((o) => o.startsWith('DiskFullError'));
    expect(firstRefused).toBeGreaterThanOrEqual(0);
    // Acknowledged, then refused: never a hole.
    expect(outcomes.slice(firstRefused).every((o) => o.startsWith('DiskFullError'))).toBe(true);
    rmSync(gate);
    store = SqliteNodeStore.open(file, { writer: 'thread', diskFullGate: gate });
    expect(store.group('g').lastIndex()).toBe(2 + firstRefused * 4);
  });

  it('tells space errors from the others: only SQLITE_FULL, ENOSPC or an I/O error on a nearly full disk wait', () => {
    const sqlite = (code: string, message: string): Error => Object.assign(new Error(message), { code });
    expect(isOutOfSpace(sqlite('SQLITE_FULL', 'database or disk is full'), file)).toBe(true);
    expect(isOutOfSpace(new Error('write failed: ENOSPC: no space left on device'), file)).toBe(true);
    expect(isOutOfSpace(sqlite('SQLITE_CORRUPT', 'database disk image is malformed'), file)).toBe(false);
    // The test's file system has room: an I/O error here is a failing disk, not a full one.
    expect(isOutOfSpace(sqlite('SQLITE_IOERR_WRITE', 'disk I/O error'), file)).toBe(false);
  });

  it('still stops on a failure that is not about space', async () => {
    await store.write([{ group: 'g', entries: big(1, 1, 1, 10) }]);
    store.database.exec('DROP TABLE entries');
    await expect(store.write([{ group: 'g', entries: big(2, 2, 1, 10) }])).rejects.toBeInstanceOf(StorageError);
    expect(store.writeStall()).toBeUndefined();
  });
});
