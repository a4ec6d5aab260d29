import {
  type Clock,
  CodecError,
  type CorruptStateError,
  type GroupId,
  type Logger,
  type NodeId,
  Protocols,
  type SnapshotMeta,
  type TimerHandle,
  type Transport,
  UnavailableError,
} from '@cohort/core';
import type { Group } from './group.js';

/** A group whose state machine data failed its checksum, restoring it from a healthy replica. */
export interface RepairState {
  /** What was found corrupt. */
  reason: string;
  /** When the repair started (host clock, ms). */
  since: number;
  /** Snapshot pulls requested so far. */
  attempts: number;
  /** The replica asked last. */
  source: NodeId | undefined;
  /** The next check of the repair's progress. */
  timer: TimerHandle | undefined;
}

/** What {@link ReplicaRepairs} needs of the host. */
export interface RepairHost {
  readonly self: NodeId;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly log: Logger;
  /** How long a pull may go without a chunk arriving before another replica is asked. */
  readonly retryMs: number;
  group(id: GroupId): Group | undefined;
  running(): boolean;
  /** Whether a snapshot transfer for `group` is arriving now. */
  receiving(group: GroupId): boolean;
  /** Hands `g`'s leadership to its most caught-up voter, when this node leads it. */
  handOver(g: Group): void;
  /** Streams `g`'s state to `peer` (a no-op when a transfer to it is under way). */
  stream(g: Group, peer: NodeId): void;
  /** The log's first index for `group` (entries before it are compacted). */
  firstIndex(group: GroupId): number;
  /** Whether `g`'s log holds the entry at `meta`'s index with `meta`'s term. */
  logMatches(g: Group, meta: SnapshotMeta): boolean;
  /** Re-applies the log's entries `[lo, hi)` to `g`'s machine; returns how many. */
  replay(g: Group, lo: number, hi: number): number;
  /** Runs the host's next round. */
  schedule(): void;
  /** A repair of `group` starts. */
  onStarted(group: GroupId): void;
  onRestored(): void;
}

interface PullRequest {
  group: GroupId;
}

type PullAnswer = { status: 'streaming' } | { status: 'refused'; reason: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Restores a replica whose state machine data is corrupt (a KV row failing
 * its checksum) without stopping the node: its log is intact, so the state
 * can be rebuilt from a healthy replica's snapshot plus the log.
 *
 * While repairing, the group keeps taking part in Raft (it stores entries,
 * votes and counts toward commits, which keeps the group available) but its
 * machine is neither read nor applied: reads are refused (a follower's go to
 * the leader), committed entries only move the engine's membership, and
 * whoever waits on their results is told to retry. A leader first hands its
 * leadership to its most caught-up voter. The replica then pulls a snapshot
 * over `Protocols.snapshotPull` from the leader (or another voter), which
 * streams it like any snapshot; the machine switches to it atomically, the
 * entries it committed meanwhile are replayed from its own log, and it
 * serves again. A pull that stalls is asked of the next voter.
 */
export class ReplicaRepairs {
  constructor(private readonly h: RepairHost) {}

  /** Serves other replicas' pulls. */
  start(): void {
    this.h.transport.handleRequest(Protocols.snapshotPull, async (from, frame) =>
      encoder.encode(JSON.stringify(this.answerPull(from, frame))),
    );
  }

  /** Starts repairing `g` (once; a repair under way goes on). */
  begin(g: Group, err: CorruptStateError): void {
    if (g.repair !== undefined || !this.h.running()) return;
    this.h.onStarted(g.id);
    this.h.log.error(
      'state machine data is corrupt: this replica stops serving it and restores it from a healthy replica',
      { group: g.id, err: err.message, applied: g.applied.index },
    );
    g.repair = { reason: err.message, since: this.h.clock.now(), attempts: 0, source: undefined, timer: undefined };
    const refused = new UnavailableError(
      `group ${g.id}: this replica is restoring its state from a healthy replica's snapshot; retry on another node`,
    );
    g.readRounds.clear();
    g.readBatch = undefined;
    g.pending.failReads(refused);
    this.h.handOver(g);
    this.pull(g);
  }

  /**
   * Whether a snapshot at `meta` can finish `g`'s repair: the log must still
   * hold every entry after it that the group committed meanwhile, since they
   * are replayed from it. Returns why not, or undefined.
   */
  refuses(g: Group, meta: SnapshotMeta, from: NodeId): string | undefined {
    if (g.repair === undefined) return undefined;
    if (meta.index < g.confApplied) {
      const first = this.h.firstIndex(g.id);
      if (meta.index + 1 >= first) return undefined;
      return `snapshot at ${meta.index} is older than this replica's log (it starts at ${first}); ask again later`;
    }
    // Ahead of what the engine applied: the log must agree with it there (then everything before is the
    // committed prefix, by Log Matching), or the leader sent it and the engine resets its log to it.
    if (this.h.logMatches(g, meta) || from === g.engine.status().lead) return undefined;
    return `snapshot at ${meta.index} is ahead of this replica's log; ask again later`;
  }

  /**
   * The machine committed a snapshot (at `meta` or newer) while `g` was
   * repairing: replay the committed entries past it from the log and serve again.
   */
  finish(g: Group, from: NodeId, meta: SnapshotMeta): void {
    const r = g.repair;
    if (r === undefined) return;
    const at = g.sm.applied();
    // Compaction waits until this state is durable: the install is, the replay below becomes so with the next write.
    g.durable = at;
    g.applied = at;
    g.repair = undefined;
    if (r.timer !== undefined) this.h.clock.clearTimeout(r.timer);
    let replayed = 0;
    if (at.index < g.confApplied) replayed = this.h.replay(g, at.index + 1, g.confApplied + 1);
    if (g.repair !== undefined) return; // the replay met corrupt state again and started over
    this.h.onRestored();
    this.h.log.info('state restored from a healthy replica: serving again', {
      group: g.id,
      from,
      snapshotIndex: meta.index,
      replayed,
      applied: g.applied.index,
      tookMs: this.h.clock.now() - r.since,
    });
    g.pending.releaseReads(g.applied.index);
    this.h.schedule();
  }

  /** Stops the checks of every repair (the host stops). */
  stop(groups: Iterable<Group>): void {
    for (const g of groups) if (g.repair?.timer !== undefined) this.h.clock.clearTimeout(g.repair.timer);
  }

  private pull(g: Group): void {
    const r = g.repair;
    if (r === undefined || !this.h.running()) return;
    r.timer = this.h.clock.setTimeout(() => this.check(g), this.h.retryMs);
    if (this.h.receiving(g.id)) return; // a transfer is arriving: let it finish
    const source = this.source(g, r.attempts);
    if (source === undefined) {
      this.h.log.warn('no healthy replica to restore from yet', { group: g.id });
      return;
    }
    r.attempts++;
    r.source = source;
    const req: PullRequest = { group: g.id };
    this.h.transport
      .request(source, Protocols.snapshotPull, encoder.encode(JSON.stringify(req)))
      .then((frame) => {
        const answer = JSON.parse(decoder.decode(frame)) as PullAnswer;
        if (answer.status === 'refused') {
          this.h.log.warn('a replica refused to send its snapshot', { group: g.id, source, reason: answer.reason });
        } else {
          this.h.log.info('pulling a snapshot to restore corrupt state', { group: g.id, source });
        }
      })
      .catch((err: Error) =>
        this.h.log.warn('snapshot pull failed; another replica is asked next', {
          group: g.id,
          source,
          err: err.message,
        }),
      );
  }

  /** Re-asks (another replica) unless a transfer is arriving; a leader that is still leader hands over again. */
  private check(g: Group): void {
    const r = g.repair;
    if (r === undefined || !this.h.running()) return;
    r.timer = undefined;
    if (g.engine.status().role === 'leader') this.h.handOver(g);
    this.pull(g);
  }

  /** The leader first (it is the most up to date), then the other voters in turn. */
  private source(g: Group, attempt: number): NodeId | undefined {
    const s = g.engine.status();
    const lead = s.lead !== '' && s.lead !== this.h.self ? [s.lead] : [];
    const order = [...lead, ...s.confState.voters.filter((id) => id !== this.h.self && id !== s.lead)];
    return order.length === 0 ? undefined : order[attempt % order.length];
  }

  private answerPull(from: NodeId, frame: Uint8Array): PullAnswer {
    let req: PullRequest;
    try {
      req = JSON.parse(decoder.decode(frame)) as PullRequest;
      if (typeof req.group !== 'string') throw new CodecError('no group');
    } catch (err) {
      return { status: 'refused', reason: `malformed snapshot pull: ${(err as Error).message}` };
    }
    const g = this.h.group(req.group);
    if (g === undefined || !this.h.running())
      return { status: 'refused', reason: `group ${req.group} is not served here` };
    if (g.repair !== undefined) return { status: 'refused', reason: `group ${req.group} is repairing here too` };
    const { voters, learners } = g.engine.status().confState;
    if (!voters.includes(from) && !learners.includes(from)) {
      return { status: 'refused', reason: `${from} is not a member of group ${req.group}` };
    }
    this.h.stream(g, from);
    return { status: 'streaming' };
  }
}
