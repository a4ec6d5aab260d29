import type { GroupId, NodeId, SeededRandom, Term } from '@cohort/core';
import { encodeCommand } from '@cohort/kv';
import type { HostFaults, RaftOptions } from '@cohort/raft';
import { InvariantViolationError, RunFailedError, type RunPosition } from '../errors.js';
import { type LinkFaults, SimNetwork } from '../network.js';
import { Scheduler } from '../scheduler.js';
import { TraceHash } from '../trace.js';
import { RequestIds, type SimFrame } from '../transport/sim-transport.js';
import { type Coverage, emptyCoverage } from './coverage.js';
import { RaftInvariants } from './invariants.js';
import type { EngineMutations } from './observed-engine.js';
import { SimRaftNode, type SimTxnEnv } from './sim-node.js';

/** A plain KV set, as the group load writes it to an extra group. */
function groupWrite(key: string, value: string): Uint8Array {
  const enc = new TextEncoder();
  return encodeCommand({
    op: 'set',
    key: enc.encode(key),
    value: enc.encode(value),
    condition: 'always',
    expiresAt: 0,
    returnOld: false,
    now: 0,
  });
}

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
  /** Raft groups each node hosts besides the clients' group (written by the cluster's group load). @default 0 */
  groups?: number;
  /**
   * Hosts quiesce idle groups; each node's host hears of peers going down and up from the
   * failure state (crashes, removals, partitions), `livenessDelayMs` after it changed. @default false
   */
  quiesce?: boolean;
  /** How long the simulated liveness source takes to report a change. @default 600 */
  livenessDelayMs?: number;
  /** Hosts coalesce heartbeats (RaftHostOptions.coalesceHeartbeats). @default true */
  coalesceHeartbeats?: boolean;
  /** How long leaders let a commit index wait for an append to carry it (RaftHostOptions.commitNoticeDelayMs). @default 5 */
  commitNoticeDelayMs?: number;
  /** How long a leader's ReadIndex round waits for the quorum it asked before asking every follower (RaftHostOptions.readIndexHedgeMs). @default 5 */
  readIndexHedgeMs?: number;
  /** Cross-partition transactions over GROUP and the extra groups (see `NodeEnv.transactions`). */
  transactions?: SimTxnEnv;
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
  /** The groups besides GROUP, and their own invariant checkers. */
  readonly extraGroups: GroupId[];
  readonly groupInvariants = new Map<GroupId, RaftInvariants>();
  /** Since when each (node, peer) pair's liveness differs from what the node's host was told. */
  private readonly livenessChanged = new Map<string, number>();
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
    this.extraGroups = Array.from({ length: config.groups ?? 0 }, (_, i) => `g${i + 1}`);
    for (const g of this.extraGroups) this.groupInvariants.set(g, new RaftInvariants(() => this.position(), g));
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
    for (const inv of this.groupInvariants.values()) if (inv.violation) throw inv.violation;
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
        extraGroups: this.extraGroups,
        invariantsOf: (g) => this.groupInvariants.get(g) as RaftInvariants,
        quiesce: this.config.quiesce ?? false,
        coalesceHeartbeats: this.config.coalesceHeartbeats ?? true,
        commitNoticeDelayMs: this.config.commitNoticeDelayMs ?? 5,
        readIndexHedgeMs: this.config.readIndexHedgeMs ?? 5,
        coverage: this.coverage,
        trace: this.trace,
        raft: this.config.raft,
        tickMs: this.config.tickMs,
        snapshotEvery: this.config.snapshotEvery,
        snapshotKeep: this.config.snapshotKeep,
        diskLatencyMs: this.config.diskLatencyMs,
        mutations: this.config.mutations ?? {},
        hostFaults: this.config.hostFaults ?? {},
        ...(this.config.transactions ? { transactions: this.config.transactions } : {}),
        onLeader: (n, t) => this.onLeader(n, t),
        onExtraLeader: (g, n, t) => {
          (this.groupInvariants.get(g) as RaftInvariants).onLeader(n, t);
          this.trace.mixString(`${g} ${n}`);
        },
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

  /** A client's read was answered: by lease or by ReadIndex, as the seed reads. */
  readServed(): void {
    if (this.config.raft.readOnlyOption === 'leaseBased') this.coverage.leaseRead++;
    else this.coverage.readIndexServed++;
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

  /**
   * The simulated liveness source (SWIM on a real node): polled every 100 ms, it tells each up
   * node's host of a peer that crashed, was removed, or is cut off from it either way, and of
   * one that came back, once the change has lasted `livenessDelayMs`.
   */
  startLiveness(): void {
    if (!this.config.quiesce) return;
    const delay = this.config.livenessDelayMs ?? 600;
    const poll = (): void => {
      const now = this.scheduler.now();
      const all = [...this.nodes.keys(), ...this.retired];
      for (const n of this.nodes.values()) {
        if (!n.up) continue;
        for (const peer of all) {
          if (peer === n.id) continue;
          const p = this.nodes.get(peer);
          const down = !p?.up || this.network.isCut(n.id, peer) || this.network.isCut(peer, n.id);
          const key = `${n.id}>${peer}`;
          if (down === n.reportedDown(peer)) {
            this.livenessChanged.delete(key);
            continue;
          }
          const since = this.livenessChanged.get(key);
          if (since === undefined) {
            this.livenessChanged.set(key, now);
          } else if (now - since >= delay) {
            this.livenessChanged.delete(key);
            if (n.reportLiveness(peer, down)) {
              this.coverage.livenessReport++;
              this.trace.mixString(`${key} ${down ? 'down' : 'up'}`);
            }
          }
        }
      }
      this.scheduler.after(100, poll);
    };
    this.scheduler.after(100, poll);
  }

  /**
   * Writes (and now and then reads) the extra groups at their leaders, `meanGapMs` apart on
   * average, so groups wake from quiescence and go quiescent again while faults happen.
   */
  startGroupLoad(random: SeededRandom, meanGapMs: number): void {
    if (this.extraGroups.length === 0) return;
    let seq = 0;
    const next = (): void => {
      const g = this.extraGroups[random.int(0, this.extraGroups.length - 1)] as GroupId;
      const read = random.next() < 0.3;
      for (const n of this.nodes.values()) {
        const host = n.host;
        if (!n.up || host === undefined || !host.isLeader(g)) continue;
        if (read) host.readIndex(g).catch(() => {});
        else host.propose(g, groupWrite(`k${seq % 4}`, `v${seq++}`)).catch(() => {});
        break;
      }
      this.scheduler.after(random.int(meanGapMs / 4, (meanGapMs * 7) / 4), next);
    };
    this.scheduler.after(random.int(0, meanGapMs), next);
  }

  /** Builds the per-concern random streams of a seed, in a fixed order. */
  static randoms(root: SeededRandom): RunRandoms {
    return { network: root.fork(), nodes: root.fork(), skew: root.fork() };
  }
}
