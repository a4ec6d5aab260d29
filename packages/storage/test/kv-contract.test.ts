import { StorageError, emptyConfState } from '@cohort/core';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryNodeStore } from '../src/memory-node-store.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import type { AppliedState, DurableNodeStore, KvRecord } from '../src/types.js';
import { type StoreHarness, memoryHarness, sqliteHarness, sqliteThreadHarness } from './harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);
const keys = (rs: KvRecord[]): string[] => rs.map((r) => text(r.key));
const at = (index: number, term = 1, voters = ['n1']): AppliedState => ({
  index,
  term,
  confState: { ...emptyConfState(), voters },
});

/** Damages the stored value of one row behind the store's back. */
function corruptRow(store: DurableNodeStore, partition: string, key: Uint8Array): void {
  if (store instanceof MemoryNodeStore) store.corruptKvRow(partition, key);
  else {
    (store as SqliteNodeStore).flush();
    (store as SqliteNodeStore).database
      .prepare('UPDATE kv SET value = ? WHERE key = ?')
      .run(Buffer.from('tampered'), Buffer.from(key));
  }
}

describe.each([
  ['MemoryNodeStore', memoryHarness],
  ['SqliteNodeStore', sqliteHarness],
  ['SqliteNodeStore (writer thread)', sqliteThreadHarness],
])('%s honours the KV store contract', (_name, make) => {
  let h: StoreHarness;
  let store: DurableNodeStore;
  beforeEach(() => {
    h = make();
    store = h.open();
  });
  afterEach(() => {
    store.close();
    h.cleanup();
  });

  it('keeps KV records with revisions, expiry and byte-ordered scans across a restart', () => {
    const kv = store.kv('p1');
    kv.put(bytes('b'), bytes('1'), { revision: 5 });
    kv.put(bytes('a'), bytes('2'), { revision: 6, expiresAt: 1000 });
    kv.put(bytes('b'), bytes('3'), { revision: 7 });
    kv.put(new Uint8Array([0xff]), bytes('hi'), { revision: 8 });
    store.kv('p2').put(bytes('a'), bytes('other'), { revision: 1 });
    store = h.reopen(store);
    const kv2 = store.kv('p1');
    expect(kv2.get(bytes('b'))).toMatchObject({ createRevision: 5, modifyRevision: 7, version: 2 });
    expect(kv2.get(bytes('a'))).toMatchObject({ createRevision: 6, modifyRevision: 6, version: 1 });
    expect(text(kv2.get(bytes('b'))?.value)).toBe('3');
    expect(kv2.get(bytes('a'))?.expiresAt).toBe(1000);
    expect(kv2.get(bytes('b'))?.expiresAt).toBeUndefined();
    expect(keys(kv2.scan())).toEqual(['a', 'b', '\ufffd']);
    expect(keys(kv2.scan({ start: bytes('b') }))).toEqual(['b', '\ufffd']);
    expect(keys(kv2.scan({ end: bytes('b') }))).toEqual(['a']);
    // A key deleted and written again starts over, as in etcd.
    kv2.delete(bytes('b'));
    kv2.put(bytes('b'), bytes('4'), { revision: 9 });
    expect(kv2.get(bytes('b'))).toMatchObject({ createRevision: 9, modifyRevision: 9, version: 1 });
    expect(kv2.scan({ limit: 2 })).toHaveLength(2);
    expect(kv2.count()).toBe(3);
    expect(kv2.delete(bytes('a'))).toBe(true);
    expect(kv2.delete(bytes('a'))).toBe(false);
    expect(kv2.get(bytes('a'))).toBeUndefined();
    expect(kv2.count()).toBe(2);
    expect(store.kv('p2').count()).toBe(1);
    expect(store.kv('p3').count()).toBe(0);
  });

  it("keeps a put's own copy of key and value: the caller's buffers may change after it returns", () => {
    const kv = store.kv('p1');
    // Buffers of Node's shared pool: their `slice` is a view, not a copy.
    const key = Buffer.from('pooled-key');
    const value = Buffer.from('pooled-value');
    const overKey = Buffer.from('over-key');
    const overValue = Buffer.from('over-value');
    kv.put(key, value, { revision: 1 });
    // With `now`, a put over a row it does not read (the writer reads it).
    kv.put(overKey, overValue, { revision: 2, now: 1 });
    kv.put(bytes('gone'), bytes('v'), { revision: 3 });
    const goneKey = Buffer.from('gone');
    expect(kv.delete(goneKey)).toBe(true);
    for (const b of [key, value, overKey, overValue, goneKey]) b.fill(0x78);
    const read = (k: string): string => text(kv.get(bytes(k))?.value);
    expect([read('pooled-key'), read('over-key')]).toEqual(['pooled-value', 'over-value']);
    expect(keys(kv.scan())).toEqual(['over-key', 'pooled-key']);
    expect(kv.get(bytes('xxxxxxxxxx'))).toBeUndefined();
    store = h.reopen(store);
    const kv2 = store.kv('p1');
    expect(keys(kv2.scan())).toEqual(['over-key', 'pooled-key']);
    expect([text(kv2.get(bytes('pooled-key'))?.value), text(kv2.get(bytes('over-key'))?.value)]).toEqual([
      'pooled-value',
      'over-value',
    ]);
  });

  it('detects a corrupt row on read and names the partition and key', () => {
    const kv = store.kv('p1');
    kv.put(bytes('good'), bytes('v'), { revision: 1 });
    kv.put(bytes('bad'), bytes('v'), { revision: 2 });
    corruptRow(store, 'p1', bytes('bad'));
    expect(text(kv.get(bytes('good'))?.value)).toBe('v');
    expect(() => kv.get(bytes('bad'))).toThrow(StorageError);
    expect(() => kv.get(bytes('bad'))).toThrow(/partition p1: KV row for key 626164 is corrupt/);
    expect(() => kv.scan()).toThrow(StorageError);
    const view = kv.openView();
    expect(() => view.rows(undefined, 10)).toThrow(/626164/);
    view.close();
  });

  it('detects a corrupt row read through a detached view, naming the store rather than its copy', async () => {
    const kv = store.kv('p1');
    kv.put(bytes('bad'), bytes('v'), { revision: 1 });
    corruptRow(store, 'p1', bytes('bad'));
    const view = await kv.openDetachedView();
    try {
      expect(() => view.rows(undefined, 10)).toThrow(/partition p1: KV row for key 626164 is corrupt/);
      expect(() => view.rows(undefined, 10)).not.toThrow(/-image-/);
    } finally {
      view.close();
    }
  });

  it('gives an empty detached view of a partition never written', async () => {
    const view = await store.kv('p9').openDetachedView();
    expect(view.applied.index).toBe(0);
    expect(view.rows(undefined, 10)).toEqual([]);
    view.close();
  });

  it('records the applied state in the same transaction as the data, all or nothing', () => {
    const kv = store.kv('p1');
    expect(kv.applied()).toEqual({ index: 0, term: 0, confState: emptyConfState() });
    store.transaction(() => {
      kv.put(bytes('k'), bytes('v1'), { revision: 3 });
      kv.setApplied(at(3, 2));
    });
    expect(kv.count()).toBe(1);
    expect(() =>
      store.transaction(() => {
        kv.put(bytes('k'), bytes('v2'), { revision: 4 });
        kv.put(bytes('new'), bytes('v'), { revision: 4 });
        expect(kv.count()).toBe(2);
        kv.setApplied(at(4, 2));
        throw new Error('apply failed');
      }),
    ).toThrow('apply failed');
    expect(kv.applied()).toEqual(at(3, 2));
    expect(text(kv.get(bytes('k'))?.value)).toBe('v1');
    expect(kv.count()).toBe(1);
    store.transaction(
      () => {
        store.kv('p1').put(bytes('k'), bytes('v3'), { revision: 5 });
        store.kv('p1').setApplied(at(5, 2, ['n1', 'n2']));
      },
      { durable: false },
    );
    store.transaction(() => store.kv('p1').setApplied(at(6, 2, ['n1', 'n2']), 1234));
    store.transaction(() => store.kv('p1').setApplied(at(7, 2, ['n1', 'n2'])));
    store = h.reopen(store);
    expect(store.kv('p1').applied()).toEqual(at(7, 2, ['n1', 'n2']));
    expect(store.kv('p1').logTime()).toBe(1234);
    expect(text(store.kv('p1').get(bytes('k'))?.value)).toBe('v3');
  });

  it('rolls back a first write to a new partition whole', () => {
    expect(() =>
      store.transaction(() => {
        store.kv('fresh').put(bytes('k'), bytes('v'), { revision: 1 });
        throw new Error('apply failed');
      }),
    ).toThrow('apply failed');
    expect(store.kv('fresh').count()).toBe(0);
    store.transaction(() => store.kv('fresh').put(bytes('k'), bytes('v'), { revision: 2 }));
    store = h.reopen(store);
    expect(store.kv('fresh').get(bytes('k'))?.createRevision).toBe(2);
  });

  it('lists expired keys in expiry order, bounded', () => {
    const kv = store.kv('p1');
    kv.put(bytes('late'), bytes('v'), { revision: 1, expiresAt: 300 });
    kv.put(bytes('b-early'), bytes('v'), { revision: 1, expiresAt: 100 });
    kv.put(bytes('a-early'), bytes('v'), { revision: 1, expiresAt: 100 });
    kv.put(bytes('never'), bytes('v'), { revision: 1 });
    kv.put(bytes('future'), bytes('v'), { revision: 1, expiresAt: 10_000 });
    expect(kv.expired(300, 10).map(text)).toEqual(['a-early', 'b-early', 'late']);
    expect(kv.expired(300, 2).map(text)).toEqual(['a-early', 'b-early']);
    expect(kv.expired(99, 10)).toEqual([]);
    kv.put(bytes('late'), bytes('v'), { revision: 2 });
    expect(kv.expired(300, 10).map(text)).toEqual(['a-early', 'b-early']);
  });

  it('keeps many responses per client above a low-water mark', () => {
    const kv = store.kv('p1');
    kv.saveResponse('c1', 1, bytes('r1'), 100);
    kv.saveResponse('c1', 3, bytes('r3'), 110);
    kv.saveResponse('c1', 2, bytes('r2'), 105);
    kv.saveResponse('c2', 1, bytes('x1'), 50);
    store = h.reopen(store);
    const kv2 = store.kv('p1');
    expect(kv2.session('c1')).toEqual({ clientId: 'c1', lowWater: 0, lastActive: 110 });
    expect(text(kv2.response('c1', 2))).toBe('r2');
    expect(kv2.response('c1', 4)).toBeUndefined();
    kv2.raiseLowWater('c1', 2, 120);
    expect(kv2.response('c1', 1)).toBeUndefined();
    expect(kv2.response('c1', 2)).toBeUndefined();
    expect(text(kv2.response('c1', 3))).toBe('r3');
    kv2.raiseLowWater('c1', 1, 130);
    expect(kv2.session('c1')).toEqual({ clientId: 'c1', lowWater: 2, lastActive: 130 });
    // Saving a response can raise the mark in the same write; a response at or below it is not kept.
    kv2.saveResponse('c1', 5, bytes('r5'), 140, 3);
    expect(kv2.session('c1')).toEqual({ clientId: 'c1', lowWater: 3, lastActive: 140 });
    expect(kv2.response('c1', 3)).toBeUndefined();
    expect(text(kv2.response('c1', 5))).toBe('r5');
    kv2.saveResponse('c1', 4, bytes('r4'), 150, 4);
    expect(kv2.response('c1', 4)).toBeUndefined();
    expect(kv2.idleSessions(120, 10)).toEqual(['c2']);
    expect(kv2.idleSessions(1000, 10)).toEqual(['c2', 'c1']);
    expect(kv2.idleSessions(1000, 1)).toEqual(['c2']);
    kv2.dropSession('c2');
    expect(kv2.session('c2')).toBeUndefined();
    expect(kv2.response('c2', 1)).toBeUndefined();
    expect(store.kv('p2').session('c1')).toBeUndefined();
  });

  it('finds every idle session, sweep after sweep, whatever was written between them', () => {
    const kv = store.kv('p1');
    kv.saveResponse('c1', 1, bytes('r1'), 100);
    kv.saveResponse('c2', 1, bytes('r2'), 200);
    expect(kv.idleSessions(50, 10)).toEqual([]);
    expect(kv.idleSessions(100, 10)).toEqual([]);
    // A session written with an activity older than any swept before (log time is the writer's to give).
    kv.saveResponse('c3', 1, bytes('r3'), 40);
    expect(kv.idleSessions(50, 10)).toEqual(['c3']);
    expect(kv.idleSessions(150, 10)).toEqual(['c3', 'c1']);
    kv.dropSession('c3');
    expect(kv.idleSessions(150, 10)).toEqual(['c1']);
    kv.raiseLowWater('c1', 1, 300);
    expect(kv.idleSessions(250, 10)).toEqual(['c2']);
    expect(kv.idleSessions(20, 10)).toEqual([]);
    expect(() =>
      store.transaction(() => {
        kv.saveResponse('c4', 1, bytes('r4'), 5);
        expect(kv.idleSessions(20, 10)).toEqual(['c4']);
        throw new Error('rolled back');
      }),
    ).toThrow('rolled back');
    expect(kv.idleSessions(20, 10)).toEqual([]);
    kv.saveResponse('c5', 1, bytes('r5'), 6);
    expect(kv.idleSessions(20, 10)).toEqual(['c5']);
  });

  it.each([
    ['openView', false],
    ['openDetachedView', true],
  ])('gives a view (%s) that stays at its instant while writes continue, paged in key order', async (_, detached) => {
    const kv = store.kv('p1');
    store.transaction(() => {
      for (let i = 0; i < 25; i++) kv.put(bytes(`k${String(i).padStart(2, '0')}`), bytes(`v${i}`), { revision: i + 1 });
      kv.saveResponse('c1', 7, bytes('r7'), 10);
      kv.saveResponse('c2', 1, bytes('x'), 10);
      kv.setApplied(at(25), 500);
    });
    const view = detached ? await kv.openDetachedView() : kv.openView();
    store.transaction(() => {
      kv.put(bytes('k00'), bytes('changed'), { revision: 26 });
      kv.delete(bytes('k24'));
      kv.put(bytes('k99'), bytes('new'), { revision: 26 });
      kv.dropSession('c1');
      kv.setApplied(at(26));
    });
    expect(view.applied).toEqual(at(25));
    expect(view.logTime).toBe(500);
    const seen: KvRecord[] = [];
    let after: Uint8Array | undefined;
    for (;;) {
      const page = view.rows(after, 10);
      if (page.length === 0) break;
      seen.push(...page);
      after = page.at(-1)?.key;
    }
    expect(seen).toHaveLength(25);
    expect(text(seen[0]?.value)).toBe('v0');
    expect(text(seen.at(-1)?.key)).toBe('k24');
    const sessions = view.sessions(undefined, 1);
    expect(sessions.map((s) => s.clientId)).toEqual(['c1']);
    expect(sessions[0]?.responses.map((r) => [r.seq, text(r.response)])).toEqual([[7, 'r7']]);
    expect(view.sessions('c1', 10).map((s) => s.clientId)).toEqual(['c2']);
    view.close();
    expect(kv.applied()).toEqual(at(26));
    expect(text(kv.get(bytes('k00'))?.value)).toBe('changed');
  });

  it('installs a snapshot aside and switches to it atomically, dropping the old state', () => {
    const kv = store.kv('p1');
    store.transaction(() => {
      kv.put(bytes('old'), bytes('v'), { revision: 1 });
      kv.saveResponse('old-client', 1, bytes('r'), 1);
      kv.setApplied(at(1));
    });
    const installer = kv.beginInstall();
    for (let i = 0; i < 2500; i++) {
      installer.put({
        key: bytes(`n${i}`),
        value: bytes(`${i}`),
        createRevision: 3,
        modifyRevision: 40,
        version: 6,
        expiresAt: 5000,
      });
    }
    installer.putSession({
      clientId: 'c9',
      lowWater: 4,
      lastActive: 77,
      responses: [{ seq: 5, response: bytes('r5') }],
    });
    // Until commit, the partition reads as before.
    expect(kv.count()).toBe(1);
    expect(kv.applied()).toEqual(at(1));
    installer.commit(at(40, 3, ['n1', 'n2', 'n3']), 999);
    expect(() =>
      installer.put({ key: bytes('x'), value: bytes('y'), createRevision: 1, modifyRevision: 1, version: 1 }),
    ).toThrow(StorageError);
    store = h.reopen(store);
    const kv2 = store.kv('p1');
    expect(kv2.applied()).toEqual(at(40, 3, ['n1', 'n2', 'n3']));
    expect(kv2.logTime()).toBe(999);
    expect(kv2.count()).toBe(2500);
    expect(kv2.get(bytes('old'))).toBeUndefined();
    expect(kv2.get(bytes('n7'))).toMatchObject({ createRevision: 3, modifyRevision: 40, version: 6, expiresAt: 5000 });
    expect(kv2.session('old-client')).toBeUndefined();
    expect(kv2.session('c9')).toEqual({ clientId: 'c9', lowWater: 4, lastActive: 77 });
    expect(text(kv2.response('c9', 5))).toBe('r5');
    kv2.put(bytes('after'), bytes('v'), { revision: 41 });
    expect(kv2.count()).toBe(2501);
    if (store instanceof SqliteNodeStore) {
      // The old generation's rows are gone, not just hidden.
      store.flush();
      expect(store.database.prepare('SELECT count(*) FROM kv').pluck().get()).toBe(2501);
      expect(store.database.prepare('SELECT count(*) FROM sessions').pluck().get()).toBe(1);
    }
  });

  it('leaves the partition untouched when an install is aborted', () => {
    const kv = store.kv('p1');
    kv.put(bytes('keep'), bytes('v'), { revision: 1 });
    const installer = kv.beginInstall();
    installer.put({ key: bytes('drop'), value: bytes('v'), createRevision: 1, modifyRevision: 1, version: 1 });
    installer.abort();
    expect(keys(kv.scan())).toEqual(['keep']);
    store = h.reopen(store);
    expect(keys(store.kv('p1').scan())).toEqual(['keep']);
  });
});

describe('SqliteNodeStore KV specifics', () => {
  let h: StoreHarness;
  let store: SqliteNodeStore;
  beforeEach(() => {
    h = sqliteHarness();
    store = h.open() as SqliteNodeStore;
  });
  afterEach(() => {
    store.close();
    h.cleanup();
  });

  it('purges the rows of an install abandoned by a crash when it opens', () => {
    const kv = store.kv('p1');
    kv.put(bytes('keep'), bytes('v'), { revision: 1 });
    const installer = kv.beginInstall();
    for (let i = 0; i < 1500; i++)
      installer.put({ key: bytes(`s${i}`), value: bytes('v'), createRevision: 1, modifyRevision: 1, version: 1 });
    // No commit, no abort: the process dies here.
    expect(store.database.prepare('SELECT count(*) FROM kv').pluck().get()).toBeGreaterThan(1);
    store = h.reopen(store) as SqliteNodeStore;
    expect(store.database.prepare('SELECT count(*) FROM kv').pluck().get()).toBe(1);
    expect(store.database.prepare('SELECT count(*) FROM kv_generations').pluck().get()).toBe(1);
    expect(keys(store.kv('p1').scan())).toEqual(['keep']);
  });

  it('commits a non-durable transaction with synchronous=NORMAL and a durable one with FULL', () => {
    const db = store.database;
    const seen: string[] = [];
    const pragma = db.pragma.bind(db);
    db.pragma = ((source: string, opts?: Database.PragmaOptions) => {
      if (source.startsWith('synchronous =')) seen.push(source);
      return pragma(source, opts);
    }) as typeof db.pragma;
    store.transaction(() => store.kv('p1').put(bytes('k'), bytes('v'), { revision: 1 }), { durable: false });
    expect(seen).toEqual(['synchronous = NORMAL']);
    expect(() =>
      store.transaction(
        () => {
          store.kv('p1').put(bytes('x'), bytes('v'), { revision: 2 });
          throw new Error('boom');
        },
        { durable: false },
      ),
    ).toThrow('boom');
    expect(store.kv('p1').get(bytes('x'))).toBeUndefined();
    store.transaction(() => store.kv('p1').put(bytes('k'), bytes('w'), { revision: 3 }));
    expect(seen).toEqual(['synchronous = NORMAL', 'synchronous = FULL']);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
  });

  it('detects a corrupt applied-state row', () => {
    store.transaction(() => store.kv('p1').setApplied(at(9)));
    store.database.prepare('UPDATE kv_partitions SET applied_index = 10').run();
    store = h.reopen(store) as SqliteNodeStore;
    expect(() => store.kv('p1').applied()).toThrow(/partition p1: applied state row is corrupt/);
  });
});
