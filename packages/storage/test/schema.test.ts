import { join } from 'node:path';
import { emptyConfState } from '@cohort/core/raft-types';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entryCrc, groupRowCrc } from '../src/checksums.js';
import { kvRowCrc, partitionCrc } from '../src/kv-checksums.js';
import { GENERATION_CURRENT, MIGRATIONS, SCHEMA_VERSION, migrate, schemaVersion } from '../src/schema.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { tempDir } from './harness.js';

/** Partition p1 in generation 1, marked current, applied at (9, 2): as every older schema version stores it. */
function currentPartition(db: Database.Database) {
  const conf = emptyConfState();
  db.prepare('INSERT INTO kv_generations (gen_id, name, status) VALUES (1, ?, ?)').run('p1', GENERATION_CURRENT);
  const applied = { index: 9, term: 2, confState: conf };
  db.prepare('INSERT INTO kv_partitions VALUES (?, 1, 9, 2, ?, 1234, ?)').run(
    'p1',
    JSON.stringify(conf),
    partitionCrc('p1', 1, applied, 1234),
  );
  return applied;
}

describe('schema migrations', () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
    file = join(dir, 'node.db');
  });
  afterEach(() => cleanup());

  it('creates a new database at the latest version in WAL mode with synchronous=FULL', () => {
    const store = SqliteNodeStore.open(file);
    expect(schemaVersion(store.database)).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    expect(store.database.pragma('journal_mode', { simple: true })).toBe('wal');
    // 2 = FULL
    expect(store.database.pragma('synchronous', { simple: true })).toBe(2);
    store.close();
  });

  it('upgrades a version 1 database holding a log, keeping its data', () => {
    const db = new Database(file);
    migrate(db, file, 1);
    expect(schemaVersion(db)).toBe(1);
    const data = new TextEncoder().encode('old entry');
    const hardState = { term: 2, vote: 'n1', commit: 1 };
    db.prepare('INSERT INTO groups VALUES (1, ?, ?, ?, ?, 0, 0, 1, 0, ?)').run(
      'p1',
      hardState.term,
      hardState.vote,
      hardState.commit,
      groupRowCrc({ name: 'p1', hardState, compactIndex: 0, compactTerm: 0, lastIndex: 1, snapId: 0 }),
    );
    db.prepare('INSERT INTO entries VALUES (1, 1, 2, 0, ?, ?)').run(data, entryCrc('p1', 1, 2, 0, data));
    expect(() => db.prepare('SELECT * FROM kv').all()).toThrow(/no such table/);
    db.close();

    const store = SqliteNodeStore.open(file);
    expect(schemaVersion(store.database)).toBe(SCHEMA_VERSION);
    const g = store.group('p1');
    expect(g.initialState().hardState).toEqual(hardState);
    expect(new TextDecoder().decode(g.entries(1, 2, 100)[0]?.data)).toBe('old entry');
    store.kv('p1').put(new Uint8Array([1]), new Uint8Array([2]), { revision: 1, expiresAt: 5 });
    store.close();
    const reopened = SqliteNodeStore.open(file);
    expect(reopened.kv('p1').get(new Uint8Array([1]))?.expiresAt).toBe(5);
    reopened.close();
  });

  it('upgrades a version 3 database holding KV rows and sessions, checksumming every row', () => {
    const db = new Database(file);
    migrate(db, file, 3);
    const ins = db.prepare('INSERT INTO kv VALUES (?, ?, ?, ?, ?, ?)');
    ins.run('p1', Buffer.from('a'), Buffer.from('1'), 3, 5, null);
    ins.run('p1', Buffer.from('b'), Buffer.from('2'), 4, 4, 9000);
    ins.run('p2', Buffer.from('a'), Buffer.from('other'), 1, 1, null);
    db.prepare('INSERT INTO sessions VALUES (?, ?, ?, ?)').run('p1', 'c1', 7, Buffer.from('OK'));
    db.close();

    const store = SqliteNodeStore.open(file);
    expect(schemaVersion(store.database)).toBe(SCHEMA_VERSION);
    const kv = store.kv('p1');
    expect(kv.get(new TextEncoder().encode('a'))).toMatchObject({ createRevision: 3, modifyRevision: 5 });
    expect(new TextDecoder().decode(kv.get(new TextEncoder().encode('b'))?.value)).toBe('2');
    expect(kv.get(new TextEncoder().encode('b'))?.expiresAt).toBe(9000);
    expect(kv.expired(9000, 10)).toHaveLength(1);
    expect(kv.count()).toBe(2);
    expect(kv.applied().index).toBe(0);
    expect(store.kv('p2').count()).toBe(1);
    expect(kv.session('c1')).toEqual({ clientId: 'c1', lowWater: 6, lastActive: 0 });
    expect(new TextDecoder().decode(kv.response('c1', 7))).toBe('OK');
    // The migrated rows carry real checksums: tampering is caught.
    store.database
      .prepare(
        "UPDATE kv SET value = x'00' WHERE key = x'61' AND gen_id = (SELECT generation FROM kv_partitions WHERE name = 'p2')",
      )
      .run();
    expect(() => store.kv('p2').get(new TextEncoder().encode('a'))).toThrow(
      /partition p2: KV row for key 61 is corrupt/,
    );
    expect(() => store.database.prepare('SELECT * FROM kv_v3').all()).toThrow(/no such table/);
    store.close();
  });

  it('upgrades a version 4 data directory: its rows read as version 1 with the checksums they carry, then count writes', () => {
    const db = new Database(file);
    migrate(db, file, 4);
    const applied = currentPartition(db);
    const a = Buffer.from('a');
    const v = Buffer.from('old');
    db.prepare('INSERT INTO kv VALUES (1, ?, ?, 3, 8, NULL, ?)').run(a, v, kvRowCrc('p1', a, v, 3, 8, null));
    db.close();

    const enc = new TextEncoder();
    let store = SqliteNodeStore.open(file);
    expect(schemaVersion(store.database)).toBe(SCHEMA_VERSION);
    let kv = store.kv('p1');
    expect(kv.applied()).toEqual(applied);
    expect(kv.get(enc.encode('a'))).toMatchObject({ createRevision: 3, modifyRevision: 8, version: 1 });
    kv.put(enc.encode('a'), enc.encode('new'), { revision: 10 });
    kv.put(enc.encode('b'), enc.encode('x'), { revision: 11 });
    store.close();
    store = SqliteNodeStore.open(file);
    kv = store.kv('p1');
    expect(kv.get(enc.encode('a'))).toMatchObject({ createRevision: 3, modifyRevision: 10, version: 2 });
    expect(kv.get(enc.encode('b'))).toMatchObject({ createRevision: 11, modifyRevision: 11, version: 1 });
    // The version is under the row's checksum.
    store.flush();
    store.database.prepare("UPDATE kv SET version = 7 WHERE key = x'61'").run();
    // Read from the file, not from the rows this store has cached.
    store.close();
    store = SqliteNodeStore.open(file);
    expect(() => store.kv('p1').get(enc.encode('a'))).toThrow(/KV row for key 61 is corrupt/);
    store.close();
  });

  it('upgrades a version 5 data directory: its rows read as strings with the checksums they carry; a row type is checksummed', () => {
    const db = new Database(file);
    migrate(db, file, 5);
    currentPartition(db);
    const a = Buffer.from('a');
    const v = Buffer.from('old');
    db.prepare('INSERT INTO kv VALUES (1, ?, ?, 3, 8, NULL, ?, 2)').run(a, v, kvRowCrc('p1', a, v, 3, 8, null, 2));
    db.close();

    const enc = new TextEncoder();
    let store = SqliteNodeStore.open(file);
    expect(schemaVersion(store.database)).toBe(SCHEMA_VERSION);
    let kv = store.kv('p1');
    const old = kv.get(enc.encode('a'));
    expect(old).toMatchObject({ createRevision: 3, modifyRevision: 8, version: 2 });
    expect(old?.type).toBeUndefined();
    kv.put(enc.encode('h'), enc.encode('fields'), { revision: 10, type: 'hash' });
    kv.put(enc.encode('l'), enc.encode('items'), { revision: 11, type: 'list', expiresAt: 99_999 });
    store.close();
    store = SqliteNodeStore.open(file);
    kv = store.kv('p1');
    expect(kv.get(enc.encode('h'))).toMatchObject({ type: 'hash', version: 1 });
    expect(kv.get(enc.encode('l'))).toMatchObject({ type: 'list', expiresAt: 99_999 });
    expect(kv.scan().map((r) => r.type)).toEqual([undefined, 'hash', 'list']);
    // A put without a type makes the key a string again.
    kv.put(enc.encode('h'), enc.encode('s'), { revision: 12 });
    expect(kv.get(enc.encode('h'))?.type).toBeUndefined();
    store.flush();
    store.database.prepare("UPDATE kv SET type = 1 WHERE key = x'6c'").run();
    // Read from the file, not from the rows this store has cached.
    store.close();
    store = SqliteNodeStore.open(file);
    expect(() => store.kv('p1').get(enc.encode('l'))).toThrow(/KV row for key 6c is corrupt/);
    store.close();
  });

  it('refuses a database written by a newer schema', () => {
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => SqliteNodeStore.open(file)).toThrow(/newer than this build supports/);
  });

  it('refuses a file that is not a database', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, 'this is not a database file, it is text'.repeat(200));
    expect(() => SqliteNodeStore.open(file)).toThrow(/cannot open the database|quick_check/);
  });
});
