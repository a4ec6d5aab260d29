import { type GroupId, type Logger, type NodeId, type SeededRandom, decodeForwardResponse } from '@cohort/core';
import {
  CircuitBreakers,
  type KvRequest,
  type KvResponse,
  KvService,
  KvStateMachine,
  META_GROUP,
  type MembershipView,
  type MetaBootstrap,
  MetaService,
  type MetaState,
  type PlacementAction,
  type SlotMap,
  decodeBatchResponse,
  decodeForwardedRequest,
  decodeRequest,
  decodeResponse,
  encodeResponse,
  partitionGroup,
  remoteGroup,
  serveForwardedRequests,
  votersOf,
} from '@cohort/kv';
import { RaftHost, type RaftOptions, type Ready, type StateRole } from '@cohort/raft';
import { MemoryNodeStore } from '@cohort/storage';
import { SimClock } from '../clock.js';
import type { SimNetwork } from '../network.js';
import type { RaftInvariants } from '../raft/invariants.js';
import { observedEngineFactory } from '../raft/observed-engine.js';
import { ObservedMachine } from '../raft/observed-machine.js';
import { SimDisk } from '../raft/sim-disk.js';
import { CLIENT_PROTOCOL } from '../raft/sim-node.js';
import type { Scheduler } from '../scheduler.js';
import type { TraceHash } from '../trace.js';
import { type RequestIds, type SimFrame, SimTransport } from '../transport/sim-transport.js';

/** Local milliseconds the host, the KV service and the transport give a request. */
const REQUEST_TIMEOUT_MS = 1_000;

/** A forward a node served: the epoch it carried and the serving replica's epoch when it arrived. */
export interface ServedForward {
  node: NodeId;
  group: GroupId;
  carried: number | undefined;
  mine: number;
  answers: KvResponse[];
}

/** What a simulated placement node shares with its cluster. */
export interface PlacementNodeEnv {
  scheduler: Scheduler;
  network: SimNetwork<SimFrame>;
  ids: RequestIds;
  trace: TraceHash;
  slots: SlotMap;
  /** Engine options every node and group gets (id, random and applied are the host's). */
  raft: Omit<RaftOptions, 'id' | 'random' | 'applied'>;
  tickMs: number;
  snapshotEvery: number;
  snapshotKeep: number;
  diskLatencyMs: [number, number];
  deadGraceMs: number;
  placementIntervalMs: number;
  /** Milliseconds between the meta services' leader-balancing passes. */
  balanceLeadersMs: number;
  metaVoters: number;
  /** The invariant checker of a group (the meta group and each partition). */
  invariantsOf(group: GroupId): RaftInvariants;
  /** The node's failure detector view. */
  membershipOf(id: NodeId): MembershipView;
  /** Whether `observer`'s failure detector has `peer` alive. */
  alive(observer: NodeId, peer: NodeId): boolean;
  /** A meta state this node applied (every change). */
  onMetaState(id: NodeId, incarnation: number, state: Readonly<MetaState>): void;
  /** The meta leader on `id` recorded a reconfiguration. */
  onReconfigured(id: NodeId, a: PlacementAction, epoch: number): void;
  /** The meta leader on `id` set partition `partition`'s replicas in the map to its group's configuration. */
  onMapCorrected(id: NodeId, partition: number, epoch: number): void;
  /** `id` applied a membership change of `group`: the configuration it now has (`votersOutgoing` non-empty while joint). */
  onConfApplied(id: NodeId, group: GroupId, voters: readonly NodeId[], votersOutgoing: readonly NodeId[]): void;
  /** A forward this node served. */
  onForward(f: ServedForward): void;
  /** `id` became leader of `group` in `term`. */
  onLeader(group: GroupId, id: NodeId, term: number): void;
  onFatal(id: NodeId, err: Error): void;
  /** Where the meta services log (silent in batches). */
  logger: Logger;
  /** Deliberate bugs, for tests proving the checks fail. */
  mutations: PlacementMutations;
}

/** Deliberate bugs in how a node is composed, for tests proving the checks catch them. */
export interface PlacementMutations {
  /** Nodes serve forwards without comparing the epoch they carry with their own (no STALE_EPOCH fencing). */
  unfenced?: boolean;
  /** The meta services replace a dead node's replicas at once, with no grace period. */
  noGracePeriod?: boolean;
}

/** One run of the node's process, from start or restart to crash. */
interface Process {
  clock: SimClock;
  transport: SimTransport;
  disk: SimDisk;
  host: RaftHost;
  meta: MetaService;
  /** Per partition: the service requests go through (a local replica's or a forwarding one). */
  services: KvService[];
  /** Partitions hosted here. */
  hosted: Set<number>;
  roles: Map<GroupId, { role: StateRole; term: number }>;
  breakers: CircuitBreakers;
}

/**
 * A simulated node of a partitioned cluster, composed of the classes the
 * `cohort` binary composes: one `RaftHost` for the meta group and the
 * partitions placed here, the `MetaService` (registry, partition map,
 * placement controller on the meta leader) and a `KvService` per partition
 * (a local replica's, fenced by the partition's epoch, or one forwarding to
 * a replica), over a simulated clock, network and disk. The node follows
 * the partition map as the binary does: it hosts the partitions the map
 * gives it a replica of, and only those.
 */
export class SimPlacementNode {
  readonly store: MemoryNodeStore;
  private proc: Process | undefined;
  incarnation = 0;
  private readonly diskRandom: SeededRandom;

  constructor(
    readonly id: NodeId,
    private readonly env: PlacementNodeEnv,
    private readonly random: SeededRandom,
    readonly zone: string,
    /** Founding settings (a founding member), or undefined for a node that joins. */
    private readonly bootstrap: { meta: MetaBootstrap; voters: NodeId[] } | undefined,
  ) {
    this.store = new MemoryNodeStore({ autoSync: false, name: `${id}.mem`, chunkBytes: 4096 });
    this.diskRandom = random.fork();
  }

  get up(): boolean {
    return this.proc !== undefined;
  }

  /** The meta service of the running process. */
  get meta(): MetaService | undefined {
    return this.proc?.meta;
  }

  get host(): RaftHost | undefined {
    return this.proc?.host;
  }

  /** Whether this node leads `group` now (by its engine's view). */
  leads(group: GroupId): boolean {
    return this.proc?.roles.get(group)?.role === 'leader';
  }

  /** Partitions hosted by the running process. */
  hosted(): number[] {
    return this.proc ? [...this.proc.hosted].sort((a, b) => a - b) : [];
  }

  /** The node as it registers in the meta group. */
  record(startedAt: number): {
    id: NodeId;
    peerId: string;
    peerAddress: string;
    tags: Record<string, string>;
    startedAt: number;
  } {
    return { id: this.id, peerId: this.id, peerAddress: this.id, tags: { zone: this.zone }, startedAt };
  }

  /** Starts (or restarts) a process over what is on disk. */
  start(): void {
    if (this.proc) return;
    this.incarnation++;
    this.launch();
  }

  /** Stops the process abruptly: timers, connections and unsynced writes are lost. */
  crash(): void {
    const p = this.proc;
    if (!p) return;
    this.proc = undefined;
    p.meta.stop();
    p.clock.halt();
    p.transport.crash();
    p.disk.crash(false);
  }

  /** Tells a group's invariants that this node (re)starts it from what its store holds. */
  private restartInvariants(group: GroupId, applied: number): void {
    const r = this.store.group(group);
    this.env.invariantsOf(group).onRestart(this.id, r.initialState().hardState, applied, r.lastIndex());
  }

  private launch(): void {
    const env = this.env;
    const clock = new SimClock(env.scheduler);
    const transport = new SimTransport(this.id, env.network, clock, env.ids, {
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      duplicateRequests: true,
      onDeliver: (_from, f) => {
        if (f.kind === 'frame') env.trace.mix3(1, f.bytes.length, f.bytes[f.bytes.length - 1] ?? 0);
      },
    });
    const [lo, hi] = env.diskLatencyMs;
    const disk = new SimDisk(this.store, env.scheduler, () => lo + this.diskRandom.next() * (hi - lo), {
      onDurable: (group, hs) => env.invariantsOf(group).onDurable(this.id, hs),
      onCompacted: (group, compactTo) => env.invariantsOf(group).onCompact(this.id, compactTo),
      onCorruption: () => {},
    });
    const roles = new Map<GroupId, { role: StateRole; term: number }>();
    const host = new RaftHost({
      id: this.id,
      store: disk,
      transport,
      clock,
      random: this.random.fork(),
      createEngine: observedEngineFactory(env.raft, {
        onEngine: () => {},
        onReady: (rd, group) => this.onReady(roles, group, rd),
      }),
      tickMs: env.tickMs,
      electionTicks: env.raft.electionTick,
      heartbeatTicks: env.raft.heartbeatTick,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      snapshotEntries: env.snapshotEvery,
      compactionMarginEntries: env.snapshotKeep,
      ...(env.raft.snapshotChunkBytes === undefined ? {} : { snapshotChunkBytes: env.raft.snapshotChunkBytes }),
      snapshotRetryMs: 50,
      coalesceHeartbeats: true,
    });
    host.onFatal = (err) => env.onFatal(this.id, err);
    host.onConfChange = (group) => {
      const s = host.status(group);
      env.onConfApplied(this.id, group, s.voters, s.votersOutgoing);
    };
    const startedAt = env.scheduler.now();
    const incarnation = this.incarnation;
    const meta = new MetaService({
      self: this.id,
      host,
      transport,
      store: this.store,
      log: env.logger.child({ node: this.id, component: 'meta' }),
      clock,
      newClusterId: () => `sim-${this.random.int(0, 1e9)}`,
      ...(this.bootstrap ? { bootstrap: this.bootstrap.meta } : {}),
      foundingVoters: this.bootstrap?.voters ?? [],
      record: () => this.record(startedAt),
      membership: () => env.membershipOf(this.id),
      placePartitions: true,
      deadGraceMs: env.mutations.noGracePeriod ? 0 : env.deadGraceMs,
      metaVoters: env.metaVoters,
      intervalMs: env.placementIntervalMs,
      balanceLeadersMs: env.balanceLeadersMs,
      partitionLeader: (p) => {
        const group = partitionGroup(p);
        if (!host.groupIds().includes(group)) return undefined;
        return host.status(group).leader || undefined;
      },
      onReconfigured: (a, epoch) => env.onReconfigured(this.id, a, epoch),
      onMapCorrected: (partition, epoch) => env.onMapCorrected(this.id, partition, epoch),
    });
    const metaApplied = meta.sm.applied().index;
    this.restartInvariants(META_GROUP, Math.max(metaApplied, this.store.group(META_GROUP).snapshot().meta.index));
    meta.attach();
    meta.sm.onChange((state) => env.onMetaState(this.id, incarnation, state));
    const breakers = new CircuitBreakers();
    const proc: Process = {
      clock,
      transport,
      disk,
      host,
      meta,
      services: [],
      hosted: new Set(),
      roles,
      breakers,
    };
    this.proc = proc;
    const P = env.slots.partitions;
    for (let i = 0; i < P; i++) proc.services.push(this.remoteService(proc, i));
    const mapped = meta.state.clusterId !== '';
    const fresh: GroupId[] = [];
    for (let i = 0; i < P; i++) {
      const layout = this.bootstrap?.meta.partitions[i] ?? [];
      const replicas = mapped ? (meta.state.partitions[i]?.replicas.map((r) => r.node) ?? []) : layout;
      if (!replicas.includes(this.id)) continue;
      const voters = this.bootstrap && !mapped ? layout : [];
      if (this.hostPartition(proc, i, voters) && voters[0] === this.id) fresh.push(partitionGroup(i));
    }
    meta.sm.onChange((state) => clock.defer(() => this.followMap(proc, state)));
    serveForwardedRequests(transport, (group) => {
      const i = partitionIndex(group);
      const svc = i === undefined ? undefined : proc.services[i];
      if (svc === undefined || i === undefined) return undefined;
      return {
        serveForwarded: async (from: NodeId, op: Uint8Array, hops: number, epoch?: number) => {
          const mine = meta.state.partitions[i]?.epoch ?? 0;
          const out = await svc.serveForwarded(from, op, hops, env.mutations.unfenced ? undefined : epoch);
          env.onForward({ node: this.id, group, carried: epoch, mine, answers: forwardAnswers(op, out) });
          return out;
        },
      };
    });
    transport.handleRequest(CLIENT_PROTOCOL, async (_from, frame) => {
      const req = decodeRequest(frame);
      const p = env.slots.partitionOfKey(requestKey(req));
      return encodeResponse(await (proc.services[p] as KvService).execute(req));
    });
    host.start();
    meta.start();
    // Leaders start spread: each partition's first founding replica campaigns at once in a new cluster.
    for (const group of fresh) host.campaign(group);
    this.followMap(proc, meta.state as MetaState);
  }

  /** The service of a partition this node holds no replica of: it forwards to a live replica, fenced by epoch. */
  private remoteService(proc: Process, index: number): KvService {
    const group = partitionGroup(index);
    return new KvService({
      group: remoteGroup(
        group,
        () => proc.meta.state.partitions[index]?.replicas.map((r) => r.node) ?? [],
        (id) => this.env.alive(this.id, id),
        () => undefined,
      ),
      ...this.fencing(proc, index),
      transport: proc.transport,
      clock: proc.clock,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      circuitBreakers: proc.breakers,
    });
  }

  private fencing(proc: Process, index: number) {
    return {
      epoch: () => proc.meta.state.partitions[index]?.epoch ?? 0,
      refreshEpoch: (deadline: number) => proc.meta.changed(Math.min(deadline, proc.clock.now() + 1000)),
    };
  }

  /** Hosts a replica of partition `index` (`voters`: its founding voters in a new cluster). False when hosted already. */
  private hostPartition(proc: Process, index: number, voters: NodeId[]): boolean {
    if (proc.hosted.has(index)) return false;
    const group = partitionGroup(index);
    const inv = this.env.invariantsOf(group);
    const sm = new KvStateMachine(this.store, group);
    this.restartInvariants(group, Math.max(sm.applied().index, this.store.group(group).snapshot().meta.index));
    proc.host.addGroup(
      group,
      new ObservedMachine(
        sm,
        (e) => {
          inv.onApply(this.id, e);
          this.env.trace.mix3(2, e.index, e.term);
        },
        (meta) => inv.onStateRestored(this.id, meta.index),
      ),
      voters,
    );
    proc.hosted.add(index);
    proc.services[index] = new KvService({
      group: proc.host.replicated(group),
      machine: sm,
      ...this.fencing(proc, index),
      transport: proc.transport,
      clock: proc.clock,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      circuitBreakers: proc.breakers,
      wallClock: () => Math.floor(proc.clock.now()),
    });
    return true;
  }

  /** Stops hosting partition `index` (its replica here was removed): requests are forwarded from now on. */
  private dropPartition(proc: Process, index: number): void {
    if (!proc.hosted.delete(index)) return;
    const group = partitionGroup(index);
    proc.host.removeGroup(group);
    proc.roles.delete(group);
    proc.services[index] = this.remoteService(proc, index);
  }

  /** Hosts the partitions the map gives this node a replica of, and only those (as the binary does). */
  private followMap(proc: Process, state: Readonly<MetaState>): void {
    if (this.proc !== proc || state.clusterId === '') return;
    state.partitions.forEach((entry, index) => {
      const mine = entry.replicas.some((r) => r.node === this.id);
      if (mine && !proc.hosted.has(index)) this.hostPartition(proc, index, []);
      else if (!mine && proc.hosted.has(index)) this.dropPartition(proc, index);
    });
  }

  private onReady(roles: Map<GroupId, { role: StateRole; term: number }>, group: GroupId, rd: Ready): void {
    const inv = this.env.invariantsOf(group);
    if (rd.snapshot) inv.onSnapshot(this.id, rd.snapshot.meta.index, rd.snapshot.meta.term);
    if (rd.entries.length > 0) inv.onAppend(this.id, rd.entries);
    let st = roles.get(group);
    if (st === undefined) {
      st = { role: 'follower', term: 0 };
      roles.set(group, st);
    }
    if (rd.hardState) {
      st.term = rd.hardState.term;
      inv.onHardState(this.id, rd.hardState);
    }
    if (rd.softState) {
      const was = st.role;
      st.role = rd.softState.role;
      if (st.role === 'leader' && was !== 'leader') this.env.onLeader(group, this.id, st.term);
    }
  }

  /** The voters of partition `index` in this node's map. */
  votersOf(index: number): NodeId[] {
    const e = this.proc?.meta.state.partitions[index];
    return e ? votersOf(e) : [];
  }
}

/** The partition index of a partition group id (`p3` -> 3). */
function partitionIndex(group: GroupId): number | undefined {
  const m = /^p(\d+)$/.exec(group);
  return m ? Number(m[1]) : undefined;
}

/** The key a simulated client request addresses (one key per request). */
function requestKey(req: KvRequest): Uint8Array {
  if (req.kind === 'write') {
    const c = req.command as { key?: Uint8Array };
    if (c.key !== undefined) return c.key;
  } else if (req.kind === 'read') {
    const k = (req as { keys?: Uint8Array[] }).keys?.[0];
    if (k !== undefined) return k;
  }
  throw new Error(`a simulated client sent a request without a key: ${req.kind}`);
}

/** The KV answers inside a forward's response bytes (one, or a batch). */
function forwardAnswers(op: Uint8Array, bytes: Uint8Array): KvResponse[] {
  const res = decodeForwardResponse(bytes);
  if (!res.ok) return [];
  const req = decodeForwardedRequest(op);
  return Array.isArray(req) ? decodeBatchResponse(res.result, req.length) : [decodeResponse(res.result)];
}
