import { type Logger, type NodeId, type SeededRandom, silentLogger } from '@cohort/core';
import {
  META_GROUP,
  type MembershipView,
  type MetaBootstrap,
  MetaService,
  type MetaState,
  VP_MASTER_SECTION,
  VpMasterService,
  applyVpMaster,
} from '@cohort/kv';
import { RaftHost } from '@cohort/raft';
import type { MemoryNodeStore } from '@cohort/storage';
import type { LeaseGrant, VpTransportMux } from '@cohort/vpaxos';
import type { SimClock } from '../clock.js';
import type { RaftInvariants } from '../raft/invariants.js';
import { observedEngineFactory } from '../raft/observed-engine.js';
import { SimDisk } from '../raft/sim-disk.js';
import type { Scheduler } from '../scheduler.js';
import type { SimTransport } from '../transport/sim-transport.js';

/** What the meta part of every simulated replica shares. */
export interface VpMetaEnv {
  scheduler: Scheduler;
  /** The founding settings: the registry, the one vpaxos partition and the meta group's voters. */
  bootstrap: { meta: MetaBootstrap; voters: NodeId[] };
  /** The failure detector's view of a node (SWIM's role). */
  membershipOf(id: NodeId): MembershipView;
  diskLatency: () => number;
  /** The read lease the master grants (absent: none). */
  lease: LeaseGrant | undefined;
  failAfterMs: number;
  ballotTimeoutMs: number;
  /** A meta state a node applied. */
  onMetaState(id: NodeId, state: Readonly<MetaState>): void;
  /** The meta leader on `id` committed a failover ballot (it may crash here, as the e2e test's fault does). */
  afterFailoverBallot(id: NodeId): void;
  onFatal(id: NodeId, err: Error): void;
  /** The meta group's Raft safety checks, fed by every replica's engine and disk. */
  invariants: RaftInvariants;
  logger?: Logger;
}

/**
 * The control plane of one simulated replica's process, composed as the
 * `cohort` binary composes it: a `RaftHost` for the meta group over the
 * node's store, the `MetaService` with the configuration master as its
 * extension, and the master's decision loop (`VpMasterService`), which acts
 * while this node leads the meta group. Nothing here is a copy of the
 * binary's master: it is the same code.
 */
export class SimMetaPart {
  readonly host: RaftHost;
  readonly meta: MetaService;
  readonly master: VpMasterService;
  private readonly disk: SimDisk;

  constructor(
    readonly id: NodeId,
    store: MemoryNodeStore,
    clock: SimClock,
    transport: SimTransport,
    mux: VpTransportMux,
    random: SeededRandom,
    env: VpMetaEnv,
  ) {
    const log = env.logger ?? silentLogger;
    const inv = env.invariants;
    this.disk = new SimDisk(store, env.scheduler, env.diskLatency, {
      onDurable: (_group, hs) => inv.onDurable(id, hs),
      onCompacted: (_group, compactTo) => inv.onCompact(id, compactTo),
      onCorruption: () => {},
    });
    this.host = new RaftHost({
      id,
      store: this.disk,
      transport,
      clock,
      random: random.fork(),
      // The production engine, each Ready checked before the host persists it (the host's options win).
      createEngine: observedEngineFactory(
        { electionTick: 10, heartbeatTick: 1 },
        { onEngine: () => {}, onReady: (rd) => inv.onReady(id, rd) },
      ),
      tickMs: 100,
      electionTicks: 10,
      heartbeatTicks: 1,
      requestTimeoutMs: 1_000,
      snapshotEntries: 200,
      compactionMarginEntries: 20,
      snapshotRetryMs: 50,
    });
    this.host.onFatal = (err) => env.onFatal(id, err);
    const startedAt = env.scheduler.now();
    const meta = new MetaService({
      self: id,
      host: this.host,
      transport,
      store,
      log,
      clock,
      newClusterId: () => `sim-vp-${random.int(0, 1e9)}`,
      bootstrap: env.bootstrap.meta,
      foundingVoters: env.bootstrap.voters,
      record: () => ({ id, peerId: id, peerAddress: id, tags: {}, startedAt }),
      membership: () => env.membershipOf(id),
      placePartitions: false,
      deadGraceMs: 30_000,
      metaVoters: 3,
      intervalMs: 500,
      partitionLeader: () => undefined,
      extensions: new Map([[VP_MASTER_SECTION, applyVpMaster]]),
    });
    this.meta = meta;
    // What this replica's store holds of the meta group when it (re)starts.
    const r = store.group(META_GROUP);
    inv.onRestart(
      id,
      r.initialState().hardState,
      Math.max(meta.sm.applied().index, r.snapshot().meta.index),
      r.lastIndex(),
    );
    meta.attach();
    meta.sm.onChange((state) => env.onMetaState(id, state));
    this.master = new VpMasterService({
      self: id,
      meta,
      leading: () => meta.leading(),
      mux,
      transport,
      membership: () => env.membershipOf(id),
      log,
      clock,
      intervalMs: 100,
      failAfterMs: env.failAfterMs,
      ballotTimeoutMs: env.ballotTimeoutMs,
      ...(env.lease ? { lease: env.lease } : {}),
      afterFailoverBallot: () => env.afterFailoverBallot(id),
    });
  }

  start(): void {
    this.host.start();
    this.meta.start();
    this.master.start();
  }

  /** The process stops abruptly: what the store has not synced is lost (the transport and clock halt with the node). */
  crash(): void {
    this.master.stop();
    this.meta.stop();
    this.disk.crash(false);
  }
}
