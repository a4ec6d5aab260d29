import { readFileSync } from 'node:fs';
import { type CohortConfig, ConfigError, parseConfig } from '@cohort/core';
import type { PartitionEngine } from '@cohort/kv';
import { READ_AHEAD_MODES, type ReadAheadMode } from '@cohort/storage';
import { clusterSecretFromText } from '@cohort/transport';
import type { AclUserConfig } from './auth.js';
import { DEFAULT_WRITE_LIMITS, checkWriteLimits } from './limits.js';
import type { LogLevel } from './logger.js';
import type { ClientLimits, NodeOptions, SecurityOptions } from './node-config.js';
import { loadVpLease } from './vpaxos/lease-config.js';

/** The `cohort start` flags, as commander hands them over (all optional: a config file may supply them). */
export interface StartFlags {
  config?: string;
  id?: string;
  dataDir?: string;
  listen?: string;
  advertise?: string;
  resp?: string;
  http?: string;
  peers?: string;
  join?: boolean | string;
  tag?: string[];
  deadGrace?: string;
  stuckAfter?: string;
  metaVoters?: string;
  swimProbeMs?: string;
  partitions?: string;
  replicas?: string;
  partitionEngine?: string;
  partitionEngines?: string;
  minReplicasToWrite?: string;
  vpaxosCompactSlots?: string;
  vpaxosCompactBytes?: string;
  vpaxosReadLeaseMs?: string;
  vpaxosLeaseMaxDriftMs?: string;
  heartbeatMs?: string;
  electionTimeoutMs?: string;
  electionTimeoutMaxMs?: string;
  snapshotEntries?: string;
  snapshotBytes?: string;
  maxLogBytes?: string;
  maxAppendBytes?: string;
  maxInflightAppends?: string;
  commitNoticeDelayMs?: string;
  readIndexHedgeMs?: string;
  maxInflightBytes?: string;
  snapshotRate?: string;
  snapshotRateMin?: string;
  quiesce?: boolean;
  requestTimeoutMs?: string;
  consistencyCheckMs?: string;
  rowCacheBytes?: string;
  pageCacheBytes?: string;
  writerApplyBatchMs?: string;
  readAhead?: string;
  logLevel?: string;
  clusterSecretFile?: string;
  requirepass?: string;
  metricsToken?: string;
  tlsCert?: string;
  tlsKey?: string;
  maxKeyBytes?: string;
  maxValueBytes?: string;
  maxCommandBytes?: string;
  maxTxnKeys?: string;
  maxClients?: string;
  maxQueryBytes?: string;
  outputBufferHardBytes?: string;
  outputBufferSoftBytes?: string;
  outputBufferSoftSeconds?: string;
  maxHttpRequests?: string;
  shutdownTimeoutMs?: string;
}

/** Defaults of the `limits` section. */
export const DEFAULT_CLIENT_LIMITS: ClientLimits = {
  ...DEFAULT_WRITE_LIMITS,
  maxClients: 10_000,
  maxQueryBytes: 32 * 1024 * 1024,
  outputBufferHardBytes: 256 * 1024 * 1024,
  outputBufferSoftBytes: 32 * 1024 * 1024,
  outputBufferSoftSeconds: 30,
  maxHttpRequests: 4096,
};

/** Flags of the `limits` section: flag name, field. */
const LIMIT_FLAGS: [keyof StartFlags, keyof ClientLimits][] = [
  ['maxKeyBytes', 'maxKeyBytes'],
  ['maxValueBytes', 'maxValueBytes'],
  ['maxCommandBytes', 'maxCommandBytes'],
  ['maxTxnKeys', 'maxTxnKeys'],
  ['maxClients', 'maxClients'],
  ['maxQueryBytes', 'maxQueryBytes'],
  ['outputBufferHardBytes', 'outputBufferHardBytes'],
  ['outputBufferSoftBytes', 'outputBufferSoftBytes'],
  ['outputBufferSoftSeconds', 'outputBufferSoftSeconds'],
  ['maxHttpRequests', 'maxHttpRequests'],
];

const flagName = (f: string): string => `--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

function readFileOf(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${what} ${path} cannot be read: ${(err as Error).message}`);
  }
}

/** The `limits` section and its flags, checked against each other and the transport's frame size. */
function loadLimits(raw: unknown, flags: StartFlags): ClientLimits {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new ConfigError('"limits" must be an object');
  }
  const section = (raw ?? {}) as Record<string, unknown>;
  const limits: ClientLimits = { ...DEFAULT_CLIENT_LIMITS };
  for (const [k, v] of Object.entries(section)) {
    if (!(k in limits)) throw new ConfigError(`limits: unknown field '${k}'; check the spelling or remove it`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw new ConfigError(`limits.${k} must be a whole number above 0, got ${JSON.stringify(v)}`);
    }
    (limits as unknown as Record<string, number>)[k] = v;
  }
  for (const [flag, field] of LIMIT_FLAGS) {
    const v = flags[flag];
    if (typeof v !== 'string') continue;
    const n = integer(flagName(flag), v);
    if (n < 1) throw new ConfigError(`${flagName(flag)} must be above 0, got ${n}`);
    limits[field] = n;
  }
  checkWriteLimits(limits);
  if (limits.maxQueryBytes < limits.maxCommandBytes) {
    throw new ConfigError(
      `limits: maxQueryBytes (${limits.maxQueryBytes}) must be at least maxCommandBytes (${limits.maxCommandBytes})`,
    );
  }
  return limits;
}

/** The `security` section and its flags; secrets and certificates are read from their files here. */
function loadSecurity(raw: unknown, flags: StartFlags): SecurityOptions {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new ConfigError('"security" must be an object');
  }
  const s = (raw ?? {}) as Record<string, unknown>;
  const known = ['clusterSecretFile', 'requirepass', 'users', 'metricsToken', 'tlsCertFile', 'tlsKeyFile'];
  for (const k of Object.keys(s)) {
    if (!known.includes(k))
      throw new ConfigError(`security: unknown field '${k}'; expected one of ${known.join(', ')}`);
  }
  const str = (k: string): string | undefined => {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw new ConfigError(`security.${k} must be a non-empty string`);
    return v;
  };
  const out: SecurityOptions = { users: [] };
  const secretFile = flags.clusterSecretFile ?? str('clusterSecretFile');
  if (secretFile !== undefined) {
    out.clusterSecret = clusterSecretFromText(
      readFileOf('the cluster secret file', secretFile).toString('utf8'),
      secretFile,
    );
  }
  const requirepass = flags.requirepass ?? str('requirepass');
  if (requirepass !== undefined) out.requirepass = requirepass;
  const metricsToken = flags.metricsToken ?? str('metricsToken');
  if (metricsToken !== undefined) out.metricsToken = metricsToken;
  const cert = flags.tlsCert ?? str('tlsCertFile');
  const key = flags.tlsKey ?? str('tlsKeyFile');
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError('TLS needs both a certificate and its key: pass --tls-cert and --tls-key');
  }
  if (cert !== undefined && key !== undefined) {
    out.tls = { cert: readFileOf('the TLS certificate', cert), key: readFileOf('the TLS key', key) };
  }
  if (s.users !== undefined) {
    if (!Array.isArray(s.users)) throw new ConfigError('security.users must be an array of users');
    for (const [i, u] of (s.users as unknown[]).entries()) {
      const user = u as Record<string, unknown>;
      const strings = (k: string): boolean =>
        user[k] === undefined || (Array.isArray(user[k]) && (user[k] as unknown[]).every((x) => typeof x === 'string'));
      if (
        typeof u !== 'object' ||
        u === null ||
        typeof user.name !== 'string' ||
        !['passwords', 'tokens', 'commands', 'keys'].every(strings) ||
        (user.enabled !== undefined && typeof user.enabled !== 'boolean')
      ) {
        throw new ConfigError(
          `security.users[${i}] must be {"name": string, "passwords"?: [..], "tokens"?: [..], "commands"?: [..], "keys"?: [..], "enabled"?: boolean}`,
        );
      }
      out.users.push(user as unknown as AclUserConfig);
    }
  }
  return out;
}

/** The smallest `--page-cache-bytes`: SQLite keeps at least 10 pages of 4 KiB whatever it is told. */
const MIN_PAGE_CACHE_BYTES = 64 * 1024;

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** Parses `n1=127.0.0.1:7001,n2=127.0.0.1:7002` into initial members. */
export function parsePeers(list: string): { id: string; peerAddress: string }[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq <= 0 || eq === part.length - 1) {
        throw new ConfigError(`--peers: '${part}' is not id=host:port (example: n1=127.0.0.1:7001)`);
      }
      return { id: part.slice(0, eq), peerAddress: part.slice(eq + 1) };
    });
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path} cannot be read: ${(err as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ConfigError(`config file ${path} must hold a JSON object with "node", "cluster" and "raft" sections`);
  }
  return v as Record<string, unknown>;
}

function integer(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${flag} must be a whole number, got '${v}'`);
  return n;
}

function section(raw: Record<string, unknown>, name: string): Record<string, unknown> {
  const s = raw[name];
  if (s === undefined) {
    const fresh: Record<string, unknown> = {};
    raw[name] = fresh;
    return fresh;
  }
  // Let parseConfig report a wrong type with its own message.
  return typeof s === 'object' && s !== null && !Array.isArray(s) ? (s as Record<string, unknown>) : {};
}

/**
 * Builds the node's options from a JSON config file (core's `CohortConfig`
 * shape) and flags (flags win), validated by core's `parseConfig`. Throws
 * `ConfigError` listing every problem.
 */
export function loadNodeOptions(flags: StartFlags): NodeOptions {
  // The node's own sections; core's schema checks the rest.
  const {
    limits: limitsRaw,
    security: securityRaw,
    shutdown,
    vpaxos: vpaxosRaw,
    ...raw
  }: Record<string, unknown> = flags.config ? readJson(flags.config) : {};
  const vpaxosLease = loadVpLease(vpaxosRaw, flags);
  const limits = loadLimits(limitsRaw, flags);
  const security = loadSecurity(securityRaw, flags);
  const shutdownRaw = shutdown as { timeoutMs?: unknown } | undefined;
  const node = section(raw, 'node');
  const cluster = section(raw, 'cluster');
  const raft = section(raw, 'raft');
  if (flags.id !== undefined) node.id = flags.id;
  if (flags.dataDir !== undefined) node.dataDir = flags.dataDir;
  if (flags.resp !== undefined) node.clientAddress = flags.resp;
  if (flags.http !== undefined) node.httpAddress = flags.http;
  if (flags.advertise !== undefined) node.advertiseAddress = flags.advertise;
  if (flags.peers !== undefined) cluster.initialMembers = parsePeers(flags.peers);
  if (flags.join) cluster.bootstrap = false;
  let joinAddress: string | undefined;
  if (typeof flags.join === 'string') {
    if (!/^(\[[^\]]+\]|[^\s:/\[\]]+):[0-9]{1,5}$/.test(flags.join)) {
      throw new ConfigError(
        `--join: '${flags.join}' is not host:port (the HTTP address of a member, e.g. 127.0.0.1:8080)`,
      );
    }
    joinAddress = flags.join;
  }
  if (flags.partitions !== undefined) cluster.partitions = integer('--partitions', flags.partitions);
  if (flags.replicas !== undefined) cluster.replicationFactor = integer('--replicas', flags.replicas);
  if (flags.listen !== undefined) node.peerAddress = flags.listen;
  else if (node.peerAddress === undefined && Array.isArray(cluster.initialMembers)) {
    // Listen where the member list says this node is.
    // Entries that are not objects are left for parseConfig to report.
    const self = (cluster.initialMembers as unknown[]).find(
      (m): m is { peerAddress?: unknown } =>
        typeof m === 'object' && m !== null && (m as { id?: unknown }).id === node.id,
    );
    if (typeof self?.peerAddress === 'string') node.peerAddress = self.peerAddress;
  }
  if (flags.heartbeatMs !== undefined) raft.heartbeatIntervalMs = integer('--heartbeat-ms', flags.heartbeatMs);
  if (flags.electionTimeoutMs !== undefined) {
    const min = integer('--election-timeout-ms', flags.electionTimeoutMs);
    raft.electionTimeoutMinMs = min;
    raft.electionTimeoutMaxMs = 2 * min;
  }
  if (flags.electionTimeoutMaxMs !== undefined) {
    raft.electionTimeoutMaxMs = integer('--election-timeout-max-ms', flags.electionTimeoutMaxMs);
  }
  if (flags.snapshotEntries !== undefined)
    raft.snapshotIntervalEntries = integer('--snapshot-entries', flags.snapshotEntries);
  if (flags.snapshotBytes !== undefined) raft.snapshotIntervalBytes = integer('--snapshot-bytes', flags.snapshotBytes);
  if (flags.maxLogBytes !== undefined) raft.maxLogSizeBytes = integer('--max-log-bytes', flags.maxLogBytes);
  if (flags.maxAppendBytes !== undefined) raft.maxAppendBytes = integer('--max-append-bytes', flags.maxAppendBytes);
  if (flags.maxInflightAppends !== undefined)
    raft.maxInflightAppends = integer('--max-inflight-appends', flags.maxInflightAppends);
  if (flags.maxInflightBytes !== undefined)
    raft.maxInflightBytes = integer('--max-inflight-bytes', flags.maxInflightBytes);
  if (flags.snapshotRate !== undefined) raft.snapshotRateBytes = integer('--snapshot-rate', flags.snapshotRate);
  if (flags.snapshotRateMin !== undefined)
    raft.snapshotRateMinBytes = integer('--snapshot-rate-min', flags.snapshotRateMin);
  if (flags.commitNoticeDelayMs !== undefined) {
    raft.commitNoticeDelayMs = integer('--commit-notice-delay-ms', flags.commitNoticeDelayMs);
  }
  if (flags.readIndexHedgeMs !== undefined) {
    raft.readIndexHedgeMs = integer('--read-index-hedge-ms', flags.readIndexHedgeMs);
  }
  if (flags.quiesce) raft.quiesce = true;
  const config: CohortConfig = parseConfig(raw);
  const logLevel = (flags.logLevel ?? 'info') as LogLevel;
  if (!LEVELS.includes(logLevel))
    throw new ConfigError(`--log-level must be one of ${LEVELS.join(', ')}, got '${flags.logLevel}'`);
  const requestTimeoutMs =
    flags.requestTimeoutMs === undefined ? 5000 : integer('--request-timeout-ms', flags.requestTimeoutMs);
  if (requestTimeoutMs <= 0) throw new ConfigError(`--request-timeout-ms must be above 0, got ${requestTimeoutMs}`);
  const consistencyCheckMs =
    flags.consistencyCheckMs === undefined ? 600_000 : integer('--consistency-check-ms', flags.consistencyCheckMs);
  if (consistencyCheckMs < 0)
    throw new ConfigError(`--consistency-check-ms must be 0 (never) or above, got ${consistencyCheckMs}`);
  let shutdownTimeoutMs = 10_000;
  if (shutdownRaw?.timeoutMs !== undefined) {
    if (typeof shutdownRaw.timeoutMs !== 'number') throw new ConfigError('shutdown.timeoutMs must be a number');
    shutdownTimeoutMs = shutdownRaw.timeoutMs;
  }
  if (flags.shutdownTimeoutMs !== undefined)
    shutdownTimeoutMs = integer('--shutdown-timeout-ms', flags.shutdownTimeoutMs);
  if (!Number.isSafeInteger(shutdownTimeoutMs) || shutdownTimeoutMs < 0)
    throw new ConfigError(`--shutdown-timeout-ms must be 0 or above, got ${shutdownTimeoutMs}`);
  const tags: Record<string, string> = {};
  for (const t of flags.tag ?? []) {
    const eq = t.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--tag: '${t}' is not key=value (example: --tag zone=a)`);
    tags[t.slice(0, eq)] = t.slice(eq + 1);
  }
  const deadGraceMs = flags.deadGrace === undefined ? 30_000 : integer('--dead-grace', flags.deadGrace);
  if (deadGraceMs < 0) throw new ConfigError(`--dead-grace must be 0 or above, got ${deadGraceMs}`);
  const metaVoters = flags.metaVoters === undefined ? 3 : integer('--meta-voters', flags.metaVoters);
  if (metaVoters !== 3 && metaVoters !== 5) throw new ConfigError(`--meta-voters must be 3 or 5, got ${metaVoters}`);
  const extra: Partial<NodeOptions> = {};
  if (flags.swimProbeMs !== undefined) {
    extra.swimProbeMs = integer('--swim-probe-ms', flags.swimProbeMs);
    if (extra.swimProbeMs < 20) throw new ConfigError(`--swim-probe-ms must be at least 20, got ${extra.swimProbeMs}`);
    extra.placementIntervalMs = Math.min(1000, Math.max(100, extra.swimProbeMs));
  }
  if (flags.stuckAfter !== undefined) {
    extra.stuckAfterMs = integer('--stuck-after', flags.stuckAfter);
    if (extra.stuckAfterMs <= 0) throw new ConfigError(`--stuck-after must be above 0, got ${extra.stuckAfterMs}`);
  }
  if (flags.rowCacheBytes !== undefined) {
    extra.rowCacheBytes = integer('--row-cache-bytes', flags.rowCacheBytes);
    if (extra.rowCacheBytes < 0) {
      throw new ConfigError(`--row-cache-bytes must be 0 (none) or above, got ${extra.rowCacheBytes}`);
    }
  }
  if (flags.writerApplyBatchMs !== undefined) {
    extra.writerApplyBatchMs = integer('--writer-apply-batch-ms', flags.writerApplyBatchMs);
    if (extra.writerApplyBatchMs < 0 || extra.writerApplyBatchMs > 1000) {
      throw new ConfigError(
        `--writer-apply-batch-ms must be from 0 (no holding) to 1000, got ${extra.writerApplyBatchMs}`,
      );
    }
  }
  if (flags.pageCacheBytes !== undefined) {
    extra.pageCacheBytes = integer('--page-cache-bytes', flags.pageCacheBytes);
    if (extra.pageCacheBytes < MIN_PAGE_CACHE_BYTES) {
      throw new ConfigError(
        `--page-cache-bytes must be at least ${MIN_PAGE_CACHE_BYTES} (SQLite keeps at least 10 pages), got ${extra.pageCacheBytes}`,
      );
    }
  }
  if (flags.readAhead !== undefined) {
    const mode = flags.readAhead as ReadAheadMode;
    if (!READ_AHEAD_MODES.includes(mode)) {
      throw new ConfigError(`--read-ahead must be one of ${READ_AHEAD_MODES.join(', ')}, got ${flags.readAhead}`);
    }
    extra.readAhead = mode;
  }
  if (joinAddress !== undefined) extra.joinAddress = joinAddress;
  Object.assign(extra, loadEngines(flags));
  if (vpaxosLease !== undefined) extra.vpaxosLease = vpaxosLease;
  return {
    config,
    logLevel,
    requestTimeoutMs,
    consistencyCheckMs,
    limits,
    security,
    shutdownTimeoutMs,
    tags,
    deadGraceMs,
    metaVoters,
    ...extra,
  };
}

const ENGINES = ['raft', 'vpaxos'] as const;

function engine(flag: string, v: string): PartitionEngine {
  if (!(ENGINES as readonly string[]).includes(v))
    throw new ConfigError(`${flag}: '${v}' is not an engine; use ${ENGINES.join(' or ')}`);
  return v as PartitionEngine;
}

type EngineOption =
  | 'partitionEngine'
  | 'partitionEngines'
  | 'minReplicasToWrite'
  | 'vpaxosCompactSlots'
  | 'vpaxosCompactBytes';

/**
 * `--partition-engine`, `--partition-engines p=engine,...`, `--min-replicas-to-write`, `--vpaxos-compact-slots` and
 * `--vpaxos-compact-bytes`.
 */
function loadEngines(flags: StartFlags): Pick<NodeOptions, EngineOption> {
  const out: Pick<NodeOptions, EngineOption> = {};
  if (flags.partitionEngine !== undefined) out.partitionEngine = engine('--partition-engine', flags.partitionEngine);
  if (flags.partitionEngines !== undefined) {
    const per: Record<number, PartitionEngine> = {};
    for (const part of flags.partitionEngines.split(',').filter((x) => x.trim() !== '')) {
      const m = /^\s*([0-9]+)\s*=\s*([a-z]+)\s*$/.exec(part);
      if (!m) {
        throw new ConfigError(
          `--partition-engines: '${part}' is not partition=engine (example: --partition-engines 1=vpaxos,3=vpaxos)`,
        );
      }
      per[Number(m[1])] = engine('--partition-engines', m[2]!);
    }
    out.partitionEngines = per;
  }
  if (flags.minReplicasToWrite !== undefined) {
    const n = integer('--min-replicas-to-write', flags.minReplicasToWrite);
    if (n < 1) throw new ConfigError(`--min-replicas-to-write must be 1 or above, got ${n}`);
    out.minReplicasToWrite = n;
  }
  if (flags.vpaxosCompactSlots !== undefined) {
    const n = integer('--vpaxos-compact-slots', flags.vpaxosCompactSlots);
    if (n < 0) throw new ConfigError(`--vpaxos-compact-slots must be 0 (never) or above, got ${n}`);
    out.vpaxosCompactSlots = n;
  }
  if (flags.vpaxosCompactBytes !== undefined) {
    const n = integer('--vpaxos-compact-bytes', flags.vpaxosCompactBytes);
    if (n < 0) throw new ConfigError(`--vpaxos-compact-bytes must be 0 (slots alone) or above, got ${n}`);
    out.vpaxosCompactBytes = n;
  }
  return out;
}
