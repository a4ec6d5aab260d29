import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { migrate } from '../src/schema.js';
import { type Job, JobRunner, type Op, supersededSessionWrites } from '../src/sqlite-ops.js';

const put = (gen: number, client: string, lowWater: number): Op => ['putSession', gen, client, lowWater, lowWater, 7];
const del = (gen: number, client: string): Op => ['delSession', gen, client];
const job = (seq: number, ...ops: Op[]): Job => ({ seq, durable: false, ops });

/** The sessions table, in key order. */
function sessions(db: Database.Database): unknown[] {
  return db.prepare('SELECT * FROM sessions ORDER BY gen_id, client_id').all();
}

describe('a commit group writes each session once', () => {
  it('finds the writes a later write of the same session, in any job of the group, makes moot', () => {
    const first = put(1, 'a', 1);
    const other = put(2, 'a', 1);
    const dropped = del(1, 'b');
    const second = put(1, 'a', 2);
    const last = put(1, 'b', 3);
    const moot = supersededSessionWrites([
      job(1, first, other, dropped),
      job(2, ['put', 1, new Uint8Array([1])], second, last),
    ]);
    expect(moot?.size).toBe(2);
    expect(moot?.has(first) && moot.has(dropped)).toBe(true);
    expect(supersededSessionWrites([job(1, put(1, 'a', 1), put(1, 'b', 1)), job(2, put(2, 'a', 1))])).toBeUndefined();
  });

  it('leaves the table as running every statement in order does, for any group of jobs', () => {
    const clients = fc.constantFrom('a', 'b', 'c');
    const op = fc.oneof(
      fc.tuple(fc.constantFrom(1, 2), clients, fc.nat(100)).map(([g, c, w]) => put(g, c, w)),
      fc.tuple(fc.constantFrom(1, 2), clients).map(([g, c]) => del(g, c)),
    );
    fc.assert(
      fc.property(fc.array(fc.array(op, { maxLength: 8 }), { minLength: 1, maxLength: 5 }), (groups) => {
        const jobs = groups.map((ops, i) => job(i + 1, ...ops));
        const coalesced = new Database(':memory:');
        const plain = new Database(':memory:');
        try {
          for (const db of [coalesced, plain]) migrate(db, ':memory:');
          expect(new JobRunner(coalesced).run(jobs)).toBe(1);
          const putRow = plain.prepare('INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?)');
          const delRow = plain.prepare('DELETE FROM sessions WHERE gen_id = ? AND client_id = ?');
          for (const j of jobs) for (const o of j.ops) (o[0] === 'putSession' ? putRow : delRow).run(...o.slice(1));
          expect(sessions(coalesced)).toEqual(sessions(plain));
        } finally {
          coalesced.close();
          plain.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
