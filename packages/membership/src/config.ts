import { ConfigError } from '@cohort/core';
import type { PartitionOptions } from './partition-detector.js';
import type { PhiAccrualOptions } from './phi-accrual.js';
import type { TagLimits } from './tags.js';

/** Tunables of the SWIM engine (memberlist's LAN profile where it has one). */
export interface SwimConfig {
  /** Base protocol period: one probe per period. @default 1000 */
  readonly probeIntervalMs: number;
  /** Wait for a direct ack before asking others to probe. @default 500 */
  readonly probeTimeoutMs: number;
  /** Members asked to probe indirectly (SWIM's K). @default 3 */
  readonly indirectChecks: number;
  /** Lifeguard suspicion multiplier (min timeout = mult x max(1, log10 N) x period). @default 4 */
  readonly suspicionMult: number;
  /** Max suspicion timeout as a multiple of the min. @default 6 */
  readonly suspicionMaxTimeoutMult: number;
  /** Each update is retransmitted retransmitMult x ceil(log10(N + 1)) times. @default 4 */
  readonly retransmitMult: number;
  /** Lifeguard local health: the largest stretch of period and timeout. @default 8 */
  readonly awarenessMaxMultiplier: number;
  /** Push/pull anti-entropy interval for up to 32 members; it grows with log2 of the size beyond. @default 30000 */
  readonly pushPullIntervalMs: number;
  /** How often a dead member is offered a push/pull, so healed partitions merge. @default 10000 */
  readonly reconnectIntervalMs: number;
  /** How often queued updates are sent outside probes. @default 200 */
  readonly gossipIntervalMs: number;
  /** Members each gossip round goes to. @default 3 */
  readonly gossipNodes: number;
  /** Updates piggybacked per message at most. @default 20 */
  readonly maxGossipPerMessage: number;
  /** Bytes of piggybacked updates per message at most. @default 4096 */
  readonly maxGossipBytes: number;
  /** Phi accrual detector applied to ack round trips. */
  readonly phi: PhiAccrualOptions;
  /** Split-brain detector. */
  readonly partition: PartitionOptions;
  /** Bounds on tags. */
  readonly tagLimits: TagLimits;
}

/** The defaults of {@link SwimConfig}. */
export const defaultSwimConfig: SwimConfig = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  retransmitMult: 4,
  awarenessMaxMultiplier: 8,
  pushPullIntervalMs: 30_000,
  reconnectIntervalMs: 10_000,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  maxGossipPerMessage: 20,
  maxGossipBytes: 4096,
  phi: {},
  partition: {},
  tagLimits: {},
};

/** Fills defaults and checks ranges; throws ConfigError naming the field. */
export function resolveSwimConfig(partial: Partial<SwimConfig> = {}): SwimConfig {
  const c: SwimConfig = { ...defaultSwimConfig, ...partial };
  const positive: (keyof SwimConfig)[] = [
    'probeIntervalMs',
    'probeTimeoutMs',
    'suspicionMult',
    'suspicionMaxTimeoutMult',
    'retransmitMult',
    'awarenessMaxMultiplier',
    'pushPullIntervalMs',
    'reconnectIntervalMs',
    'gossipIntervalMs',
    'maxGossipPerMessage',
    'maxGossipBytes',
  ];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`membership: ${k} must be a positive number`);
  }
  if (c.probeTimeoutMs >= c.probeIntervalMs) {
    throw new ConfigError('membership: probeTimeoutMs must be shorter than probeIntervalMs');
  }
  if (c.indirectChecks < 0 || c.gossipNodes < 0) {
    throw new ConfigError('membership: indirectChecks and gossipNodes must not be negative');
  }
  return c;
}
