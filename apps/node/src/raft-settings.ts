import type { RaftConfig } from '@cohort/core';
import type { RaftHostOptions } from '@cohort/raft';
import type { LogLimits } from '@cohort/storage';

/** The store's log bounds, from the `raft` section of the configuration. */
export function storeLimits(raft: RaftConfig): Required<LogLimits> {
  return {
    snapshotEntries: raft.snapshotIntervalEntries,
    snapshotBytes: raft.snapshotIntervalBytes,
    maxLogBytes: raft.maxLogSizeBytes,
  };
}

/** The timing and snapshot options of the Raft host, from the `raft` section of the configuration. */
export type HostSettings = Required<Pick<RaftHostOptions, 'tickMs' | 'electionTicks' | 'snapshotEntries'>>;

/**
 * Maps the configured times onto the host's ticks: one tick per heartbeat
 * interval; the election timeout in whole ticks, at least two.
 */
export function hostSettings(raft: RaftConfig): HostSettings {
  return {
    tickMs: raft.heartbeatIntervalMs,
    // The engine randomizes the timeout in [electionTicks, 2 x electionTicks) ticks.
    electionTicks: Math.max(2, Math.round(raft.electionTimeoutMinMs / raft.heartbeatIntervalMs)),
    snapshotEntries: raft.snapshotIntervalEntries,
  };
}
