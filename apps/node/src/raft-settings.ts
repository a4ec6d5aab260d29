import type { RaftConfig } from '@cohort/core';
import type { RaftHostOptions } from '@cohort/raft';
import type { LogLimits } from '@cohort/storage';

/** Bytes in flight to a follower catching up, unless `maxInflightBytes` is lower (see {@link hostSettings}). */
const CATCH_UP_INFLIGHT_BYTES = 4 * 1024 * 1024;
/**
 * Bytes of committed entries applied per Ready round, unless `maxAppendBytes` is lower: a batch is
 * applied on the event loop (about 45 µs an entry at 1M keys), so a follower catching up answers
 * heartbeats and reads between batches of a few tens of milliseconds.
 */
const APPLY_BATCH_BYTES = 256 * 1024;

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
    | 'maxCatchUpInflightBytes'
    | 'maxApplyBytes'
    | 'snapshotBytesPerSec'
    | 'snapshotMinBytesPerSec'
    | 'maxOutstandingReadies'
    | 'leaseReads'
    | 'quiesce'
    | 'commitNoticeDelayMs'
    | 'readIndexHedgeMs'
  >
>;

/**
 * Maps the configured times onto the host's ticks: one tick per heartbeat
 * interval; the election timeout range in whole ticks (the engine randomizes
 * in [min, max]), the minimum at least two ticks. The snapshot triggers and
 * the log bound are the store's too (see {@link storeLimits}). Appends to a
 * follower are bounded in bytes per message and in messages and bytes in flight
 * (fewer bytes to one catching up), committed entries applied per round in
 * bytes, and snapshot transfers in bytes per second.
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
    // A follower catching up (after a snapshot, a restart) gets its backlog through a window of a few appends
    // and applies it in bounded batches, not the whole in-flight window at once (decoded at both ends and
    // applied in one transaction: a wiped follower of the scale benchmark peaked at 566-750 MB).
    maxCatchUpInflightBytes: Math.max(raft.maxAppendBytes, Math.min(raft.maxInflightBytes, CATCH_UP_INFLIGHT_BYTES)),
    maxApplyBytes: Math.min(raft.maxAppendBytes, APPLY_BATCH_BYTES),
    snapshotBytesPerSec: raft.snapshotRateBytes,
    snapshotMinBytesPerSec: raft.snapshotRateMinBytes,
    leaseReads: raft.leaseReads,
    quiesce: raft.quiesce,
    commitNoticeDelayMs: raft.commitNoticeDelayMs,
    readIndexHedgeMs: raft.readIndexHedgeMs,
    // Up to 4 Ready rounds in flight: the leader sends entries proposed during its own fsync at once, and a
    // node whose writes stall (a slow or full disk) keeps heartbeating; a full disk hands its leaderships
    // over (DiskGuard), which works because a TimeoutNow leaves before the stalled writes.
    maxOutstandingReadies: 4,
  };
}
