import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StorageError, emptyConfState } from '@cohort/core';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyPartitionImage } from '../src/sqlite-kv-image.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import type { KvView } from '../src/types.js';
import { tempDir } from './harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const images = (dir: string): string[] => readdirSync(dir).filter((n) => n.includes('-image-'));

/** A full checkpoint from a connection of its own: whether a reader kept it from going through. */
function checkpointBlocked(file: string): boolean {
  // No busy wait: a reader in the way answers at once.
  const db = new Database(file, { timeout: 0 });
  try {
    const [r] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    return r?.busy !== 0;
  } finally {
    db.close();
  }
}

describe.each(['inline', 'thread'] as const)('a detached view of a partition (writer %s)', (writer) => {
  let t: ReturnType<typeof tempDir>;
  let file: string;
  let store: SqliteNodeStore;
  beforeEach(() => {
    t = tempDir();
    file = join(t.dir, 'cohort.db');
    store = SqliteNodeStore.open(file, { writer });
    const kv = store.kv('p1');
    store.transaction(() => {
      for (let i = 0; i < 3000; i++)
        kv.put(bytes(`k${String(i).padStart(5, '0')}`), bytes(`v${i}`), { revision: i + 1 });
      kv.setApplied({ index: 3000, term: 2, confState: { ...emptyConfState(), voters: ['n1'] } }, 77);
    });
    store.flush();
  });
  afterEach(() => {
    store.close();
    t.cleanup();
  });

  it('lets the store checkpoint its WAL while it is open, where a plain view does not', async () => {
    const kv = store.kv('p1');
    const write = (i: number): void => {
      store.transaction(() => kv.put(bytes(`w${i}`), bytes('x'), { revision: 4000 + i }));
      store.flush();
    };
    const pinned = kv.openView();
    write(1);
    expect(checkpointBlocked(file)).toBe(true);
    pinned.close();

    const view: KvView = await kv.openDetachedView();
    try {
      write(2);
      expect(checkpointBlocked(file)).toBe(false);
      // And it still reads the partition as of its instant.
      expect(view.applied.index).toBe(3000);
      expect(view.logTime).toBe(77);
      const all = view.rows(undefined, 10_000);
      expect(all).toHaveLength(3001);
      expect(all.some((r) => new TextDecoder().decode(r.key) === 'w2')).toBe(false);
      expect(images(t.dir)).toHaveLength(1);
    } finally {
      view.close();
    }
    // Closing it deletes its copy (off the event loop).
    const deadline = Date.now() + 5000;
    while (images(t.dir).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(images(t.dir)).toEqual([]);
  });

  it('copies only the partition asked for', async () => {
    store.transaction(() => store.kv('p2').put(bytes('other'), bytes('o'), { revision: 1 }));
    const view = await store.kv('p2').openDetachedView();
    try {
      expect(view.rows(undefined, 10).map((r) => new TextDecoder().decode(r.key))).toEqual(['other']);
      const [image] = images(t.dir);
      // A few pages: the 3,000 rows of p1 stayed behind.
      expect(statSync(join(t.dir, image as string)).size).toBeLessThan(200_000);
    } finally {
      view.close();
    }
  });

  it('leaves nothing behind when a copy fails, and says which partition it was for', async () => {
    const err = await copyPartitionImage(join(t.dir, 'missing', 'cohort.db'), 'p1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/missing\/cohort\.db: partition p1: cannot copy the partition aside/);
    expect(images(t.dir)).toEqual([]);
  });

  it('removes copies an earlier process left when the store opens', () => {
    store.close();
    writeFileSync(`${file}-image-12345-1`, 'left by a crash');
    store = SqliteNodeStore.open(file, { writer });
    expect(existsSync(`${file}-image-12345-1`)).toBe(false);
  });
});
