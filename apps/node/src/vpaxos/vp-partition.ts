import {
  ConfigError,
  type Logger,
  type NodeId,
  type ReplicatedGroup,
  type ReplicatedGroupStatus,
  SnapshotPacer,
  UnavailableError,
  systemClock,
} from '@cohort/core';
import { type KvStateMachine, vpStateMachine } from '@cohort/kv';
import type { GroupStatus } from '@cohort/raft';
import type { AcceptorStateStore, DurableNodeStore } from '@cohort/storage';
import { VPaxosHost, type VpTransportMux } from '@cohort/vpaxos';

/** Options of {@link VpPartition}. */
export interface VpPartitionOptions {
  group: string;
  store: DurableNodeStore;
  machine: KvStateMachine;
  mux: VpTransportMux;
  /** The configuration master's node now: the meta group's leader (undefined while none is known). */
  master: () => NodeId | undefined;
  /** This process's start time: a restart changes it, so the master replaces a restarted primary. */
  incarnation: number;
  /** The partition map's view of the partition: its replicas and the primary its master activated last. */
  mapped: () => { voters: NodeId[]; learners: NodeId[]; primary: NodeId | undefined };
  /** Writes are refused while the active configuration has fewer copies. @default 1 */
  minReplicasToWrite?: number;
  /**
   * The primary serves lease reads for this many ms after a heartbeat round
   * every acceptor answered, capped by the lease the master granted; 0: every
   * read is confirmed with every acceptor. @default 0
   */
  readLeaseMs?: number;
  /** Applied slots past the compaction point that trigger an acceptor compaction; 0: never. @default 10000 */
  compactSlots?: number;
  /** Bytes of vote values held that trigger an acceptor compaction too; 0: slots alone. @default 64 MiB */
  compactBytes?: number;
  /**
   * Paces the snapshot transfers by the writes served meanwhile (share one
   * between the node's vpaxos replicas); its rates are the Raft partitions'
   * (`--snapshot-rate`, `--snapshot-rate-min`). @default unlimited, no pacing
   */
  snapshotPacer?: SnapshotPacer;
  requestTimeoutMs: number;
  log: Logger;
}

/** The node's store as a Vertical Paxos acceptor store (SQLite's and the in-memory one are both). */
function acceptorStore(store: DurableNodeStore): AcceptorStateStore {
  const s = store as DurableNodeStore & Partial<AcceptorStateStore>;
  if (typeof s.saveAcceptor !== 'function' || typeof s.loadAcceptor !== 'function') {
    throw new ConfigError('this node store keeps no Vertical Paxos acceptor state: vpaxos partitions need SQLite');
  }
  return s as AcceptorStateStore;
}

/**
 * One replica of a `vpaxos` partition on this node: a {@link VPaxosHost}
 * over the node's store (acceptor state) and the partition's KV state
 * machine, behind the same `ReplicatedGroup` seam a Raft partition offers
 * KvService. A replica that is not the active primary names the primary the
 * partition map records (the master's last activation), so a client sent to
 * a deposed primary is told where to go.
 */
export class VpPartition implements ReplicatedGroup {
  readonly id: string;
  readonly host: VPaxosHost;
  /**
   * Present with a read lease: the primary serves the read locally while its
   * lease holds by the monotonic clock now (UNAVAILABLE otherwise, and the
   * caller reads linearizably).
   */
  readonly leaseRead?: () => Promise<void>;
  private readonly self: NodeId;

  constructor(private readonly opts: VpPartitionOptions) {
    this.id = opts.group;
    const transport = opts.mux.forGroup(opts.group);
    this.self = transport.self;
    this.host = new VPaxosHost({
      group: opts.group,
      transport,
      clock: systemClock,
      store: acceptorStore(opts.store),
      // Consecutive chosen slots are applied in one store transaction.
      machine: vpStateMachine(opts.machine),
      master: opts.master,
      // Master frames carry facts the meta group committed (a ballot started or activated): any member may relay them.
      acceptMasterFrom: () => true,
      incarnation: opts.incarnation,
      requestTimeoutMs: opts.requestTimeoutMs,
      minReplicasToWrite: opts.minReplicasToWrite ?? 1,
      leaseMs: opts.readLeaseMs ?? 0,
      ...(opts.compactSlots !== undefined ? { compactSlots: opts.compactSlots } : {}),
      ...(opts.compactBytes !== undefined ? { compactBytes: opts.compactBytes } : {}),
      snapshotPacer: opts.snapshotPacer ?? new SnapshotPacer({ maxBytesPerSec: 0, minBytesPerSec: 0 }),
      logger: opts.log,
    });
    if ((opts.readLeaseMs ?? 0) > 0) {
      this.leaseRead = () => {
        if (!this.started) return Promise.reject(new UnavailableError(`${this.id}: the replica is starting`));
        return this.host.leaseRead();
      };
    }
  }

  private started = false;

  async start(): Promise<void> {
    await this.host.start();
    this.started = true;
  }

  stop(): void {
    this.host.stop();
    this.opts.mux.release(this.id);
  }

  propose<T>(data: Uint8Array): Promise<T> {
    if (!this.started) return Promise.reject(new UnavailableError(`${this.id}: the replica is starting`));
    return this.host.propose<T>(data);
  }

  /** Linearizable: the primary confirms its ballot with every acceptor, then serves once applied up to the commit. */
  read(): Promise<void> {
    if (!this.started) return Promise.reject(new UnavailableError(`${this.id}: the replica is starting`));
    return this.host.read();
  }

  status(): ReplicatedGroupStatus {
    if (!this.started) return { group: this.id, role: 'follower', term: 0, leader: '', commit: 0, applied: 0 };
    const s = this.host.status();
    if (s.role === 'leader') return s;
    const primary = this.opts.mapped().primary;
    // The map's primary is the master's word; the engine's hint may name a deposed one. The map naming this
    // replica while it is not active (restarted, or its activation on the way): no primary is known here.
    const leader = primary !== undefined && primary !== this.self ? primary : s.leader;
    return { ...s, leader };
  }

  /**
   * The acceptor's compaction point, the votes it holds, the snapshots
   * installed and sent, and the times its transfers backed off for slow
   * writes (undefined while starting).
   */
  acceptor():
    | {
        compacted: number;
        votes: number;
        snapshotsInstalled: number;
        snapshotsSent: number;
        snapshotPaceBackoffs: number;
      }
    | undefined {
    if (!this.started) return undefined;
    const e = this.host.node;
    const n = this.host.snapshotCounts();
    return {
      compacted: e.compactedThrough(),
      votes: e.heldVotes(),
      snapshotsInstalled: n.installed,
      snapshotsSent: n.sent,
      snapshotPaceBackoffs: n.paceBackoffs,
    };
  }

  /** Messages the engine ignored for their ballot (undefined while starting). */
  stats(): VPaxosHost['stats'] | undefined {
    return this.started ? this.host.stats : undefined;
  }

  /** The status in the Raft host's shape, for the node's status pages and routing. */
  groupStatus(): GroupStatus {
    const s = this.status();
    const { voters, learners } = this.opts.mapped();
    return {
      group: this.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commit: s.commit,
      applied: s.applied,
      firstIndex: this.started ? this.host.node.compactedThrough() + 1 : 1,
      lastIndex: s.commit,
      repairing: false,
      quorum: {
        state: 'ok',
        self: this.self,
        voters,
        unreachable: [],
        needed: voters.length,
        leaderlessMs: 0,
        windowMs: 0,
      },
      voters,
      learners,
      votersOutgoing: [],
    };
  }
}
