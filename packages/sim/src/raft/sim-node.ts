import {
  type ConfChange,
  type ConfState,
  CorruptStateError,
  type Entry,
  type GroupId,
  type LogIndex,
  type NodeId,
  ProposalDroppedError,
  type Random,
  type SeededRandom,
  StorageError,
  type Term,
  emptyConfState,
} from '@cohort/core';
import {
  CircuitBreakers,
  KvService,
  KvStateMachine,
  SlotMap,
  TxnCoordinator,
  type TxnStepEvent,
  decodeRequest,
  encodeResponse,
  serveForwardedRequests,
} from '@cohort/kv';
import { type HostFaults, RaftHost, type RaftOptions, type RawNode, type Ready, type StateRole } from '@cohort/raft';
import { MemoryNodeStore } from '@cohort/storage';
import { SimClock } from '../clock.js';
import type { SimNetwork } from '../network.js';
import type { Scheduler } from '../scheduler.js';
import type { TraceHash } from '../trace.js';
import { type RequestIds, type SimFrame, SimTransport } from '../transport/sim-transport.js';
import type { Coverage } from './coverage.js';
import type { RaftInvariants } from './invariants.js';
import { type EngineMutations, observedEngineFactory } from './observed-engine.js';
import { ObservedMachine } from './observed-machine.js';
import { SimDisk } from './sim-disk.js';

/** The one Raft group each simulated node runs. */
export const GROUP = 'p0';

/** Where a simulated node serves its clients (the role of the RESP and HTTP front ends). */
export const CLIENT_PROTOCOL = '/cohort/sim-client/1';

/** The partition of the node's store holding the group's KV rows. */
const KV_PARTITION = 'kv';

/** The partition of the node's store holding an extra group's KV rows. */
export function extraPartition(group: GroupId): string {
  return `kv-${group}`;
}

/** Local milliseconds the host, the KV service and the transport give a request. */
const REQUEST_TIMEOUT_MS = 1_000;
/**
 * The nodes' circuit breakers of forwarding: more sensitive than the default, so that the few forwards
 * of a run's clients to a crashed or cut-off leader open them, and a short cooldown, so they close.
 */
const BREAKER = { minFailures: 2, failureRate: 0.5, cooldownMs: 300 };

/** What a simulated node shares with its cluster. */
export interface NodeEnv {
  scheduler: Scheduler;
  network: SimNetwork<SimFrame>;
  ids: RequestIds;
  invariants: RaftInvariants;
  /** Groups each node hosts besides GROUP (no clients; the cluster's group load writes to them). */
  extraGroups: GroupId[];
  /** The invariant checker of an extra group. */
  invariantsOf(group: GroupId): RaftInvariants;
  /** Hosts quiesce idle groups (the cluster feeds them liveness reports). */
  quiesce: boolean;
  /** Hosts coalesce heartbeats. */
  coalesceHeartbeats: boolean;
  /** RaftHostOptions.commitNoticeDelayMs. */
  commitNoticeDelayMs: number;
  /** RaftHostOptions.readIndexHedgeMs. */
  readIndexHedgeMs: number;
  coverage: Coverage;
  trace: TraceHash;
  /** Engine options every node gets (id, random and applied are the host's). */
  raft: Omit<RaftOptions, 'id' | 'random' | 'applied'>;
  /** Local milliseconds per engine tick. */
  tickMs: number;
  /** Take an application snapshot after this many applied entries. */
  snapshotEvery: number;
  /** Entries kept in the log behind a snapshot, for slow followers. */
  snapshotKeep: number;
  /** Simulated milliseconds a disk write takes, uniform in [min, max]. */
  diskLatencyMs: [number, number];
  /** Deliberate bugs in what the host is told (tests only). */
  mutations: EngineMutations;
  /** The host's test-only fault switches. */
  hostFaults: HostFaults;
  /**
   * Cross-partition transactions over GROUP (partition 0) and the extra groups (partitions 1..):
   * every group gets a `KvService` that resolves the intents it meets, and each process a
   * `TxnCoordinator`. Absent: GROUP alone is served, as before.
   */
  transactions?: SimTxnEnv;
  /** Reports that `id` became leader of `term`. */
  onLeader(id: NodeId, term: Term): void;
  /** Reports that `id` became leader of `term` in an extra group. */
  onExtraLeader(group: GroupId, id: NodeId, term: Term): void;
  /** Reports that `id`'s host stopped on an error it could not handle. */
  onFatal(id: NodeId, err: Error): void;
}

/** What a node's transactions are told and tell (see {@link NodeEnv.transactions}). */
export interface SimTxnEnv {
  /** The coordinators' resolution timeout (log-time ms). */
  resolveTimeoutMs: number;
  /** How often each leader resolves intents nobody met. */
  resolveEveryMs: number;
  /** A protocol step of a coordinator on `node` was sent or answered. */
  observe(node: SimRaftNode, e: TxnStepEvent): void;
  /** `node` resolved transaction `txn` it met (as a reader, a writer or the sweeper). */
  onResolve(node: SimRaftNode, txn: string, branch: string): void;
}

/** One run of the node's process, from start or restart to crash. */
interface Process {
  clock: SimClock;
  transport: SimTransport;
  disk: SimDisk;
  host: RaftHost;
  rn: RawNode | undefined;
  /** Role and term of each extra group, as its Readies report them. */
  extra: Map<GroupId, { role: StateRole; term: Term }>;
  /** What the liveness source last told this process's host, per peer (true: down). */
  reported: Map<NodeId, boolean>;
  services: KvService[];
  machines: KvStateMachine[];
  coordinator: TxnCoordinator | undefined;
}

/**
 * A simulated node: the production `RaftHost`, `KvStateMachine` and `KvService`,
 * composed as `apps/node` composes them, over a simulated clock (with the
 * node's drift), network and disk. Its disk is storage's `MemoryNodeStore`
 * without auto-sync, so a crash loses what was not yet durable. The node
 * watches what the engine asks for and what the state machine applies, and
 * reports it to the invariant checker.
 */
export class SimRaftNode {
  readonly store: MemoryNodeStore;
  private proc: Process | undefined;
  /** The membership as last seen while down (restored from the snapshot). */
  private lastConf: ConfState = emptyConfState();
  applied: LogIndex = 0;
  term: Term = 0;
  role: StateRole = 'follower';
  lead: NodeId = '';
  /** Set when the node was behind and must catch up to this commit index. */
  catchUpTarget: LogIndex = 0;
  installedSnapshot = false;
  incarnation = 0;
  /** The corrupt entry a read of this node's log met, if any (its host must stop). */
  corruption: StorageError | undefined;
  /** Stopped for good on a corrupt log: it never restarts. */
  failed = false;
  private readonly diskRandom: SeededRandom;
  /** The running host's hedged ReadIndex rounds already counted into the coverage. */
  private hedgesTallied = 0;

  constructor(
    readonly id: NodeId,
    private readonly env: NodeEnv,
    private readonly random: SeededRandom,
    /** How fast this node's clock runs against simulated time (tick skew). */
    readonly clockRate: number,
  ) {
    this.store = new MemoryNodeStore({ autoSync: false, name: `${id}.mem`, chunkBytes: 4096 });
    this.diskRandom = random.fork();
  }

  /** The membership the engine works with (the host applies a change to it before the state machine hears of it). */
  get conf(): ConfState {
    const rn = this.proc?.rn;
    if (rn) this.lastConf = rn.status().confState;
    return this.lastConf;
  }

  get up(): boolean {
    return this.proc !== undefined;
  }

  /** Whether the node is up with a disk write under way (a crash now lands mid-round). */
  get diskBusy(): boolean {
    return this.proc?.disk.busy ?? false;
  }

  /** Starts the node: a founding member bootstraps with `peers`, a joining one starts empty. */
  start(peers?: NodeId[]): void {
    this.launch(peers ?? []);
  }

  /**
   * Stops the process abruptly: its timers, connections and unsynced writes
   * are lost; with `tornLastWrite` its last durable log write is torn too.
   */
  crash(tornLastWrite = false): void {
    const p = this.proc;
    if (!p) return;
    if (p.disk.busy) this.env.coverage.crashMidWrite++;
    this.tallyHedges();
    this.hedgesTallied = 0;
    this.proc = undefined;
    p.clock.halt();
    p.transport.crash();
    p.disk.crash(tornLastWrite);
    this.role = 'follower';
    this.lead = '';
  }

  /** Damages one entry of the node's log on disk (up or down); false when the log holds none. */
  corruptEntry(random: Random): boolean {
    const reader = this.store.group(GROUP);
    const first = reader.firstIndex();
    const last = reader.lastIndex();
    if (last < first) return false;
    // Half the time one of the last few entries (the ones about to be applied or sent), else anywhere.
    const lo = random.next() < 0.5 ? Math.max(first, last - 4) : first;
    this.store.corruptEntry(GROUP, random.int(lo, last));
    return true;
  }

  /**
   * Damages one KV row of the node's state on disk (its log stays intact):
   * reading it must fail its checksum, and the node must restore its state
   * from a healthy replica without stopping. False when it holds no row.
   */
  corruptKvRow(random: Random): boolean {
    let rows: { key: Uint8Array }[];
    try {
      rows = this.store.kv(KV_PARTITION).scan({ limit: 16 });
    } catch {
      return false; // already damaged
    }
    const row = rows[random.int(0, rows.length - 1)];
    if (row === undefined) return false;
    this.store.corruptKvRow(KV_PARTITION, row.key);
    return true;
  }

  /** The state machine replaced its state with a streamed snapshot. */
  private onInstall(index: LogIndex): void {
    this.env.invariants.onStateRestored(this.id, index);
    this.applied = index;
    if (this.proc?.host.status(GROUP).repairing) this.env.coverage.stateRepaired++;
  }

  /** Starts a new process over what is on disk. */
  restart(): void {
    if (this.proc || this.failed) return;
    this.incarnation++;
    const reader = this.store.group(GROUP);
    const snap = reader.snapshot();
    const hs = reader.initialState().hardState;
    // The host resumes from the state machine's own durable applied index, which may be past the snapshot.
    const machine = this.store.kv(KV_PARTITION).applied();
    const at = machine.index > snap.meta.index ? machine : snap.meta;
    this.lastConf = at.confState;
    this.applied = at.index;
    this.term = hs.term;
    this.env.invariants.onRestart(this.id, hs, at.index, reader.lastIndex());
    for (const g of this.env.extraGroups) {
      const r = this.store.group(g);
      const m = this.store.kv(extraPartition(g)).applied();
      const s = r.snapshot().meta;
      this.env
        .invariantsOf(g)
        .onRestart(this.id, r.initialState().hardState, Math.max(m.index, s.index), r.lastIndex());
    }
    try {
      this.launch([]);
    } catch (err) {
      // A corrupt entry met while starting: the process refuses to run.
      if (!(err instanceof StorageError) || !this.corruption) throw err;
      this.stopLoudly();
    }
  }

  /** This process's transaction coordinator (with transactions on), gone when it crashes. */
  get coordinator(): TxnCoordinator | undefined {
    return this.proc?.coordinator;
  }

  /** This process's service of each partition (with transactions on: GROUP, then the extra groups). */
  get services(): KvService[] {
    return this.proc?.services ?? [];
  }

  /** The state machine of each partition on this node's store (GROUP, then the extra groups), up or down. */
  machines(): KvStateMachine[] {
    return this.proc?.machines ?? [];
  }

  /** The host met a corrupt entry and stopped (or refused to start): the node stays down for good. */
  private stopLoudly(): void {
    this.env.coverage.corruptionStop++;
    this.failed = true;
    this.crash();
  }

  /** The host stopped on an error: expected after a corrupt read, a failure of the run otherwise. */
  private onHostFatal(err: Error): void {
    if (err instanceof StorageError && this.corruption) this.stopLoudly();
    else this.env.onFatal(this.id, err);
  }

  /** Counts the ReadIndex rounds the running host hedged since the last tally into the coverage. */
  tallyHedges(): void {
    const hedges = this.proc?.host.stats().readHedges ?? 0;
    this.env.coverage.readHedged += hedges - this.hedgesTallied;
    this.hedgesTallied = hedges;
  }

  /** Leaves the cluster for good (after its removal committed). */
  stop(): void {
    this.crash();
  }

  private launch(voters: NodeId[]): void {
    const env = this.env;
    const clock = new SimClock(env.scheduler, { rate: this.clockRate });
    const transport = new SimTransport(this.id, env.network, clock, env.ids, {
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      // Every write carries a session, so a forward delivered twice must still apply once.
      duplicateRequests: true,
      onDeliver: (_from, f) => {
        if (f.kind === 'frame') env.trace.mix3(1, f.bytes.length, f.bytes[f.bytes.length - 1] ?? 0);
      },
    });
    const [lo, hi] = env.diskLatencyMs;
    const disk = new SimDisk(this.store, env.scheduler, () => lo + this.diskRandom.next() * (hi - lo), {
      onDurable: (group, hs) => this.invariantsOf(group).onDurable(this.id, hs),
      onCompacted: (group, compactTo) => this.invariantsOf(group).onCompact(this.id, compactTo),
      onCorruption: (err) => {
        this.corruption ??= err;
      },
    });
    const proc: Process = {
      clock,
      transport,
      disk,
      host: undefined as unknown as RaftHost,
      rn: undefined,
      extra: new Map(),
      reported: new Map(),
      services: [],
      machines: [],
      coordinator: undefined,
    };
    this.proc = proc;
    const host = new RaftHost({
      id: this.id,
      store: disk,
      transport,
      clock,
      random: this.random.fork(),
      createEngine: observedEngineFactory(
        env.raft,
        {
          onEngine: (rn, group) => {
            if (group === GROUP) proc.rn = rn;
          },
          onReady: (rd, group) => (group === GROUP ? this.onReady(rd) : this.onExtraReady(proc, group, rd)),
        },
        env.mutations,
      ),
      tickMs: env.tickMs,
      electionTicks: env.raft.electionTick,
      heartbeatTicks: env.raft.heartbeatTick,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      snapshotEntries: env.snapshotEvery,
      compactionMarginEntries: env.snapshotKeep,
      // Small chunks, so a snapshot streams in many acknowledged requests that the network can lose.
      ...(env.raft.snapshotChunkBytes === undefined ? {} : { snapshotChunkBytes: env.raft.snapshotChunkBytes }),
      snapshotRetryMs: 50,
      faults: env.hostFaults,
      quiesce: env.quiesce,
      quiesceAfterTicks: 3,
      coalesceHeartbeats: env.coalesceHeartbeats,
      commitNoticeDelayMs: env.commitNoticeDelayMs,
      readIndexHedgeMs: env.readIndexHedgeMs,
    });
    proc.host = host;
    host.onFatal = (err) => this.onHostFatal(err);
    host.onQuiescence = (_group, quiescent) => {
      if (quiescent) env.coverage.groupQuiesced++;
      else env.coverage.groupWoke++;
    };
    // The KV rows live in the node's store, beside the log: a crash loses the rows not yet synced too.
    const machine = new KvStateMachine(this.store, KV_PARTITION);
    host.addGroup(
      GROUP,
      new ObservedMachine(
        machine,
        (e) => this.onApply(e),
        (meta) => this.onInstall(meta.index),
      ),
      voters,
    );
    const machines = [machine];
    for (const g of env.extraGroups) {
      const inv = env.invariantsOf(g);
      const m = new KvStateMachine(this.store, extraPartition(g));
      machines.push(m);
      host.addGroup(
        g,
        new ObservedMachine(
          m,
          (e) => {
            inv.onApply(this.id, e);
            env.trace.mix3(3, e.index, e.term);
          },
          (meta) => inv.onStateRestored(this.id, meta.index),
        ),
        voters,
      );
    }
    host.start();
    proc.machines = machines;
    const txn = env.transactions;
    const services: KvService[] = [];
    const groups = [GROUP, ...env.extraGroups];
    const breakers = new CircuitBreakers(BREAKER, (_peer, state) => {
      if (state === 'open') env.coverage.circuitOpened++;
      else env.coverage.circuitClosed++;
    });
    const serviceOf = (p: number): KvService => {
      const s = services[p];
      if (s === undefined) throw new Error(`no partition ${p}`);
      return s;
    };
    const txnRandom = txn ? this.random.fork() : undefined;
    const extra = txn
      ? {
          transactions: {
            participant: serviceOf,
            resolveEveryMs: txn.resolveEveryMs,
            random: () => (txnRandom as SeededRandom).next(),
            onResolve: (id: string, branch: string) => txn.onResolve(this, id, branch),
          },
        }
      : {};
    const service = new KvService({
      ...extra,
      group: host.replicated(GROUP),
      machine,
      transport,
      clock,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      // The node's breakers start closed at each start, as a restarted process's do.
      circuitBreakers: breakers,
      // The node's own drifting clock stands for its wall clock: the leader stamps writes with it.
      wallClock: () => Math.floor(clock.now()),
      // A corrupt KV row is repaired from a healthy replica; the node keeps running.
      onStorageFailure: (err) => {
        if (err instanceof CorruptStateError) host.repair(GROUP, err);
      },
    });
    services.push(service);
    if (txn) {
      env.extraGroups.forEach((g, i) => {
        services.push(
          new KvService({
            ...extra,
            group: host.replicated(g),
            machine: machines[i + 1] as KvStateMachine,
            transport,
            clock,
            requestTimeoutMs: REQUEST_TIMEOUT_MS,
            circuitBreakers: breakers,
            wallClock: () => Math.floor(clock.now()),
            onStorageFailure: (err) => {
              if (err instanceof CorruptStateError) host.repair(g, err);
            },
          }),
        );
      });
      proc.services = services;
      serveForwardedRequests(transport, (group) => services[groups.indexOf(group)]);
      proc.coordinator = new TxnCoordinator({
        slots: new SlotMap(groups.length),
        partition: serviceOf,
        clock,
        wallClock: () => Math.floor(clock.now()),
        random: () => (txnRandom as SeededRandom).next(),
        clientId: `${this.id}#${this.incarnation}`,
        resolveTimeoutMs: txn.resolveTimeoutMs,
        observe: (e) => txn.observe(this, e),
      });
    } else service.start();
    transport.handleRequest(CLIENT_PROTOCOL, async (_from, frame) =>
      encodeResponse(await service.execute(decodeRequest(frame))),
    );
  }

  /** What the engine asks the host to persist, send and apply, in the order a host handles it. */
  private onReady(rd: Ready): void {
    const inv = this.env.invariants;
    if (rd.snapshot) {
      const m = rd.snapshot.meta;
      inv.onSnapshot(this.id, m.index, m.term);
      this.applied = m.index;
      this.installedSnapshot = true;
      this.env.coverage.snapshotInstall++;
    }
    if (rd.entries.length > 0) inv.onAppend(this.id, rd.entries);
    if (rd.hardState) {
      this.term = rd.hardState.term;
      inv.onHardState(this.id, rd.hardState);
    }
    if (rd.softState) {
      this.lead = rd.softState.lead;
      const wasLeader = this.role === 'leader';
      this.role = rd.softState.role;
      if (this.role === 'leader' && !wasLeader) this.env.onLeader(this.id, this.term);
    }
  }

  private invariantsOf(group: GroupId): RaftInvariants {
    return group === GROUP ? this.env.invariants : this.env.invariantsOf(group);
  }

  /** An extra group's Ready: its invariants see it as GROUP's see its own. */
  private onExtraReady(proc: Process, group: GroupId, rd: Ready): void {
    const inv = this.env.invariantsOf(group);
    if (rd.snapshot) inv.onSnapshot(this.id, rd.snapshot.meta.index, rd.snapshot.meta.term);
    if (rd.entries.length > 0) inv.onAppend(this.id, rd.entries);
    let st = proc.extra.get(group);
    if (st === undefined) {
      st = { role: 'follower', term: 0 };
      proc.extra.set(group, st);
    }
    if (rd.hardState) {
      st.term = rd.hardState.term;
      inv.onHardState(this.id, rd.hardState);
    }
    if (rd.softState) {
      const was = st.role;
      st.role = rd.softState.role;
      if (st.role === 'leader' && was !== 'leader') this.env.onExtraLeader(group, this.id, st.term);
    }
  }

  /**
   * The liveness source's view of `peer` from this node (down: crashed, retired or cut off either
   * way), told to the host when it changed: what SWIM's detector would say, after its delay.
   */
  reportLiveness(peer: NodeId, down: boolean): boolean {
    const p = this.proc;
    if (!p || peer === this.id || (p.reported.get(peer) ?? false) === down) return false;
    p.reported.set(peer, down);
    if (down) p.host.peerDown(peer);
    else p.host.peerUp(peer);
    return true;
  }

  /** What this process's host was last told of `peer` (true: down). */
  reportedDown(peer: NodeId): boolean {
    return this.proc?.reported.get(peer) ?? false;
  }

  /** An entry the state machine is about to apply: a command, a leader's no-op or a membership change. */
  private onApply(e: Entry): void {
    this.env.invariants.onApply(this.id, e);
    this.env.trace.mix3(2, e.index, e.term);
    this.applied = e.index;
    if (e.type === 'confChange') {
      this.env.coverage.confChange++;
      // The host applies a batch's changes to the engine before the machine sees the batch.
      if (this.conf.votersOutgoing.length > 0) this.env.coverage.jointConfig++;
    }
  }

  /** Asks this node (the leader) to hand leadership to `to`; the host sends it on its next round. */
  transferTo(to: NodeId): void {
    this.proc?.rn?.transferLeadership(to);
  }

  /** Proposes a membership change at this node; false if the engine refused it. */
  proposeConfChange(cc: ConfChange): boolean {
    const rn = this.proc?.rn;
    if (!rn) return false;
    try {
      rn.proposeConfChange(cc);
    } catch (e) {
      if (e instanceof ProposalDroppedError) return false;
      throw e;
    }
    return true;
  }

  /** The running host, for benchmarks and tests. */
  get host(): RaftHost | undefined {
    return this.proc?.host;
  }
}
