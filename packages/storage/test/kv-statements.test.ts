import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrate } from '../src/schema.js';
import { prepareKvStatements } from '../src/sqlite-kv-statements.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { tempDir } from './harness.js';

describe('KV statements', () => {
  it('bound a range scan by both ends of the key index, so a point range reads one row, not the rest of the partition', () => {
    const db = new Database(':memory:');
    migrate(db, ':memory:');
    const st = prepareKvStatements(db);
    const plan = (sql: string): string =>
      (
        db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all({ gen: 1, start: Buffer.from('a'), end: Buffer.from('b'), limit: 2 }) as {
          detail: string;
        }[]
      )
        .map((r) => r.detail)
        .join('; ');
    expect(plan(st.scanTo.source)).toMatch(/SEARCH kv USING .*\(gen_id=\? AND key>\? AND key<\?\)/);
    expect(plan(st.scan.source)).toMatch(/SEARCH kv USING .*\(gen_id=\? AND key>\?\)/);

    // And it answers: 20,000 keys, a point range asking for one more row than it holds.
    const gen = 1;
    const put = db.prepare(
      'INSERT INTO kv (gen_id, key, value, create_rev, mod_rev, expires_at, crc, version, type) VALUES (?, ?, ?, 1, 1, NULL, 0, 1, 0)',
    );
    db.transaction(() => {
      for (let i = 0; i < 20_000; i++) put.run(gen, Buffer.from(`k${String(i).padStart(5, '0')}`), Buffer.from('v'));
    })();
    const rows = st.scanTo.all({
      gen,
      start: Buffer.from('k00007'),
      end: Buffer.from('k00007\x00'),
      limit: 2,
    }) as { key: Buffer }[];
    expect(rows.map((r) => r.key.toString())).toEqual(['k00007']);
    db.close();
  });

  it('read the least recently active sessions from the idle index, without sorting', () => {
    const db = new Database(':memory:');
    migrate(db, ':memory:');
    const st = prepareKvStatements(db);
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${st.leastActive.source}`).all(1, 10) as { detail: string }[])
      .map((r) => r.detail)
      .join('; ');
    expect(plan).toMatch(/SEARCH sessions USING COVERING INDEX sessions_idle \(gen_id=\?\)/);
    expect(plan).not.toMatch(/TEMP B-TREE/);
    db.close();
  });

  it('let the idle sweep skip its query while no session can be idle yet: until the cutoff passes the oldest activity', () => {
    const { dir, cleanup } = tempDir();
    const store = SqliteNodeStore.open(join(dir, 'node.db'));
    try {
      const kv = store.kv('p');
      const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
      store.transaction(() => {
        kv.saveResponse('c1', 1, bytes('r1'), 1000);
        kv.saveResponse('c2', 1, bytes('r2'), 1500);
      });
      // Count the sweep's reads of the sessions index.
      const st = (kv as unknown as { st: { leastActive: { all: (...args: unknown[]) => unknown[] } } }).st;
      const all = st.leastActive.all.bind(st.leastActive);
      let reads = 0;
      st.leastActive.all = (...args) => {
        reads++;
        return all(...args);
      };
      // Sweeps with cutoffs moving up, as the log time does, all below the oldest activity: one read.
      for (let cutoff = 100; cutoff <= 1000; cutoff += 100) expect(kv.idleSessions(cutoff, 10)).toEqual([]);
      expect(reads).toBe(1);
      expect(kv.idleSessions(1001, 10)).toEqual(['c1']);
      expect(reads).toBe(2);
      store.transaction(() => kv.dropSession('c1'));
      // An activity written older than the floor lowers it: the next sweep reads again and finds it.
      store.transaction(() => kv.saveResponse('c3', 1, bytes('r3'), 500));
      expect(kv.idleSessions(1200, 10)).toEqual(['c3']);
      expect(reads).toBe(3);
      store.transaction(() => kv.dropSession('c3'));
      expect(kv.idleSessions(1300, 10)).toEqual([]);
      expect(kv.idleSessions(1500, 10)).toEqual([]);
      expect(reads).toBe(4);
      expect(kv.idleSessions(1501, 10)).toEqual(['c2']);
    } finally {
      store.close();
      cleanup();
    }
  });
});
