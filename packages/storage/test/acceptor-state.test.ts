import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryNodeStore } from '../src/memory-node-store.js';
import { migrate, schemaVersion } from '../src/schema.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { tempDir } from './harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('Vertical Paxos acceptor state in SQLite (migration 7)', () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
    file = join(dir, 'node.db');
  });
  afterEach(() => cleanup());

  it('migration 7 adds the acceptor tables to a version 6 database', () => {
    const db = new Database(file);
    migrate(db, file, 6);
    db.close();
    const store = SqliteNodeStore.open(file);
    expect(schemaVersion(store.database)).toBeGreaterThanOrEqual(7);
    expect(store.loadAcceptor('vp1')).toEqual({ maxBallot: 0, votes: [], compacted: 0 });
    store.close();
  });

  it('a promise and votes survive a reopen; a promise is never lowered; a vote replaces the slot', async () => {
    let store = SqliteNodeStore.open(file);
    await store.saveAcceptor('vp1', 5, [
      { slot: 1, ballot: 5, value: bytes('a'), chosen: false },
      { slot: 2, ballot: 5, value: bytes('b'), chosen: false },
    ]);
    await store.saveAcceptor('vp1', 3, [{ slot: 1, ballot: 5, value: bytes('a'), chosen: true }]);
    await store.saveAcceptor('vp2', 9, []);
    store.close();
    store = SqliteNodeStore.open(file);
    const s = store.loadAcceptor('vp1');
    expect(s.maxBallot).toBe(5);
    expect(s.votes).toEqual([
      { slot: 1, ballot: 5, value: bytes('a'), chosen: true },
      { slot: 2, ballot: 5, value: bytes('b'), chosen: false },
    ]);
    expect(store.loadAcceptor('vp2').maxBallot).toBe(9);
    store.close();
  });

  it('the writer thread stores the acceptor state as the inline writer does', async () => {
    let store = SqliteNodeStore.open(file, { writer: 'thread' });
    await store.saveAcceptor('vp1', 3, [{ slot: 1, ballot: 3, value: bytes('t'), chosen: true }]);
    store.close();
    store = SqliteNodeStore.open(file);
    expect(store.loadAcceptor('vp1')).toEqual({
      maxBallot: 3,
      votes: [{ slot: 1, ballot: 3, value: bytes('t'), chosen: true }],
      compacted: 0,
    });
    store.close();
  });

  it('a damaged vote row fails its checksum, naming the file, group and slot', async () => {
    let store = SqliteNodeStore.open(file);
    await store.saveAcceptor('vp1', 2, [{ slot: 4, ballot: 2, value: bytes('v'), chosen: false }]);
    store.close();
    const db = new Database(file);
    db.prepare('UPDATE vp_votes SET ballot = 1 WHERE slot = 4').run();
    db.close();
    store = SqliteNodeStore.open(file);
    expect(() => store.loadAcceptor('vp1')).toThrow(/node\.db: group vp1: the vote at slot 4 fails its checksum/);
    store.close();
  });

  it('refuses a negative ballot or a slot below 1 before writing anything', async () => {
    const store = SqliteNodeStore.open(file);
    await expect(store.saveAcceptor('vp1', -1, [])).rejects.toThrow(/max ballot -1/);
    await expect(
      store.saveAcceptor('vp1', 1, [{ slot: 0, ballot: 1, value: bytes('x'), chosen: false }]),
    ).rejects.toThrow(/slot 0/);
    expect(store.loadAcceptor('vp1')).toEqual({ maxBallot: 0, votes: [], compacted: 0 });
    store.close();
  });

  it('compaction: the point and the votes after it are durable together, the votes up to it gone; the point is never lowered', async () => {
    let store = SqliteNodeStore.open(file, { writer: 'thread' });
    const votes = [1, 2, 3, 4].map((slot) => ({ slot, ballot: 2, value: bytes(`v${slot}`), chosen: true }));
    await store.saveAcceptor('vp1', 2, votes);
    await store.saveAcceptor('vp1', undefined, [{ slot: 5, ballot: 2, value: bytes('v5'), chosen: false }], 3);
    await store.saveAcceptor('vp1', undefined, [], 1);
    store.close();
    store = SqliteNodeStore.open(file);
    const s = store.loadAcceptor('vp1');
    expect(s.compacted).toBe(3);
    expect(s.votes.map((v) => v.slot)).toEqual([4, 5]);
    store.close();
    const db = new Database(file);
    db.prepare('UPDATE vp_compaction SET slot = 9').run();
    db.close();
    store = SqliteNodeStore.open(file);
    expect(() => store.loadAcceptor('vp1')).toThrow(/group vp1: the acceptor's compaction row fails its checksum/);
    store.close();
  });

  it('migration 8 adds the compaction table to a version 7 database', () => {
    const db = new Database(file);
    migrate(db, file, 7);
    db.close();
    const store = SqliteNodeStore.open(file);
    expect(schemaVersion(store.database)).toBe(8);
    expect(store.loadAcceptor('vp1').compacted).toBe(0);
    store.close();
  });
});

describe('Vertical Paxos acceptor state in memory', () => {
  it('with autoSync off, a crash loses the writes not synced and keeps the synced ones', async () => {
    const store = new MemoryNodeStore({ autoSync: false });
    await store.saveAcceptor('vp1', 4, [{ slot: 1, ballot: 4, value: bytes('a'), chosen: false }]);
    store.sync();
    await store.saveAcceptor('vp1', 6, [{ slot: 2, ballot: 6, value: bytes('b'), chosen: false }]);
    expect(store.loadAcceptor('vp1').maxBallot).toBe(6);
    store.crash();
    expect(store.loadAcceptor('vp1')).toEqual({
      maxBallot: 4,
      votes: [{ slot: 1, ballot: 4, value: bytes('a'), chosen: false }],
      compacted: 0,
    });
  });

  it('a compaction not synced is lost with a crash, votes and point together', async () => {
    const store = new MemoryNodeStore({ autoSync: false });
    await store.saveAcceptor(
      'vp1',
      4,
      [1, 2, 3].map((slot) => ({ slot, ballot: 4, value: bytes('a'), chosen: true })),
    );
    store.sync();
    await store.saveAcceptor('vp1', undefined, [], 2);
    expect(store.loadAcceptor('vp1')).toMatchObject({ compacted: 2, votes: [{ slot: 3 }] });
    store.crash();
    expect(store.loadAcceptor('vp1').compacted).toBe(0);
    expect(store.loadAcceptor('vp1').votes.length).toBe(3);
    await store.saveAcceptor('vp1', undefined, [], 2);
    store.sync();
    store.crash();
    expect(store.loadAcceptor('vp1')).toMatchObject({ compacted: 2, votes: [{ slot: 3 }] });
  });

  it('never lowers a promise, as the SQLite store', async () => {
    const store = new MemoryNodeStore();
    await store.saveAcceptor('vp1', 7, []);
    await store.saveAcceptor('vp1', 2, []);
    expect(store.loadAcceptor('vp1').maxBallot).toBe(7);
  });
});
