import { ErrorCode, type GroupId, type Logger, type NodeId, type SeededRandom, silentLogger } from '@cohort/core';
import {
  META_GROUP,
  type MetaState,
  type PartitionEntry,
  type PlacementAction,
  SlotMap,
  assignLeaders,
  votersOf,
} from '@cohort/kv';
import type { RaftOptions } from '@cohort/raft';
import { InvariantViolationError, RunFailedError, type RunPosition } from '../errors.js';
import { type LinkFaults, SimNetwork } from '../network.js';
import type { ClientCluster } from '../raft/client.js';
import { RaftInvariants } from '../raft/invariants.js';
import { Scheduler } from '../scheduler.js';
import { TraceHash } from '../trace.js';
import { RequestIds, type SimFrame } from '../transport/sim-transport.js';
import { type PlacementCoverage, emptyPlacementCoverage } from './coverage.js';
import { SimLiveness } from './liveness.js';
import { type PlacementMutations, type ServedForward, SimPlacementNode } from './placement-node.js';

/** The shape of one simulated partitioned cluster; `placementConfig` picks it from the seed. */
export interface PlacementClusterConfig {
  /** Founding nodes (3 or 4). */
  founders: number;
  /** Partitions (P). */
  partitions: number;
  /** Replicas per partition (R). */
  replication: number;
  /** Voters of the meta group at most. */
  metaVoters: number;
  /** How long a node stays dead before its replicas are replaced. */
  deadGraceMs: number;
  /** Milliseconds between placement rounds on the meta leader. */
  placementIntervalMs: number;
  /** How long the failure detector takes to report a change. */
  livenessDelayMs: number;
  tickMs: number;
  raft: Omit<RaftOptions, 'id' | 'random' | 'applied'>;
  snapshotEvery: number;
  snapshotKeep: number;
  diskLatencyMs: [number, number];
  links: Partial<LinkFaults>;
}

/** One reconfiguration the meta leader recorded. */
export interface Reconfiguration {
  time: number;
  by: NodeId;
  action: PlacementAction;
  epoch: number;
}

/**
 * A partitioned cluster in one process: nodes running the meta group and
 * the partitions placed on them, the simulated failure detector, the
 * invariant checkers of every group and of the partition map, and the
 * run's coverage and trace.
 */
export class PlacementCluster implements ClientCluster {
  readonly scheduler = new Scheduler();
  readonly network: SimNetwork<SimFrame>;
  readonly ids = new RequestIds();
  readonly trace = new TraceHash();
  readonly slots: SlotMap;
  readonly nodes = new Map<NodeId, SimPlacementNode>();
  /** Nodes that left the cluster and were stopped for good. */
  readonly retired = new Map<NodeId, SimPlacementNode>();
  readonly liveness: SimLiveness;
  readonly coverage: PlacementCoverage = emptyPlacementCoverage();
  readonly reconfigurations: Reconfiguration[] = [];
  /** Nodes cut off from the others by the scenario. */
  readonly isolated = new Set<NodeId>();
  private readonly groupInvariants = new Map<GroupId, RaftInvariants>();
  /** Per partition and epoch: the replicas (and move) the map holds at that epoch, as first applied anywhere. */
  private readonly epochContents = new Map<string, string>();
  /** Per node process: the epochs of its map as last applied. */
  private readonly lastEpochs = new Map<string, number[]>();
  private readonly leaders = new Map<GroupId, NodeId>();
  private violation: InvariantViolationError | undefined;
  private failure: RunFailedError | undefined;
  private order: NodeId[] = [];
  private nextId: number;
  private readonly bootstrap: {
    meta: { replicationFactor: number; members: { id: NodeId; peerAddress: string }[]; partitions: NodeId[][] };
    voters: NodeId[];
  };

  constructor(
    readonly seed: number,
    readonly config: PlacementClusterConfig,
    private readonly random: SeededRandom,
    private readonly replay: string,
    private readonly logger: Logger = silentLogger,
    private readonly mutations: PlacementMutations = {},
  ) {
    this.network = new SimNetwork<SimFrame>(this.scheduler, random.fork(), config.links);
    this.slots = new SlotMap(config.partitions);
    this.liveness = new SimLiveness(
      this.scheduler,
      this.network,
      {
        all: () => this.order,
        up: (id) => this.nodes.get(id)?.up === true,
        left: (id) => this.retired.has(id),
      },
      config.livenessDelayMs,
    );
    const founders = Array.from({ length: config.founders }, (_, i) => `n${i + 1}`);
    this.nextId = config.founders + 1;
    const partitions = Array.from({ length: config.partitions }, (_, p) =>
      Array.from({ length: config.replication }, (_, k) => founders[(p + k) % founders.length] as NodeId),
    );
    this.bootstrap = {
      meta: {
        replicationFactor: config.replication,
        members: founders.map((id) => ({ id, peerAddress: id })),
        partitions,
      },
      voters: [...founders].sort().slice(0, config.metaVoters),
    };
    for (const id of founders) this.createNode(id, true).start();
    this.liveness.start();
    this.startQuorumSampler();
  }

  /** Where the run is, for error messages. */
  position(): RunPosition {
    return { seed: this.seed, step: this.scheduler.executed, time: this.scheduler.now(), replay: this.replay };
  }

  private fail(property: string, detail: string): void {
    this.violation ??= new InvariantViolationError(property, detail, this.position());
  }

  /** Throws the first violation or host failure of the run, if any. */
  check(): void {
    if (this.violation) throw this.violation;
    for (const inv of this.groupInvariants.values()) if (inv.violation) throw inv.violation;
    if (this.failure) throw this.failure;
  }

  /** Runs up to simulated time `time`, failing at the first violation. */
  async run(time: number): Promise<void> {
    try {
      await this.scheduler.runUntilAsync(time, () => this.check());
    } catch (err) {
      if (err instanceof InvariantViolationError || err instanceof RunFailedError) throw err;
      throw new RunFailedError(this.position(), err);
    }
  }

  /** Runs until `done()` holds (checked every 100 ms) or `timeoutMs` passed; whether it held. */
  async runUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const end = this.scheduler.now() + timeoutMs;
    while (this.scheduler.now() < end) {
      if (done()) return true;
      await this.run(Math.min(end, this.scheduler.now() + 100));
    }
    return done();
  }

  private invariantsOf(group: GroupId): RaftInvariants {
    let inv = this.groupInvariants.get(group);
    if (inv === undefined) {
      inv = new RaftInvariants(() => this.position(), group);
      this.groupInvariants.set(group, inv);
    }
    return inv;
  }

  private createNode(id: NodeId, founder: boolean): SimPlacementNode {
    const c = this.config;
    const zone = `z${(this.order.length % 3) + 1}`;
    const node = new SimPlacementNode(
      id,
      {
        scheduler: this.scheduler,
        network: this.network,
        ids: this.ids,
        trace: this.trace,
        slots: this.slots,
        raft: c.raft,
        tickMs: c.tickMs,
        snapshotEvery: c.snapshotEvery,
        snapshotKeep: c.snapshotKeep,
        diskLatencyMs: c.diskLatencyMs,
        deadGraceMs: c.deadGraceMs,
        placementIntervalMs: c.placementIntervalMs,
        balanceLeadersMs: 1_000,
        metaVoters: c.metaVoters,
        invariantsOf: (g) => this.invariantsOf(g),
        membershipOf: (n) => this.liveness.viewFor(n),
        alive: (o, p) => this.liveness.alive(o, p),
        onMetaState: (n, inc, state) => this.onMetaState(n, inc, state),
        onReconfigured: (n, a, epoch) => this.onReconfigured(n, a, epoch),
        onConfApplied: (n, g, voters, outgoing) => this.onConfApplied(n, g, voters, outgoing),
        onMapCorrected: (n, partition, epoch) => {
          this.coverage.mapCorrected++;
          this.trace.mixString(`${n} corrected ${partition} ${epoch}`);
        },
        onForward: (f) => this.onForward(f),
        onLeader: (g, n, term) => this.onLeader(g, n, term),
        onFatal: (n, err) => {
          this.failure ??= new RunFailedError(
            this.position(),
            new Error(`${n} stopped: ${err.message}`, { cause: err }),
          );
        },
        logger: this.logger,
        mutations: this.mutations,
      },
      this.random.fork(),
      zone,
      founder ? this.bootstrap : undefined,
    );
    this.nodes.set(id, node);
    this.order.push(id);
    return node;
  }

  /**
   * A new node joins: it starts empty, and a member admits it by
   * registering it in the meta group (what `cohort start --join` asks of
   * the member it names). False when no member could admit it now.
   */
  async join(): Promise<SimPlacementNode | undefined> {
    const id = `n${this.nextId++}`;
    const node = this.createNode(id, false);
    node.start();
    this.coverage.joined++;
    for (let attempt = 0; attempt < 20; attempt++) {
      const member = this.metaLeader() ?? this.upNodes().find((n) => n.id !== id && n.meta?.state.clusterId);
      const meta = member?.meta;
      if (member !== undefined && meta !== undefined && member.id !== id) {
        const p = meta.propose({ type: 'register', node: node.record(this.scheduler.now()) });
        let ok = false;
        p.then(
          (r) => {
            ok = r.ok;
          },
          () => {},
        );
        await this.runUntil(() => ok, 1_500);
        if (ok) return node;
      } else await this.run(this.scheduler.now() + 300);
    }
    return undefined;
  }

  /** Stops a node that left for good. */
  retire(id: NodeId): void {
    const n = this.nodes.get(id);
    if (!n) return;
    n.crash();
    this.nodes.delete(id);
    this.retired.set(id, n);
  }

  upNodes(): SimPlacementNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  nodeIds(): NodeId[] {
    return [...this.nodes.keys()];
  }

  readServed(): void {
    this.coverage.readServed++;
  }

  /** The up node leading the meta group (in the highest term). */
  metaLeader(): SimPlacementNode | undefined {
    let best: SimPlacementNode | undefined;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (!n.up || !n.leads(META_GROUP)) continue;
      const t = n.host?.status(META_GROUP).term ?? 0;
      if (t > bestTerm) {
        best = n;
        bestTerm = t;
      }
    }
    return best;
  }

  /** The most recent partition map applied by any up node. */
  latestMap(): Readonly<MetaState> | undefined {
    let best: Readonly<MetaState> | undefined;
    let bestIndex = -1;
    for (const n of this.nodes.values()) {
      const meta = n.meta;
      if (!meta || meta.state.clusterId === '') continue;
      const at = meta.sm.applied().index;
      if (at > bestIndex) {
        best = meta.state;
        bestIndex = at;
      }
    }
    return best;
  }

  /** Whether `id` can serve now: up and not cut off by the scenario. */
  available(id: NodeId): boolean {
    return this.nodes.get(id)?.up === true && !this.isolated.has(id);
  }

  /**
   * Whether every partition has R voters, all on available nodes that are not
   * leaving, no learner and no pending move, in the latest map, and each
   * partition's Raft group agrees (its leader's configuration is the map's).
   */
  settled(): boolean {
    const map = this.latestMap();
    if (map === undefined) return false;
    return map.partitions.every((p, i) => {
      if (p.move !== undefined || p.replicas.some((r) => r.role === 'learner')) return false;
      const voters = votersOf(p);
      if (voters.length !== map.replicationFactor) return false;
      if (!voters.every((v) => this.available(v) && map.nodes[v]?.leaving !== true)) return false;
      const leader = voters.map((v) => this.nodes.get(v)).find((n) => n?.leads(`p${i}`));
      const s = leader?.host?.status(`p${i}`);
      return s !== undefined && s.learners.length === 0 && sameSet(s.voters, voters);
    });
  }

  /** Partition `i`'s Raft group as a voter of the latest map that leads it has it, for failure messages. */
  groupView(i: number): string {
    const p = this.latestMap()?.partitions[i];
    const leader = (p === undefined ? [] : votersOf(p)).map((v) => this.nodes.get(v)).find((n) => n?.leads(`p${i}`));
    const s = leader?.host?.status(`p${i}`);
    if (leader === undefined || s === undefined) return `p${i}: no leader among the map's voters`;
    const out = s.votersOutgoing.length > 0 ? ` (joint, outgoing ${s.votersOutgoing.join(',')})` : '';
    return `p${i}: ${leader.id} leads voters ${s.voters.join(',')}${out} learners ${s.learners.join(',') || '-'}`;
  }

  /** Whether the replicas are spread evenly: loads of the available, non-leaving nodes differ by at most one. */
  balanced(): boolean {
    const map = this.latestMap();
    if (map === undefined) return false;
    const load = new Map<NodeId, number>();
    for (const id of Object.keys(map.nodes)) if (this.available(id) && !map.nodes[id]?.leaving) load.set(id, 0);
    for (const p of map.partitions)
      for (const r of p.replicas) if (load.has(r.node)) load.set(r.node, (load.get(r.node) ?? 0) + 1);
    const xs = [...load.values()];
    return xs.length > 0 && Math.max(...xs) - Math.min(...xs) <= 1;
  }

  /**
   * Leaders per available node, when every partition is led by the voter
   * `assignLeaders` assigns it in the latest map (leaders balanced by count);
   * undefined otherwise.
   */
  leaderCounts(): Map<NodeId, number> | undefined {
    const map = this.latestMap();
    if (map === undefined) return undefined;
    const counts = new Map<NodeId, number>();
    for (const n of this.nodes.values()) if (this.available(n.id)) counts.set(n.id, 0);
    const assigned = assignLeaders(map);
    for (let i = 0; i < map.partitions.length; i++) {
      const to = assigned[i];
      if (to === undefined || !counts.has(to) || !this.nodes.get(to)?.leads(`p${i}`)) return undefined;
      counts.set(to, (counts.get(to) ?? 0) + 1);
    }
    return counts;
  }

  /** Replicas `id` holds in the latest map. */
  replicasOn(id: NodeId): number {
    const map = this.latestMap();
    return map ? map.partitions.filter((p) => p.replicas.some((r) => r.node === id)).length : 0;
  }

  private onLeader(group: GroupId, id: NodeId, term: number): void {
    this.invariantsOf(group).onLeader(id, term);
    this.trace.mixString(`${group} ${id}`);
    if (group === META_GROUP && this.leaders.get(group) !== undefined && this.leaders.get(group) !== id) {
      this.coverage.metaLeaderChange++;
    }
    this.leaders.set(group, id);
  }

  /**
   * Every map a node applies: epochs never go back within a process, one
   * epoch of a partition always names the same replicas (every change of
   * the replicas bumps the epoch), and no partition has two replicas on
   * one node.
   */
  private onMetaState(id: NodeId, incarnation: number, state: Readonly<MetaState>): void {
    const key = `${id}#${incarnation}`;
    const last = this.lastEpochs.get(key) ?? [];
    state.partitions.forEach((p, i) => {
      const before = last[i] ?? 0;
      if (p.epoch < before) {
        this.fail('epochs only grow', `${id} applied epoch ${p.epoch} of partition ${i} after epoch ${before}`);
      }
      last[i] = p.epoch;
      const nodes = p.replicas.map((r) => r.node);
      if (new Set(nodes).size !== nodes.length) {
        this.fail('one replica per node', `partition ${i} at epoch ${p.epoch} has two replicas on one node: ${nodes}`);
      }
      const content = describe(p);
      const seen = this.epochContents.get(`${i}@${p.epoch}`);
      if (seen === undefined) this.epochContents.set(`${i}@${p.epoch}`, content);
      else if (seen !== content) {
        this.fail(
          'an epoch names one configuration',
          `partition ${i} at epoch ${p.epoch} is ${content} on ${id}, ${seen} elsewhere`,
        );
      }
    });
    this.lastEpochs.set(key, last);
  }

  private onReconfigured(by: NodeId, action: PlacementAction, epoch: number): void {
    this.reconfigurations.push({ time: this.scheduler.now(), by, action, epoch });
    this.coverage.reconfiguration++;
    if (action.type === 'replace') this.coverage.jointReplaced++;
    this.trace.mixString(`${by} ${action.type} ${'partition' in action ? action.partition : -1} ${action.node}`);
  }

  /**
   * A partition group never runs more voters than the replication factor outside a joint configuration:
   * a replacement promotes its learner and removes the replaced voter in one joint change.
   */
  private onConfApplied(id: NodeId, group: GroupId, voters: readonly NodeId[], outgoing: readonly NodeId[]): void {
    if (group === META_GROUP || outgoing.length > 0 || voters.length <= this.config.replication) return;
    this.fail(
      'a replacement is one joint change',
      `${id} applied a configuration of ${group} with voters ${voters.join(', ')} outside a joint configuration (replication ${this.config.replication})`,
    );
  }

  /** A served forward: one routed with an older epoch than the replica's must be refused, never applied. */
  private onForward(f: ServedForward): void {
    if (f.carried === undefined || f.carried === 0 || f.carried >= f.mine) return;
    const served = f.answers.filter((a) => a.type !== 'failure' || a.code !== ErrorCode.StaleEpoch);
    if (served.length > 0 || f.answers.length === 0) {
      this.fail(
        'stale epoch fencing',
        `${f.node} served a forward of ${f.group} routed at epoch ${f.carried} while at epoch ${f.mine}`,
      );
    }
    this.coverage.staleRejected++;
  }

  /**
   * Every 100 ms: while at most one node that holds a voter is unavailable
   * (crashed or cut off), every partition of the latest map keeps a quorum of
   * available voters. Placement must never take a partition below a quorum
   * that the faults alone would have left it.
   */
  private startQuorumSampler(): void {
    const sample = (): void => {
      const map = this.latestMap();
      if (map !== undefined) {
        const holders = new Set(map.partitions.flatMap((p) => votersOf(p)));
        const down = [...holders].filter((id) => !this.available(id) && !this.retired.has(id));
        if (down.length <= 1) {
          map.partitions.forEach((p, i) => {
            const voters = votersOf(p);
            const live = voters.filter((v) => this.available(v)).length;
            if (live < Math.floor(voters.length / 2) + 1) {
              this.fail(
                'quorum kept',
                `partition ${i} (epoch ${p.epoch}) has ${live} available voter(s) of ${voters.join(', ')} with only ${down.join(', ') || 'no node'} down`,
              );
            }
          });
        }
      }
      this.scheduler.after(100, sample);
    };
    this.scheduler.after(100, sample);
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function describe(p: PartitionEntry): string {
  return p.replicas.map((r) => `${r.node}${r.role === 'learner' ? '(l)' : ''}`).join(',');
}
