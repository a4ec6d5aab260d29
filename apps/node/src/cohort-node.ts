import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  ConfigError,
  CorruptStateError,
  type Entry,
  ErrorCode,
  type GroupId,
  type Logger,
  type NodeId,
  NotLeaderError,
  SnapshotPacer,
  UnavailableError,
  checkDataDirWritable,
  systemClock,
  systemRandom,
} from '@cohort/core';
import {
  CircuitBreakers,
  DISK_FULL_TAG,
  type KvClientRequest,
  type KvRequest,
  type KvResponse,
  KvService,
  KvStateMachine,
  META_GROUP,
  MetaService,
  type MetaState,
  type NodeRecord,
  type PartitionEngine,
  SlotMap,
  TxnCoordinator,
  VP_MASTER_SECTION,
  VpMasterService,
  WatchHub,
  applyVpMaster,
  masterSection,
  moveQuorumRefusal,
  moveRefusal,
  partitionGroup,
  remoteGroup,
  replacementTarget,
  serveDigestRequests,
  serveForwardedRequests,
  votersOf,
} from '@cohort/kv';
import { type MembershipHost, validateTags } from '@cohort/membership';
import { type CatchUp, type GroupStatus, RaftHost } from '@cohort/raft';
import { type DurableNodeStore, SqliteNodeStore } from '@cohort/storage';
import { type Libp2pTransport, createLibp2pTransport, localPeerId } from '@cohort/transport';
import { VpTransportMux } from '@cohort/vpaxos';
import type { FastifyInstance } from 'fastify';
import { Acl } from './auth.js';
import { NodeClusterView } from './cluster-view.js';
import { type DashboardFeed, startDashboardFeed } from './dashboard-feed.js';
import { DiskGuard } from './disk-guard.js';
import { type NodeFaults, crashAfterFailoverBallot, faultsFromEnv, staleReadsPlanted } from './fault-hooks.js';
import { ApiError } from './http-codec.js';
import { createHttpServer } from './http-server.js';
import { WatchSource } from './http-watch.js';
import { instrumentKv } from './instrumented-kv.js';
import { checkClusterId as checkJoinedCluster, joinThrough } from './join-client.js';
import { joinProof, joinProofRefusal } from './join-proof.js';
import type { KvApi, NodeStatus, ReadApi } from './kv-api.js';
import { type KvMaintenance, startKvMaintenance } from './kv-maintenance.js';
import { LeaderHistory } from './leader-history.js';
import { limitKv } from './limits.js';
import { type MemberView, memberViews, startMembership } from './membership-service.js';
import { mergeWrites } from './merged-writes.js';
import type { JoinAnswer, JoinRequest } from './meta-routes.js';
import { NodeMetrics } from './metrics.js';
import type { NodeOptions } from './node-config.js';
import { OperationRefusedError, RestoreRefusedError } from './ops-routes.js';
import { type PartitionLayout, loadLayout, readLayout, recordLayout } from './partition-layout.js';
import { type RecoveryDeps, planPartitionRecovery, recoverPartitionHere } from './partition-recovery.js';
import { partitionsFromLeaders } from './partition-views.js';
import { PartitionedKv } from './partitioned-kv.js';
import { PartitionedWatch } from './partitioned-watch.js';
import { hostSettings } from './raft-settings.js';
import { isConnectionSession } from './resp/plan.js';
import { RespServer } from './resp/server.js';
import { type RestoreRow, restoreFailure, restoreWrite } from './restore-write.js';
import { startStallWatch } from './stall-watch.js';
import { StuckDetector } from './stuck-detector.js';
import { VpPartition } from './vpaxos/vp-partition.js';

/** Splits `host:port`; the host may be a bracketed IPv6 address. */
export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`address '${address}' is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

const enc = new TextEncoder();

/** The peer address a membership change carries in its context (`{"address": "host:port"}`), if any. */
function memberAddress(context: Uint8Array): string | undefined {
  if (context.length === 0) return undefined;
  try {
    const v = JSON.parse(new TextDecoder().decode(context)) as { address?: unknown };
    return typeof v.address === 'string' ? v.address : undefined;
  } catch {
    return undefined;
  }
}

/** Keys written per pipeline while restoring a backup (one Raft round each). */
const RESTORE_BATCH = 256;

/**
 * Writes a backup's rows through the log on the leader, a pipeline of
 * RESTORE_BATCH sets at a time. Refused when the group holds keys, unless
 * `force` (the backup's keys then replace theirs; other keys stay). Keys
 * whose deadline passed are skipped; the others keep their deadline.
 */
async function restoreRows(
  target: {
    /** The keys the cluster holds now (linearizable). */
    size(): Promise<number>;
    executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]>;
  },
  rows: AsyncIterable<RestoreRow[]>,
  force: boolean,
): Promise<{ keys: number; expired: number }> {
  const size = await target.size();
  if (size > 0 && !force) {
    throw new RestoreRefusedError(
      `the cluster holds ${size} keys: restore into a new, empty cluster, or pass --force to write the backup's keys over the existing ones (keys not in the backup stay)`,
    );
  }
  let keys = 0;
  let expired = 0;
  let batch: KvClientRequest[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const res = await target.executeAll(batch);
    const bad = restoreFailure(res);
    if (bad) {
      const why =
        bad.type === 'failure'
          ? `${bad.code} ${bad.message}`
          : bad.type === 'error'
            ? bad.message
            : 'a hash or list was refused';
      throw new UnavailableError(
        `restore stopped after ${keys} keys: ${why}; once the cluster is healthy, run the restore again with --force (writing a key twice is harmless)`,
      );
    }
    keys += batch.length;
    batch = [];
  };
  try {
    for await (const chunk of rows) {
      const now = Date.now();
      for (const r of chunk) {
        if (r.expiresAt !== undefined && r.expiresAt <= now) {
          expired++;
          continue;
        }
        batch.push(restoreWrite(r));
        if (batch.length >= RESTORE_BATCH) await flush();
      }
    }
    await flush();
  } catch (err) {
    if (keys > 0 && err instanceof Error && !(err instanceof UnavailableError)) {
      err.message = `${err.message} (${keys} keys were written before; run the restore again with --force once fixed)`;
    }
    throw err;
  }
  return { keys, expired };
}

/** The addresses a started node actually listens on. */
export interface NodeAddresses {
  peer: string[];
  resp: string;
  http: string;
}

/** One partition on this node: its group, and its state machine and watch hub when this node replicates it. */
interface LocalPartition {
  index: number;
  group: string;
  service: KvService;
  /** Absent when this node holds no replica of the partition (it forwards to one). */
  sm?: KvStateMachine | undefined;
  hub?: WatchHub | undefined;
  maintenance?: KvMaintenance | undefined;
  replicas: NodeId[];
  /** This node's replica of a `vpaxos` partition (absent for raft partitions, replicated by the Raft host). */
  vp?: VpPartition | undefined;
}

/** How often a node hands the partitions it leads to their assigned leaders (leaders balanced by count, `assignLeaders`). */
const BALANCE_MS = 2000;

/** Tags a node sets on itself (its addresses, the leaderships it holds); `cohort.*` are reserved too. */
const RESERVED_TAGS: ReadonlySet<string> = new Set(['http', 'resp', 'leads']);
/**
 * One cohort node: SQLite store, libp2p transport, a Raft host with one
 * group per partition of the key space (each with its KV state machine on
 * its own partition of the store), and the RESP and HTTP front ends, which
 * route each request to its partition.
 */
export class CohortNode {
  private host: RaftHost | undefined;
  /** Which partitions wait with no commit progress (`stuck` in GET /v1/partitions). */
  private readonly stuck: StuckDetector;
  /** Leader changes and failovers of the groups replicated here, for `GET /v1/partitions` and metrics. */
  private readonly leaders = new LeaderHistory();
  private transport: Libp2pTransport | undefined;
  private resp: RespServer | undefined;
  private http: FastifyInstance | undefined;
  private membership: MembershipHost | undefined;
  private stopping: Promise<void> | undefined;
  /** Fault injection (tests on real processes only: see fault-hooks.ts). */
  private faults: NodeFaults | undefined;
  private disk: DiskGuard | undefined;
  private announcer: ReturnType<typeof setInterval> | undefined;
  /** Reports event loop stalls (see {@link startStallWatch}). */
  private stallWatch: { stop(): void } | undefined;
  /** The dashboard's metrics history and event log. */
  private feed: DashboardFeed | undefined;
  /**
   * Called once the node stopped serving because its storage failed (a
   * failed write, or an entry, row or chunk failing its checksum). The
   * binary exits on it; the data directory must not be served again.
   */
  onFatal: ((err: Error) => void) | undefined;

  constructor(
    readonly options: NodeOptions,
    private readonly openStore: (dataDir: string) => DurableNodeStore,
    private readonly log: Logger,
  ) {
    this.stuck = new StuckDetector(options.stuckAfterMs ?? 10_000);
  }

  private store: DurableNodeStore | undefined;
  private parts: LocalPartition[] = [];
  /** The leader of a partition this node holds no replica of, as its leader announces it by gossip. */
  private leaderHint: (p: number) => { leader: NodeId; term?: number } | undefined = () => undefined;
  private layout: PartitionLayout | undefined;
  private meta: MetaService | undefined;
  /** Tags set at run time (`PUT /v1/admin/tags`); undefined: those of the options. */
  private runtimeTags: Record<string, string> | undefined;
  private vpMaster: VpMasterService | undefined;
  /** The watch sources of the partitions replicated here, by group. */
  private readonly watchSources = new Map<string, WatchSource>();

  /**
   * The first partition this node replicates (`p0` unless it holds no
   * replica of it): what the node status and the admin operations are about.
   */
  private get first(): LocalPartition | undefined {
    return this.parts.find((p) => p.sm !== undefined);
  }

  status(): NodeStatus {
    const p0 = this.first;
    if (p0 === undefined) {
      // A node of a partitioned cluster that replicates no partition: it forwards every request.
      const id = this.options.config.node.id;
      return { id, role: 'none', term: 0, leader: '', commit: 0, applied: 0, keys: 0, partitions: this.parts.length };
    }
    const s = this.gs(p0);
    let keys = 0;
    for (const p of this.parts) keys += p.sm !== undefined && !this.gs(p).repairing ? p.sm.size : 0;
    const maintenance = p0.maintenance;
    return {
      id: this.options.config.node.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commit: s.commit,
      applied: s.applied,
      repairing: s.repairing,
      keys: s.repairing ? 0 : keys,
      ...(maintenance ? { consistency: maintenance.consistency() } : {}),
      quorum: s.quorum,
      voters: s.voters,
      learners: s.learners,
      votersOutgoing: s.votersOutgoing,
      ...(this.parts.length > 1 ? { partitions: this.parts.length } : {}),
      ...(this.disk?.isFull ? { degraded: ['disk-full'], diskFull: this.disk.reason } : {}),
    };
  }

  /** The engines asked for (`--partition-engine`, `--partition-engines`), for a new cluster of `partitions`. */
  private wantedEngines(partitions: number): PartitionEngine[] | undefined {
    const { partitionEngine, partitionEngines } = this.options;
    for (const k of Object.keys(partitionEngines ?? {})) {
      if (Number(k) >= partitions) {
        throw new ConfigError(
          `--partition-engines names partition ${k}, but the cluster has ${partitions} (0..${partitions - 1})`,
        );
      }
    }
    const engines = Array.from(
      { length: partitions },
      (_, i): PartitionEngine => partitionEngines?.[i] ?? partitionEngine ?? 'raft',
    );
    return engines.includes('vpaxos') ? engines : undefined;
  }

  /** A vpaxos partition's health as the configuration master recorded it. */
  private vpHealth(index: number): { underReplicated?: boolean; ballot?: number } {
    const state = this.meta?.state;
    if (state === undefined) return {};
    const g = masterSection(state).groups[partitionGroup(index)];
    const h = masterSection(state).health[partitionGroup(index)];
    return {
      ...(h !== undefined ? { underReplicated: h.underReplicated } : {}),
      ...(g?.active !== undefined ? { ballot: g.active.ballot } : {}),
    };
  }

  /** The status of this node's replica of `p`, whichever engine replicates it. */
  private gs(p: LocalPartition): GroupStatus {
    return p.vp !== undefined ? p.vp.groupStatus() : this.host!.status(p.group);
  }

  /** Per partition: its slots, replicas, leader, term and watermarks, as this node sees them (`GET /v1/partitions`). */
  partitions(): PartitionStatus[] {
    const map = new SlotMap(this.parts.length);
    return this.parts.map((p): PartitionStatus => {
      const [first, last] = map.slotRange(p.index);
      const base = { partition: p.index, group: p.group, slots: { first, last } };
      const epoch = this.meta?.state.partitions[p.index]?.epoch;
      if (p.sm === undefined) {
        // No replica here: the leader as its gossip announces it, if it did.
        const h = this.leaderHint(p.index);
        return {
          ...base,
          replicas: p.replicas,
          local: false,
          ...(epoch !== undefined ? { epoch } : {}),
          ...(h ? { leader: h.leader, ...(h.term !== undefined ? { term: h.term } : {}) } : {}),
        };
      }
      const s = this.gs(p);
      const acceptor = p.vp?.acceptor();
      // On the leader: how far each replica is behind its log.
      const lag =
        s.match === undefined
          ? undefined
          : Object.fromEntries([...s.voters, ...s.learners].map((id) => [id, s.lastIndex - (s.match?.[id] ?? 0)]));
      return {
        ...base,
        ...(epoch !== undefined ? { epoch } : {}),
        lastIndex: s.lastIndex,
        ...(lag !== undefined ? { lag } : {}),
        replicas: [...s.voters],
        learners: [...s.learners],
        local: true,
        ...(p.vp !== undefined ? { engine: 'vpaxos' as const, ...this.vpHealth(p.index) } : {}),
        ...(acceptor !== undefined ? { acceptor } : {}),
        role: s.role,
        leader: s.leader,
        term: s.term,
        commit: s.commit,
        applied: s.applied,
        ...(s.quiescent !== undefined ? { quiescent: s.quiescent } : {}),
        ...(s.quorum ? { quorum: s.quorum.state } : {}),
        stuck: this.stuck.observe(p.group, s.commit, s.lastIndex, Date.now()),
        ...this.leaders.watermarks(p.group, Date.now()),
      };
    });
  }

  /** The replicas of partition `p`: the meta group's map once the cluster was founded, else the recorded layout's voters. */
  private replicasOf(p: number): NodeId[] {
    const entry = this.meta?.state.clusterId ? this.meta.state.partitions[p] : undefined;
    return entry ? entry.replicas.map((r) => r.node) : (this.layout?.replicas[p] ?? []);
  }

  /** The partition map and registry as the meta group has applied them here (`GET /v1/meta`). */
  metaState(): MetaState | undefined {
    return this.meta?.state;
  }

  async start(): Promise<NodeAddresses> {
    const { node, cluster, raft } = this.options.config;
    const { requestTimeoutMs } = this.options;
    checkDataDirWritable(node.dataDir);
    const members = cluster.initialMembers.map((m) => m.id);
    const hadData = existsSync(join(node.dataDir, 'cohort.db'));
    const joinAddress = this.options.joinAddress;
    // A node joining through a member asks it first: a refusal or an address that does not answer changes nothing here.
    const recorded = joinAddress !== undefined ? readLayout(node.dataDir) : undefined;
    if (joinAddress !== undefined && recorded?.clusterId !== undefined) {
      await checkJoinedCluster(joinAddress, recorded.clusterId, node.dataDir, this.log);
    }
    const joined =
      joinAddress !== undefined && recorded === undefined
        ? await joinThrough(joinAddress, await this.joinRequest())
        : undefined;
    const layout = joined
      ? recordLayout(node.dataDir, {
          partitions: joined.partitions,
          replicationFactor: joined.replicationFactor,
          replicas: joined.replicas,
          clusterId: joined.clusterId,
        })
      : loadLayout(
          node.dataDir,
          members,
          recorded?.partitions ?? cluster.partitions,
          cluster.replicationFactor,
          hadData,
          this.wantedEngines(recorded?.partitions ?? cluster.partitions),
        );
    this.layout = layout;
    const partitioned = layout.partitions > 1;
    if (partitioned && !cluster.bootstrap && joinAddress === undefined) {
      throw new ConfigError(
        'joining a cluster with several partitions takes the HTTP address of a member: cohort start --join host:port (no manual cohort cluster add)',
      );
    }
    this.store = this.openStore(node.dataDir);
    const store = this.store;
    this.faults = faultsFromEnv(this.log);
    const transport = createLibp2pTransport({
      ...(this.faults ? { faultHook: this.faults } : {}),
      self: node.id,
      listen: node.peerAddress,
      dataDir: node.dataDir,
      requestTimeoutMs,
      logger: this.log.child({ component: 'transport' }),
      ...(this.options.security.clusterSecret ? { clusterSecret: this.options.security.clusterSecret } : {}),
    });
    this.transport = transport;
    for (const m of cluster.initialMembers) if (m.id !== node.id) transport.addPeer(m.id, m.peerAddress);
    for (const m of joined?.members ?? []) {
      if (m.id === node.id) continue;
      transport.addPeer(m.id, m.peerAddress);
      if (m.peerId !== undefined) transport.pinPeer(m.id, m.peerId);
    }
    const host = new RaftHost({
      id: node.id,
      store: this.store,
      transport,
      clock: systemClock,
      random: systemRandom,
      logger: this.log.child({ component: 'raft' }),
      ...hostSettings(raft),
      requestTimeoutMs,
    });
    this.host = host;
    host.onFatal = (err) => {
      this.log.error('the node stops serving: its storage cannot be trusted', {
        err: err.message,
        dataDir: node.dataDir,
        recovery:
          'stop this node, move its data directory aside and start it again with an empty one: it catches up from the healthy replicas by snapshot',
      });
      this.onFatal?.(err);
    };
    // Vertical Paxos frames of every vpaxos partition here, and of the configuration master, share one transport.
    const mux = new VpTransportMux(transport);
    // One pacer for the vpaxos replicas here: a partition's writes pause while it catches a replica up,
    // so its transfer yields to the writes the node's other vpaxos partitions serve meanwhile.
    const vpPacer = new SnapshotPacer({
      maxBytesPerSec: this.options.config.raft.snapshotRateBytes,
      minBytesPerSec: this.options.config.raft.snapshotRateMinBytes,
    });
    // The meta group: registry and partition map, on every node (the first founding members vote).
    const startedAt = Date.now();
    const advertised = node.advertiseAddress ?? node.peerAddress;
    const meta = new MetaService({
      self: node.id,
      host,
      transport,
      store,
      log: this.log.child({ component: 'meta' }),
      clock: systemClock,
      newClusterId: randomUUID,
      ...(cluster.bootstrap
        ? {
            bootstrap: {
              replicationFactor: layout.replicationFactor,
              members: cluster.initialMembers.map((m) => ({ id: m.id, peerAddress: m.peerAddress })),
              partitions: layout.replicas,
              ...(layout.engines ? { engines: layout.engines } : {}),
            },
          }
        : {}),
      foundingVoters: [...members].sort().slice(0, this.options.metaVoters ?? 3),
      record: () => ({
        id: node.id,
        peerId: transport.peerId,
        peerAddress: advertised,
        http: httpAddress,
        resp: respAddress,
        tags: { ...this.userTags() },
        startedAt,
      }),
      // The Vertical Paxos configuration master is a state machine on the meta group.
      extensions: new Map([[VP_MASTER_SECTION, applyVpMaster]]),
      membership: () => {
        const ms = this.membership;
        if (ms === undefined) return undefined;
        return {
          members: () => ms.members(),
          minority: () => {
            const ps = ms.partitionStatus();
            return ps.kind === 'partitioned' && ps.minority;
          },
        };
      },
      placePartitions: partitioned,
      deadGraceMs: this.options.deadGraceMs ?? 30_000,
      metaVoters: this.options.metaVoters ?? 3,
      intervalMs: this.options.placementIntervalMs ?? 1000,
      // Leaders spread by count over the nodes (an operator's preferred leader kept).
      ...(partitioned ? { balanceLeadersMs: BALANCE_MS } : {}),
      partitionLeader: (p) => {
        const local = this.parts[p];
        if (local?.sm !== undefined) {
          const s = this.gs(local);
          if (s.leader) return s.leader;
        }
        return this.leaderHint(p)?.leader;
      },
    });
    this.meta = meta;
    meta.attach();
    /** A partition's engine: the map's once the cluster was founded, else the recorded layout's. */
    const engineOf = (index: number): PartitionEngine =>
      meta.state.clusterId !== ''
        ? (meta.state.partitions[index]?.engine ?? 'raft')
        : (layout.engines?.[index] ?? 'raft');
    // Membership says which replicas are alive: a node that holds no replica of a partition forwards to a live one.
    let alive = (_id: NodeId): boolean => true;
    const fresh: string[] = [];
    // Forwards carry the partition's epoch in this node's map: a node routing by an older map is refused and waits for its map.
    const fencing = (index: number) =>
      partitioned
        ? {
            epoch: () => meta.state.partitions[index]?.epoch ?? 0,
            // The deadline is on the service's clock (systemClock), as the wait is.
            refreshEpoch: (deadline: number) => meta.changed(Math.min(deadline, systemClock.now() + 1000)),
          }
        : {};
    // One circuit breaker per peer for the forwards of all partitions: a peer failing for one fails for all.
    const breakers = new CircuitBreakers();
    // A command meeting a transaction's intent finishes that transaction through the partitions as this node
    // reaches them (its record's, the participants'); the leaders resolve intents past their deadline.
    const transactions = {
      participant: (p: number) => ({ execute: (req: KvRequest) => this.parts[p]!.service.execute(req) }),
    };
    // What every partition's KV service shares: fencing by the partition's epoch, forwarding, transactions.
    const serviceOptions = (index: number) => ({
      ...fencing(index),
      transport,
      clock: systemClock,
      logger: this.log.child({ component: 'kv' }),
      requestTimeoutMs,
      circuitBreakers: breakers,
      transactions,
    });
    const remoteService = (index: number, group: string): KvService =>
      new KvService({
        group: remoteGroup(
          group,
          () => this.replicasOf(index),
          (id) => alive(id),
          () => this.leaderHint(index),
        ),
        ...serviceOptions(index),
      });
    let maintenanceOf: ((p: LocalPartition) => void) | undefined;
    /** Hosts a replica of partition `index` here (`voters`: its founding voters in a new cluster; none when added later). */
    const hostPartition = (index: number, voters: NodeId[]): void => {
      const p = this.parts[index]!;
      if (p.sm !== undefined) return;
      const group = p.group;
      // The group's rows live in the node's store, next to its log.
      // Digests for the consistency checker are hashed a slice per turn, so a large partition never stalls the node.
      // A checksum entry's digest runs on a thread of its own (a million rows is seconds of hashing,
      // on every replica at the same index); in slices of the event loop where the store cannot.
      const sm = new KvStateMachine(store, group, { defer: (fn) => systemClock.defer(fn), digestThread: {} });
      // Watches see every change this replica applies from now on, and a bounded history of them.
      const hub = new WatchHub({ applied: sm.appliedIndex });
      sm.setEventListener(hub);
      if (engineOf(index) === 'vpaxos') {
        const vp = new VpPartition({
          group,
          store,
          machine: sm,
          mux,
          master: () => meta.leader() || undefined,
          incarnation: startedAt,
          mapped: () => {
            const entry = meta.state.partitions[index];
            return {
              voters: entry ? votersOf(entry) : [],
              learners: entry ? entry.replicas.filter((r) => r.role === 'learner').map((r) => r.node) : [],
              primary: entry?.leader,
            };
          },
          ...(this.options.minReplicasToWrite !== undefined
            ? { minReplicasToWrite: this.options.minReplicasToWrite }
            : {}),
          readLeaseMs: this.options.vpaxosLease?.readLeaseMs ?? 0,
          ...(this.options.vpaxosCompactSlots !== undefined ? { compactSlots: this.options.vpaxosCompactSlots } : {}),
          ...(this.options.vpaxosCompactBytes !== undefined ? { compactBytes: this.options.vpaxosCompactBytes } : {}),
          snapshotPacer: vpPacer,
          requestTimeoutMs,
          log: this.log.child({ component: 'vpaxos', group }),
        });
        vp.start().catch((err: Error) => {
          this.log.error('vpaxos replica failed to start', { group, err: err.message });
          this.onFatal?.(err);
        });
        p.vp = vp;
        p.service.close();
        p.service = new KvService({
          group: vp,
          machine: sm,
          ...serviceOptions(index),
          onStorageFailure: (err) => host.fail('serving a read', err),
        });
        p.sm = sm;
        p.hub = hub;
        maintenanceOf?.(p);
        return;
      }
      const isFresh = store.group(group).lastIndex() === 0;
      host.addGroup(group, sm, voters);
      if (isFresh && voters[0] === node.id) fresh.push(group);
      p.service.close();
      p.service = new KvService({
        group: host.replicated(group),
        machine: sm,
        ...serviceOptions(index),
        onStorageFailure: (err) =>
          err instanceof CorruptStateError ? host.repair(group, err) : host.fail('serving a read', err),
      });
      p.sm = sm;
      p.hub = hub;
      maintenanceOf?.(p);
    };
    /** Stops hosting partition `index` here (this node's replica was removed): requests are forwarded from now on. */
    const dropPartition = (index: number): void => {
      const p = this.parts[index]!;
      if (p.sm === undefined) return;
      p.maintenance?.stop();
      if (p.vp !== undefined) {
        p.vp.stop();
        p.vp = undefined;
      } else host.removeGroup(p.group);
      p.sm.setEventListener(undefined);
      p.sm = undefined;
      p.hub = undefined;
      p.maintenance = undefined;
      this.watchSources.get(p.group)?.closeAll();
      this.watchSources.delete(p.group);
      p.service.close();
      p.service = remoteService(index, p.group);
    };
    const mapped = meta.state.clusterId !== '';
    for (let index = 0; index < layout.partitions; index++) {
      const group = partitionGroup(index);
      const replicas = this.replicasOf(index);
      this.parts.push({ index, group, service: remoteService(index, group), replicas });
      // One partition is served by every node (a joining node waits to be added); of several, a node serves its own.
      if (!partitioned) hostPartition(index, cluster.bootstrap ? replicas : []);
      else if (replicas.includes(node.id)) hostPartition(index, cluster.bootstrap && !mapped ? replicas : []);
    }
    // Every node follows the partition map: it hosts the partitions the map gives it a replica of, and only those.
    const followMap = (state: MetaState): void => {
      if (!partitioned || state.clusterId === '' || this.stopping) return;
      state.partitions.forEach((entry, index) => {
        const p = this.parts[index];
        if (p === undefined) return;
        p.replicas = entry.replicas.map((r) => r.node);
        layout.replicas[index] = votersOf(entry);
        const mine = p.replicas.includes(node.id);
        if (mine && p.sm === undefined) {
          this.log.info('partition placed here', { group: p.group, epoch: entry.epoch });
          hostPartition(index, []);
        } else if (!mine && p.sm !== undefined) {
          this.log.info('partition moved away from here', { group: p.group, epoch: entry.epoch });
          dropPartition(index);
        }
      });
    };
    meta.sm.onChange((state) => systemClock.defer(() => followMap(state)));
    followMap(meta.state as MetaState);
    const byGroup = new Map(this.parts.map((p) => [p.group, p]));
    serveForwardedRequests(transport, (group) => byGroup.get(group)?.service);
    await transport.start();
    host.start();
    // Leaders start spread: each partition's preferred replica campaigns at once in a new cluster.
    if (partitioned) for (const group of fresh) host.campaign(group);
    const seeds = [
      ...cluster.initialMembers.map((m) => ({ id: m.id, address: m.peerAddress })),
      ...(joined?.members ?? []).map((m) => ({ id: m.id, address: m.peerAddress })),
      ...Object.values(meta.state.nodes).map((n) => ({ id: n.id, address: n.peerAddress })),
    ].filter((s, i, all) => all.findIndex((o) => o.id === s.id) === i);
    this.membership = startMembership({
      // Gossip moves admitted peers, but admits none by itself.
      transport: transport.forGossip(),
      address: advertised,
      seeds,
      logger: this.log,
      // Other nodes and the CLI find a member's HTTP API (the leader's, for admin operations) by this tag,
      // and cluster-aware clients are redirected to a partition leader's RESP address by `resp`.
      tags: { http: node.httpAddress, resp: node.clientAddress, ...this.userTags() },
      ...(this.options.swimProbeMs !== undefined
        ? {
            config: {
              probeIntervalMs: this.options.swimProbeMs,
              probeTimeoutMs: Math.max(10, Math.floor(this.options.swimProbeMs / 2)),
              gossipIntervalMs: Math.max(10, Math.floor(this.options.swimProbeMs / 5)),
            },
          }
        : {}),
      // Quiescent groups send no heartbeats: a failed peer is known from the failure detector.
      onLiveness: (id, up) => (up ? host.peerUp(id) : host.peerDown(id)),
    });
    const membership = this.membership;
    // The configuration master's decisions are taken on the meta leader, from SWIM and the replicas' heartbeats.
    const vpLease = this.options.vpaxosLease;
    this.vpMaster = new VpMasterService({
      self: node.id,
      meta,
      ...(vpLease ? { lease: { ms: vpLease.readLeaseMs, maxDriftMs: vpLease.maxDriftMs } } : {}),
      leading: () => meta.leading(),
      mux,
      transport,
      membership: () => this.membership,
      log: this.log.child({ component: 'vpaxos-master' }),
      afterFailoverBallot: () => {
        if (!crashAfterFailoverBallot()) return;
        this.log.warn('test fault: the meta leader crashes right after committing a failover ballot');
        process.kill(process.pid, 'SIGKILL');
      },
    });
    this.vpMaster.start();
    // Addresses of members that joined after this node started: from the registry.
    // Registered identities are pinned: only the peer id a node registered with may speak for it.
    const admit = (nodes: Iterable<NodeRecord>): void => {
      for (const n of nodes) {
        if (n.id === node.id) continue;
        transport.addPeer(n.id, n.peerAddress);
        if (n.peerId !== undefined) transport.pinPeer(n.id, n.peerId);
      }
    };
    meta.sm.onChange((state) => admit(Object.values(state.nodes)));
    admit(Object.values(meta.state.nodes));
    alive = (id) => id === node.id || membership.members().some((m) => m.id === id && m.state === 'alive');
    this.leaderHint = (p) => {
      let best: { leader: NodeId; term?: number } | undefined;
      for (const m of membership.members()) {
        if (m.state !== 'alive') continue;
        const term = leadsTag(m.tags.leads).get(p);
        if (term !== undefined && (best === undefined || term > (best.term ?? 0))) best = { leader: m.id, term };
      }
      if (best !== undefined) return best;
      // No live member announces it (gossip still on its way): the partition map's hint, which the
      // configuration master keeps for a Vertical Paxos partition, while that node is not known dead.
      const hinted = meta.state.partitions[p]?.leader;
      if (
        hinted === undefined ||
        !membership.members().some((m) => m.id === hinted && (m.state === 'alive' || m.state === 'suspect'))
      )
        return undefined;
      return { leader: hinted };
    };

    const slots = new SlotMap(layout.partitions);
    // Counted in the node's metrics once they exist (below).
    let countTxnStep = (_step: string): void => {};
    // Transactions across partitions, coordinated from this node; a new id per start, never reused.
    const coordinator = new TxnCoordinator({
      slots,
      partition: (p) => ({ execute: (req) => this.parts[p]!.service.execute(req) }),
      clock: systemClock,
      random: Math.random,
      clientId: `txn:${node.id}:${randomUUID()}`,
      maxKeys: this.options.limits.maxTxnKeys,
      maxBytes: this.options.limits.maxCommandBytes,
      observe: (e) => {
        if (e.phase === 'send') countTxnStep(e.step);
      },
    });
    const router = new PartitionedKv(
      slots,
      this.parts.map((part) => {
        const i = part.index;
        return {
          executeAll: (reqs) => this.parts[i]!.service.executeAll(reqs),
          execute: (req) => this.parts[i]!.service.execute(req),
          // A replica restoring its corrupt copy has nothing trustworthy to serve, even stale.
          readLocal: (req) => {
            const p = this.parts[i]!;
            return p.sm !== undefined && this.gs(p).repairing ? restoring() : p.service.readLocal(req);
          },
          leaseRead: (req) => this.parts[i]!.service.leaseRead(req),
        };
      }),
      (partition) => {
        const p = this.parts[partition]!;
        return p.sm !== undefined && this.gs(p).role === 'leader';
      },
      coordinator,
    );
    // Test-only: every read served from this replica's state as it stands, unchecked (see fault-hooks.ts).
    const staleReads = staleReadsPlanted();
    if (staleReads) this.log.warn('test fault planted: reads are served from local state without any check');
    const unchecked = (req: KvClientRequest): KvResponse | undefined =>
      staleReads && req.kind === 'read' ? router.stale(req) : undefined;
    // A full disk refuses client writes and keeps serving reads; a leader hands its leadership away.
    const writeStall = store.writeStall?.bind(store);
    const disk = new DiskGuard({
      dataDir: node.dataDir,
      logger: this.log,
      ...(this.faults ? { forcedFull: this.faults.diskFull } : {}),
      ...(writeStall ? { writeStall } : {}),
      onFull: () => this.shedLeadership(),
    });
    this.disk = disk;
    // A commit that finds the disk full waits in the store: refuse writes from that moment, not the next check.
    store.watchWriteStall?.(() => disk.check());
    const metrics = new NodeMetrics(
      () => this.status(),
      () => host.stats(),
    );
    // A pipeline's consecutive writes to one partition share a log entry, once each passed the limits alone.
    const merged = mergeWrites(
      {
        execute: (req) => router.execute(req),
        executeAll: (reqs) => router.executeAll(reqs),
        status: () => this.status(),
      },
      slots,
      {
        onMerged: (writes, entries) => metrics.mergedWrites(writes, entries),
        defer: (fn) => systemClock.defer(fn),
        clock: systemClock,
        onConcurrent: (writes, entries, sessioned) => metrics.mergedConcurrentWrites(writes, entries, sessioned),
        connectionSession: isConnectionSession,
      },
    );
    // Every client write is checked against the size limits before it is routed or proposed.
    const api: KvApi = this.disk.guard(
      limitKv(
        {
          execute: (req) => {
            const u = unchecked(req);
            return u ? Promise.resolve(u) : merged.execute(req);
          },
          executeAll: (reqs) =>
            staleReads ? Promise.all(reqs.map((r) => unchecked(r) ?? router.execute(r))) : merged.executeAll(reqs),
          status: () => this.status(),
        },
        this.options.limits,
      ),
    );
    const { security, limits } = this.options;
    const acl = new Acl({
      ...(security.requirepass !== undefined ? { requirepass: security.requirepass } : {}),
      users: security.users,
    });
    const writerStats = store.writerStats?.bind(store);
    if (writerStats) metrics.storeCounters(writerStats);
    const readAhead = store instanceof SqliteNodeStore ? store.readAhead : undefined;
    if (readAhead !== undefined) metrics.readAhead(() => readAhead.stats());
    const rowCache = store instanceof SqliteNodeStore ? store.rowCache : undefined;
    if (rowCache !== undefined) metrics.rowCache(() => rowCache.stats());
    metrics.diskFull(() => ({ full: disk.isFull, waitingSince: writeStall?.()?.since }));
    metrics.circuitBreakers(() => breakers.stats(systemClock.now()));
    countTxnStep = (step) => metrics.txnSteps.inc({ step });
    metrics.vpaxosIgnored(() =>
      this.parts.flatMap((p) => {
        const st = p.vp?.stats();
        return st === undefined ? [] : [{ group: p.group, stale: st.staleIgnored, unknown: st.unknownIgnored }];
      }),
    );
    host.onProposalTiming = (_group, t) => metrics.observeProposal(t);
    this.leaders.onFailover = (group, ms) => metrics.failovers.labels({ group }).observe(ms / 1000);
    host.onConfChange = (group, cc) => {
      const address = memberAddress(cc.context);
      for (const c of cc.changes) {
        if (c.type !== 'removeNode' && address !== undefined && c.nodeId !== node.id)
          transport.addPeer(c.nodeId, address);
      }
      this.log.info('membership changed', { group, changes: cc.changes, ...(address ? { address } : {}) });
    };
    // p0 always lives here with one partition (every node replicates it); of several, each node serves its own.
    const p0 = this.parts[0]!;
    let leading = false;
    const feed = startDashboardFeed(metrics, {
      members: () => memberViews(membership),
      partitions: () => (meta.state.clusterId ? meta.state.partitions : []),
      snapshots: () => {
        const s = host.stats();
        return { taken: s.snapshotsTaken, installed: s.snapshotsRestored };
      },
    });
    this.feed = feed;
    host.onLeaderChange = (group, leader, role) => {
      this.leaders.observe(group, leader, Date.now());
      if (group === this.first?.group) leading = role === 'leader';
      feed.events.leaderChanged(group, leader, host.status(group).term);
    };
    // With several partitions, each node gossips the partitions it leads (`leads`: partition:term,...),
    // so a node holding no replica of a partition finds its leader; checked every 500 ms, sent when changed.
    let announced = '';
    const announceLeads = (): void => {
      // Sampled here too, so a stuck partition is timed from when it started waiting.
      const now = Date.now();
      for (const p of this.parts) {
        if (p.sm === undefined) continue;
        const s = this.gs(p);
        this.stuck.observe(p.group, s.commit, s.lastIndex, now);
        // A vpaxos primary is sampled here (the Raft host reports its leader changes as they happen).
        if (p.vp !== undefined) this.leaders.observe(p.group, s.leader, now);
      }
      const leads = this.parts
        .filter((p) => p.sm !== undefined && this.gs(p).role === 'leader')
        .map((p) => `${p.index}:${this.gs(p).term}`)
        .join(',');
      // A full disk is gossiped too: placement moves this node's replicas away past the grace period.
      const full = this.disk?.isFull === true;
      const announce = `${leads}|${full}|${JSON.stringify(this.userTags())}`;
      if (announce === announced || !membership.isRunning) return;
      announced = announce;
      membership.setTags({
        http: node.httpAddress,
        resp: node.clientAddress,
        ...this.userTags(),
        leads,
        ...(full ? { [DISK_FULL_TAG]: 'full' } : {}),
      });
    };
    if (partitioned) {
      this.announcer = setInterval(announceLeads, 500);
      this.announcer.unref();
    }
    const isLeading = (): boolean => leading;

    let respAddress = node.clientAddress;
    let httpAddress = node.httpAddress;
    const configured = new Map(
      cluster.initialMembers.map((m) => [
        m.id,
        { peer: m.peerAddress, ...(m.clientAddress !== undefined ? { resp: m.clientAddress } : {}) },
      ]),
    );
    const view = new NodeClusterView({
      self: node.id,
      slots,
      layout,
      resp: () => respAddress,
      peer: advertised,
      configured,
      members: () => memberViews(membership),
      partition: (i) => {
        const p = this.parts[i]!;
        if (p.sm === undefined) {
          // No replica here: the map's replicas, the leader as gossip announces it.
          const h = this.leaderHint(i);
          return { leader: h?.leader ?? '', term: h?.term ?? 0, applied: 0, replicas: p.replicas };
        }
        const s = this.gs(p);
        return {
          leader: s.leader,
          term: s.term,
          applied: s.applied,
          replicas: s.voters,
          ...(s.transferee !== undefined ? { transferee: s.transferee } : {}),
        };
      },
    });
    const reads: ReadApi = staleReads
      ? { stale: router.stale, lease: (req) => Promise.resolve(router.stale(req)) }
      : partitioned
        ? router.reads()
        : {
            // A replica restoring its corrupt copy has nothing trustworthy to serve, even stale.
            stale: (req) => (host.status(p0.group).repairing ? restoring() : p0.service.readLocal(req)),
            lease: (req) => p0.service.leaseRead(req),
          };
    this.resp = new RespServer({
      api: instrumentKv(api, metrics, 'resp', isLeading),
      logger: this.log.child({ component: 'resp' }),
      reads,
      // Partitions that serve no lease read (raft ones without raft.leaseReads) answer these linearizably.
      leaseReads: raft.leaseReads || this.options.vpaxosLease !== undefined,
      cluster: view,
      waitForKeys: (keys, ms) => this.waitForKeys(slots, keys, ms),
      acl,
      ...(security.tls ? { tls: security.tls } : {}),
      maxClients: limits.maxClients,
      limits: { maxCommandBytes: limits.maxQueryBytes },
      outputBuffer: {
        hardBytes: limits.outputBufferHardBytes,
        softBytes: limits.outputBufferSoftBytes,
        softSeconds: limits.outputBufferSoftSeconds,
      },
    });
    const r = splitHostPort(node.clientAddress);
    const respPort = await this.resp.listen(r.port, r.host);
    respAddress = `${r.host}:${respPort}`;
    // The expiry sweeper and the consistency checker run per partition this node replicates.
    maintenanceOf = (p) => {
      if (p.sm === undefined || p.maintenance !== undefined) return;
      const group = p.group;
      p.maintenance = startKvMaintenance({
        group: p.vp ?? host.replicated(group),
        service: p.service,
        sm: p.sm,
        transport,
        clock: systemClock,
        metrics,
        logger: this.log.child({ component: 'kv', group }),
        replicas: () => {
          const s = this.gs(p);
          return [...s.voters, ...s.learners];
        },
        consistencyCheckMs: this.options.consistencyCheckMs,
        serveDigests: false,
      });
    };
    for (const p of this.parts) maintenanceOf(p);
    serveDigestRequests(transport, (group) => byGroup.get(group)?.maintenance?.checker);
    const sources = this.watchSources;
    const sourceOf = (p: LocalPartition): WatchSource | undefined => {
      const hub = p.hub;
      if (hub === undefined) return undefined;
      let s = sources.get(p.group);
      if (s === undefined) {
        s = new WatchSource(hub, (lo, hi) => readLog(store, p.group, lo, hi));
        sources.set(p.group, s);
      }
      return s;
    };
    const unsupported = (what: string) =>
      new RestoreRefusedError(
        `${what} of a cluster with several partitions is not supported yet (it would cover partition p0 alone)`,
      );
    const watch = partitioned
      ? new PartitionedWatch({
          slots,
          local: (p) => sourceOf(this.parts[p]!),
          replicas: (p) => {
            // The nodes holding partition p, those membership believes alive first.
            const members = new Map(memberViews(membership).map((m) => [m.id, m]));
            const holders = this.parts[p]!.replicas.filter((id) => id !== node.id);
            const address = (id: NodeId) => members.get(id)?.tags.http;
            const alive = (id: NodeId) => members.get(id)?.state === 'alive';
            return [...holders.filter(alive), ...holders.filter((id) => !alive(id))]
              .map(address)
              .filter((a): a is string => a !== undefined);
          },
          logger: this.log.child({ component: 'watch' }),
        })
      : sourceOf(p0);
    this.http = createHttpServer({
      api: instrumentKv(api, metrics, 'http', isLeading),
      // One partition's transactions comparing mod revisions only take the coordinator's one-entry path.
      txn: { txn: this.disk.guardTxn(coordinator), limits },
      reads,
      ...(watch ? { watch } : {}),
      ...(this.first?.maintenance ? { admin: this.first.maintenance.admin } : {}),
      metrics,
      members: () => memberViews(membership),
      partitions: () => this.partitions(),
      partitionsFromLeaders: (authorization) =>
        partitionsFromLeaders({
          self: node.id,
          local: this.partitions(),
          httpOf: (id) => memberViews(membership).find((m) => m.id === id)?.tags.http,
          scheme: security.tls ? 'https' : 'http',
          ...(authorization !== undefined ? { authorization } : {}),
        }),
      dashboard: feed.routes,
      meta: {
        state: () => meta.state,
        leader: () => {
          const s = host.status(META_GROUP);
          return { leader: s.leader || undefined, term: s.term };
        },
        join: (req) => this.admitJoin(req),
        leave: (id) => this.markLeaving(id),
      },
      ops: {
        status: () => this.status(),
        members: () => memberViews(membership),
        changeMembership: (change, address) => {
          if (partitioned) return Promise.reject(unsupported('changing the membership'));
          if (address === undefined) return host.changeMembership(p0.group, change);
          // The leader dials the new member at once; the others learn its address as they apply the change.
          transport.addPeer(change.node, address);
          return host.changeMembership(p0.group, change, enc.encode(JSON.stringify({ address })));
        },
        transferLeadership: (to) =>
          partitioned ? Promise.reject(unsupported('a leadership transfer')) : host.transferLeadership(p0.group, to),
        transferPartitionLeadership: (partition, to) => this.transferPartitionLeadership(partition, to),
        catchUpReplica: async (partition, to) => this.catchUpReplica(partition, to),
        setTags: (tags) => this.setTags(tags),
        movePartitionReplica: (partition, from, to) => this.movePartitionReplica(partition, from, to),
        planPartitionRecovery: (partition, from, authorization) =>
          planPartitionRecovery(this.recoveryDeps(security.tls ? 'https' : 'http'), partition, from, authorization),
        recoverPartitionHere: (plan) => recoverPartitionHere(this.recoveryDeps(security.tls ? 'https' : 'http'), plan),
        openBackup: async (partition) => {
          if (partitioned && partition === undefined) {
            throw new RestoreRefusedError(
              `this cluster has ${layout.partitions} partitions: back each up on its leader with ?partition=<p> (cohort backup does)`,
            );
          }
          const p = this.parts[partition ?? 0];
          if (p === undefined) {
            throw new RestoreRefusedError(
              `partition ${partition} does not exist: this cluster has ${layout.partitions}`,
            );
          }
          if (p.sm === undefined) throw new NotLeaderError(this.leaderHint(p.index)?.leader);
          const s = this.gs(p);
          if (s.role !== 'leader') throw new NotLeaderError(s.leader || undefined);
          // Confirmed leadership, and everything committed before it applied here: the view holds every acknowledged write.
          if (p.vp !== undefined) await p.vp.read();
          else await host.readIndex(p.group);
          return { group: p.group, reader: await p.sm.openSnapshot() };
        },
        restore: (rows, force) => {
          if (!partitioned) {
            if (p0.sm === undefined) return Promise.reject(unsupported('a restore'));
            const s = host.status(p0.group);
            if (s.role !== 'leader') return Promise.reject(new NotLeaderError(s.leader || undefined));
          }
          // Each key goes to its partition's leader through the router; the emptiness check is a linearizable DBSIZE.
          return restoreRows(
            {
              size: async () => {
                const r = await router.execute({ kind: 'read', op: 'dbsize', keys: [] });
                if (r.type !== 'int') throw new UnavailableError(`the cluster's size is unknown: ${JSON.stringify(r)}`);
                return Number(r.value);
              },
              executeAll: (reqs) => router.executeAll(reqs),
            },
            rows,
            force,
          );
        },
      },
      logger: this.log.child({ component: 'http' }),
      auth: { acl, ...(security.metricsToken !== undefined ? { metricsToken: security.metricsToken } : {}) },
      maxInFlight: limits.maxHttpRequests,
      ...(security.tls ? { tls: security.tls } : {}),
    });
    const h = splitHostPort(node.httpAddress);
    await this.http.listen({ port: h.port, host: h.host });
    const httpAddr = this.http.server.address();
    const httpPort = typeof httpAddr === 'object' && httpAddr ? httpAddr.port : h.port;
    httpAddress = `${h.host}:${httpPort}`;
    meta.start();
    const addresses = {
      peer: transport.listenAddresses(),
      resp: `${r.host}:${respPort}`,
      http: `${h.host}:${httpPort}`,
    };
    warnIfExposed(this.log, {
      resp: r.host,
      http: h.host,
      peer: splitHostPort(node.peerAddress).host,
      respAuth: acl.authRequired,
      httpAuth: acl.tokensRequired,
      secret: security.clusterSecret !== undefined,
    });
    // A leader whose loop stalls past the election timeout sends no heartbeat meanwhile: say so, and why.
    // Watched from here on: while three nodes start on a small machine, each start stalls its loop.
    const electionMs = this.options.config.raft.electionTimeoutMinMs;
    this.stallWatch = startStallWatch({
      thresholdMs: Math.max(electionMs / 2, 2 * this.options.config.raft.heartbeatIntervalMs),
      alwaysReportMs: electionMs,
      onStall: (stall) => metrics.loopStalls.inc({ cause: stall.cause }),
      // Raft groups led here, and Vertical Paxos partitions whose primary this node is.
      leaderOf: () => [
        ...host.groupIds().filter((g) => host.isLeader(g)),
        ...this.parts.filter((p) => p.vp !== undefined && p.vp.status().role === 'leader').map((p) => p.group),
      ],
      report: (stall, suppressed, leaderAtRisk) => {
        this.log.warn(
          leaderAtRisk
            ? 'event loop stalled past the election timeout while leading: followers may elect another leader'
            : 'event loop stalled',
          { ...stall, electionTimeoutMs: electionMs, ...(suppressed > 0 ? { suppressed } : {}) },
        );
      },
    });
    this.log.info('node started', {
      id: node.id,
      ...addresses,
      members: cluster.initialMembers,
      partitions: layout.partitions,
      ...(partitioned ? { replicas: layout.replicationFactor } : {}),
      ...(joined ? { joined: joined.clusterId } : {}),
    });
    return addresses;
  }

  /** What this node tells the member it joins through. */
  private async joinRequest(): Promise<JoinRequest> {
    const { node } = this.options.config;
    const req: JoinRequest = {
      id: node.id,
      peerId: await localPeerId(node.dataDir),
      peerAddress: node.advertiseAddress ?? node.peerAddress,
      http: node.httpAddress,
      resp: node.clientAddress,
      tags: { ...this.userTags() },
      startedAt: Date.now(),
    };
    const secret = this.options.security.clusterSecret;
    if (secret !== undefined) req.proof = joinProof(secret, req);
    return req;
  }

  /**
   * On a member: admits a joining node, registering it in the meta group.
   * Refused (and nothing recorded) when the cluster is not founded yet, or
   * the id is taken by another node (another address, a live node, or one
   * that still holds replicas).
   */
  private async admitJoin(req: JoinRequest): Promise<JoinAnswer> {
    const meta = this.meta;
    if (meta === undefined || meta.state.clusterId === '') {
      throw new ApiError(
        503,
        ErrorCode.Unavailable,
        'the cluster is not founded yet (its meta group has no map); retry shortly',
      );
    }
    const refusal = joinProofRefusal(this.options.security.clusterSecret, req);
    if (refusal !== undefined) {
      this.log.warn('refused a join', { node: req.id, peerId: req.peerId, address: req.peerAddress, reason: refusal });
      throw new ApiError(403, 'JOIN_REFUSED', refusal);
    }
    const state = meta.state;
    const existing = state.nodes[req.id];
    if (existing?.peerId !== undefined && existing.peerId !== req.peerId) {
      throw new ApiError(
        409,
        'NODE_ID_IN_USE',
        `node id ${req.id} is already in use in cluster ${state.clusterId} by another identity (peer id ${existing.peerId}): start the new node with another --id, or with the data directory (peer-key) of that node`,
      );
    }
    if (existing !== undefined) {
      const live = this.membership?.members().some((m) => m.id === req.id && m.state === 'alive') ?? false;
      const holds = state.partitions.filter((p) => p.replicas.some((r) => r.node === req.id)).length;
      if (existing.peerAddress !== req.peerAddress || live || holds > 0) {
        throw new ApiError(
          409,
          'NODE_ID_IN_USE',
          `node id ${req.id} is already in use in cluster ${state.clusterId} (registered at ${existing.peerAddress}${live ? ', alive' : ''}${holds > 0 ? `, holding ${holds} replica(s)` : ''}): start the new node with another --id`,
        );
      }
    }
    const res = await meta.propose({
      type: 'register',
      node: {
        id: req.id,
        peerId: req.peerId,
        peerAddress: req.peerAddress,
        http: req.http,
        resp: req.resp,
        tags: { ...req.tags },
        startedAt: req.startedAt,
      },
    });
    if (!res.ok) throw new ApiError(409, 'JOIN_REFUSED', res.reason);
    this.transport?.addPeer(req.id, req.peerAddress);
    this.transport?.pinPeer(req.id, req.peerId);
    this.log.info('node admitted to the cluster', { node: req.id, peerId: req.peerId, address: req.peerAddress });
    const after = meta.state;
    return {
      clusterId: after.clusterId,
      partitions: after.partitions.length,
      replicationFactor: after.replicationFactor,
      replicas: after.partitions.map((p) => votersOf(p)),
      members: Object.values(after.nodes).map((n) => ({
        id: n.id,
        peerAddress: n.peerAddress,
        ...(n.peerId !== undefined ? { peerId: n.peerId } : {}),
      })),
    };
  }

  /** Whether membership believes `id` alive (this node always is). */
  private isAlive(id: NodeId): boolean {
    return id === this.options.config.node.id || this.memberState(id) === 'alive';
  }

  /**
   * Whether `id` may still be running: alive, or only suspected (a suspicion is refuted or confirmed
   * within the suspicion timeout). A hand-over to a suspected voter is tried: the engine gives it up
   * after an election timeout if the voter does not answer, so refusing it would only turn a slow
   * node's hiccup into an operator error.
   */
  private notDead(id: NodeId): boolean {
    const state = this.memberState(id);
    return id === this.options.config.node.id || state === 'alive' || state === 'suspect';
  }

  /** What membership says of `id` now (undefined: not a member it knows). */
  private memberState(id: NodeId): MemberView['state'] | undefined {
    return this.membership?.members().find((m) => m.id === id)?.state;
  }

  /**
   * On partition `index`'s leader: records `to` as the partition's preferred
   * leader in the meta group (so leader balancing keeps it there), then moves
   * the leadership and resolves once `to` leads. Elsewhere: NotLeaderError
   * naming the leader. Refused for a target that is not a live voter.
   */
  private async transferPartitionLeadership(index: number, to: NodeId): Promise<{ partition: number; leader: NodeId }> {
    const host = this.host!;
    const p = this.parts[index];
    if (p === undefined) {
      throw new OperationRefusedError(`partition ${index} does not exist: this cluster has ${this.parts.length}`);
    }
    const entry = this.meta?.state.clusterId ? this.meta.state.partitions[index] : undefined;
    if (entry?.engine === 'vpaxos') {
      throw new OperationRefusedError(
        `partition ${index} is replicated by Vertical Paxos: its configuration master picks the primary`,
      );
    }
    const voters = p.sm !== undefined ? host.status(p.group).voters : entry ? votersOf(entry) : p.replicas;
    if (!voters.includes(to)) {
      throw new OperationRefusedError(
        `${to} is not a voter of partition ${index} (voters: ${voters.join(', ')}): move a replica there first (cohort partitions move)`,
      );
    }
    if (!this.notDead(to))
      throw new OperationRefusedError(`${to} is declared dead or has left: it cannot take the leadership`);
    if (p.sm === undefined) throw new NotLeaderError(this.leaderHint(index)?.leader);
    const s = host.status(p.group);
    if (s.role !== 'leader') throw new NotLeaderError(s.leader || undefined);
    if (this.parts.length > 1 && this.meta !== undefined && entry?.preferredLeader !== to) {
      const res = await this.meta.propose({ type: 'preferLeader', partition: index, node: to });
      if (!res.ok) throw new OperationRefusedError(res.reason);
    }
    if (s.leader === to) return { partition: index, leader: to };
    const leader = await host.transferLeadership(p.group, to);
    this.log.info('partition leadership transferred by an operator', { partition: index, to: leader });
    return { partition: index, leader };
  }

  /** On partition `index`'s leader: makes its replica on `node` catch up now (see RaftHost.catchUp). */
  /** This node's own tags: those set at run time (`PUT /v1/admin/tags`), else `--tag` and the config file's. */
  private userTags(): Record<string, string> {
    return this.runtimeTags ?? this.options.tags ?? {};
  }

  /**
   * Replaces this node's own tags until it restarts (the config file keeps them across restarts):
   * gossiped by SWIM at once (`/v1/members?tag=`), and recorded in the meta group's registry in a
   * partitioned cluster, where placement reads zones. The tags the node sets itself are refused.
   */
  private async setTags(tags: Record<string, string>): Promise<{ id: NodeId; tags: Record<string, string> }> {
    const { node } = this.options.config;
    const reserved = Object.keys(tags).filter((k) => RESERVED_TAGS.has(k) || k.startsWith('cohort.'));
    if (reserved.length > 0) {
      throw new OperationRefusedError(
        `the tags ${reserved.join(', ')} are set by the node itself (http, resp, leads and cohort.*); choose other names`,
      );
    }
    try {
      validateTags({ http: node.httpAddress, resp: node.clientAddress, leads: '', ...tags });
    } catch (err) {
      throw new OperationRefusedError((err as Error).message);
    }
    this.runtimeTags = { ...tags };
    const membership = this.membership;
    // A partitioned node's announcer gossips them within half a second, with the leaderships it holds.
    if (membership?.isRunning && this.announcer === undefined) {
      membership.setTags({ http: node.httpAddress, resp: node.clientAddress, ...this.runtimeTags });
    }
    if (this.meta !== undefined && this.meta.state.clusterId !== '') await this.meta.updateRecord();
    this.log.info('tags set', { tags: this.runtimeTags });
    return { id: node.id, tags: { ...this.runtimeTags } };
  }

  private catchUpReplica(index: number, node: NodeId): { partition: number } & CatchUp {
    const p = this.parts[index];
    if (p === undefined) {
      throw new OperationRefusedError(`partition ${index} does not exist: this cluster has ${this.parts.length}`);
    }
    if (p.vp !== undefined) {
      throw new OperationRefusedError(
        `partition ${index} is replicated by Vertical Paxos: a lagging backup catches up from its primary by itself`,
      );
    }
    if (p.sm === undefined) throw new NotLeaderError(this.leaderHint(index)?.leader);
    const out = this.host!.catchUp(p.group, node);
    return { partition: index, ...out };
  }

  /**
   * Records the move of partition `index`'s replica from `from` to `to` in the meta group (placement
   * carries it out); without `to`, the replacement target placement would pick.
   */
  private async movePartitionReplica(
    index: number,
    from: NodeId,
    target: NodeId | undefined,
  ): Promise<{ partition: number; from: NodeId; to: NodeId; epoch: number }> {
    if (this.parts.length <= 1) {
      throw new OperationRefusedError(
        'this cluster has one partition, one group: change its members with cohort cluster add, promote and remove',
      );
    }
    const meta = this.meta;
    if (meta === undefined || meta.state.clusterId === '') {
      throw new UnavailableError('the cluster is not founded yet (its meta group has no map); retry shortly');
    }
    const to = target ?? this.replacementFor(meta.state as MetaState, index, from);
    const refusal =
      moveRefusal(meta.state as MetaState, index, from, to) ??
      moveQuorumRefusal(meta.state.partitions[index]!, index, from, to, (id) => this.isAlive(id));
    if (refusal !== undefined) throw new OperationRefusedError(refusal);
    const res = await meta.propose({ type: 'move', partition: index, from, to });
    if (!res.ok) throw new OperationRefusedError(res.reason);
    this.log.info('partition replica move recorded', { partition: index, from, to });
    return { partition: index, from, to, epoch: res.epoch ?? meta.state.partitions[index]!.epoch };
  }

  /** What an unsafe recovery of a partition needs of this node; refused in a cluster of one partition. */
  private recoveryDeps(scheme: 'http' | 'https'): RecoveryDeps {
    const meta = this.meta;
    if (this.parts.length <= 1 || meta === undefined) {
      throw new OperationRefusedError(
        "this cluster has one partition, one group: its membership is the cluster's (cohort cluster add, promote, remove)",
      );
    }
    return {
      self: this.options.config.node.id,
      host: this.host!,
      meta,
      log: this.log,
      liveness: (id) =>
        id === this.options.config.node.id
          ? 'alive'
          : (this.membership?.members().find((m) => m.id === id)?.state ?? 'dead'),
      httpOf: (id) =>
        (this.membership ? memberViews(this.membership).find((m) => m.id === id)?.tags.http : undefined) ??
        meta.state.nodes[id]?.http,
      scheme,
    };
  }

  /** The node a forced replacement of `from`'s replica of partition `index` goes to; refused when there is none. */
  private replacementFor(state: MetaState, index: number, from: NodeId): NodeId {
    const p = state.partitions[index];
    if (p === undefined)
      throw new OperationRefusedError(`partition ${index} does not exist (${state.partitions.length} partitions)`);
    if (!p.replicas.some((r) => r.node === from)) {
      throw new OperationRefusedError(
        `${from} holds no replica of partition ${index} (replicas: ${p.replicas.map((r) => r.node).join(', ')})`,
      );
    }
    const to = replacementTarget(state, index, from, (id) => this.isAlive(id));
    if (to === undefined) {
      throw new OperationRefusedError(
        `no live node can take ${from}'s replica of partition ${index}: every live node holds one or is leaving; add a node first`,
      );
    }
    return to;
  }

  /** Marks `id` as leaving: the placement controller moves its replicas away (`cohort leave`). */
  private async markLeaving(id: NodeId): Promise<{ node: NodeId; replicas: number }> {
    const meta = this.meta;
    if (meta === undefined || meta.state.clusterId === '') {
      throw new ApiError(503, ErrorCode.Unavailable, 'the cluster is not founded yet; retry shortly');
    }
    if (meta.state.nodes[id] === undefined) throw new ApiError(404, 'NOT_FOUND', `${id} is not a registered node`);
    const others = Object.values(meta.state.nodes).filter((n) => n.id !== id && !n.leaving).length;
    if (others < meta.state.replicationFactor) {
      throw new ApiError(
        409,
        'REFUSED',
        `${id} cannot leave: the ${others} other node(s) cannot hold ${meta.state.replicationFactor} replicas of each partition; add a node first`,
      );
    }
    if (!meta.state.nodes[id]!.leaving) {
      const res = await meta.propose({ type: 'setLeaving', id });
      if (!res.ok) throw new ApiError(409, 'REFUSED', res.reason);
    }
    const replicas = meta.state.partitions.filter((p) => p.replicas.some((r) => r.node === id)).length;
    return { node: id, replicas };
  }

  /**
   * Resolves once one of `keys` changes on this node's replica of its
   * partition, or after `ms` (at most a second, so a blocked command notices
   * its connection closing; 100 ms for a key whose partition this node does
   * not replicate, which it can only poll).
   */
  private waitForKeys(slots: SlotMap, keys: Buffer[], ms: number): Promise<void> {
    return new Promise((resolve) => {
      const handles: { cancel(): void }[] = [];
      let bound = Math.min(ms, 1000);
      let done = false;
      const timer: { t?: NodeJS.Timeout } = {};
      const wake = () => {
        if (done) return;
        done = true;
        clearTimeout(timer.t);
        for (const h of handles) h.cancel();
        resolve();
      };
      for (const key of keys) {
        const hub = this.parts[slots.partitionOfKey(key)]?.hub;
        if (hub === undefined) {
          bound = Math.min(bound, 100);
          continue;
        }
        const h = hub.watch({ key }, hub.appliedIndex + 1, wake, wake);
        if ('compacted' in h) bound = 0;
        else handles.push(h);
      }
      if (!done) timer.t = setTimeout(wake, bound);
    });
  }

  /**
   * The Raft groups this node leads whose leadership it can hand over, each with the voter to offer it
   * to: the partition's preferred replicas that are alive first, then the other live voters, then the
   * rest. The meta group is one of them: a node that cannot write (a full disk) or is stopping must not
   * keep placement waiting on it. Vertical Paxos partitions are excluded (their master picks the primary).
   */
  private handOverTargets(): { group: GroupId; to: NodeId }[] {
    const host = this.host;
    if (host === undefined) return [];
    const self = this.options.config.node.id;
    const alive = (v: NodeId): boolean => this.memberState(v) === 'alive';
    const led: { group: GroupId; preferred: readonly NodeId[] }[] = this.parts
      .filter((p) => p.sm !== undefined && p.vp === undefined)
      .map((p) => ({ group: p.group, preferred: this.layout?.replicas[p.index] ?? [] }));
    if (this.meta !== undefined && host.groupIds().includes(META_GROUP)) led.push({ group: META_GROUP, preferred: [] });
    const out: { group: GroupId; to: NodeId }[] = [];
    for (const { group, preferred } of led) {
      const s = host.status(group);
      if (s.role !== 'leader') continue;
      const candidates = s.voters.filter((v) => v !== self);
      const to = preferred.find((v) => candidates.includes(v) && alive(v)) ?? candidates.find(alive) ?? candidates[0];
      if (to !== undefined) out.push({ group, to });
    }
    return out;
  }

  /** With a full disk, hands the leadership of each group this node leads (the meta group's too) to another voter. */
  private shedLeadership(): void {
    const host = this.host;
    if (host === undefined || this.stopping) return;
    for (const { group, to } of this.handOverTargets()) {
      host.transferLeadership(group, to).then(
        () => this.log.warn('disk full: leadership handed over', { group, to }),
        (err: Error) => this.log.debug('disk full: leadership hand-over failed', { group, err: err.message }),
      );
    }
  }

  /**
   * Stops gracefully, in phases, each bounded by what is left of
   * `shutdownTimeoutMs` (10 s by default); past it the remaining phases run
   * at once (the binary then exits regardless):
   * 1. stop accepting clients; each RESP connection reads no more commands,
   *    answers the batch it runs (the commands it read but did not start
   *    answer UNAVAILABLE) and flushes its replies; HTTP requests in flight finish;
   * 2. hand the leadership of every group this node leads to another voter;
   * 3. announce the leave to membership;
   * 4. stop Raft (its storage writes flushed), the transport and the store.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.disk?.stop();
      this.faults?.stop();
      const total = this.options.shutdownTimeoutMs;
      const deadline = Date.now() + total;
      const left = (): number => Math.max(0, deadline - Date.now());
      const phase = async (name: string, cap: number, work: (ms: number) => Promise<unknown>): Promise<void> => {
        const ms = Math.min(cap, left());
        const started = Date.now();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), ms);
        });
        const outcome = await Promise.race([
          work(ms).then(
            () => 'done' as const,
            () => 'failed' as const,
          ),
          timedOut,
        ]);
        clearTimeout(timer);
        const fields = { phase: name, ms: Date.now() - started };
        if (outcome === 'done') this.log.info('shutdown phase done', fields);
        else this.log.warn(`shutdown phase ${outcome === 'timeout' ? 'timed out' : 'failed'}`, fields);
      };
      if (this.announcer !== undefined) clearInterval(this.announcer);
      this.stallWatch?.stop();
      this.feed?.stop();
      this.meta?.stop();
      // A connection still open past its phase is closed as it is.
      await phase('clients', total / 2, (ms) =>
        Promise.all([
          this.resp?.close(ms).then(() => this.log.info('RESP connections closed')),
          this.http?.close().then(() => this.log.info('HTTP server closed')),
        ]),
      );
      await phase('leadership', total / 4, () => this.handOverLeaderships());
      for (const p of this.parts) {
        p.maintenance?.stop();
        p.service.close();
      }
      this.vpMaster?.stop();
      for (const p of this.parts) p.vp?.stop();
      await phase('leave', total / 8, async () => this.membership?.leave());
      if (this.membership?.isRunning) this.membership.stop();
      this.host?.stop();
      await phase('transport', Math.max(left(), 500), async () => this.transport?.stop());
      this.store?.close();
      this.log.info('node stopped', { id: this.options.config.node.id });
    })();
    return this.stopping;
  }

  /** Hands the leadership of each group this node leads to a live voter (the preferred replica first); resolves once all moved or failed. */
  private async handOverLeaderships(): Promise<void> {
    const host = this.host;
    if (host === undefined) return;
    await Promise.all(
      this.handOverTargets().map(({ group, to }) =>
        host.transferLeadership(group, to).then(
          () => this.log.info('leadership handed over for shutdown', { group, to }),
          (err: Error) => this.log.warn('leadership hand-over failed', { group, to, err: err.message }),
        ),
      ),
    );
  }
}

/** Whether `host` is a loopback address (only this machine reaches it). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Warns about a port other machines reach while nothing guards it: no password, no token, no cluster secret. */
export function warnIfExposed(
  log: Logger,
  o: { resp: string; http: string; peer: string; respAuth: boolean; httpAuth: boolean; secret: boolean },
): void {
  if (!isLoopback(o.resp) && !o.respAuth) {
    log.warn('the RESP port is reachable from other machines and needs no AUTH: set --requirepass or users', {
      host: o.resp,
    });
  }
  if (!isLoopback(o.http) && !o.httpAuth) {
    log.warn('the HTTP port is reachable from other machines and needs no token: give users tokens', { host: o.http });
  }
  if (!isLoopback(o.peer) && !o.secret) {
    log.warn('the peer port is reachable from other machines without a cluster secret: set --cluster-secret-file', {
      host: o.peer,
    });
  }
}

/** What `GET /v1/partitions` answers for one partition. */
export interface PartitionStatus {
  partition: number;
  group: string;
  slots: { first: number; last: number };
  replicas: NodeId[];
  learners?: NodeId[];
  /** Whether this node replicates the partition (the fields below are its replica's view). */
  local: boolean;
  /** The partition's epoch in this node's partition map (bumped by every reconfiguration). */
  epoch?: number;
  lastIndex?: number;
  /** On the leader: entries each replica is behind the leader's log. */
  lag?: Record<NodeId, number>;
  role?: string;
  leader?: NodeId;
  term?: number;
  commit?: number;
  applied?: number;
  quiescent?: boolean;
  quorum?: string;
  /** Entries wait past the commit index and the commit has not moved for `stuckAfterMs` (10 s by default). */
  stuck?: boolean;
  /** How long the current leader has led, as this node knows it (ms). */
  leaderForMs?: number;
  /** How long the partition has had no leader this node knows of (ms). */
  leaderlessForMs?: number;
  /** The last failover this node saw: from losing the leader to knowing the next one (ms). */
  lastFailoverMs?: number;
  /** Leader changes this node saw since it started. */
  leaderChanges?: number;
  /** `vpaxos` for a Vertical Paxos partition (absent: raft). */
  engine?: 'vpaxos';
  /** A vpaxos partition runs on fewer than f+1 copies (after a failover, until a replacement caught up). */
  underReplicated?: boolean;
  /** A vpaxos partition's active ballot. */
  ballot?: number;
  /**
   * A vpaxos replica's acceptor: the slot its votes are compacted through,
   * the votes it holds above it, the partition snapshots it installed and
   * sent (that were installed) since the node started, and the times its
   * transfers halved their rate for the slow writes the node served meanwhile.
   */
  acceptor?: {
    compacted: number;
    votes: number;
    snapshotsInstalled: number;
    snapshotsSent: number;
    snapshotPaceBackoffs: number;
  };
}

/** A `leads` membership tag (`partition:term,...`) as partition to term. */
function leadsTag(tag: string | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const part of (tag ?? '').split(',')) {
    const [p, t] = part.split(':');
    if (p && t && /^\d+$/.test(p) && /^\d+$/.test(t)) out.set(Number(p), Number(t));
  }
  return out;
}

/** The answer of a stale read on a replica restoring its corrupt copy of a partition. */
function restoring(): KvResponse {
  return {
    type: 'failure',
    code: ErrorCode.Unavailable,
    message: 'this replica is restoring its copy of the data from a healthy replica; read from another node',
  };
}

/** A group's log entries in `[lo, hi)`, or undefined when the log no longer (or not yet) holds them all. */
function readLog(store: DurableNodeStore, group: string, lo: number, hi: number): Entry[] | undefined {
  const log = store.group(group);
  if (lo < log.firstIndex() || hi - 1 > log.lastIndex()) return undefined;
  const out: Entry[] = [];
  try {
    for (let at = lo; at < hi; at = (out.at(-1)?.index ?? at) + 1) out.push(...log.entries(at, hi, 1 << 20));
  } catch {
    return undefined; // Compacted meanwhile.
  }
  return out;
}
