import type {
  Clock,
  GroupId,
  LogIndex,
  Logger,
  NodeId,
  NodeStore,
  QuorumStatus,
  Random,
  Transport,
} from '@cohort/core';
import type { StateRole } from '../types.js';
import type { EngineFactory } from './engine.js';

/**
 * Deliberate misbehaviour, for tests only: the simulator turns one on to
 * prove its checks catch a host that breaks linearizability or safety.
 * Never set in production.
 */
export interface HostFaults {
  /**
   * `read()` resolves at once, without a ReadIndex round (stale reads become possible), and the host
   * never reports its quorum lost (it trusts its leadership unchecked). @default false
   */
  readsWithoutReadIndex?: boolean;
  /** Entries are applied as soon as they are appended, before they commit. @default false */
  applyBeforeCommit?: boolean;
}

/** Options of {@link RaftHost}. */
export interface RaftHostOptions {
  id: NodeId;
  store: NodeStore;
  transport: Transport;
  clock: Clock;
  random: Random;
  /** Builds each group's engine. @default rawNodeFactory (RawNode) */
  createEngine?: EngineFactory;
  logger?: Logger;
  /** Milliseconds per engine tick (the heartbeat interval). @default 100 */
  tickMs?: number;
  /** Ticks without a leader before an election, at least; the engine randomizes in [electionTicks, electionTicksMax]. @default 5 */
  electionTicks?: number;
  /** The longest election timeout in ticks. @default 2 * electionTicks - 1 */
  electionTicksMax?: number;
  /**
   * Voters back the leader's lease and the leader serves lease reads on
   * request ({@link RaftHost.leaseRead}); ReadIndex reads still confirm with a
   * quorum. Costs elections an election timeout after a restart, as etcd's
   * lease reads do. @default false
   */
  leaseReads?: boolean;
  /** Ticks between heartbeats. @default 1 */
  heartbeatTicks?: number;
  /** How long a proposal or read may wait before it fails with TimeoutError. @default 5000 */
  requestTimeoutMs?: number;
  /** Durably applied entries past the last snapshot marker that trigger a new marker and compaction. @default 10000 */
  snapshotEntries?: number;
  /**
   * Bytes of log past the last marker that trigger a new marker and compaction (needs a store
   * reporting `stats`, as the storage package's do; the store's own policy also triggers).
   * @default 104857600 (100 MiB)
   */
  snapshotBytes?: number;
  /**
   * Bytes the log may hold before proposals are refused with ProposalDroppedError (needs a store
   * reporting `stats`); the store's own `admitProposal` bound applies as well.
   * @default undefined (the store's bound only)
   */
  maxLogBytes?: number;
  /**
   * Most bytes of entries in one append message (etcd's MaxSizePerMsg; one entry always fits).
   * @default the engine's (1 MiB)
   */
  maxAppendBytes?: number;
  /**
   * Most append messages in flight to one follower while it keeps up (etcd's MaxInflightMsgs).
   * @default the engine's (256)
   */
  maxInflightAppends?: number;
  /**
   * Most bytes of entries in flight to one follower (etcd's MaxInflightBytes); 0 leaves it unbounded.
   * @default the engine's (0)
   */
  maxInflightBytes?: number;
  /**
   * Most bytes of entries in flight to a follower catching up (one lacking committed entries not sent to
   * it yet: after a snapshot, a restart or a partition). The leader reads that backlog from its store
   * and both ends buffer what is in flight, so it gets a smaller window than a follower that keeps up;
   * 0 uses `maxInflightBytes`.
   * @default 4194304 (4 MiB)
   */
  maxCatchUpInflightBytes?: number;
  /**
   * How long a leader lets a new commit index wait for an append to carry it to followers that keep up
   * before it sends one of its own, in ms. A lone client's write then costs one message each way per
   * follower instead of two; followers learn the commit (apply, serve follower reads, fire watches) up
   * to this much later when no other write follows. 0 sends it at once (etcd's behaviour).
   * @default 5
   */
  commitNoticeDelayMs?: number;
  /**
   * A leader's ReadIndex round (which confirms its leadership for a batch of linearizable reads) asks
   * only as many followers as make a quorum with it, those that answered a round most recently: one
   * of two in a three-voter group, which halves the messages reads cost. If the round is not confirmed
   * within this many ms, the leader asks the other followers too, so a follower that stops answering
   * delays one round's reads by about this much (the next rounds ask the one that answered). 0 asks every
   * follower at once (etcd's behaviour).
   * @default 5
   */
  readIndexHedgeMs?: number;
  /**
   * Most bytes of committed entries applied per Ready round of a group (etcd's MaxCommittedSizePerReady;
   * at least one entry): a follower catching up applies its backlog in transactions of about this size
   * instead of one per round's worth of appends. 0 leaves it unbounded.
   * @default 1048576 (1 MiB)
   */
  maxApplyBytes?: number;
  /**
   * For a store whose machines' transactions commit on another thread (`NodeStore.settled`): most bytes
   * of committed entries applied before the host checks that the writer caught up with them. When it
   * has not, the groups stop applying (the engines' `pauseApplying`) until it has; appends,
   * acknowledgements, commits, heartbeats and reads go on meanwhile. Bounds what a follower catching up
   * holds in memory while its disk is slower than its network. 0 never pauses.
   * @default 4194304 (4 MiB)
   */
  maxUnsettledApplyBytes?: number;
  /**
   * Most Ready rounds of one group carrying entries (to write or to apply) in flight at once: the host
   * takes the next round (sends the leader's new appends, heartbeats and their answers, submits the
   * next write) without waiting for the previous write to complete. 1 runs one round at a time.
   * @default 4
   */
  maxOutstandingReadies?: number;
  /** Entries kept in the log behind a marker, so slow followers catch up without a snapshot. @default min(1000, snapshotEntries / 2) */
  compactionMarginEntries?: number;
  /** Bytes of state per snapshot chunk request (kept under the transport's frame limit); read and encoded in one turn of the event loop. @default 256 KiB */
  snapshotChunkBytes?: number;
  /**
   * Most bytes of state per second one snapshot transfer sends, so that a
   * follower catching up does not starve the writes; 0 leaves it unlimited.
   * @default 0
   */
  snapshotBytesPerSec?: number;
  /**
   * The slowest a snapshot transfer goes while it adapts to the writes the node serves: it backs
   * off while their latency is over 1.15x what it was before the transfer, or fewer of them complete
   * by as much at no lower latency, and speeds up again up to `snapshotBytesPerSec` while neither
   * holds (see `SnapshotPacer`). At or above
   * `snapshotBytesPerSec`, the rate is fixed.
   * @default snapshotBytesPerSec / 16
   */
  snapshotMinBytesPerSec?: number;
  /** A snapshot transfer not finished after this long is abandoned (the engine asks again later). @default 600000 (10 min) */
  snapshotTimeoutMs?: number;
  /** First wait before resending a failed snapshot chunk; doubles up to a second. @default 50 */
  snapshotRetryMs?: number;
  /** Consecutive failed sends of one chunk before the transfer is abandoned (the engine asks again later). @default 10 */
  snapshotRetries?: number;
  /** A replica restoring corrupt state asks the next healthy replica when no snapshot chunk came for this long. @default 5000 */
  repairRetryMs?: number;
  /**
   * Quiescence: a leader whose group has been idle for `quiesceAfterTicks` ticks (fully replicated
   * and applied, nothing pending) stops ticking it and tells its followers to stop too, so an idle
   * group sends no heartbeats and runs no election timer. Followers then notice a dead leader only
   * through {@link RaftHost.peerDown}: turn it on only where a liveness source feeds the host.
   * @default false
   */
  quiesce?: boolean;
  /** Idle ticks before a leader quiesces its group. @default electionTicks */
  quiesceAfterTicks?: number;
  /**
   * Heartbeats and their answers travel coalesced: one frame per peer per round carries the
   * (group, term, commit, tick) of every group the two nodes share. Off: one full Raft message
   * each (the older wire form, which every build still reads).
   * @default true
   */
  coalesceHeartbeats?: boolean;
  /**
   * How long a peer counts as reachable after its last message, and how long a replica may be
   * without a reachable leader before it reports the quorum lost (see `GroupStatus.quorum`) and
   * refuses requests with ClusterDownError instead of letting them wait for the request timeout.
   * Counted in ticks (rounded up), so an event loop that stalls does not make peers look lost.
   * @default (electionTicksMax + 1) * tickMs: about the longest election timeout
   */
  quorumWindowMs?: number;
  /** Test-only misbehaviour; see {@link HostFaults}. @default {} */
  faults?: HostFaults;
}

/** What {@link RaftHost.catchUp} did for a lagging replica. */
export interface CatchUp {
  peer: NodeId;
  /** The replica's match index when asked. */
  match: LogIndex;
  /** The leader's last index when asked. */
  lastIndex: LogIndex;
  /** `snapshot`: its next entry is compacted, a snapshot is streamed; `probe`: appends resent from its match; `caught-up`: nothing to do. */
  action: 'caught-up' | 'probe' | 'snapshot';
}

/** What {@link RaftHost.status} reports for one group. */
export interface GroupStatus {
  group: GroupId;
  role: StateRole;
  term: number;
  /** The known leader; '' when none. */
  leader: NodeId;
  commit: LogIndex;
  applied: LogIndex;
  /** First index still in the log (entries before it are in the snapshot). */
  firstIndex: LogIndex;
  lastIndex: LogIndex;
  /** The machine's state is being restored from a healthy replica: the group serves nothing here meanwhile. */
  repairing: boolean;
  /** The group is quiescent here: idle, not ticked, sending no heartbeats. */
  quiescent?: boolean;
  /** Whether this replica reaches a quorum now, by when it last heard from each voter. */
  quorum: QuorumStatus;
  /** The group's membership as this replica applied it. */
  voters: NodeId[];
  learners: NodeId[];
  /** The previous voters, while a membership change is under way (joint consensus); empty otherwise. */
  votersOutgoing: NodeId[];
  /** On the leader: the highest index known replicated on each member (itself included). */
  match?: Record<NodeId, LogIndex>;
  /** On the leader, while it hands its leadership over: the voter it goes to. */
  transferee?: NodeId;
}

/**
 * What a store may add to core's NodeStore to size the log (the storage
 * package's stores do): the host then snapshots when the store's policy says
 * so and refuses proposals while the log is over its byte bound.
 */
export interface SizedStore {
  stats(group: GroupId): { shouldSnapshot: boolean; bytes?: number; bytesSinceSnapshot?: number };
  admitProposal(group: GroupId, bytes: number): void;
}

export function sizedStore(store: NodeStore): SizedStore | undefined {
  const s = store as Partial<SizedStore>;
  return typeof s.stats === 'function' && typeof s.admitProposal === 'function' ? (s as SizedStore) : undefined;
}

/** Counters of a host since it started, for metrics. */
export interface HostStats {
  /** Ready rounds processed (each one store write at most). */
  rounds: number;
  /** Of those, rounds taken while an earlier round's store write was still in flight. */
  roundsOverlapped: number;
  /** `store.write` calls. */
  storeWrites: number;
  /** ReadIndex rounds started (each a heartbeat to a quorum of followers or to every one, or a request to the leader, for a batch of reads). */
  readRounds: number;
  /** Of those, rounds that asked the rest of the followers after the hedge delay ({@link RaftHostOptions.readIndexHedgeMs}). */
  readHedges: number;
  /** Times applying paused until the store's writer caught up with the machines' transactions (maxUnsettledApplyBytes). */
  applyPauses: number;
  /** Milliseconds spent in `store.write` (durable writes, fsync included; overlapping writes each count in full). */
  storeWriteMs: number;
  /** Entries persisted. */
  entriesPersisted: number;
  /** Entries applied to state machines. */
  entriesApplied: number;
  /** Raft messages handed to the transport. */
  messagesSent: number;
  /** Of those, the appends, heartbeats and heartbeat answers sent before the writes of their round and earlier rounds were durable. */
  messagesSentBeforeWrite: number;
  /** Frames the transport refused or failed to deliver. */
  sendFailures: number;
  /** Raft frames received and stepped. */
  framesReceived: number;
  /** Snapshot markers saved locally (each followed by log compaction). */
  snapshotsTaken: number;
  /** Snapshots installed from a leader's stream. */
  snapshotsRestored: number;
  /** Snapshot transfers this node finished as leader. */
  snapshotsSent: number;
  /** Snapshot chunk requests sent (retries included). */
  snapshotChunksSent: number;
  /** Times a snapshot transfer slowed down because the writes served meanwhile got slower. */
  snapshotPaceBackoffs: number;
  /** Followers found, as leader, to have lost entries they acknowledged (storage wiped or replaced). */
  followersLostEntries: number;
  /** Repairs started: this node's state machine data failed a checksum and is restored from a healthy replica. */
  replicaRepairs: number;
  /** Repairs finished: the state was restored and the group serves again. */
  replicaRepairsDone: number;
  /** Times a group went quiescent here (as leader or follower). */
  groupsQuiesced: number;
  /** Times a quiescent group woke here. */
  groupsWoken: number;
  /** Frames of coalesced heartbeats sent. */
  heartbeatFramesSent: number;
  /** Heartbeats and answers carried in those frames (quiesce heartbeats included). */
  heartbeatsCoalesced: number;
}

/**
 * When a proposal this node made as leader reached each phase, in milliseconds
 * of the host's clock; reported once it is applied (see `RaftHost.onProposalTiming`).
 */
export interface ProposalTiming {
  /** `propose` was called. */
  proposed: number;
  /** Its entry was durable in this node's log. */
  persisted: number;
  /** This node learned it committed (a quorum holds it durably; this node may not yet). */
  committed: number;
  /** The state machine applied it and its proposer's promise was resolved. */
  applied: number;
}
