import type { CohortConfig } from '@cohort/core';
import type { PartitionEngine } from '@cohort/kv';
import type { ReadAheadMode } from '@cohort/storage';
import type { AclUserConfig } from './auth.js';
import type { WriteLimits } from './limits.js';
import type { LogLevel } from './logger.js';
import type { VpLeaseOptions } from './vpaxos/lease-config.js';

/** What one `cohort start` runs with: core's validated configuration plus process-level settings. */
export interface NodeOptions {
  config: CohortConfig;
  /** How long a client request may wait for the cluster. @default 5000 */
  requestTimeoutMs: number;
  /** @default 'info' */
  logLevel: LogLevel;
  /** How often the leader checks that the replicas agree (a digest of the rows at one log index); 0 for never. @default 600000 */
  consistencyCheckMs: number;
  /** Sizes of client writes and bounds of client connections (`limits` in the config file). */
  limits: ClientLimits;
  /** Cluster secret, client authentication and TLS (`security` in the config file). */
  security: SecurityOptions;
  /** How long a graceful stop (SIGTERM) may take in all before the node stops at once. @default 10000 */
  shutdownTimeoutMs: number;
  /** The HTTP address of a member to join a running cluster through (`--join host:port`). */
  joinAddress?: string;
  /** Operator tags of this node (`--tag key=value`), e.g. zone. @default {} */
  tags?: Record<string, string>;
  /** How long a node stays dead before the placement controller replaces its replicas. @default 30000 */
  deadGraceMs?: number;
  /**
   * Bytes of KV rows recently read or written that the store keeps in memory, shared by the node's partitions
   * (`--row-cache-bytes`); 0 for none. @default 16 MiB (`DEFAULT_ROW_CACHE_BYTES`)
   */
  rowCacheBytes?: number;
  /**
   * SQLite's page cache of each of the store's two long-lived connections, in bytes (`--page-cache-bytes`).
   * @default 4 MiB (`DEFAULT_PAGE_CACHE_BYTES` of @cohort/storage)
   */
  pageCacheBytes?: number;
  /**
   * The most the store's writer thread holds apply transactions to commit them together, in ms
   * (`--writer-apply-batch-ms`; `SqliteNodeStoreOptions.writerApplyBatchMs` of @cohort/storage); 0 for none.
   * @default 50
   */
  writerApplyBatchMs?: number;
  /**
   * Whether the store reads KV rows ahead of the event loop on a thread of its own (`--read-ahead`):
   * `auto` while its reads go to the disk, `on`, `off`. @default 'auto'
   */
  readAhead?: ReadAheadMode;
  /** Voters of the meta group at most: 3 or 5. @default 3 */
  metaVoters?: number;
  /** How often the meta leader runs the placement controller. @default 1000 */
  placementIntervalMs?: number;
  /** The failure detector's probe interval (SWIM). @default 1000 */
  swimProbeMs?: number;
  /** How long entries wait past an unmoving commit index before a partition shows `stuck`. @default 10000 */
  stuckAfterMs?: number;
  /**
   * The replication engine of a new cluster's partitions (`--partition-engine`): `raft` (2f+1 replicas) or
   * `vpaxos` (Vertical Paxos II, f+1 replicas). @default 'raft'
   */
  partitionEngine?: PartitionEngine;
  /** Per-partition overrides of {@link partitionEngine} (`--partition-engines 1=vpaxos,3=vpaxos`). */
  partitionEngines?: Record<number, PartitionEngine>;
  /** A vpaxos primary refuses writes while its configuration has fewer copies (`--min-replicas-to-write`). @default 1 */
  minReplicasToWrite?: number;
  /**
   * A vpaxos replica compacts its acceptor votes once this many slots were
   * applied past its compaction point; 0: never (`--vpaxos-compact-slots`). @default 10000
   */
  vpaxosCompactSlots?: number;
  /**
   * A vpaxos replica compacts its acceptor votes too once those it holds
   * (in memory) reach this many bytes of values; 0: slots alone
   * (`--vpaxos-compact-bytes`). @default 67108864
   */
  vpaxosCompactBytes?: number;
  /** Read leases of vpaxos primaries (`--vpaxos-read-lease-ms`, the config's `vpaxos` section); absent: off. */
  vpaxosLease?: VpLeaseOptions;
}

/** What clients may send and hold: write sizes, connections, output buffers. */
export interface ClientLimits extends WriteLimits {
  /** Most RESP connections open at once (Redis' maxclients). @default 10000 */
  maxClients: number;
  /** Most argument bytes of one RESP command the server buffers (client-query-buffer-limit). @default 32 MiB */
  maxQueryBytes: number;
  /** A RESP connection whose unsent replies exceed this is closed. @default 256 MiB */
  outputBufferHardBytes: number;
  /** ... or stay above this (or unread while commands wait) for `outputBufferSoftSeconds`. @default 32 MiB */
  outputBufferSoftBytes: number;
  /** @default 30 */
  outputBufferSoftSeconds: number;
  /** HTTP requests served at once; past it a request answers 503 BUSY at once. @default 4096 */
  maxHttpRequests: number;
}

/** The node's security settings. */
export interface SecurityOptions {
  /** The cluster secret (pre-shared key) read from `clusterSecretFile`: peers without it cannot connect. */
  clusterSecret?: Uint8Array;
  /** The default user's password: RESP clients must AUTH. */
  requirepass?: string;
  /** ACL users (RESP AUTH user pass, HTTP bearer tokens). */
  users: AclUserConfig[];
  /** The token `GET /metrics` requires, when set. */
  metricsToken?: string;
  /** Certificate chain and key (PEM) of the RESP and HTTP servers, when they serve TLS. */
  tls?: { cert: Buffer; key: Buffer };
}

/** The single replication group of this version of the node. */
export const KV_GROUP = 'p0';
