import { join } from 'node:path';
import { StorageError } from '@cohort/core';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_PAGE_CACHE_BYTES, SCAN_PAGE_CACHE_BYTES } from '../src/page-cache.js';
import { SqliteNodeStore } from '../src/sqlite-node-store.js';
import { tempDir } from './harness.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
/** A connection's page cache in bytes (`PRAGMA cache_size` answers negated KiB). */
const cacheOf = (db: Database.Database): number => -(db.pragma('cache_size', { simple: true }) as number) * 1024;

describe("SQLite's page cache of the store's connections", () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir();
  });
  afterEach(() => t.cleanup());

  it('is 4 MiB on the store connection unless given, not better-sqlite3 16 MB', () => {
    const store = SqliteNodeStore.open(join(t.dir, 'a.db'));
    expect(cacheOf(store.database)).toBe(DEFAULT_PAGE_CACHE_BYTES);
    store.close();
    const given = SqliteNodeStore.open(join(t.dir, 'b.db'), { pageCacheBytes: 1024 * 1024 });
    expect(cacheOf(given.database)).toBe(1024 * 1024);
    given.close();
    expect(() => SqliteNodeStore.open(join(t.dir, 'c.db'), { pageCacheBytes: -1 })).toThrow(StorageError);
  });

  it("is 2 MiB on a view's connection, which scans each page about once", async () => {
    const store = SqliteNodeStore.open(join(t.dir, 'v.db'), { writer: 'thread', pageCacheBytes: 8 * 1024 * 1024 });
    try {
      const kv = store.kv('p');
      store.transaction(() => {
        for (let i = 0; i < 100; i++) kv.put(bytes(`k${i}`), bytes('v'), { revision: i + 1 });
      });
      await store.settled();
      const view = kv.openView();
      try {
        const db = (view as unknown as { db: Database.Database }).db;
        expect(cacheOf(db)).toBe(SCAN_PAGE_CACHE_BYTES);
        expect(view.rows(undefined, 1000)).toHaveLength(100);
      } finally {
        view.close();
      }
    } finally {
      store.close();
    }
  });
});
