import { type Clock, type Logger, type NodeId, NotLeaderError, type TimerHandle, type Transport } from '@cohort/core';
import type { MembershipChange, RaftHost } from '@cohort/raft';
import type { DurableNodeStore } from '@cohort/storage';
import {
  type GroupConfig,
  changesLeft,
  membershipChanges,
  replicasAfter,
  replicasOf,
  sameConfig,
} from '../placement/action-changes.js';
import { type Liveness, type MemberLiveness, type PlacementAction, planPlacement } from '../placement/controller.js';
import { assignLeaders } from '../placement/leaders.js';
import { partitionGroup } from '../routing.js';
import { MetaStateMachine } from './machine.js';
import {
  type MetaCommand,
  type MetaExtension,
  type MetaResult,
  type MetaState,
  type NodeRecord,
  type PartitionEngine,
  encodeMetaCommand,
  votersOf,
} from './state.js';

/** The meta group's id. */
export const META_GROUP = 'meta';

/**
 * The membership tag a node gossips while its disk is full (value `full`):
 * placement puts no new replica there and, past the grace period, moves its
 * replicas away; leader balancing hands it no leadership.
 */
export const DISK_FULL_TAG = 'cohort.disk';
/** A meta command sent to the meta leader by a node that does not lead the group. */
const META_PROTOCOL = '/cohort/meta/1';
/** A partition membership change sent by the meta leader to the partition's leader. */
const PLACEMENT_PROTOCOL = '/cohort/placement/1';

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));
const parse = <T>(b: Uint8Array): T => JSON.parse(dec.decode(b)) as T;
const list = (ids: readonly NodeId[]): string => [...ids].sort().join(', ') || 'none';

/** What founding a cluster puts in the meta group's first command. */
export interface MetaBootstrap {
  replicationFactor: number;
  members: { id: NodeId; peerAddress: string }[];
  /** Per partition, its founding voters (the recorded layout). */
  partitions: NodeId[][];
  /** Per partition, its engine (absent: raft). */
  engines?: PartitionEngine[];
}

/**
 * What the meta service needs of the membership layer (SWIM's host in the
 * binary, a simulated failure detector in the simulator).
 */
export interface MembershipView {
  /**
   * Every member known, with its state as the failure detector has it and
   * the tags it gossips ({@link DISK_FULL_TAG} among them).
   */
  members(): readonly { id: NodeId; state: Liveness; tags?: Readonly<Record<string, string>> }[];
  /** Whether this node's partition detector says it is in a minority: the controller decides nothing then. */
  minority(): boolean;
}

/** Options of {@link MetaService}. */
export interface MetaServiceOptions {
  self: NodeId;
  host: RaftHost;
  transport: Transport;
  store: DurableNodeStore;
  log: Logger;
  /** Times the placement rounds and the waits for a map change (the meta leader's view of time). */
  clock: Clock;
  /** A new cluster id, drawn once when the cluster is founded (a random UUID in the binary). */
  newClusterId: () => string;
  /** Founding members' settings; absent on a node that joined. */
  bootstrap?: MetaBootstrap;
  /** Voters of the meta group in a new cluster (the first founding members by id). */
  foundingVoters: NodeId[];
  /** This node as it registers (filled once the transport started). */
  record: () => NodeRecord;
  /** The membership view, once membership runs on this node. */
  membership: () => MembershipView | undefined;
  /** Whether the placement controller moves partition replicas (several partitions). */
  placePartitions: boolean;
  /** How long a member stays dead before its replicas are replaced. */
  deadGraceMs: number;
  /** Voters of the meta group at most (3 or 5). */
  metaVoters: number;
  /** Milliseconds between placement rounds. */
  intervalMs: number;
  /** Partitions being rebalanced at once at most (see {@link PlacementConfig}). @default 2 */
  maxMoves?: number;
  /**
   * Milliseconds between leader-balancing passes, run on every node: each
   * partition this node leads is handed to the voter {@link assignLeaders}
   * gives it (about P/N partitions per node), when that one is alive.
   * Absent: no balancing.
   */
  balanceLeadersMs?: number;
  /** Called with each reconfiguration the meta leader recorded (for logs, metrics and the simulator's coverage). */
  onReconfigured?: (a: PlacementAction, epoch: number) => void;
  /**
   * Called when the meta leader set a partition's replicas in the map to its Raft group's configuration,
   * as the group's leader found them different (a change made but never recorded).
   */
  onMapCorrected?: (partition: number, epoch: number) => void;
  /** The leader of partition `p` as gossip announces it, if known. */
  partitionLeader: (p: number) => NodeId | undefined;
  /** Control-plane users' commands by section (the configuration master's). */
  extensions?: ReadonlyMap<string, MetaExtension>;
}

/**
 * A membership change the meta leader asks a partition's leader to make:
 * `change` alone, or `changes` made together as one joint change (a
 * replacement). An older node reads `change` only and fails on `changes`
 * (the meta leader retries each round), so it never makes half a replacement.
 * `expect`: the group's configuration as the map has it; a leader whose
 * group differs (a change made but never recorded, by a meta leader that
 * lost its leadership) makes nothing and answers its configuration in
 * `differs`, which the map then records, so the map and the group never
 * drift apart further.
 */
type PlacementRequest = {
  group: string;
  change?: MembershipChange;
  changes?: MembershipChange[];
  address?: string;
  expect?: GroupConfig;
};
/** `config`: the group's configuration once the change is made (absent from older nodes). */
type PlacementReply =
  | { ok: true; config?: GroupConfig }
  | { ok: false; leader?: NodeId; reason: string; differs?: GroupConfig };
/** What asking for a partition change came to: made (or found made), or refused as the group differs from the map. */
type PartitionOutcome = { made: true; config?: GroupConfig } | { made: false; config: GroupConfig; reason: string };
type MetaReply = { result: MetaResult } | { notLeader: true; leader?: NodeId };

/**
 * The meta group on this node: hosts it, proposes to it (forwarding to its
 * leader), founds the cluster's registry and partition map once, registers
 * this node, and on the meta leader runs the placement controller each
 * round, carrying out its actions through the partition leaders.
 */
export class MetaService {
  readonly sm: MetaStateMachine;
  private timer: TimerHandle | undefined;
  private balanceTimer: TimerHandle | undefined;
  /** Partition groups whose leadership this node is handing over. */
  private readonly transferring = new Set<string>();
  private running = false;
  private registered = false;
  private busy = false;
  /** Partitions (and the meta group, -1) with a change under way. */
  private readonly inFlight = new Set<number>();
  /** Each member's state and when this node first saw it in that state. */
  private readonly seen = new Map<NodeId, MemberLiveness>();
  private leaderSince: number | undefined;
  /** The last actions logged, so a repeated refusal is not logged every round. */
  private lastRefusal = new Map<string, string>();

  constructor(private readonly opts: MetaServiceOptions) {
    this.sm = new MetaStateMachine(opts.store, META_GROUP, opts.extensions);
  }

  /** Whether this node leads the meta group now. */
  leading(): boolean {
    return this.opts.host.status(META_GROUP).role === 'leader';
  }

  /** On the meta leader: the voters it has not heard from lately (none elsewhere). */
  unreachable(): NodeId[] {
    const s = this.opts.host.status(META_GROUP);
    return s.role === 'leader' ? s.quorum.unreachable : [];
  }

  /** The meta group's leader as this node knows it ('' when none). */
  leader(): NodeId {
    return this.opts.host.status(META_GROUP).leader;
  }

  /** The meta state as applied here. */
  get state(): Readonly<MetaState> {
    return this.sm.state;
  }

  /** Resolves at the next change of the meta state applied here, or at `until` (the injected clock's time). */
  changed(until: number): Promise<void> {
    const { clock } = this.opts;
    return new Promise((resolve) => {
      let settled = false;
      const done = (): void => {
        if (settled) return;
        settled = true;
        clock.clearTimeout(timer);
        off();
        resolve();
      };
      const timer = clock.setTimeout(done, Math.max(0, until - clock.now()));
      const off = this.sm.onChange(done);
    });
  }

  /** Adds the meta group to the host (before the host starts) and serves meta and placement requests. */
  attach(): void {
    const { host, transport } = this.opts;
    const fresh = this.opts.store.group(META_GROUP).lastIndex() === 0;
    host.addGroup(META_GROUP, this.sm, fresh && this.opts.bootstrap ? this.opts.foundingVoters : []);
    transport.handleRequest(META_PROTOCOL, async (_from, frame) =>
      json(await this.serveMeta(parse<MetaCommand>(frame))),
    );
    transport.handleRequest(PLACEMENT_PROTOCOL, async (_from, frame) =>
      json(await this.servePlacement(parse<PlacementRequest>(frame))),
    );
  }

  /** Runs a round every `intervalMs` until {@link stop}. */
  start(): void {
    this.running = true;
    const tick = (): void => {
      if (!this.running) return;
      void this.round();
      this.timer = this.opts.clock.setTimeout(tick, this.opts.intervalMs);
    };
    this.timer = this.opts.clock.setTimeout(tick, this.opts.intervalMs);
    const every = this.opts.balanceLeadersMs;
    if (every !== undefined) {
      const balance = (): void => {
        if (!this.running) return;
        this.balanceLeaders();
        this.balanceTimer = this.opts.clock.setTimeout(balance, every);
      };
      this.balanceTimer = this.opts.clock.setTimeout(balance, every);
    }
  }

  /** Stops the rounds. */
  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
    if (this.balanceTimer !== undefined) this.opts.clock.clearTimeout(this.balanceTimer);
    this.timer = undefined;
    this.balanceTimer = undefined;
  }

  /**
   * Hands each partition this node leads to the voter {@link assignLeaders}
   * assigns it, when that voter is alive here: leaders spread by count, an
   * operator's preferred leader kept. Every node computes the same
   * assignment from the map, so no two nodes hand a partition back and forth.
   */
  balanceLeaders(): void {
    const { host, self, log } = this.opts;
    if (this.state.clusterId === '') return;
    const assigned = assignLeaders(this.state);
    const hosted = new Set(host.groupIds());
    assigned.forEach((to, i) => {
      const group = partitionGroup(i);
      if (to === undefined || to === self || !hosted.has(group) || this.transferring.has(group)) return;
      const s = host.status(group);
      if (s.role !== 'leader' || !s.voters.includes(to) || !this.alive(to)) return;
      this.transferring.add(group);
      host
        .transferLeadership(group, to)
        .then(
          () => log.info('partition leadership handed over (leaders balanced by count)', { group, to }),
          (err: Error) => log.debug('leadership hand-over failed', { group, to, err: err.message }),
        )
        .finally(() => this.transferring.delete(group));
    });
  }

  private async serveMeta(cmd: MetaCommand): Promise<MetaReply> {
    const s = this.opts.host.status(META_GROUP);
    if (s.role !== 'leader') return { notLeader: true, ...(s.leader ? { leader: s.leader } : {}) };
    return { result: await this.opts.host.propose<MetaResult>(META_GROUP, encodeMetaCommand(cmd)) };
  }

  /** Proposes `cmd` to the meta group, through its leader; resolves with its result once applied there. */
  async propose(cmd: MetaCommand): Promise<MetaResult> {
    const { host, transport, self } = this.opts;
    let target: NodeId | undefined = host.status(META_GROUP).leader || undefined;
    for (let hop = 0; hop < 3; hop++) {
      if (target === undefined) throw new NotLeaderError(undefined, undefined, 'the meta group has no leader now');
      const reply =
        target === self
          ? await this.serveMeta(cmd)
          : parse<MetaReply>(await transport.request(target, META_PROTOCOL, json(cmd)));
      if ('result' in reply) return reply.result;
      target = reply.leader;
    }
    throw new NotLeaderError(undefined, undefined, 'the meta group leader moved while proposing');
  }

  /** One round: found the cluster, register this node, and on the leader, place replicas. */
  private async round(): Promise<void> {
    if (!this.running || this.busy) return;
    this.busy = true;
    try {
      const s = this.opts.host.status(META_GROUP);
      const leading = s.role === 'leader';
      if (!leading) this.leaderSince = undefined;
      else this.leaderSince ??= this.opts.clock.now();
      if (this.state.clusterId === '') {
        if (leading && this.opts.bootstrap) await this.found(this.opts.bootstrap);
        return;
      }
      if (!this.registered) await this.register();
      if (leading) await this.place();
    } catch (err) {
      this.opts.log.debug('meta round failed', { err: (err as Error).message });
    } finally {
      this.busy = false;
    }
  }

  private async found(b: MetaBootstrap): Promise<void> {
    const clusterId = this.opts.newClusterId();
    const res = await this.propose({
      type: 'bootstrap',
      clusterId,
      replicationFactor: b.replicationFactor,
      nodes: b.members.map((m) => ({ id: m.id, peerAddress: m.peerAddress, tags: {}, startedAt: 0 })),
      partitions: b.partitions,
      ...(b.engines ? { engines: b.engines } : {}),
    });
    if (res.ok) this.opts.log.info('cluster founded: meta group holds the registry and partition map', { clusterId });
  }

  /**
   * Records this node's registry entry again (its addresses and tags as
   * `record()` gives them now), through the meta leader; placement reads
   * zones from there. Throws when the meta group refuses it.
   */
  async updateRecord(): Promise<void> {
    const res = await this.propose({ type: 'register', node: this.opts.record() });
    if (!res.ok) throw new Error(`the meta group refused the registration: ${res.reason}`);
  }

  private async register(): Promise<void> {
    const res = await this.propose({ type: 'register', node: this.opts.record() });
    if (res.ok) {
      this.registered = true;
      this.opts.log.info('registered in the meta group', { clusterId: this.state.clusterId });
    } else this.opts.log.error('registration refused', { reason: res.reason });
  }

  /** The member list with the time each member entered its state as this node saw it. */
  private members(ms: MembershipView): Map<NodeId, MemberLiveness> {
    const now = this.opts.clock.now();
    const out = new Map<NodeId, MemberLiveness>();
    for (const m of ms.members()) {
      const prev = this.seen.get(m.id);
      const full = m.tags?.[DISK_FULL_TAG] === 'full';
      const diskFullSince = full ? (prev?.diskFullSince ?? now) : undefined;
      const same = prev !== undefined && prev.state === m.state;
      const cur: MemberLiveness = { state: m.state, since: same ? prev.since : now };
      if (diskFullSince !== undefined) cur.diskFullSince = diskFullSince;
      this.seen.set(m.id, cur);
      out.set(m.id, cur);
    }
    out.set(this.opts.self, { state: 'alive', since: 0 });
    return out;
  }

  private async place(): Promise<void> {
    const ms = this.opts.membership();
    if (ms === undefined) return;
    const minority = ms.minority();
    const status = this.opts.host.status(META_GROUP);
    const actions = planPlacement({
      state: this.state as MetaState,
      members: this.members(ms),
      now: this.opts.clock.now(),
      viewSince: this.leaderSince ?? this.opts.clock.now(),
      meta: { voters: status.voters, learners: status.learners },
      minority,
      config: {
        deadGraceMs: this.opts.deadGraceMs,
        metaVoters: this.opts.metaVoters,
        ...(this.opts.maxMoves !== undefined ? { maxMoves: this.opts.maxMoves } : {}),
      },
    }).filter((a) => this.opts.placePartitions || a.type.startsWith('meta'));
    await Promise.all(actions.map((a) => this.run(a)));
  }

  private async run(a: PlacementAction): Promise<void> {
    const key = 'partition' in a ? a.partition : -1;
    if (this.inFlight.has(key)) return;
    this.inFlight.add(key);
    try {
      const changes = membershipChanges(a);
      const ops = changes.map((c) => `${c.op} ${c.node}`).join(' + ');
      if (
        a.type === 'metaAddLearner' ||
        a.type === 'metaPromote' ||
        a.type === 'metaReplace' ||
        a.type === 'metaRemove'
      ) {
        if (changes.some((c) => c.op === 'remove' && c.node === this.opts.self)) {
          // The leader does not remove itself: it hands the meta group to another live voter that stays,
          // whose controller removes this node next (a leaving meta leader would keep its vote).
          const to = this.opts.host
            .status(META_GROUP)
            .voters.find((v) => v !== this.opts.self && this.alive(v) && !changes.some((c) => c.node === v));
          if (to === undefined) throw new Error(`${this.opts.self} leads the meta group and no other voter is alive`);
          await this.opts.host.transferLeadership(META_GROUP, to);
          this.opts.log.info('meta group leadership handed over before removing this node', { to, reason: a.reason });
          return;
        }
        const address = this.state.nodes[a.node]?.peerAddress;
        await this.opts.host.changeMembership(META_GROUP, changes, address ? json({ address }) : undefined);
        this.opts.log.info(
          changes.length > 1 ? 'meta group voter replaced (one joint change)' : 'meta group membership changed',
          {
            changes: ops,
            reason: a.reason,
          },
        );
        return;
      }
      const outcome = await this.changePartition(a, changes);
      const entry = this.state.partitions[a.partition]!;
      if (!outcome.made) {
        // The group is not what the map says: record what it is; the next round plans from there.
        const replicas = replicasOf(entry.replicas, outcome.config);
        const res = await this.propose({ type: 'reconfigure', partition: a.partition, epoch: a.epoch, replicas });
        if (!res.ok) throw new Error(res.reason);
        this.opts.onMapCorrected?.(a.partition, res.epoch ?? entry.epoch + 1);
        this.opts.log.warn("partition map set to its Raft group's configuration (they differed)", {
          partition: a.partition,
          replicas: replicas.map((r) => `${r.node}${r.role === 'learner' ? ' (learner)' : ''}`),
          epoch: res.epoch,
          why: outcome.reason,
        });
        return;
      }
      const replicas =
        outcome.config !== undefined
          ? replicasOf(entry.replicas, outcome.config)
          : replicasAfter(entry.replicas, changes);
      const res = await this.propose({ type: 'reconfigure', partition: a.partition, epoch: a.epoch, replicas });
      if (!res.ok) throw new Error(res.reason);
      this.lastRefusal.delete(`${key}`);
      this.opts.onReconfigured?.(a, res.epoch ?? entry.epoch + 1);
      this.opts.log.info('partition reconfigured', {
        partition: a.partition,
        action: a.type,
        node: a.node,
        ...(a.type === 'replace' ? { removed: a.remove, joint: ops } : {}),
        epoch: res.epoch,
        reason: a.reason,
      });
    } catch (err) {
      const why = (err as Error).message;
      // Logged once per kind of refusal: the numbers in it (a dial backoff, an index) change every round.
      const shape = why.replace(/\d+/g, '#');
      if (this.lastRefusal.get(`${key}`) !== shape) {
        this.lastRefusal.set(`${key}`, shape);
        this.opts.log.info('placement step not taken now (retried next round)', {
          action: a.type,
          node: a.node,
          key,
          why,
        });
      }
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** Makes the Raft membership change(s) of `a` on its partition's leader (any replica points to it). */
  private async changePartition(
    a: Extract<PlacementAction, { partition: number }>,
    changes: MembershipChange[],
  ): Promise<PartitionOutcome> {
    const entry = this.state.partitions[a.partition]!;
    const only = changes.length === 1 ? changes[0] : undefined;
    const req: PlacementRequest = {
      group: partitionGroup(a.partition),
      ...(only !== undefined ? { change: only } : { changes }),
      ...(this.state.nodes[a.node] ? { address: this.state.nodes[a.node]!.peerAddress } : {}),
      expect: {
        voters: votersOf(entry),
        learners: entry.replicas.filter((r) => r.role === 'learner').map((r) => r.node),
      },
    };
    const tried = new Set<NodeId>();
    const queue = [this.opts.partitionLeader(a.partition), entry.leader, ...votersOf(entry)].filter(
      (x): x is NodeId => x !== undefined,
    );
    let last = 'no replica answered';
    while (queue.length > 0) {
      const to = queue.shift()!;
      if (tried.has(to)) continue;
      tried.add(to);
      let reply: PlacementReply;
      try {
        reply =
          to === this.opts.self
            ? await this.servePlacement(req)
            : parse<PlacementReply>(await this.opts.transport.request(to, PLACEMENT_PROTOCOL, json(req)));
      } catch (err) {
        last = `${to}: ${(err as Error).message}`;
        continue;
      }
      if (reply.ok) return reply.config !== undefined ? { made: true, config: reply.config } : { made: true };
      if (reply.differs !== undefined) return { made: false, config: reply.differs, reason: `${to}: ${reply.reason}` };
      last = `${to}: ${reply.reason}`;
      if (reply.leader !== undefined) queue.unshift(reply.leader);
      else if (reply.reason !== 'not leader') break;
    }
    throw new Error(last);
  }

  /** On a partition's leader: makes a membership change the meta leader asks for (done already counts as done). */
  private async servePlacement(req: PlacementRequest): Promise<PlacementReply> {
    const { host, self, transport } = this.opts;
    if (!host.groupIds().includes(req.group)) return { ok: false, reason: 'not leader' };
    const s = host.status(req.group);
    if (s.role !== 'leader')
      return { ok: false, reason: 'not leader', ...(s.leader && s.leader !== self ? { leader: s.leader } : {}) };
    const wanted = req.changes ?? (req.change !== undefined ? [req.change] : []);
    const config: GroupConfig = { voters: s.voters, learners: s.learners };
    const left = changesLeft(wanted, s.voters, s.learners);
    if (left.length === 0) return { ok: true, config };
    if (req.expect !== undefined && !sameConfig(replicasOf([], req.expect), config)) {
      return {
        ok: false,
        reason: `${req.group} has voters ${list(config.voters)} and learners ${list(config.learners)}, the map voters ${list(req.expect.voters)} and learners ${list(req.expect.learners)}: nothing changed`,
        differs: config,
      };
    }
    if (left.some((c) => c.op === 'remove' && c.node === self)) {
      // A leader does not remove itself: hand the leadership to another voter that stays, then the meta
      // leader asks the new one (it follows the hint in this round).
      const to = s.voters.find((v) => v !== self && this.alive(v) && !left.some((c) => c.node === v));
      if (to === undefined) return { ok: false, reason: `${self} leads ${req.group} and no other voter is alive` };
      await host.transferLeadership(req.group, to);
      return { ok: false, reason: `leadership of ${req.group} moved to ${to} before removing ${self}`, leader: to };
    }
    // The address is that of the node the action is about (the learner added or promoted).
    const node = wanted[0]?.node;
    if (req.address !== undefined && node !== undefined && node !== self) transport.addPeer(node, req.address);
    try {
      const context = req.address ? json({ address: req.address }) : undefined;
      const cs = await host.changeMembership(req.group, left.length === 1 ? left[0]! : left, context);
      return { ok: true, config: { voters: cs.voters, learners: cs.learners } };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  }

  /** Whether `id` is alive and may lead (its disk is not full). */
  private alive(id: NodeId): boolean {
    return (
      this.opts
        .membership()
        ?.members()
        .some((m) => m.id === id && m.state === 'alive' && m.tags?.[DISK_FULL_TAG] !== 'full') ?? false
    );
  }
}
