import type { NodeId, SeededRandom } from '@cohort/core';
import { type MetaState, masterSection, partitionGroup } from '@cohort/kv';
import type { Ballot, Configuration, VpObserver } from '@cohort/vpaxos';
import { RunFailedError, type RunPosition } from '../errors.js';
import { type LinkFaults, SimNetwork } from '../network.js';
import { SimLiveness } from '../placement/liveness.js';
import { RaftInvariants } from '../raft/invariants.js';
import { Scheduler } from '../scheduler.js';
import { TraceHash } from '../trace.js';
import { RequestIds, type SimFrame } from '../transport/sim-transport.js';
import { type VpCoverage, emptyVpCoverage } from './coverage.js';
import { VpInvariants } from './invariants.js';
import type { VpMutations } from './sim-acceptor-store.js';
import { SimMaster } from './sim-master.js';
import type { VpMetaEnv } from './sim-meta-master.js';
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
  /**
   * Where the configuration master runs: `reliable`, one simulated process
   * that never fails; `meta`, the binary's master (meta extension and
   * decision loop) on a simulated Raft meta group of the replicas, which
   * crash with them. @default 'reliable'
   */
  master?: 'reliable' | 'meta';
  /** With the master on the meta group: the chance that its leader crashes right after committing a failover ballot. */
  metaLeaderCrashAtFailover?: number;
  /**
   * Applied slots between acceptor compactions (half of them kept as a margin);
   * 0: acceptors keep every vote and backups catch up slot by slot only. @default 0
   */
  compactSlots?: number;
  /**
   * Bytes of vote values held that trigger a compaction too (with compactSlots
   * above 0), keeping a quarter of them behind the point; 0: slots alone. @default 0
   */
  compactBytes?: number;
}

/** The group the replicas run when the master is on the meta group: its partition 0. */
const META_VP_GROUP = partitionGroup(0);

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
  /** The meta group's Raft safety checks (with `--master meta`). */
  readonly metaInvariants: RaftInvariants;
  readonly nodes = new Map<NodeId, SimVpNode>();
  /** The reliable master process (absent when the master runs on the meta group). */
  readonly master: SimMaster | undefined;
  /** The replicas' failure detector, with the master on the meta group. */
  readonly liveness: SimLiveness | undefined;
  failovers = 0;
  /** The highest activation any meta replica applied, with the master on the meta group. */
  private metaActive: Configuration | undefined;
  /** Lease waits recorded with completed ballots (meta group master). */
  private readonly metaWaits = new Map<Ballot, number>();
  /** The highest next ballot any meta replica applied. */
  private metaNext: Ballot = 0;
  /** A failover ballot whose meta leader was crashed before it was activated. */
  private metaKilledAt: Ballot | undefined;
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
    const metaRandom = random.fork();
    const ids: NodeId[] = [];
    for (let i = 1; i <= config.nodes; i++) ids.push(`n${i}`);
    const onMeta = config.master === 'meta';
    this.liveness = onMeta
      ? new SimLiveness(
          this.scheduler,
          this.network,
          { all: () => ids, up: (id) => this.nodes.get(id)?.up === true, left: () => false },
          300,
        )
      : undefined;
    const drift = maxDriftMs(config.leaseMs, config.clockSkew);
    this.metaInvariants = new RaftInvariants(() => this.position(), 'meta');
    const meta: VpMetaEnv | undefined = onMeta
      ? {
          scheduler: this.scheduler,
          bootstrap: {
            meta: {
              // A vpaxos partition has f+1 replicas where a raft one has 2f+1.
              replicationFactor: 2 * config.f + 1,
              members: ids.map((id) => ({ id, peerAddress: id })),
              partitions: [ids.slice(0, config.f + 1)],
              engines: ['vpaxos'],
            },
            voters: ids.slice(0, 3),
          },
          membershipOf: (id) => this.liveness!.viewFor(id),
          diskLatency: () =>
            config.diskLatencyMs[0] + disk.next() * (config.diskLatencyMs[1] - config.diskLatencyMs[0]),
          lease: config.leaseMs > 0 ? { ms: config.leaseMs, maxDriftMs: drift } : undefined,
          failAfterMs: config.failAfterMs,
          ballotTimeoutMs: 2_500,
          onMetaState: (_id, state) => this.onMetaState(state),
          invariants: this.metaInvariants,
          afterFailoverBallot: (id) => this.afterFailoverBallot(id, metaRandom),
          onFatal: (id, err) => {
            this.failure ??= new RunFailedError(
              this.position(),
              new Error(`${id} stopped: ${err.message}`, { cause: err }),
            );
          },
        }
      : undefined;
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
          compactSlots: config.compactSlots ?? 0,
          compactBytes: config.compactBytes ?? 0,
          mutations: config.mutations ?? {},
          diskLatency: () =>
            config.diskLatencyMs[0] + disk.next() * (config.diskLatencyMs[1] - config.diskLatencyMs[0]),
          group: onMeta ? META_VP_GROUP : VP_GROUP,
          ...(meta ? { meta } : {}),
        },
        rate,
        metaRandom.fork(),
      );
      this.nodes.set(id, node);
    }
    this.master = onMeta
      ? undefined
      : new SimMaster(
          this.scheduler,
          this.network,
          this.ids,
          {
            nodes: ids,
            f: config.f,
            leaseMs: config.leaseMs,
            maxDriftMs: drift,
            skipLeaseWait: config.mutations?.skipLeaseWait === true,
            failAfterMs: config.failAfterMs,
            ballotTimeoutMs: 2_500,
          },
          {
            onActivated: (c, afterFailure, waited) => this.onActivated(c, afterFailure, waited),
            onAbandoned: () => {
              this.coverage.ballotAbandoned++;
            },
          },
        );
  }

  private onActivated(c: Configuration, afterFailure: boolean, waited: number): void {
    this.trace.mixString(`activated ${c.ballot} ${c.primary} ${c.acceptors.join(',')}`);
    this.invariants.onMasterActivated(c.ballot);
    if (afterFailure) {
      this.coverage.failoverCompleted++;
      this.failovers++;
      if (this.failovers === 3) this.coverage.threeFailovers++;
      if (waited > 0) this.coverage.leaseWaitThenActivated++;
      if (this.metaKilledAt !== undefined && c.ballot >= this.metaKilledAt) {
        this.coverage.metaLeaderKilledInFailover++;
        this.metaKilledAt = undefined;
      }
    }
  }

  /**
   * A meta replica applied a state: the first to apply an activation reports
   * it (the master's decision is the committed entry). A change of primary
   * is a failover; the lease wait is the one recorded with the completion.
   */
  private onMetaState(state: Readonly<MetaState>): void {
    const g = masterSection(state).groups[META_VP_GROUP];
    if (g === undefined) return;
    const next = g.next?.ballot ?? 0;
    if (next > this.metaNext) {
      // A newer ballot replaced one never activated: that one was abandoned.
      if (this.metaNext > (g.active?.ballot ?? 0) && this.metaNext > (this.metaActive?.ballot ?? 0))
        this.coverage.ballotAbandoned++;
      this.metaNext = next;
    }
    if (g.next?.completed && g.next.activateAfterMs !== undefined)
      this.metaWaits.set(g.next.ballot, g.next.activateAfterMs);
    const a = g.active;
    if (a === undefined || (this.metaActive !== undefined && a.ballot <= this.metaActive.ballot)) return;
    const prev = this.metaActive;
    this.metaActive = { ballot: a.ballot, primary: a.primary, acceptors: [...a.acceptors] };
    if (prev === undefined) this.coverage.metaGroupFounded++;
    this.onActivated(
      this.metaActive,
      prev !== undefined && prev.primary !== a.primary,
      this.metaWaits.get(a.ballot) ?? 0,
    );
  }

  /** The meta leader `id` committed a failover ballot: it may crash right there (the e2e test's fault). */
  private afterFailoverBallot(id: NodeId, random: SeededRandom): void {
    const node = this.nodes.get(id);
    if (!node?.up || random.next() >= (this.config.metaLeaderCrashAtFailover ?? 0)) return;
    if (this.upNodes().length <= this.config.f + 1) return;
    this.crashMetaLeader(node);
  }

  /** Crashes `node`, the meta leader; a failover ballot pending then is watched until it is activated. */
  crashMetaLeader(node: SimVpNode): void {
    const next = node.metaPart?.meta.state && masterSection(node.metaPart.meta.state).groups[META_VP_GROUP]?.next;
    const active = this.metaActive;
    if (next !== undefined && active !== undefined && next.primary !== active.primary) {
      this.metaKilledAt = next.ballot;
      this.coverage.metaLeaderKilledMidFailover++;
    }
    node.crash();
    this.trace.mixString(`crash meta leader ${node.id}`);
    this.scheduler.after(300 + Math.floor(this.scheduler.now() % 1_000), () => {
      this.coverage.crashRestart++;
      this.liveness?.forget(node.id);
      void node.start();
    });
  }

  /** The up node leading the meta group, if any (master on the meta group). */
  metaLeader(): SimVpNode | undefined {
    return this.upNodes().find((n) => n.metaPart?.meta.leading() === true);
  }

  /** The active configuration as the master has it. */
  activeConfig(): Configuration | undefined {
    return this.master ? this.master.master.state(VP_GROUP).active : this.metaActive;
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
      onCompacted: () => {
        this.coverage.acceptorCompacted++;
      },
      onSnapshotInstalled: (index) => {
        this.coverage.snapshotInstalled++;
        this.trace.mixString(`snapshot ${id} ${index}`);
      },
    };
  }

  async startAll(): Promise<void> {
    for (const n of this.nodes.values()) await n.start();
    this.liveness?.start();
  }

  /** Runs the simulation up to `time`, failing at the first violation or host failure. */
  async run(time: number): Promise<void> {
    await this.scheduler.runUntilAsync(time, () => this.check());
    this.check();
  }

  private check(): void {
    if (this.invariants.violation) throw this.invariants.violation;
    if (this.metaInvariants.violation) throw this.metaInvariants.violation;
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
    const a = this.activeConfig();
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
