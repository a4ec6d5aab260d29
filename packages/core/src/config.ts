import { z } from 'zod';
import { type ConfigIssue, checkConfigRules } from './config-rules.js';
import { ConfigError } from './errors.js';
import type { NodeId } from './ids.js';

/** This node: its id, where it listens, and where it keeps its data. */
export interface NodeConfig {
  /** Stable id, unique in the cluster: letters, digits, `.`, `_`, `-` (at most 64). */
  id: NodeId;
  /**
   * RESP (Redis protocol) listen address, `host:port`.
   * @default '127.0.0.1:6379'
   */
  clientAddress: string;
  /**
   * HTTP/JSON and admin listen address, `host:port`.
   * @default '127.0.0.1:8080'
   */
  httpAddress: string;
  /**
   * libp2p listen address for peer traffic, `host:port`.
   * @default '127.0.0.1:7000'
   */
  peerAddress: string;
  /**
   * Where the node keeps its database and peer identity.
   * @default 'data/<id>'
   */
  dataDir: string;
  /** The peer address other nodes should dial, when `peerAddress` binds a wildcard or a NAT sits between. */
  advertiseAddress?: string;
}

/** A member of the initial cluster. */
export interface ClusterMember {
  id: NodeId;
  /** Where the member's libp2p transport listens (`host:port`). */
  peerAddress: string;
  /** The member's RESP address, for redirecting clients. */
  clientAddress?: string;
  /** The member's HTTP address. */
  httpAddress?: string;
}

/** The cluster this node starts in. */
export interface ClusterConfig {
  /**
   * Form a new cluster from `initialMembers` (true), or join an existing one (false).
   * @default true
   */
  bootstrap: boolean;
  /**
   * The members of the cluster at bootstrap: 1 (a single-node cluster) or at least 3.
   * @default [this node]
   */
  initialMembers: ClusterMember[];
  /**
   * Replicas of each partition; at most the number of initial members.
   * @default min(3, initialMembers.length)
   */
  replicationFactor: number;
  /**
   * Partitions of the key space (its 16,384 slots in contiguous ranges),
   * each replicated by its own Raft group; set when the cluster is created
   * and fixed for its data directory afterwards (1 to 16,384).
   * @default 1
   */
  partitions: number;
}

/** Raft timing and log bounds. */
export interface RaftConfig {
  /**
   * How often a leader sends heartbeats.
   * @default 100
   */
  heartbeatIntervalMs: number;
  /**
   * Lower bound of the randomized election timeout; at least 2 x `heartbeatIntervalMs`.
   * @default 500
   */
  electionTimeoutMinMs: number;
  /**
   * Upper bound of the randomized election timeout; at least `electionTimeoutMinMs`.
   * @default 1000
   */
  electionTimeoutMaxMs: number;
  /**
   * Take a snapshot after this many entries since the last one.
   * @default 10000
   */
  snapshotIntervalEntries: number;
  /**
   * Take a snapshot after this many bytes of entries since the last one.
   * @default 104857600 (100 MiB)
   */
  snapshotIntervalBytes: number;
  /**
   * Refuse proposals once the uncompacted log exceeds this many bytes.
   * @default 524288000 (500 MiB)
   */
  maxLogSizeBytes: number;
  /**
   * Most bytes of entries in one append message to a follower (one entry always fits), as etcd's
   * MaxSizePerMsg; at most 8 MiB, so a message fits a transport frame.
   * @default 1048576 (1 MiB)
   */
  maxAppendBytes: number;
  /**
   * Most append messages in flight to one follower while it keeps up, as etcd's MaxInflightMsgs.
   * @default 256
   */
  maxInflightAppends: number;
  /**
   * Most bytes of entries in flight to one follower, as etcd's MaxInflightBytes; at least
   * `maxAppendBytes`. The default stays under the transport's 64 MiB send queue per peer.
   * @default 33554432 (32 MiB)
   */
  maxInflightBytes: number;
  /**
   * Most bytes of state per second one snapshot transfer sends to a follower; 0 for no limit.
   * Reading and installing a snapshot takes CPU and disk on both ends: the limit keeps a follower's
   * catch-up from starving the writes the group serves meanwhile (as CockroachDB's snapshot rate does).
   * @default 16777216 (16 MiB/s)
   */
  snapshotRateBytes: number;
  /**
   * The slowest a snapshot transfer goes while it adapts to the writes the group serves: it backs off
   * while their latency is over 1.15x its level before the transfer (or fewer of them complete by as
   * much, at no lower latency) and speeds up again to `snapshotRateBytes` while it is not. At or above
   * `snapshotRateBytes` the rate is fixed.
   * @default 1048576 (1 MiB/s)
   */
  snapshotRateMinBytes: number;
  /**
   * How long a leader lets a new commit index wait for the next append to carry it to the followers
   * before it sends it in an append of its own, in ms; 0 sends it at once, as etcd does. A lone
   * client's write then costs one message each way per follower instead of two; followers apply it
   * (and serve follower reads and watches) up to this much later when no write follows.
   * @default 5
   */
  commitNoticeDelayMs: number;
  /**
   * A leader confirms its leadership for a batch of linearizable reads (a ReadIndex round) by asking
   * only as many followers as make a quorum with it, those that answered a round most recently
   * (one of two in a three-node group, halving the messages reads cost); if they have not answered
   * within this many ms, it asks the others too. 0 asks every follower at once, as etcd does.
   * @default 5
   */
  readIndexHedgeMs: number;
  /**
   * Voters back the leader's lease so the leader can serve lease reads
   * (HTTP `?consistency=lease`) without a ReadIndex round. Elections after a
   * restart wait an election timeout longer.
   * @default false
   */
  leaseReads: boolean;
  /**
   * Idle groups go quiescent: once a group is idle and fully replicated its leader stops heartbeats
   * and every replica stops its election clock, so an idle group costs no messages. A replica then
   * learns that a peer failed from the membership's failure detector (SWIM), which wakes the groups
   * it shared with that peer.
   * @default false
   */
  quiesce: boolean;
}

/** The whole configuration of a node, with every default filled in. */
export interface CohortConfig {
  node: NodeConfig;
  cluster: ClusterConfig;
  raft: RaftConfig;
}

/**
 * Seed defaults for Raft: 100 ms heartbeats, 500-1000 ms elections, snapshots every 10,000 entries or
 * 100 MiB; appends of at most 1 MiB, 256 of them or 32 MiB in flight per follower.
 */
export const DEFAULT_RAFT_CONFIG: Readonly<RaftConfig> = Object.freeze({
  heartbeatIntervalMs: 100,
  electionTimeoutMinMs: 500,
  electionTimeoutMaxMs: 1000,
  snapshotIntervalEntries: 10_000,
  snapshotIntervalBytes: 100 * 1024 * 1024,
  maxLogSizeBytes: 500 * 1024 * 1024,
  maxAppendBytes: 1024 * 1024,
  maxInflightAppends: 256,
  maxInflightBytes: 32 * 1024 * 1024,
  snapshotRateBytes: 16 * 1024 * 1024,
  snapshotRateMinBytes: 1024 * 1024,
  commitNoticeDelayMs: 5,
  readIndexHedgeMs: 5,
  leaseReads: false,
  quiesce: false,
});

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const idSchema = z.string().regex(NODE_ID, {
  message: 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (for example n1)',
});
const address = z.string().min(1, { message: 'must be host:port, for example 127.0.0.1:7000' });
const positiveInt = z.number().int({ message: 'must be a whole number' }).positive({ message: 'must be above 0' });

const memberSchema = z.strictObject({
  id: idSchema,
  peerAddress: address,
  clientAddress: address.optional(),
  httpAddress: address.optional(),
});

const schema = z.strictObject({
  node: z.strictObject({
    id: idSchema,
    clientAddress: address.default('127.0.0.1:6379'),
    httpAddress: address.default('127.0.0.1:8080'),
    peerAddress: address.default('127.0.0.1:7000'),
    dataDir: z.string().min(1, { message: 'must be a directory path' }).optional(),
    advertiseAddress: address.optional(),
  }),
  cluster: z
    .strictObject({
      bootstrap: z.boolean().default(true),
      initialMembers: z.array(memberSchema).optional(),
      replicationFactor: positiveInt.optional(),
      partitions: positiveInt.default(1),
    })
    .default({ bootstrap: true, partitions: 1 }),
  raft: z
    .strictObject({
      heartbeatIntervalMs: positiveInt.default(DEFAULT_RAFT_CONFIG.heartbeatIntervalMs),
      electionTimeoutMinMs: positiveInt.default(DEFAULT_RAFT_CONFIG.electionTimeoutMinMs),
      electionTimeoutMaxMs: positiveInt.default(DEFAULT_RAFT_CONFIG.electionTimeoutMaxMs),
      snapshotIntervalEntries: positiveInt.default(DEFAULT_RAFT_CONFIG.snapshotIntervalEntries),
      snapshotIntervalBytes: positiveInt.default(DEFAULT_RAFT_CONFIG.snapshotIntervalBytes),
      maxLogSizeBytes: positiveInt.default(DEFAULT_RAFT_CONFIG.maxLogSizeBytes),
      maxAppendBytes: positiveInt.default(DEFAULT_RAFT_CONFIG.maxAppendBytes),
      maxInflightAppends: positiveInt.default(DEFAULT_RAFT_CONFIG.maxInflightAppends),
      maxInflightBytes: positiveInt.default(DEFAULT_RAFT_CONFIG.maxInflightBytes),
      snapshotRateBytes: z
        .number()
        .int({ message: 'must be a whole number' })
        .nonnegative({ message: 'must be 0 (no limit) or above' })
        .default(DEFAULT_RAFT_CONFIG.snapshotRateBytes),
      snapshotRateMinBytes: z
        .number()
        .int({ message: 'must be a whole number' })
        .nonnegative({ message: 'must be 0 or above' })
        .default(DEFAULT_RAFT_CONFIG.snapshotRateMinBytes),
      commitNoticeDelayMs: z
        .number()
        .int({ message: 'must be a whole number' })
        .nonnegative({ message: 'must be 0 (send at once) or above' })
        .max(1000, { message: 'must be at most 1000 (a delay past a heartbeat interval only delays followers)' })
        .default(DEFAULT_RAFT_CONFIG.commitNoticeDelayMs),
      readIndexHedgeMs: z
        .number()
        .int({ message: 'must be a whole number' })
        .nonnegative({ message: 'must be 0 (ask every follower at once) or above' })
        .max(1000, { message: 'must be at most 1000 (the next heartbeat asks every follower anyway)' })
        .default(DEFAULT_RAFT_CONFIG.readIndexHedgeMs),
      leaseReads: z.boolean().default(DEFAULT_RAFT_CONFIG.leaseReads),
      quiesce: z.boolean().default(DEFAULT_RAFT_CONFIG.quiesce),
    })
    .default({ ...DEFAULT_RAFT_CONFIG }),
});

/**
 * Parses and validates a configuration (for example a parsed YAML/JSON file
 * merged with flags), filling defaults. Throws one ConfigError that lists
 * every problem, each naming the field, the bad value and the fix. Does not
 * touch the filesystem: call {@link checkDataDirWritable} for the data dir.
 */
export function parseConfig(input: unknown): CohortConfig {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw configError(
      parsed.error.issues.map((i) => ({
        field: i.path.join('.') || '(root)',
        message: describeIssue(i, input),
      })),
    );
  }
  const { node: n, cluster: c, raft } = parsed.data;
  const node: NodeConfig = {
    id: n.id,
    clientAddress: n.clientAddress,
    httpAddress: n.httpAddress,
    peerAddress: n.peerAddress,
    dataDir: n.dataDir ?? `data/${n.id}`,
  };
  if (n.advertiseAddress !== undefined) node.advertiseAddress = n.advertiseAddress;
  const initialMembers: ClusterMember[] = (
    c.initialMembers ?? [{ id: n.id, peerAddress: n.advertiseAddress ?? n.peerAddress }]
  ).map((m) => {
    const member: ClusterMember = { id: m.id, peerAddress: m.peerAddress };
    if (m.clientAddress !== undefined) member.clientAddress = m.clientAddress;
    if (m.httpAddress !== undefined) member.httpAddress = m.httpAddress;
    return member;
  });
  const cluster: ClusterConfig = {
    bootstrap: c.bootstrap,
    initialMembers,
    replicationFactor: c.replicationFactor ?? Math.min(3, initialMembers.length),
    partitions: c.partitions,
  };
  const config: CohortConfig = { node, cluster, raft };
  const issues = checkConfigRules(config);
  if (issues.length > 0) throw configError(issues);
  return config;
}

function configError(issues: ConfigIssue[]): ConfigError {
  const lines = issues.map((i) => `  - ${i.field}: ${i.message}`);
  return new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code === 'unrecognized_keys') {
    return `unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}; check the spelling or remove them`;
  }
  const value = valueAt(input, issue.path);
  if (value === undefined) return `is required: ${issue.message}`;
  return `${issue.message}; got ${JSON.stringify(value)}`;
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let v: unknown = input;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}
