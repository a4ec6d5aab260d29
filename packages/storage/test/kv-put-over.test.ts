import { join } from 'node:path';
import { CorruptStateError, emptyConfState } from '@cohort/core';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryNodeStore } from '../src/memory-node-store.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import type { DurableNodeStore, KvRecord, PartitionKv } from '../src/types.js';
import { blockFor, comparable as rec, tempDir } from './harness.js';

// Puts over whatever a key holds (`KvPutOptions.now`): the SQLite store with its writer thread writes them
// without reading the old row, and learns the create revision and version from the writer's report or,
// when a read comes first, from the stored row and the chain of such puts over the key.

const KEYS = [new Uint8Array([0x61]), new Uint8Array([0x62])];
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

type Cmd =
  | { op: 'over'; key: number; now: number; expiresAt: number | undefined }
  | { op: 'put'; key: number }
  | { op: 'del'; key: number }
  | { op: 'get'; key: number }
  | { op: 'count' };

interface Txn {
  cmds: Cmd[];
  fails: boolean;
  /**
   * `post`: its job goes to the writer, which commits it while this thread waits without taking the
   * writer's report (a later read finds the file holding part of a chain of puts whose report is pending).
   */
  after: 'post' | 'flush' | 'none';
}

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('over' as const),
      key: fc.nat(KEYS.length - 1),
      now: fc.nat(40),
      expiresAt: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('put' as const), key: fc.nat(KEYS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('del' as const), key: fc.nat(KEYS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('get' as const), key: fc.nat(KEYS.length - 1) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'count' as const }) },
);

const txn: fc.Arbitrary<Txn> = fc.record({
  cmds: fc.array(cmd, { minLength: 1, maxLength: 4 }),
  fails: fc.nat(9).map((n) => n === 0),
  after: fc.constantFrom('post', 'post', 'flush', 'none', 'none'),
});

/** Runs `c` at `revision`; what it answers (a read's record, a count) goes to `out`, a put's record to `written`. */
function run(kv: PartitionKv, c: Cmd, revision: number, out: unknown[], written: KvRecord[]): void {
  const key = KEYS[c.op === 'count' ? 0 : c.key] as Uint8Array;
  switch (c.op) {
    case 'over':
      written.push(
        kv.put(key, enc(`o${revision}`), {
          revision,
          now: c.now,
          ...(c.expiresAt === undefined ? {} : { expiresAt: c.expiresAt }),
        }),
      );
      return;
    case 'put':
      written.push(kv.put(key, enc(`p${revision}`), { revision }));
      return;
    case 'del':
      out.push(kv.delete(key));
      return;
    case 'get':
      out.push(rec(kv.get(key)));
      return;
    case 'count':
      out.push(kv.count());
      return;
  }
}

describe('a put over whatever the key holds (KvPutOptions.now)', () => {
  it('leaves the rows, counts and records the in-memory store does, whenever its row is read or reported', () => {
    fc.assert(
      fc.property(fc.array(txn, { minLength: 1, maxLength: 16 }), (txns) => {
        const { dir, cleanup } = tempDir();
        const stores: [string, DurableNodeStore][] = [
          ['memory', new MemoryNodeStore()],
          ['inline', SqliteNodeStore.open(join(dir, 'inline.db'), { quickCheck: false })],
          ['thread', SqliteNodeStore.open(join(dir, 'thread.db'), { quickCheck: false, writer: 'thread' })],
          // A row cache of a few rows: keys it holds are written plainly, its rows evicted all the time.
          [
            'thread, row cache',
            SqliteNodeStore.open(join(dir, 'cached.db'), { quickCheck: false, writer: 'thread', rowCacheBytes: 3_000 }),
          ],
        ];
        const kept: KvRecord[][] = stores.map(() => []);
        try {
          let revision = 0;
          for (const t of txns) {
            const answers: unknown[][] = stores.map(() => []);
            for (const [s, [, store]] of stores.entries()) {
              const kv = store.kv('p');
              const written: KvRecord[] = [];
              let r = revision;
              try {
                store.transaction(() => {
                  for (const c of t.cmds) run(kv, c, ++r, answers[s] as unknown[], written);
                  if (t.fails) throw new Error('rolled back');
                });
              } catch (err) {
                if ((err as Error).message !== 'rolled back') throw err;
              }
              if (!t.fails) kept[s]?.push(...written);
            }
            revision += t.cmds.length;
            stores.forEach(([name], i) => expect([name, answers[i]]).toEqual([name, answers[0]]));
            for (const [, store] of stores.slice(2)) {
              const thread = store as SqliteNodeStore;
              if (t.after === 'flush') thread.flush();
              if (t.after === 'post') thread.startWrites();
            }
            if (t.after === 'post') blockFor(5);
          }
          // The records the puts returned, read only now (most of them learned from the writer's report).
          const records = kept.map((k) => k.map(rec));
          stores.forEach(([name], i) => expect([name, records[i]]).toEqual([name, records[0]]));
          const rows = stores.map(([, store]) => [store.kv('p').scan().map(rec), store.kv('p').count()]);
          stores.forEach(([name], i) => expect([name, rows[i]]).toEqual([name, rows[0]]));
        } finally {
          for (const [, store] of stores) store.close();
          cleanup();
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);

  it('works a read out from the stored row when the writer committed part of the chain and its report is pending', () => {
    const { dir, cleanup } = tempDir();
    const store = SqliteNodeStore.open(join(dir, 'a.db'), { quickCheck: false, writer: 'thread' });
    try {
      const kv = store.kv('p');
      const key = KEYS[0] as Uint8Array;
      store.transaction(() => kv.put(key, enc('v1'), { revision: 1 }));
      store.flush();
      const first = store.transaction(() => kv.put(key, enc('v2'), { revision: 2, now: 0 }));
      // The writer commits it; this thread takes no report meanwhile.
      store.startWrites();
      const deadline = Date.now() + 5_000;
      const probe = new Database(join(dir, 'a.db'), { readonly: true });
      try {
        while (probe.prepare('SELECT mod_rev FROM kv').pluck().get() !== 2) {
          expect(Date.now()).toBeLessThan(deadline);
          blockFor(2);
        }
      } finally {
        probe.close();
      }
      const second = store.transaction(() => kv.put(key, enc('v3'), { revision: 3, now: 0 }));
      expect([second.createRevision, second.version]).toEqual([1, 3]);
      expect([first.createRevision, first.version]).toEqual([1, 2]);
      expect(kv.count()).toBe(1);
    } finally {
      store.close();
      cleanup();
    }
  });

  it('starts a key over when its row expired by the write, and counts the row it replaced', () => {
    for (const writer of ['inline', 'thread'] as const) {
      const { dir, cleanup } = tempDir();
      const store = SqliteNodeStore.open(join(dir, 'a.db'), { quickCheck: false, writer });
      try {
        const kv = store.kv('p');
        const key = KEYS[0] as Uint8Array;
        store.transaction(() => kv.put(key, enc('v1'), { revision: 1, expiresAt: 10 }));
        store.flush();
        expect(kv.count()).toBe(1);
        const live = store.transaction(() => kv.put(key, enc('v2'), { revision: 2, now: 9, expiresAt: 20 }));
        store.flush();
        const fresh = store.transaction(() => kv.put(key, enc('v3'), { revision: 3, now: 20 }));
        store.flush();
        expect([writer, live.createRevision, live.version]).toEqual([writer, 1, 2]);
        expect([writer, fresh.createRevision, fresh.version, fresh.expiresAt]).toEqual([writer, 3, 1, undefined]);
        expect(kv.count()).toBe(1);
        store.transaction(() => kv.put(KEYS[1] as Uint8Array, enc('w'), { revision: 4, now: 20 }));
        expect(kv.count()).toBe(2);
      } finally {
        store.close();
        cleanup();
      }
    }
  });

  it('marks the partition corrupt when the row it replaced fails its checksum, and keeps the new row failing it', () => {
    const { dir, cleanup } = tempDir();
    const file = join(dir, 'a.db');
    let store = SqliteNodeStore.open(file, { quickCheck: false, writer: 'thread' });
    const key = KEYS[0] as Uint8Array;
    const applied = { index: 5, term: 1, confState: { ...emptyConfState(), voters: ['n1'] } };
    try {
      store.transaction(() => store.kv('p').put(key, enc('v1'), { revision: 1 }));
      store.close();
      // A flipped byte of the stored value, as a bad sector would leave it.
      store = SqliteNodeStore.open(file, { quickCheck: false });
      store.database.prepare("UPDATE kv SET value = X'7631ff'").run();
      store.close();
      store = SqliteNodeStore.open(file, { quickCheck: false, writer: 'thread' });
      const kv = store.kv('p');
      store.transaction(() => kv.put(key, enc('v2'), { revision: 2, now: 0 }));
      store.flush();
      expect(() => store.transaction(() => kv.setApplied(applied))).toThrow(CorruptStateError);
      expect(() => kv.get(key)).toThrow(/corrupt/);
    } finally {
      store.close();
      cleanup();
    }
  });
});
