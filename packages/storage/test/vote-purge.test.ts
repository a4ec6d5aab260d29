import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StoredVote } from '../src/acceptor-state.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { VoteRows } from '../src/vote-rows.js';
import { flushUntil, recordingLogger, tempDir, until } from './harness.js';

/** 3,000 votes whose rows count 1 KiB each (a 976-byte value and the row's 48): ~ten jobs' worth of rows. */
const SLOTS = 3000;
const VALUE_BYTES = 976;
const COMPACT_TO = 2500;

function vote(slot: number, bytes = VALUE_BYTES): StoredVote {
  return { slot, ballot: 1, chosen: true, value: new Uint8Array(bytes).fill(slot % 251) };
}

/** Writes votes `lo..hi` a hundred a commit. */
async function writeVotes(store: SqliteNodeStore, lo: number, hi: number): Promise<void> {
  for (let from = lo; from <= hi; from += 100) {
    const votes: StoredVote[] = [];
    for (let s = from; s <= Math.min(hi, from + 99); s++) votes.push(vote(s));
    await store.saveAcceptor('vp1', 1, votes);
  }
}

/** The rows of `vp1`'s votes at or below `upTo` in the file, counted on a connection of their own. */
function rows(file: string, upTo = Number.MAX_SAFE_INTEGER): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM vp_votes WHERE name = ? AND slot <= ?').pluck().get('vp1', upTo) as number;
  } finally {
    db.close();
  }
}

describe.each(['inline', 'thread'] as const)('votes an acceptor compaction drops (%s writer)', (writer) => {
  let t: ReturnType<typeof tempDir>;
  let file: string;
  let store: SqliteNodeStore;
  beforeEach(async () => {
    t = tempDir();
    file = join(t.dir, 'node.db');
    store = SqliteNodeStore.open(file, { writer });
    await writeVotes(store, 1, SLOTS);
  });
  afterEach(() => {
    store.close();
    t.cleanup();
  });

  it('are gone from loads at once and from the file after later jobs', async () => {
    await store.saveAcceptor('vp1', undefined, [], COMPACT_TO);
    const s = store.loadAcceptor('vp1');
    expect(s.compacted).toBe(COMPACT_TO);
    expect(s.votes.map((v) => v.slot)).toEqual(
      Array.from({ length: SLOTS - COMPACT_TO }, (_, i) => COMPACT_TO + 1 + i),
    );
    // Right after the compaction most rows are still there: one small job deletes at a time.
    expect(rows(file, COMPACT_TO)).toBeGreaterThan(COMPACT_TO / 2);
    await store.saveAcceptor('vp1', undefined, [vote(SLOTS + 1)]);
    await until('the dropped votes to be deleted', () => rows(file, COMPACT_TO) === 0);
    expect(rows(file)).toBe(SLOTS + 1 - COMPACT_TO);
    store.close();
    store = SqliteNodeStore.open(file, { writer });
    expect(store.loadAcceptor('vp1')).toEqual({
      maxBallot: 1,
      compacted: COMPACT_TO,
      votes: Array.from({ length: SLOTS + 1 - COMPACT_TO }, (_, i) => vote(COMPACT_TO + 1 + i)),
    });
  });

  it('are all deleted when the store closes', async () => {
    await store.saveAcceptor('vp1', undefined, [], COMPACT_TO);
    store.close();
    expect(rows(file, COMPACT_TO)).toBe(0);
    expect(rows(file)).toBe(SLOTS - COMPACT_TO);
  });

  it('left by a crash are deleted on open, the later votes intact', async () => {
    await store.saveAcceptor('vp1', undefined, [], COMPACT_TO);
    store.close();
    // What a crash before the deleting jobs ran leaves: rows at and below the compaction point. Their CRCs
    // are wrong, so a load that read them would fail: the open deletes them first.
    const db = new Database(file);
    const put = db.prepare('INSERT INTO vp_votes (name, slot, ballot, chosen, value, crc) VALUES (?, ?, 1, 1, ?, 0)');
    db.transaction(() => {
      for (let slot = 1; slot <= COMPACT_TO; slot++) put.run('vp1', slot, new Uint8Array(VALUE_BYTES));
    })();
    db.close();
    const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
    store = SqliteNodeStore.open(file, { writer, logger: recordingLogger(lines) });
    expect(rows(file, COMPACT_TO)).toBe(0);
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: expect.stringMatching(/compacted acceptor votes left/),
        fields: expect.objectContaining({ group: 'vp1', upTo: COMPACT_TO, votes: COMPACT_TO }),
      }),
    );
    const s = store.loadAcceptor('vp1');
    expect(s.compacted).toBe(COMPACT_TO);
    expect(s.votes).toHaveLength(SLOTS - COMPACT_TO);
  });

  it('include a vote written below the highest slot, and one written after the compaction below its point', async () => {
    await store.saveAcceptor('vp1', undefined, [vote(SLOTS + 10)]);
    await store.saveAcceptor('vp1', undefined, [vote(SLOTS + 5)]);
    await store.saveAcceptor('vp1', undefined, [], SLOTS + 7);
    await store.saveAcceptor('vp1', undefined, [vote(SLOTS + 6)]);
    expect(store.loadAcceptor('vp1').votes.map((v) => v.slot)).toEqual([SLOTS + 10]);
    await until('the dropped votes to be deleted', () => rows(file, SLOTS + 7) === 0);
    expect(rows(file)).toBe(1);
  });
});

describe('votes an acceptor compaction drops, with the writer thread', () => {
  it('are held with the apply transactions, one job at a time; votes commit ahead of them, a compaction after them', async () => {
    const t = tempDir();
    const file = join(t.dir, 'node.db');
    // A long hold: only a flush (settled) commits what the writer holds.
    const store = SqliteNodeStore.open(file, { writer: 'thread', writerApplyBatchMs: 60_000 });
    try {
      await writeVotes(store, 1, SLOTS);
      await store.saveAcceptor('vp1', undefined, [], COMPACT_TO);
      // The first job (256 KiB: 256 rows of 1 KiB) went to the writer with the compaction and committed with it.
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 256);
      // The next, queued once it committed, is held, not committed on its own...
      await new Promise((r) => setTimeout(r, 50));
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 256);
      // ...and an acceptor's votes commit ahead of it, as log appends do.
      await store.saveAcceptor('vp1', undefined, [vote(SLOTS + 1)]);
      expect(rows(file)).toBe(SLOTS + 1 - 256);
      // A flush commits it; the next is held in turn.
      await flushUntil(store, () => rows(file, COMPACT_TO) < COMPACT_TO - 256);
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 512);
      await new Promise((r) => setTimeout(r, 50));
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 512);
      // An acceptor write with a compaction point is ordered: it commits what is held before it.
      await store.saveAcceptor('vp1', undefined, [vote(SLOTS + 2)], COMPACT_TO);
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 768);
      store.close();
      expect(rows(file, COMPACT_TO)).toBe(0);
      expect(rows(file)).toBe(SLOTS + 2 - COMPACT_TO);
    } finally {
      store.close();
      t.cleanup();
    }
  });
});

describe('VoteRows', () => {
  it('takes the lowest rows at or below the compaction point, bounded in rows and bytes, at least one', () => {
    const r = new VoteRows();
    for (let slot = 1; slot <= 10; slot++) r.wrote(slot, 52);
    expect(r.pending()).toBe(false);
    expect(r.take(1 << 20, 100)).toBeUndefined();
    r.compacted = 7;
    expect(r.pending()).toBe(true);
    expect(r.take(1 << 20, 3)).toBe(3);
    expect(r.take(250, 100)).toBe(5);
    expect(r.take(10, 100)).toBe(6);
    expect(r.take(1 << 20, 100)).toBe(7);
    expect(r.pending()).toBe(false);
    expect(r.take(1 << 20, 100)).toBeUndefined();
    expect(r.rows).toBe(3);
    r.wrote(4, 1);
    r.wrote(12, 1);
    r.wrote(2, 1);
    expect(r.pending()).toBe(true);
    expect(r.take(1 << 20, 1)).toBe(2);
    expect(r.take(1 << 20, 100)).toBe(4);
    expect(r.rows).toBe(4);
    // Out of order above the point: nothing to take until a compaction passes it, then in slot order.
    r.wrote(11, 1);
    expect(r.pending()).toBe(false);
    expect(r.take(1 << 20, 100)).toBeUndefined();
    r.compacted = 11;
    expect(r.take(1 << 20, 2)).toBe(9);
    expect(r.take(1 << 20, 100)).toBe(11);
    expect(r.rows).toBe(1);
  });
});
