import type { Logger, NodeStore } from '@cohort/core';
import { SqliteNodeStore } from '@cohort/storage';

/** Opens the node's durable store, `<dataDir>/cohort.db` (SQLite, WAL, synchronous=FULL). */
export function openStore(dataDir: string, logger: Logger, snapshotEntries: number): NodeStore {
  return SqliteNodeStore.openDir(dataDir, { logger, limits: { snapshotEntries } });
}
