import type { CohortConfig } from '@cohort/core';
import type { LogLevel } from './logger.js';

/** What one `cohort start` runs with: core's validated configuration plus process-level settings. */
export interface NodeOptions {
  config: CohortConfig;
  /** How long a client request may wait for the cluster. @default 5000 */
  requestTimeoutMs: number;
  /** @default 'info' */
  logLevel: LogLevel;
}

/** The single replication group of this version of the node. */
export const KV_GROUP = 'p0';
