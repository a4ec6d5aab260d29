import type { Logger, NodeStore } from '@cohort/core';
import { type LogLimits, SqliteNodeStore } from '@cohort/storage';

/** Opens the node's durable store, `<dataDir>/cohort.db` (SQLite, WAL, synchronous=FULL), with the log's bounds. */
export function openStore(dataDir: string, logger: Logger, limits: LogLimits): NodeStore {
  return SqliteNodeStore.openDir(dataDir, { logger, limits });
}
