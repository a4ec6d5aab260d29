import type { NodeId, SeededRandom, Term } from '@cohort/core';
import type { HostFaults, RaftOptions } from '@cohort/raft';
import { InvariantViolationError, RunFailedError, type RunPosition } from '../errors.js';
import { type LinkFaults, SimNetwork } from '../network.js';
import { Scheduler } from '../scheduler.js';
import { TraceHash } from '../trace.js';
import { RequestIds, type SimFrame } from '../transport/sim-transport.js';
import { type Coverage, emptyCoverage } from './coverage.js';
import { RaftInvariants } from './invariants.js';
import type { EngineMutations } from './observed-engine.js';
import { SimRaftNode } from './sim-node.js';

/** The shape of one simulated Raft cluster; `seedConfig` picks every field from the seed (ranges below). */
export interface ClusterConfig {
  /** Founding voters (3 or 5). */
  voters: number;
  /** Simulated milliseconds per tick, before skew (100). */
  tickMs: number;
  /** Largest relative tick-rate difference of a node (0.1 = up to 10% fast or slow; 0 to 0.2). */
  tickSkew: number;
  /** Engine options (id, random and applied are per node). */
  raft: Omit<RaftOptions, 'id' | 'random' | 'applied'>;
  /** Application snapshot every this many applied entries (15 to 80). */
  snapshotEvery: number;
  /** Log entries kept behind a snapshot (0 to 10). */
  snapshotKeep: number;
  /** Simulated milliseconds one disk write takes, uniform in [min, max] (min 0.1 to 0.5, max up to 5). */
  diskLatencyMs: [number, number];
  links: Partial<LinkFaults>;
  /** Deliberate bugs in what the hosts are told, for tests proving the checks fail. @default {} */
  mutations?: EngineMutations;
  /** The hosts' test-only fault switches (RaftHostOptions.faults), for tests proving the checks fail. @default {} */
  hostFaults?: HostFaults;
}

/** The independent random streams of a run: adding a consumer to one never shifts another. */
export interface RunRandoms {
  network: SeededRandom;
  nodes: SeededRandom;
  skew: SeededRandom;
}

/**
 * A whole Raft cluster in one process: nodes, simulated network and clock,
 * invariant checker, coverage counters and the run's trace hash.
 */
export class RaftCluster {
  readonly scheduler = new Scheduler();
  readonly network: SimNetwork<SimFrame>;
  /** Request ids unique across the run (nodes and clients). */
  readonly ids = new RequestIds();
  readonly invariants: RaftInvariants;
  readonly coverage: Coverage = emptyCoverage();
  readonly trace = new TraceHash();
  readonly nodes = new Map<NodeId, SimRaftNode>();
  /** Nodes removed from the group, stopped for good. */
  readonly retired = new Set<NodeId>();
  private nextId: number;
  private lastLeader: NodeId = '';
  private transfer: { to: NodeId; until: number } | undefined;
  /** The node whose disk the run damaged, if any. */
  private damaged: NodeId | undefined;
  /** A host stopped on an error it could not handle: the run fails with it. */
  private failure: RunFailedError | undefined;

  constructor(
    readonly seed: number,
    readonly config: ClusterConfig,
    private readonly randoms: RunRandoms,
    /** The command that replays this run, for error messages. */
    private readonly replay: string = `pnpm sim --seed ${seed}`,
  ) {
    this.network = new SimNetwork<SimFrame>(this.scheduler, randoms.network, config.links);
    this.invariants = new RaftInvariants(() => this.position());
    const founders: NodeId[] = [];
    for (let i = 1; i <= config.voters; i++) founders.push(`n${i}`);
    this.nextId = config.voters + 1;
    for (const id of founders) this.createNode(id).start(founders);
  }

  /** Where the run is, for error messages. */
  position(): RunPosition {
    return { seed: this.seed, step: this.scheduler.executed, time: this.scheduler.now(), replay: this.replay };
  }

  /**
   * Runs the cluster up to simulated time `time`, failing at the first
   * violation; any other error is wrapped with the seed and the replay command.
   */
  async run(time: number): Promise<void> {
    try {
      await this.scheduler.runUntilAsync(time, () => this.check());
    } catch (err) {
      if (err instanceof InvariantViolationError || err instanceof RunFailedError) throw err;
      throw new RunFailedError(this.position(), err);
    }
  }

  /** Throws the first invariant violation or host failure of the run, if any. */
  check(): void {
    if (this.invariants.violation) throw this.invariants.violation;
    if (this.failure) throw this.failure;
    const d = this.damaged === undefined ? undefined : this.nodes.get(this.damaged);
    if (d?.corruption && d.up) {
      // Corrupt storage stops a node loudly; it never serves from a bad log.
      this.failure = new RunFailedError(
        this.position(),
        new Error(`${d.id} read a corrupt entry and kept running: ${d.corruption.message}`),
      );
      throw this.failure;
    }
  }

  /** Whether the run may damage a node's disk now: one node per run, so a majority can stay up. */
  mayDamage(): boolean {
    return this.damaged === undefined;
  }

  /** Records that `id`'s disk was damaged (a torn write or a corrupt entry). */
  markDamaged(id: NodeId): void {
    this.damaged = id;
  }

  private createNode(id: NodeId): SimRaftNode {
    const skew = this.config.tickSkew * (2 * this.randoms.skew.next() - 1);
    const node = new SimRaftNode(
      id,
      {
        scheduler: this.scheduler,
        network: this.network,
        ids: this.ids,
        invariants: this.invariants,
        coverage: this.coverage,
        trace: this.trace,
        raft: this.config.raft,
        tickMs: this.config.tickMs,
        snapshotEvery: this.config.snapshotEvery,
        snapshotKeep: this.config.snapshotKeep,
        diskLatencyMs: this.config.diskLatencyMs,
        mutations: this.config.mutations ?? {},
        hostFaults: this.config.hostFaults ?? {},
        onLeader: (n, t) => this.onLeader(n, t),
        onFatal: (n, err) => this.onFatal(n, err),
      },
      this.randoms.nodes.fork(),
      // A node whose ticks come (1 + skew) times slower has a clock running 1 / (1 + skew) as fast.
      1 / (1 + skew),
    );
    this.nodes.set(id, node);
    return node;
  }

  /** Starts a brand-new, empty node (to be added by a conf change). */
  spawnNode(): SimRaftNode {
    const node = this.createNode(`n${this.nextId++}`);
    node.start();
    return node;
  }

  /** Stops a removed node for good. */
  retire(id: NodeId): void {
    const n = this.nodes.get(id);
    if (!n) return;
    n.stop();
    this.nodes.delete(id);
    this.retired.add(id);
  }

  private onFatal(id: NodeId, err: Error): void {
    this.failure ??= new RunFailedError(this.position(), new Error(`${id} stopped: ${err.message}`, { cause: err }));
  }

  private onLeader(id: NodeId, term: Term): void {
    this.invariants.onLeader(id, term);
    this.trace.mixString(id);
    if (this.lastLeader !== '' && this.lastLeader !== id) this.coverage.leaderChange++;
    this.lastLeader = id;
    if (this.transfer && this.transfer.to === id && this.scheduler.now() <= this.transfer.until) {
      this.coverage.leaderTransfer++;
      this.transfer = undefined;
    }
  }

  /** Asks the leader to hand over to `to`; counted as covered if `to` leads within `withinMs`. */
  requestTransfer(leader: SimRaftNode, to: NodeId, withinMs: number): void {
    this.transfer = { to, until: this.scheduler.now() + withinMs };
    leader.transferTo(to);
  }

  /** The up node that believes it leads, with the highest term. */
  leader(): SimRaftNode | undefined {
    let best: SimRaftNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.up && n.role === 'leader' && (!best || n.term > best.term)) best = n;
    }
    return best;
  }

  /** Ids of every node currently in the simulation (up or down). */
  nodeIds(): NodeId[] {
    return [...this.nodes.keys()];
  }

  upNodes(): SimRaftNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  /** The highest commit index any up node has applied. */
  maxApplied(): number {
    let m = 0;
    for (const n of this.nodes.values()) if (n.up && n.applied > m) m = n.applied;
    return m;
  }

  /** Marks up nodes far behind the others, to count how they catch up (snapshot or log). */
  markLaggards(slack: number): void {
    const target = this.maxApplied();
    for (const n of this.nodes.values()) {
      if (n.up && n.catchUpTarget === 0 && n.applied + slack < target) {
        n.catchUpTarget = target;
        n.installedSnapshot = false;
      }
    }
  }

  /** Counts laggards that caught up. */
  checkCatchUp(): void {
    for (const n of this.nodes.values()) {
      if (n.catchUpTarget > 0 && n.up && n.applied >= n.catchUpTarget) {
        if (n.installedSnapshot) this.coverage.catchUpBySnapshot++;
        else this.coverage.catchUpByLog++;
        n.catchUpTarget = 0;
      }
    }
  }

  /** Builds the per-concern random streams of a seed, in a fixed order. */
  static randoms(root: SeededRandom): RunRandoms {
    return { network: root.fork(), nodes: root.fork(), skew: root.fork() };
  }
}
