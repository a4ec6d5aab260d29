import { join } from 'node:path';
import { CompactedError, emptyConfState } from '@cohort/core';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkDataDir } from '../src/check-data-dir.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { ents, flushUntil, recordingLogger, tempDir, until } from './harness.js';

const conf = emptyConfState();
/** 3,000 entries of 1 KiB: a compaction to 2,500 leaves about ten jobs' worth of rows to delete. */
const ENTRIES = 3000;
const ENTRY_BYTES = 1024;
const COMPACT_TO = 2500;

/** The rows of `group`'s entries in the file, counted on a connection of their own. */
function rows(file: string, below = Number.MAX_SAFE_INTEGER): number {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare('SELECT count(*) FROM entries e JOIN groups g ON g.gid = e.gid WHERE g.name = ? AND e.idx <= ?')
      .pluck()
      .get('p1', below) as number;
  } finally {
    db.close();
  }
}

describe.each(['inline', 'thread'] as const)('compacted log rows (%s writer)', (writer) => {
  let t: ReturnType<typeof tempDir>;
  let file: string;
  let store: SqliteNodeStore;
  beforeEach(() => {
    t = tempDir();
    file = join(t.dir, 'node.db');
    store = SqliteNodeStore.open(file, { writer });
    store.writeSync([{ group: 'p1', entries: ents(1, ENTRIES, 1, ENTRY_BYTES) }]);
  });
  afterEach(() => {
    store.close();
    t.cleanup();
  });

  it('are deleted by later jobs, the log and its byte count exact meanwhile', async () => {
    await store.saveSnapshot(
      'p1',
      { meta: { index: COMPACT_TO + 100, term: 1, confState: conf }, data: new Uint8Array() },
      COMPACT_TO,
    );
    const g = store.group('p1');
    expect(g.firstIndex()).toBe(COMPACT_TO + 1);
    expect(() => g.entries(COMPACT_TO, COMPACT_TO + 1, 1 << 20)).toThrow(CompactedError);
    expect(store.stats('p1').bytes).toBe((ENTRIES - COMPACT_TO) * ENTRY_BYTES);
    await until('the compacted rows to be deleted', () => rows(file, COMPACT_TO) === 0);
    expect(rows(file)).toBe(ENTRIES - COMPACT_TO);
    expect(g.entries(COMPACT_TO + 1, ENTRIES + 1, 1 << 30)).toHaveLength(ENTRIES - COMPACT_TO);
    expect(store.stats('p1').bytes).toBe((ENTRIES - COMPACT_TO) * ENTRY_BYTES);
  });

  it('go in jobs of their own, appends committing between them', async () => {
    await store.saveSnapshot(
      'p1',
      { meta: { index: COMPACT_TO, term: 1, confState: conf }, data: new Uint8Array() },
      COMPACT_TO,
    );
    // Right after the compaction, most rows are still there: one small job deletes at a time.
    expect(rows(file, COMPACT_TO)).toBeGreaterThan(COMPACT_TO / 2);
    store.writeSync([{ group: 'p1', entries: ents(ENTRIES + 1, ENTRIES + 10, 1, ENTRY_BYTES) }]);
    await until('the compacted rows to be deleted', () => rows(file, COMPACT_TO) === 0);
    expect(rows(file)).toBe(ENTRIES + 10 - COMPACT_TO);
  });

  it('are all deleted when the store closes', () => {
    store.saveSnapshotSync(
      'p1',
      { meta: { index: COMPACT_TO, term: 1, confState: conf }, data: new Uint8Array() },
      COMPACT_TO,
    );
    store.close();
    expect(rows(file, COMPACT_TO)).toBe(0);
    expect(rows(file)).toBe(ENTRIES - COMPACT_TO);
  });

  it('left by a crash are deleted on open, the log intact', () => {
    store.saveSnapshotSync(
      'p1',
      { meta: { index: COMPACT_TO, term: 1, confState: conf }, data: new Uint8Array() },
      COMPACT_TO,
    );
    store.close();
    // What a crash before the deleting jobs ran leaves: rows at and before the compaction point.
    const db = new Database(file);
    const gid = db.prepare('SELECT gid FROM groups WHERE name = ?').pluck().get('p1') as number;
    const put = db.prepare('INSERT INTO entries (gid, idx, term, type, data, crc) VALUES (?, ?, 1, 0, ?, 0)');
    db.transaction(() => {
      for (let i = 1; i <= COMPACT_TO; i++) put.run(gid, i, new Uint8Array(ENTRY_BYTES));
    })();
    db.close();
    const report = checkDataDir(file);
    expect(report.ok).toBe(true);
    expect(report.findings).toEqual([
      expect.objectContaining({ severity: 'warning', group: 'p1', message: expect.stringMatching(/not deleted yet/) }),
    ]);
    const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
    store = SqliteNodeStore.open(file, { writer, logger: recordingLogger(lines) });
    expect(rows(file, COMPACT_TO)).toBe(0);
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: expect.stringMatching(/compacted log entries left/),
        fields: expect.objectContaining({ upTo: COMPACT_TO, entries: COMPACT_TO }),
      }),
    );
    const g = store.group('p1');
    expect(g.firstIndex()).toBe(COMPACT_TO + 1);
    expect(g.lastIndex()).toBe(ENTRIES);
    expect(g.entries(COMPACT_TO + 1, ENTRIES + 1, 1 << 30)).toHaveLength(ENTRIES - COMPACT_TO);
    expect(store.stats('p1').bytes).toBe((ENTRIES - COMPACT_TO) * ENTRY_BYTES);
    expect(checkDataDir(file).findings).toEqual([]);
  });

  it('left by an installed snapshot go in small jobs too, the new log exact meanwhile', async () => {
    // A follower far behind installs the leader's snapshot at 5,000: its 3,000 rows are left to later jobs.
    store.writeSync([
      { group: 'p1', snapshot: { meta: { index: 5000, term: 2, confState: conf }, data: new Uint8Array() } },
    ]);
    expect(rows(file)).toBeGreaterThan(ENTRIES / 2);
    const g = store.group('p1');
    expect([g.firstIndex(), g.lastIndex()]).toEqual([5001, 5000]);
    expect(store.stats('p1').bytes).toBe(0);
    store.writeSync([{ group: 'p1', entries: ents(5001, 5010, 2, ENTRY_BYTES) }]);
    await until('the rows the install left to be deleted', () => rows(file, 5000) === 0);
    expect(rows(file)).toBe(10);
    expect(g.entries(5001, 5011, 1 << 30)).toHaveLength(10);
    expect(store.stats('p1').bytes).toBe(10 * ENTRY_BYTES);
  });

  it('left by an installed snapshot inside the log: those after its index go at once, the rest on close', () => {
    store.saveSnapshotSync('p1', { meta: { index: 1000, term: 1, confState: conf }, data: new Uint8Array() }, 1000);
    // A snapshot at 2,000 replaces the whole log: rows 2,001 to 3,000 go in its commit, 1,001 to 2,000 later.
    store.writeSync([
      { group: 'p1', snapshot: { meta: { index: 2000, term: 2, confState: conf }, data: new Uint8Array() } },
    ]);
    expect(rows(file)).toBe(rows(file, 2000));
    store.writeSync([{ group: 'p1', entries: ents(2001, 2005, 2, 10) }]);
    store.close();
    expect(rows(file, 2000)).toBe(0);
    expect(rows(file)).toBe(5);
    store = SqliteNodeStore.open(file, { writer });
    const g = store.group('p1');
    expect([g.firstIndex(), g.lastIndex()]).toEqual([2001, 2005]);
    expect(store.stats('p1').bytes).toBe(5 * 10);
  });

  it('and a conflicting append keep the byte counts exact', async () => {
    await store.saveSnapshot(
      'p1',
      { meta: { index: COMPACT_TO, term: 1, confState: conf }, data: new Uint8Array() },
      COMPACT_TO,
    );
    // A new leader's entries from 2,900 on replace the old ones there.
    store.writeSync([{ group: 'p1', entries: ents(2900, 2950, 2, 10) }]);
    expect(store.group('p1').lastIndex()).toBe(2950);
    expect(store.stats('p1').bytes).toBe((2899 - COMPACT_TO) * ENTRY_BYTES + 51 * 10);
    await until('the compacted rows to be deleted', () => rows(file, COMPACT_TO) === 0);
    store.close();
    store = SqliteNodeStore.open(file, { writer });
    expect(store.stats('p1').bytes).toBe((2899 - COMPACT_TO) * ENTRY_BYTES + 51 * 10);
  });
});

describe('compacted log rows with the writer thread', () => {
  it('go with the held apply transactions, one job at a time, log appends committing ahead of them', async () => {
    const t = tempDir();
    const file = join(t.dir, 'node.db');
    // A long hold: only a flush (settled) commits what the writer holds.
    const store = SqliteNodeStore.open(file, { writer: 'thread', writerApplyBatchMs: 60_000 });
    try {
      store.writeSync([{ group: 'p1', entries: ents(1, ENTRIES, 1, ENTRY_BYTES) }]);
      await store.saveSnapshot(
        'p1',
        { meta: { index: COMPACT_TO, term: 1, confState: conf }, data: new Uint8Array() },
        COMPACT_TO,
      );
      // The first job (256 KiB of entry data: 256 rows of 1 KiB) went with the compaction's commit; the next
      // one, queued once it committed, is held. A log append (not writeSync, whose barrier commits what is
      // held) commits ahead of it.
      await store.write([{ group: 'p1', entries: ents(ENTRIES + 1, ENTRIES + 1, 1, ENTRY_BYTES) }]);
      expect(rows(file)).toBe(ENTRIES + 1 - 256);
      await new Promise((r) => setTimeout(r, 50));
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 256);
      // A flush commits it (once it was queued); the one after it is held in turn.
      await flushUntil(store, () => rows(file, COMPACT_TO) < COMPACT_TO - 256);
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 512);
      await new Promise((r) => setTimeout(r, 50));
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 512);
      await flushUntil(store, () => rows(file, COMPACT_TO) < COMPACT_TO - 512);
      expect(rows(file, COMPACT_TO)).toBe(COMPACT_TO - 768);
      store.close();
      expect(rows(file, COMPACT_TO)).toBe(0);
    } finally {
      store.close();
      t.cleanup();
    }
  });
});
