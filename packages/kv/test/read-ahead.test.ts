import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '@cohort/core';
import { type ReadAhead, SqliteNodeStore } from '@cohort/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvStateMachine } from '../src/index.js';
import { CONF, b, entry, setCmd, text } from './harness.js';

/** Polls until `done` holds, within a deadline. */
async function until(done: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('KvStateMachine reading ahead the rows of entries being appended', () => {
  let dir: string;
  let stores: SqliteNodeStore[];
  const open = (name: string, readAhead: 'on' | 'off'): SqliteNodeStore => {
    const s = SqliteNodeStore.open(join(dir, name), { quickCheck: false, writer: 'thread', readAhead });
    stores.push(s);
    return s;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-kv-ahead-'));
    stores = [];
  });
  afterEach(() => {
    for (const s of stores) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('asks the store for the keys each command will read, and applies exactly as a machine that was not told', async () => {
    const store = open('ahead.db', 'on');
    const sm = new KvStateMachine(store, 'p1');
    const plain = new KvStateMachine(open('plain.db', 'off'), 'p1');
    const first = [entry(1, setCmd('a', '1')), entry(2, setCmd('b', '2')), entry(3, setCmd('c', '3'))];
    sm.applyBatch(first, CONF);
    plain.applyBatch(first, CONF);
    await store.settled();
    const next: Entry[] = [
      entry(4, setCmd('a', '10')),
      entry(5, { op: 'mset', keys: [b('b'), b('new')], values: [b('20'), b('n')], now: 1000 }),
      entry(6, { op: 'rename', key: b('c'), dest: b('d'), nx: false, now: 1000 }),
      { index: 7, term: 1, type: 'confChange', data: b('conf') },
      { index: 8, term: 1, type: 'normal', data: new Uint8Array() },
      // Bytes that are no command: its apply reports it; reading ahead skips it.
      { index: 9, term: 1, type: 'normal', data: b('\xff\xff\xff') },
      entry(10, { op: 'flush', now: 1000 }),
    ];
    sm.prefetch(next);
    const ra = store.readAhead as ReadAhead;
    // a; b and new; c and d: five keys, of which a, b and c are stored.
    await until(
      () => ra.stats().read === 5,
      () => JSON.stringify(ra.stats()),
    );
    expect(ra.stats()).toMatchObject({ asked: 5, read: 5, found: 3, dropped: 0 });
    const told = sm.applyBatch(next, CONF);
    const untold = plain.applyBatch(next, CONF);
    expect(told.map((o) => (o === undefined ? undefined : o.ok ? o.value : o.error.message))).toEqual(
      untold.map((o) => (o === undefined ? undefined : o.ok ? o.value : o.error.message)),
    );
    expect(told[5]).toMatchObject({ ok: false });
    expect(sm.digest()).toBe(plain.digest());
  });

  it('applies the entry it is handed when a newer leader replaced the one it was told of at that index', () => {
    const store = open('ahead.db', 'on');
    const sm = new KvStateMachine(store, 'p1');
    sm.prefetch([entry(1, setCmd('x', 'old leader'), 1)]);
    sm.applyBatch([entry(1, setCmd('x', 'new leader'), 2)], CONF);
    expect(text(sm.get(b('x'), 1000))).toBe('new leader');
  });
});
