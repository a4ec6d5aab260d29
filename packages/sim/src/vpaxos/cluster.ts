import type { NodeId, SeededRandom } from '@cohort/core';
import type { VpObserver } from '@cohort/vpaxos';
import { RunFailedError, type RunPosition } from '../errors.js';
import { type LinkFaults, SimNetwork } from '../network.js';
import { Scheduler } from '../scheduler.js';
import { TraceHash } from '../trace.js';
import { RequestIds, type SimFrame } from '../transport/sim-transport.js';
import { type VpCoverage, emptyVpCoverage } from './coverage.js';
import { VpInvariants } from './invariants.js';
import type { VpMutations } from './sim-acceptor-store.js';
import { SimMaster } from './sim-master.js';
import { SimVpNode, VP_GROUP } from './sim-vp-node.js';

/** The shape of one simulated Vertical Paxos group; `vpSeedConfig` picks it from the seed. */
export interface VpClusterConfig {
  /** Replicas in the cluster (configurations take f+1 of them). */
  nodes: number;
  /** Failures a configuration tolerates: it has f+1 acceptors. */
  f: number;
  /** Lease duration in local ms; 0: reads are confirmed by every acceptor only. */
  leaseMs: number;
  /** Largest relative clock-rate difference of a replica (0.01 = up to 1% fast or slow). */
  clockSkew: number;
  heartbeatMs: number;
  /** The master fails a replica not heard from for this long (200 to 800 ms). */
  failAfterMs: number;
  diskLatencyMs: [number, number];
  links: Partial<LinkFaults>;
  /** Deliberate bugs, for tests proving the checks fail. @default {} */
  mutations?: VpMutations;
}

/** The most a lease can outlast its duration on a clock running `skew` slow, with a margin. */
export function maxDriftMs(leaseMs: number, skew: number): number {
  return Math.ceil((leaseMs * skew) / (1 - skew)) + 20;
}

/**
 * A whole Vertical Paxos group in one process: replicas running the
 * production host, the configuration master as a reliable process, the
 * simulated network and disks, the invariant checker and coverage counters.
 */
export class VpCluster {
  readonly scheduler = new Scheduler();
  readonly network: SimNetwork<SimFrame>;
  readonly ids = new RequestIds();
  readonly trace = new TraceHash();
  readonly coverage: VpCoverage = emptyVpCoverage();
  readonly invariants: VpInvariants;
  readonly nodes = new Map<NodeId, SimVpNode>();
  readonly master: SimMaster;
  failovers = 0;
  private failure: RunFailedError | undefined;

  constructor(
    readonly seed: number,
    readonly config: VpClusterConfig,
    random: SeededRandom,
    private readonly replay: string,
  ) {
    this.network = new SimNetwork<SimFrame>(this.scheduler, random.fork(), config.links);
    this.invariants = new VpInvariants(
      () => this.position(),
      (id) => this.nodes.get(id)?.store,
    );
    const disk = random.fork();
    const skew = random.fork();
    const ids: NodeId[] = [];
    for (let i = 1; i <= config.nodes; i++) ids.push(`n${i}`);
    for (const id of ids) {
      const rate = 1 + (skew.next() * 2 - 1) * config.clockSkew;
      const node = new SimVpNode(
        id,
        {
          scheduler: this.scheduler,
          network: this.network,
          ids: this.ids,
          trace: this.trace,
          observer: (n) => this.observer(n),
          leaseMs: config.leaseMs,
          heartbeatMs: config.heartbeatMs,
          mutations: config.mutations ?? {},
          diskLatency: () =>
            config.diskLatencyMs[0] + disk.next() * (config.diskLatencyMs[1] - config.diskLatencyMs[0]),
        },
        rate,
      );
      this.nodes.set(id, node);
    }
    this.master = new SimMaster(
      this.scheduler,
      this.network,
      this.ids,
      {
        nodes: ids,
        f: config.f,
        leaseMs: config.leaseMs,
        maxDriftMs: maxDriftMs(config.leaseMs, config.clockSkew),
        skipLeaseWait: config.mutations?.skipLeaseWait === true,
        failAfterMs: config.failAfterMs,
        ballotTimeoutMs: 2_500,
      },
      {
        onActivated: (c, afterFailure, waited) => {
          this.trace.mixString(`activated ${c.ballot} ${c.primary} ${c.acceptors.join(',')}`);
          this.invariants.onMasterActivated(c.ballot);
          if (afterFailure) {
            this.coverage.failoverCompleted++;
            this.failovers++;
            if (this.failovers === 3) this.coverage.threeFailovers++;
            if (waited > 0) this.coverage.leaseWaitThenActivated++;
          }
        },
        onAbandoned: () => {
          this.coverage.ballotAbandoned++;
        },
      },
    );
  }

  position(): RunPosition {
    return { seed: this.seed, step: this.scheduler.executed, time: this.scheduler.now(), replay: this.replay };
  }

  private observer(id: NodeId): VpObserver {
    const inv = this.invariants;
    return {
      onSend: (_to, msg) => inv.onSend(id, msg),
      onActivated: (ballot) => inv.onActivated(id, ballot),
      onChosen: (ballot, acceptors, entries) => {
        inv.onChosen(id, ballot, acceptors, entries);
        this.coverage.slotChosen += entries.length;
      },
      onApply: (slot, value) => {
        inv.onApply(id, slot, value);
        this.trace.mix3(slot, value.length, value[0] ?? 0);
      },
      onLeaseRead: (ballot, index) => inv.onLeaseRead(id, ballot, index),
      onCatchUp: () => {
        this.coverage.backupCaughtUp++;
      },
    };
  }

  async startAll(): Promise<void> {
    for (const n of this.nodes.values()) await n.start();
  }

  /** Runs the simulation up to `time`, failing at the first violation or host failure. */
  async run(time: number): Promise<void> {
    await this.scheduler.runUntilAsync(time, () => this.check());
    this.check();
  }

  private check(): void {
    if (this.invariants.violation) throw this.invariants.violation;
    if (this.failure) throw this.failure;
    for (const n of this.nodes.values()) {
      const f = n.host?.failure;
      if (f && n.up) {
        this.failure = new RunFailedError(this.position(), f);
        throw this.failure;
      }
    }
  }

  upNodes(): SimVpNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  /** The node the master made active primary, if it is up. */
  activePrimary(): SimVpNode | undefined {
    const a = this.master.master.state(VP_GROUP).active;
    const n = a && this.nodes.get(a.primary);
    return n?.up ? n : undefined;
  }

  /**
   * Polls for the exploration states every 100 ms (reads only: a run's
   * behaviour does not depend on it): every backup caught up with the primary
   * at once, and proposals in flight while every acceptor is up and reachable.
   */
  startExploration(): void {
    const poll = (): void => {
      this.scheduler.after(100, poll);
      const p = this.activePrimary();
      const engine = p?.host?.node;
      if (!p || !engine?.isActive()) return;
      const acceptors = engine.leading()?.acceptors ?? [];
      const nodes = acceptors.map((a) => this.nodes.get(a));
      const reachable = nodes.every(
        (n) => n?.up === true && !this.network.isCut(p.id, n.id) && !this.network.isCut(n.id, p.id),
      );
      const commit = engine.committed();
      if (commit > 0 && acceptors.length > 1 && nodes.every((n) => (n?.host?.status().applied ?? 0) >= commit)) {
        this.coverage.allBackupsCaughtUp++;
      }
      if (reachable && engine.inFlight() > 0) this.coverage.quorumHealthyInFlight++;
    };
    this.scheduler.after(100, poll);
  }

  /** Counts ignored stale messages into coverage at the end of a run. */
  countStale(): void {
    for (const n of this.nodes.values()) {
      const s = n.host?.stats;
      if (!s) continue;
      for (const v of Object.values(s.staleIgnored)) this.coverage.staleMessageIgnored += v ?? 0;
    }
  }
}
