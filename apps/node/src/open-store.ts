import type { Logger } from '@cohort/core';
import { type DurableNodeStore, type LogLimits, SqliteNodeStore, type SqliteNodeStoreOptions } from '@cohort/storage';

/**
 * A test hook: while the file this variable names exists, the store's writer
 * thread holds each commit before it starts, as a stalled fsync would.
 */
export const COMMIT_GATE_ENV = 'COHORT_TEST_COMMIT_GATE';

/**
 * A test hook: while the file this variable names exists, the database file
 * may not grow (`PRAGMA max_page_count` on the writer's connection), so
 * commits fail with SQLite's own SQLITE_FULL as on a full disk; the store
 * retries them until the file is removed.
 */
export const DISK_FULL_GATE_ENV = 'COHORT_TEST_DISK_FULL';

/**
 * A diagnostic: `inline` runs the store's writes on the event loop instead of
 * the writer thread (for comparing the two; never faster under load).
 */
export const WRITER_ENV = 'COHORT_STORE_WRITER';

/**
 * The node's row cache unless `--row-cache-bytes` says otherwise: 16 MiB, about
 * 22,000 rows of 100-byte values. A key is cached on its second miss or write,
 * so reads and writes at random over a key space far larger than this cache
 * leave it mostly empty (see `KvRowCache` in @cohort/storage).
 */
export const DEFAULT_ROW_CACHE_BYTES = 16 * 1024 * 1024;

/**
 * Opens the node's durable store, `<dataDir>/cohort.db` (SQLite, WAL,
 * synchronous=FULL), with the log's bounds. Its writes run on a writer
 * thread, so the event loop keeps serving while a commit waits on the disk.
 */
export function openStore(
  dataDir: string,
  logger: Logger,
  limits: LogLimits,
  tuning: Pick<SqliteNodeStoreOptions, 'rowCacheBytes' | 'pageCacheBytes' | 'readAhead' | 'writerApplyBatchMs'> = {},
): DurableNodeStore {
  const gate = process.env[COMMIT_GATE_ENV];
  if (gate) logger.warn('test hook: commits wait while this file exists', { file: gate });
  const full = process.env[DISK_FULL_GATE_ENV];
  if (full) logger.warn('test hook: the database cannot grow while this file exists', { file: full });
  const writer = process.env[WRITER_ENV] === 'inline' ? 'inline' : 'thread';
  if (writer === 'inline') logger.warn(`${WRITER_ENV}=inline: the store writes on the event loop`);
  return SqliteNodeStore.openDir(dataDir, {
    ...tuning,
    rowCacheBytes: tuning.rowCacheBytes ?? DEFAULT_ROW_CACHE_BYTES,
    logger,
    limits,
    writer,
    ...(gate ? { commitGate: gate } : {}),
    ...(full ? { diskFullGate: full } : {}),
  });
}
