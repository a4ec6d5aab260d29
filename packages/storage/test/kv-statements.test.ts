import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrate } from '../src/schema.js';
import { prepareKvStatements } from '../src/sqlite-kv-statements.js';

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
});
