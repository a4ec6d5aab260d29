import type { GroupId, GroupWrite, LogIndex, LogStats, NodeStore, Snapshot, SnapshotMeta } from '@cohort/core';

/** Size bounds of one group's log (seed 002's snapshot and log-size policy). */
export interface LogLimits {
  /**
   * Entries appended since the last snapshot after which the group should snapshot.
   * @default 10000
   */
  snapshotEntries?: number;
  /**
   * Bytes of entry data appended since the last snapshot after which the group should snapshot.
   * @default 104857600 (100 MB)
   */
  snapshotBytes?: number;
  /**
   * Bytes of entry data the log may hold; past it new proposals are refused until compaction catches up.
   * @default 524288000 (500 MB)
   */
  maxLogBytes?: number;
}

/** The resolved limits, every field present. */
export type ResolvedLogLimits = Required<LogLimits>;

/** Fills in the defaults of {@link LogLimits}. */
export function resolveLimits(limits: LogLimits = {}): ResolvedLogLimits {
  return {
    snapshotEntries: limits.snapshotEntries ?? 10_000,
    snapshotBytes: limits.snapshotBytes ?? 100 * 1024 * 1024,
    maxLogBytes: limits.maxLogBytes ?? 500 * 1024 * 1024,
  };
}

export type { LogStats } from '@cohort/core';

/** Streams a snapshot into the store chunk by chunk, so a large one never sits whole in memory. */
export interface SnapshotSink {
  /** Appends the next piece of snapshot data (any size; the store re-chunks it). */
  write(data: Uint8Array): void;
  /** Makes the snapshot the group's current one and drops log entries up to `compactTo`, durably. */
  finish(compactTo: LogIndex): void;
  /** Discards what was written so far. */
  abort(): void;
}

/** Reads a stored snapshot chunk by chunk; every chunk's checksum is verified as it is read. */
export interface SnapshotSource {
  meta: SnapshotMeta;
  /** Total bytes of snapshot data. */
  size: number;
  chunks(): Iterable<Uint8Array>;
}

/** One key of a partition's KV data, with etcd-style revisions. */
export interface KvRecord {
  key: Uint8Array;
  value: Uint8Array;
  /** Revision (log index) that created the key. */
  createRevision: number;
  /** Revision (log index) of the last write to the key. */
  modifyRevision: number;
  /** Expiry time in ms since the epoch, when the key has one. */
  expiresAt?: number;
}

/** Options of {@link PartitionKv.put}. */
export interface KvPutOptions {
  /** The revision (log index) of this write. */
  revision: number;
  /** Expiry in ms since the epoch; absent means the key never expires. */
  expiresAt?: number;
}

/** A key range for {@link PartitionKv.scan}: `start` inclusive, `end` exclusive, byte order. */
export interface KvScanOptions {
  /** @default the first key */
  start?: Uint8Array;
  /** @default past the last key */
  end?: Uint8Array;
  /** @default unlimited */
  limit?: number;
}

/** The last write of a client, for exactly-once retries. */
export interface ClientSession {
  clientId: string;
  /** Highest request sequence number applied for this client. */
  lastSequence: number;
  /** The response to that request, replayed on a retry. */
  lastResponse: Uint8Array;
}

/** The KV data and client sessions of one partition. */
export interface PartitionKv {
  get(key: Uint8Array): KvRecord | undefined;
  /** Writes `key`; keeps the create revision of an existing key. */
  put(key: Uint8Array, value: Uint8Array, opts: KvPutOptions): void;
  /** Removes `key`; returns whether it existed. */
  delete(key: Uint8Array): boolean;
  /** Keys in byte order within the range. */
  scan(opts?: KvScanOptions): KvRecord[];
  /** Removes every key and session (before restoring a snapshot). */
  clear(): void;
  session(clientId: string): ClientSession | undefined;
  saveSession(session: ClientSession): void;
}

/**
 * A {@link NodeStore} with Cohort's storage extras: log size policy,
 * explicit compaction, chunked snapshots and per-partition KV tables.
 */
export interface DurableNodeStore extends NodeStore {
  /**
   * One transaction with one fsync for the whole batch; resolves once durable.
   * Entries are immutable once written: the store may keep them in its cache,
   * so callers must not reuse their data buffers.
   */
  write(batch: GroupWrite[]): Promise<void>;
  /**
   * {@link write} done before it returns, on the caller's thread; throws
   * instead of rejecting. For tools, tests and recovery, never a hot path.
   */
  writeSync(batch: GroupWrite[]): void;
  /** {@link NodeStore.saveSnapshot} done before it returns; throws instead of rejecting. */
  saveSnapshotSync(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): void;
  /** Drops entries up to and including `index` (which must be in the log or be the last compacted index). */
  compact(group: GroupId, index: LogIndex): void;
  /** Sizes of the group's log and what the size policy says. */
  stats(group: GroupId): LogStats;
  /** Throws `ProposalDroppedError` when the group's log is past `maxLogBytes`. */
  admitProposal(group: GroupId, bytes: number): void;
  /** Starts writing a snapshot the application produced. */
  beginSnapshot(group: GroupId, meta: SnapshotMeta): SnapshotSink;
  /** The group's current snapshot for chunked reading, if it has one. */
  openSnapshot(group: GroupId): SnapshotSource | undefined;
  /** Groups with any stored state. */
  groups(): GroupId[];
  /** The KV data of one partition. */
  kv(partition: string): PartitionKv;
  /** Runs `fn` as one atomic, durable transaction (KV writes of one applied batch). */
  transaction<T>(fn: () => T): T;
}
