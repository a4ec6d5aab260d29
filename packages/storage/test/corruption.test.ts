import { copyFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StorageError } from '@cohort/core';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DATA_FILE_NAME, checkDataDir } from '../src/check-data-dir.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { ents, tempDir } from './harness.js';

const enc = new TextEncoder();
const marked = (lo: number, hi: number) =>
  ents(lo, hi, 1).map((e) => ({ ...e, data: enc.encode(`MARKER-${e.index}-${'x'.repeat(300)}`) }));

function flipByteAt(file: string, offset: number): void {
  const buf = readFileSync(file);
  buf[offset] = (buf[offset] as number) ^ 0x5a;
  writeFileSync(file, buf);
}

function errorsOf(dir: string): string[] {
  return checkDataDir(dir)
    .findings.filter((f) => f.severity === 'error')
    .map((f) => `${f.group ?? ''}:${f.index ?? ''}:${f.message}`);
}

describe('SqliteNodeStore detects corruption', () => {
  let dir: string;
  let cleanup: () => void;
  let file: string;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
    file = join(dir, DATA_FILE_NAME);
  });
  afterEach(() => cleanup());

  /** Runs `sql` on the database behind the store's back. */
  function tamper(sql: string): void {
    const db = new Database(file);
    db.exec(sql);
    db.close();
  }

  it('never serves an entry whose bytes changed, naming file, group and index', () => {
    const store = SqliteNodeStore.open(file, { cacheEntries: 2 });
    store.writeSync([{ group: 'p1', entries: marked(1, 10) }]);
    tamper("UPDATE entries SET data = CAST('evil' AS BLOB) WHERE idx = 3");
    const g = store.group('p1');
    expect(() => g.entries(1, 11, 1 << 20)).toThrow(StorageError);
    expect(() => g.entries(1, 11, 1 << 20)).toThrow(`${file}: group p1: entry 3 fails its CRC32C check`);
    expect(() => g.term(3)).toThrow(/entry 3 fails/);
    expect(g.entries(9, 11, 1 << 20)).toHaveLength(2);
    store.close();
    expect(errorsOf(dir)).toEqual(['p1:3:entry 3 fails its CRC32C check']);
  });

  it('reports a corrupt KV row, session or applied state by partition and key, and never serves the row', () => {
    const store = SqliteNodeStore.open(file);
    const kv = store.kv('p7');
    store.transaction(() => {
      kv.put(enc.encode('ok'), enc.encode('v'), { revision: 1 });
      kv.put(enc.encode('hurt'), enc.encode('v'), { revision: 1 });
      kv.saveResponse('c1', 1, enc.encode('r'), 5);
      kv.setApplied({
        index: 1,
        term: 1,
        confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      });
    });
    store.close();
    expect(checkDataDir(dir).kvRows).toEqual({ p7: 2 });
    expect(errorsOf(dir)).toEqual([]);
    tamper("UPDATE kv SET mod_rev = 2 WHERE key = CAST('hurt' AS BLOB); UPDATE sessions SET low_water = 3");
    expect(errorsOf(dir)).toEqual([
      `p7::${file}: partition p7: KV row for key 68757274 fails its CRC32C check`,
      `p7::${file}: partition p7: session of client c1 is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
    ]);
    const reopened = SqliteNodeStore.open(file);
    expect(() => reopened.kv('p7').get(enc.encode('hurt'))).toThrow(
      `${file}: partition p7: KV row for key 68757274 is corrupt`,
    );
    expect(reopened.kv('p7').get(enc.encode('ok'))).toBeDefined();
    reopened.close();
    tamper('UPDATE kv_partitions SET applied_index = 5');
    expect(errorsOf(dir)).toContain(
      `p7::${file}: partition p7: applied state row is corrupt (checksum mismatch); restore the partition from a healthy replica's snapshot`,
    );
  });

  it('refuses to open when a recent entry is corrupt', () => {
    const store = SqliteNodeStore.open(file);
    store.writeSync([{ group: 'p1', entries: marked(1, 5) }]);
    store.close();
    tamper('UPDATE entries SET term = 9 WHERE idx = 5');
    expect(() => SqliteNodeStore.open(file)).toThrow(/group p1: entry 5 fails its CRC32C check/);
  });

  it('refuses to open when the hard state was altered', () => {
    const store = SqliteNodeStore.open(file);
    store.writeSync([{ group: 'p1', entries: marked(1, 2), hardState: { term: 3, vote: 'n1', commit: 1 } }]);
    store.close();
    tamper("UPDATE groups SET vote = 'n2'");
    expect(() => SqliteNodeStore.open(file)).toThrow(
      /group p1: the hard state and log bounds row fails its CRC32C check/,
    );
    expect(errorsOf(dir)).toHaveLength(1);
  });

  it('refuses to open when an entry in the middle of the log is missing', () => {
    const store = SqliteNodeStore.open(file);
    store.writeSync([{ group: 'p1', entries: marked(1, 8) }]);
    store.close();
    tamper('DELETE FROM entries WHERE idx = 5');
    expect(() => SqliteNodeStore.open(file)).toThrow(/group p1: .*first bad index 5/);
    expect(errorsOf(dir)).toEqual(['p1:5:the log is not contiguous: expected entry 5, found 6']);
  });

  it('drops entries past the synced marker (a write that never committed) on open', () => {
    const store = SqliteNodeStore.open(file);
    store.writeSync([{ group: 'p1', entries: marked(1, 4) }]);
    store.close();
    tamper("INSERT INTO entries (gid, idx, term, type, data, crc) VALUES (1, 5, 1, 0, CAST('x' AS BLOB), 0)");
    expect(checkDataDir(dir).findings).toMatchObject([{ severity: 'warning', group: 'p1', index: 5 }]);
    const again = SqliteNodeStore.open(file);
    expect(again.group('p1').lastIndex()).toBe(4);
    again.close();
    expect(checkDataDir(dir).findings).toEqual([]);
  });

  it('refuses to open when a snapshot chunk is missing', () => {
    const store = SqliteNodeStore.open(file, { chunkBytes: 100 });
    store.writeSync([{ group: 'p1', entries: marked(1, 4) }]);
    store.saveSnapshotSync(
      'p1',
      {
        meta: { index: 4, term: 1, confState: store.group('p1').initialState().confState },
        data: new Uint8Array(1000),
      },
      2,
    );
    store.close();
    tamper('DELETE FROM snapshot_chunks WHERE seq = 3');
    expect(() => SqliteNodeStore.open(file)).toThrow(/group p1: the snapshot at index 4 has 9 of its 10 chunks/);
    expect(errorsOf(dir).join()).toMatch(/missing chunk 3/);
  });

  it('catches a flipped byte in entry data on disk', () => {
    const store = SqliteNodeStore.open(file);
    store.writeSync([{ group: 'p1', entries: marked(1, 20) }]);
    store.close();
    // The file may also hold stale copies of the cell on free pages: damage every copy.
    const image = readFileSync(file);
    let hits = 0;
    for (let at = image.indexOf('MARKER-7-'); at >= 0; at = image.indexOf('MARKER-7-', at + 1)) {
      flipByteAt(file, at + 12);
      hits++;
    }
    expect(hits).toBeGreaterThan(0);
    expect(() => SqliteNodeStore.open(file)).toThrow(/group p1: entry 7 fails its CRC32C check/);
    expect(errorsOf(dir)).toEqual(['p1:7:entry 7 fails its CRC32C check']);
  });

  it('catches damaged b-tree pages and a truncated database file', () => {
    const store = SqliteNodeStore.open(file);
    store.writeSync([{ group: 'p1', entries: ents(1, 400, 1, 200) }]);
    store.close();
    const size = readFileSync(file).length;
    copyFileSync(file, `${file}.bak`);
    // Byte 0 of page 3 is its b-tree page type.
    flipByteAt(file, 2 * 4096);
    expect(() => SqliteNodeStore.open(file)).toThrow(StorageError);
    expect(checkDataDir(dir).ok).toBe(false);
    copyFileSync(`${file}.bak`, file);
    truncateSync(file, Math.floor(size / 2));
    expect(() => SqliteNodeStore.open(file)).toThrow(StorageError);
    expect(checkDataDir(dir).ok).toBe(false);
  });

  describe('in the write-ahead log', () => {
    /** Copies the database and its WAL as they are on disk while the store is open: a crash image. */
    function crashImage(): { wal: string; frameSize: number; frames: number } {
      const store = SqliteNodeStore.open(join(dir, 'live.db'));
      for (let i = 1; i <= 6; i++)
        store.writeSync([{ group: 'p1', entries: marked(i, i), hardState: { term: 1, vote: '', commit: i - 1 } }]);
      copyFileSync(join(dir, 'live.db'), file);
      copyFileSync(join(dir, 'live.db-wal'), `${file}-wal`);
      store.close();
      const wal = `${file}-wal`;
      const frameSize = 24 + 4096;
      return { wal, frameSize, frames: (readFileSync(wal).length - 32) / frameSize };
    }

    it('opens a clean crash image with every acknowledged write', () => {
      crashImage();
      expect(checkDataDir(dir).findings).toEqual([]);
      const store = SqliteNodeStore.open(file);
      expect(store.group('p1').lastIndex()).toBe(6);
      store.close();
    });

    it('refuses a WAL whose middle frame is damaged (acknowledged commits follow it)', () => {
      const { wal, frameSize, frames } = crashImage();
      flipByteAt(wal, 32 + Math.floor(frames / 2) * frameSize + 100);
      // Two or more: how many depends on the transactions the schema migrations wrote before the log.
      expect(() => SqliteNodeStore.open(file)).toThrow(
        /is damaged and ([2-9]|[1-9]\d+) committed transaction\(s\) follow it/,
      );
      expect(errorsOf(dir)[0]).toMatch(/SQLite would drop acknowledged writes/);
    });

    it('refuses a WAL where a middle frame carries foreign salts', () => {
      const { wal, frameSize, frames } = crashImage();
      flipByteAt(wal, 32 + Math.floor(frames / 2) * frameSize + 9);
      expect(() => SqliteNodeStore.open(file)).toThrow(/SQLite would drop acknowledged writes/);
    });

    it('treats damage confined to the last transaction as its unsynced tail', () => {
      // A crash while the last transaction was written (or its checksums rewritten) looks exactly like this.
      const { wal, frameSize, frames } = crashImage();
      flipByteAt(wal, 32 + (frames - 1) * frameSize + 500);
      const report = checkDataDir(dir);
      expect(report.ok).toBe(true);
      expect(report.findings).toMatchObject([{ severity: 'warning', message: expect.stringMatching(/unsynced tail/) }]);
      const store = SqliteNodeStore.open(file);
      expect(store.group('p1').lastIndex()).toBe(5);
      store.close();
    });

    it('refuses a WAL with a damaged header', () => {
      const { wal } = crashImage();
      flipByteAt(wal, 17);
      expect(() => SqliteNodeStore.open(file)).toThrow(/WAL header is damaged/);
    });

    it('reports a WAL cut inside a frame as a torn tail and recovers the whole-frame prefix', () => {
      const { wal, frameSize, frames } = crashImage();
      truncateSync(wal, 32 + (frames - 1) * frameSize + 1000);
      const report = checkDataDir(dir);
      expect(report.ok).toBe(true);
      expect(report.findings).toMatchObject([{ severity: 'warning', message: expect.stringMatching(/unsynced tail/) }]);
      const store = SqliteNodeStore.open(file);
      expect(store.group('p1').lastIndex()).toBe(5);
      store.close();
    });
  });
});
