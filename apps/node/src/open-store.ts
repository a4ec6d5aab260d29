import type { Logger } from '@cohort/core';
import { type DurableNodeStore, type LogLimits, SqliteNodeStore } from '@cohort/storage';

/** Opens the node's durable store, `<dataDir>/cohort.db` (SQLite, WAL, synchronous=FULL), with the log's bounds. */
export function openStore(dataDir: string, logger: Logger, limits: LogLimits): DurableNodeStore {
  return SqliteNodeStore.openDir(dataDir, { logger, limits });
}
