import type { Logger } from '@cohort/core';
import { type DurableNodeStore, type LogLimits, SqliteNodeStore } from '@cohort/storage';

/**
 * A test hook: while the file this variable names exists, the store's writer
 * thread holds each commit before it starts, as a stalled fsync would.
 */
export const COMMIT_GATE_ENV = 'COHORT_TEST_COMMIT_GATE';

/**
 * Opens the node's durable store, `<dataDir>/cohort.db` (SQLite, WAL,
 * synchronous=FULL), with the log's bounds. Its writes run on a writer
 * thread, so the event loop keeps serving while a commit waits on the disk.
 */
export function openStore(dataDir: string, logger: Logger, limits: LogLimits): DurableNodeStore {
  const gate = process.env[COMMIT_GATE_ENV];
  if (gate) logger.warn('test hook: commits wait while this file exists', { file: gate });
  return SqliteNodeStore.openDir(dataDir, {
    logger,
    limits,
    writer: 'thread',
    ...(gate ? { commitGate: gate } : {}),
  });
}
