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

/** The timing, snapshot and replication-flow options of the Raft host, from the `raft` section of the configuration. */
export type HostSettings = Required<
  Pick<
    RaftHostOptions,
    | 'tickMs'
    | 'electionTicks'
    | 'electionTicksMax'
    | 'snapshotEntries'
    | 'snapshotBytes'
    | 'maxLogBytes'
    | 'maxAppendBytes'
    | 'maxInflightAppends'
    | 'maxInflightBytes'
    | 'snapshotBytesPerSec'
    | 'snapshotMinBytesPerSec'
    | 'maxOutstandingReadies'
    | 'leaseReads'
    | 'quiesce'
  >
>;

/**
 * Maps the configured times onto the host's ticks: one tick per heartbeat
 * interval; the election timeout range in whole ticks (the engine randomizes
 * in [min, max]), the minimum at least two ticks. The snapshot triggers and
 * the log bound are the store's too (see {@link storeLimits}). Appends to a
 * follower are bounded in bytes per message and in messages and bytes in flight,
 * and snapshot transfers in bytes per second.
 */
export function hostSettings(raft: RaftConfig): HostSettings {
  const ticks = (ms: number): number => Math.max(2, Math.round(ms / raft.heartbeatIntervalMs));
  const electionTicks = ticks(raft.electionTimeoutMinMs);
  return {
    tickMs: raft.heartbeatIntervalMs,
    electionTicks,
    electionTicksMax: Math.max(electionTicks, ticks(raft.electionTimeoutMaxMs)),
    snapshotEntries: raft.snapshotIntervalEntries,
    snapshotBytes: raft.snapshotIntervalBytes,
    maxLogBytes: raft.maxLogSizeBytes,
    maxAppendBytes: raft.maxAppendBytes,
    maxInflightAppends: raft.maxInflightAppends,
    maxInflightBytes: raft.maxInflightBytes,
    snapshotBytesPerSec: raft.snapshotRateBytes,
    snapshotMinBytesPerSec: raft.snapshotRateMinBytes,
    leaseReads: raft.leaseReads,
    quiesce: raft.quiesce,
    // One Ready round at a time in the binary for now: with pipelined rounds a leader whose disk is full keeps
    // heartbeating and so keeps its groups while it cannot apply (the others should take the writes), and a
    // watch resumed after a restart was seen to replay an event. The library and the simulator run 4.
    maxOutstandingReadies: 1,
  };
}
