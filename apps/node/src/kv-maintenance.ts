import type { Clock, Logger, NodeId, ReplicatedGroup, TimerHandle, Transport } from '@cohort/core';
import {
  ConsistencyChecker,
  type ConsistencyReport,
  ExpirySweeper,
  type KvService,
  type KvStateMachine,
} from '@cohort/kv';
import type { AdminApi, ConsistencyStatus } from './kv-api.js';
import type { NodeMetrics } from './metrics.js';

/** Options of {@link startKvMaintenance}. */
export interface KvMaintenanceOptions {
  group: ReplicatedGroup;
  service: KvService;
  sm: KvStateMachine;
  transport: Transport;
  clock: Clock;
  metrics: NodeMetrics;
  logger: Logger;
  /** The group's replicas now, this node included. */
  replicas: () => NodeId[];
  /** How often the leader runs a consistency check; 0 for never. */
  consistencyCheckMs: number;
  /**
   * Register the digest protocol's handler for this group alone. A node
   * checking several groups registers one handler for all (`serveDigestRequests`) instead.
   * @default true
   */
  serveDigests?: boolean;
}

/** The node's background work on its KV group, and the admin operations over it. */
export interface KvMaintenance {
  admin: AdminApi;
  /** The group's consistency checker (answers other nodes' digest requests). */
  checker: ConsistencyChecker;
  consistency(): ConsistencyStatus;
  stop(): void;
}

/**
 * Starts the expiry sweeper (on the leader, every 100 ms) and the
 * consistency checker: it answers other nodes' digest requests, runs on
 * demand from any node, and every `consistencyCheckMs` on the leader.
 */
export function startKvMaintenance(o: KvMaintenanceOptions): KvMaintenance {
  const sweeper = new ExpirySweeper({
    group: o.group,
    clock: o.clock,
    expiredKeys: (now, limit) => o.sm.expiredKeys(now, limit),
    deleteExpired: (keys) => o.service.deleteExpired(keys),
    logger: o.logger,
  });
  const checker = new ConsistencyChecker({
    group: o.group.id,
    transport: o.transport,
    clock: o.clock,
    local: {
      appliedIndex: () => o.sm.appliedIndex,
      digestAt: (index) => o.sm.digestAt(index),
      digestPending: (index) => o.sm.digestPending(index),
      digestFailure: (index) => o.sm.digestFailure(index),
    },
    replicas: o.replicas,
    proposeChecksum: () => o.service.checksum(),
    logger: o.logger,
  });
  if (o.serveDigests ?? true) checker.start();
  sweeper.start();

  const check = async (): Promise<ConsistencyReport> => {
    const report = await checker.check();
    o.metrics.consistencyChecks.inc({ verdict: report.verdict });
    return report;
  };
  let timer: TimerHandle | undefined;
  const periodic = (): void => {
    timer = o.clock.setTimeout(() => {
      const run = o.group.status().role === 'leader' ? check() : Promise.resolve(undefined);
      run
        .catch((err: Error) => o.logger.warn('periodic consistency check failed', { err: err.message }))
        .finally(periodic);
    }, o.consistencyCheckMs);
  };
  if (o.consistencyCheckMs > 0) periodic();

  return {
    admin: { checkConsistency: check },
    checker,
    consistency(): ConsistencyStatus {
      const status: ConsistencyStatus = { checks: checker.checks, mismatches: checker.mismatches };
      const last = checker.last;
      if (last) status.last = { verdict: last.verdict, index: last.index, checkedAt: last.checkedAt };
      const bad = checker.lastMismatch;
      if (bad) {
        status.lastMismatch = {
          group: bad.group,
          index: bad.index,
          keyRange: bad.keyRange,
          replicas: bad.replicas,
          checkedAt: bad.checkedAt,
        };
      }
      return status;
    },
    stop(): void {
      sweeper.stop();
      if (timer !== undefined) o.clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
