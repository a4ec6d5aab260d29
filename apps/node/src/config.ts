import { readFileSync } from 'node:fs';
import { type CohortConfig, ConfigError, parseConfig } from '@cohort/core';
import type { LogLevel } from './logger.js';
import type { NodeOptions } from './node-config.js';

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
  join?: boolean;
  partitions?: string;
  replicas?: string;
  heartbeatMs?: string;
  electionTimeoutMs?: string;
  electionTimeoutMaxMs?: string;
  snapshotEntries?: string;
  snapshotBytes?: string;
  maxLogBytes?: string;
  maxAppendBytes?: string;
  maxInflightAppends?: string;
  maxInflightBytes?: string;
  snapshotRate?: string;
  quiesce?: boolean;
  requestTimeoutMs?: string;
  consistencyCheckMs?: string;
  logLevel?: string;
}

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
  const raw: Record<string, unknown> = flags.config ? readJson(flags.config) : {};
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
  if (flags.partitions !== undefined) cluster.partitions = integer('--partitions', flags.partitions);
  if (flags.replicas !== undefined) cluster.replicationFactor = integer('--replicas', flags.replicas);
  if (flags.listen !== undefined) node.peerAddress = flags.listen;
  else if (node.peerAddress === undefined && Array.isArray(cluster.initialMembers)) {
    // Listen where the member list says this node is.
    const self = (cluster.initialMembers as { id?: unknown; peerAddress?: unknown }[]).find((m) => m.id === node.id);
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
  return { config, logLevel, requestTimeoutMs, consistencyCheckMs };
}
