import type { CohortConfig } from '@cohort/core';
import type { LogLevel } from './logger.js';

/** What one `cohort start` runs with: core's validated configuration plus process-level settings. */
export interface NodeOptions {
  config: CohortConfig;
  /** How long a client request may wait for the cluster. @default 5000 */
  requestTimeoutMs: number;
  /** @default 'info' */
  logLevel: LogLevel;
  /** How often the leader checks that the replicas agree (a digest of the rows at one log index); 0 for never. @default 600000 */
  consistencyCheckMs: number;
}

/** The single replication group of this version of the node. */
export const KV_GROUP = 'p0';
