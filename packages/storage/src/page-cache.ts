import type Database from 'better-sqlite3';

/**
 * SQLite's page cache of a connection: the database pages it keeps in memory
 * between reads. better-sqlite3 builds SQLite with 16 MB a connection
 * (`SQLITE_DEFAULT_CACHE_SIZE=-16000`), and each connection of a node fills
 * its own once the database is larger than that: ~18 MB of RSS each with the
 * allocator's overhead, for the event loop's connection and the writer
 * thread's, and the read-ahead thread's and every snapshot or digest view's
 * while they run. With the database's pages in the operating system's page
 * cache anyway, a page SQLite does not keep costs a `pread` when next read:
 * a b-tree's interior pages are read on every lookup and stay, and at random
 * over a large key space the leaves mostly miss either way.
 */

/**
 * The default of {@link SqliteNodeStoreOptions.pageCacheBytes}: the event loop's and the writer's
 * connections. Holds every interior page of a million-row `kv` b-tree (~1 MB) with room for hot leaves.
 */
export const DEFAULT_PAGE_CACHE_BYTES = 4 * 1024 * 1024;

/**
 * Connections that read each page about once: a view's scans in key order (snapshots, digests, the
 * consistency check) and the read-ahead thread, whose reads are there to bring pages into the operating
 * system's cache, not its own.
 */
export const SCAN_PAGE_CACHE_BYTES = 2 * 1024 * 1024;

/** Sets `db`'s page cache to `bytes` (`PRAGMA cache_size` in KiB; SQLite keeps at least 10 pages). */
export function setPageCache(db: Database.Database, bytes: number): void {
  db.pragma(`cache_size = -${Math.max(1, Math.floor(bytes / 1024))}`);
}
