/**
 * @cohort/storage: durable state for Cohort on SQLite (better-sqlite3): per-group
 * hard state, CRC-checked log entries, chunked snapshots, KV tables and group
 * commit; and an in-memory store with the same contract for simulation.
 */
export {
  type CheckFinding,
  type CheckReport,
  DATA_FILE_NAME,
  type GroupCheck,
  checkDataDir,
} from './check-data-dir.js';
export {
  type AcceptorStateStore,
  type StoredAcceptorState,
  type StoredVote,
  acceptorRowCrc,
  compactionRowCrc,
  voteRowCrc,
} from './acceptor-state.js';
export {
  type CarvedHolder,
  SLABS_KEPT,
  SLABS_PER_CHECK,
  SLAB_BYTES,
  type SlabState,
  carvedKeyValue,
  holdsCarved,
  slabOf,
  slabState,
  unpinnedRecord,
} from './byte-slabs.js';
export { crc32c } from './crc32c.js';
export {
  type MemoryCrashOptions,
  type MemorySyncOptions,
  MemoryNodeStore,
  type MemoryNodeStoreOptions,
  type MemoryWriteOptions,
} from './memory-node-store.js';
export { MIGRATIONS, SCHEMA_VERSION, migrate, schemaVersion } from './schema.js';
export { type PinnedViewOptions, openImageView, openPinnedView } from './sqlite-kv-view.js';
export type { KvRowCacheStats } from './sqlite-kv-row-cache.js';
export { DEFAULT_PAGE_CACHE_BYTES } from './page-cache.js';
export { SqliteNodeStore, type SqliteNodeStoreOptions } from './sqlite-node-store.js';
export {
  READ_AHEAD_MODES,
  ReadAhead,
  type ReadAheadMode,
  type ReadAheadOptions,
  type ReadAheadStats,
} from './sqlite-prefetch.js';
export { workerModuleUrl } from './sqlite-write-queue.js';
export * from './types.js';
export { type WalReport, scanWal } from './wal-scan.js';
