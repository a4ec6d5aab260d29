import { type Clock, type Logger, type NodeId, type TimerHandle, type Transport, systemClock } from '@cohort/core';
import {
  type Ballot,
  type GroupConfigState,
  type LeaseGrant,
  type MasterCommand,
  type MasterMessage,
  VP_MASTER_PROTOCOL,
  type VpTransportMux,
  encodeMasterMessage,
} from '@cohort/vpaxos';
import type { MembershipView, MetaService } from '../meta/meta-service.js';
import { type MetaState, votersOf } from '../meta/state.js';
import { partitionGroup } from '../routing.js';
import { type VpMasterCommand, masterSection, vpaxosReplicas } from './master-extension.js';

/** Options of {@link VpMasterService}. */
export interface VpMasterServiceOptions {
  self: NodeId;
  meta: MetaService;
  /** Whether this node leads the meta group now (the master's decisions are taken there only). */
  leading: () => boolean;
  mux: VpTransportMux;
  transport: Transport;
  /** The failure detector's view (SWIM in the binary), once membership runs on this node. */
  membership: () => Pick<MembershipView, 'members'> | undefined;
  log: Logger;
  /** How often the decision loop runs. @default 200 */
  intervalMs?: number;
  /** A replica whose heartbeats stopped this long (or SWIM found dead) is failed. @default 1500 */
  failAfterMs?: number;
  /** A ballot not completed within this long is abandoned for a new one. @default 5000 */
  ballotTimeoutMs?: number;
  /**
   * The read lease granted to each primary this master activates (absent: no
   * lease reads). Before activating a different primary the master waits the
   * previous primary's lease plus drift, as the meta group recorded it.
   */
  lease?: LeaseGrant;
  /** The monotonic clock the loop and every wait run on. @default systemClock */
  clock?: Clock;
  /** Test-only: called once a failover ballot is committed, before anyone is told (the node may crash there). */
  afterFailoverBallot?: () => void;
}

/** Why the master counts an acceptor of the active ballot failed. */
interface Failure {
  reason: string;
  /** It is up and heard, but lost its activation in a restart (a primary only): its acceptor state is intact. */
  restarted: boolean;
}

interface Heard {
  at: number;
  incarnation: number;
  activeBallot: Ballot;
}

/**
 * The configuration master's decision loop, on the meta group's leader. The
 * master's state and every decision live in the meta group's log (newBallot,
 * complete, activate, reportFailure), so a new meta leader carries on a
 * failover its predecessor began. It detects failures from SWIM and from the
 * replicas' `alive` heartbeats (a primary must also report its ballot
 * active); on a failed acceptor it starts a ballot of the survivors, a
 * surviving backup promoted when the primary failed (read quorum = 1: it
 * holds every chosen value). With fewer survivors than f+1 that ballot is
 * degraded, so writes continue; a later ballot adds a live replacement,
 * which the new primary's Phase 2 catches up before it reports `complete`.
 */
export class VpMasterService {
  private timer: TimerHandle | undefined;
  private readonly clock: Clock;
  /** When this leader knew each group's next ballot complete (its lease wait runs from then). */
  private readonly completedSeen = new Map<string, { ballot: Ballot; at: number }>();
  /** The timer that comes back when a group's lease wait is over (one per group). */
  private readonly dueTimers = new Map<string, TimerHandle>();
  private readonly heard = new Map<string, Heard>();
  /** When this leader first saw each group's next ballot, and last sent it. */
  private readonly nextSeen = new Map<string, { ballot: Ballot; at: number; sentAt: number }>();
  /** When this leader first saw each group's active ballot, and the primary's incarnation it first heard then. */
  private readonly activeSeen = new Map<string, { ballot: Ballot; at: number; incarnation?: number }>();
  /** When each group's active primary last said it serves the active ballot. */
  private readonly serving = new Map<string, number>();
  /** Replacements whose ballot did not complete, until when they are not picked again. */
  private readonly shunned = new Map<NodeId, number>();
  private readonly busy = new Set<string>();
  private leaderSince: number | undefined;
  private readonly intervalMs: number;
  private readonly failAfterMs: number;
  private readonly ballotTimeoutMs: number;
  private lastLogged = new Map<string, string>();

  constructor(private readonly opts: VpMasterServiceOptions) {
    this.intervalMs = opts.intervalMs ?? 200;
    this.failAfterMs = opts.failAfterMs ?? 1500;
    this.ballotTimeoutMs = opts.ballotTimeoutMs ?? 5000;
    this.clock = opts.clock ?? systemClock;
  }

  start(): void {
    this.opts.mux.onMasterMessage((from, group, msg) => this.onMessage(from, group, msg));
    const loop = (): void => {
      this.timer = this.clock.setTimeout(loop, this.intervalMs);
      (this.timer as { unref?: () => void }).unref?.();
      this.tick();
    };
    loop();
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    for (const h of this.dueTimers.values()) this.clock.clearTimeout(h);
    this.dueTimers.clear();
    this.opts.mux.onMasterMessage(undefined);
  }

  private get state(): Readonly<MetaState> {
    return this.opts.meta.state;
  }

  private onMessage(from: NodeId, group: string, msg: MasterMessage): void {
    if (!this.opts.leading()) return;
    if (msg.type === 'alive') {
      const at = this.clock.now();
      this.heard.set(`${group}/${from}`, { at, incarnation: msg.incarnation, activeBallot: msg.activeBallot });
      const active = masterSection(this.state).groups[group]?.active;
      if (active !== undefined && active.primary === from && active.ballot === msg.activeBallot)
        this.serving.set(group, at);
    } else if (msg.type === 'complete') {
      const at = this.clock.now();
      void this.serially(group, () => this.complete(group, from, msg.ballot, at));
    }
  }

  private send(to: NodeId, group: string, m: MasterMessage): void {
    const frame = encodeMasterMessage(group, m);
    if (to === this.opts.self) {
      // The replica on this node: through the mux, as a frame from this node.
      void this.opts.mux.deliver(to, VP_MASTER_PROTOCOL, frame);
      return;
    }
    this.opts.transport.send(to, VP_MASTER_PROTOCOL, frame).catch(() => {});
  }

  private async serially(group: string, fn: () => Promise<void>): Promise<void> {
    if (this.busy.has(group)) return;
    this.busy.add(group);
    try {
      await fn();
    } catch (err) {
      this.note(group, `master step not taken now (retried): ${(err as Error).message}`);
    } finally {
      this.busy.delete(group);
    }
  }

  private note(group: string, text: string, fields: Record<string, unknown> = {}): void {
    if (this.lastLogged.get(group) === text) return;
    this.lastLogged.set(group, text);
    this.opts.log.info(text, { group, ...fields });
  }

  private async propose(partition: number, command: VpMasterCommand): Promise<{ ok: boolean; reason?: string }> {
    const res = await this.opts.meta.propose({ type: 'extCommand', section: 'vpaxos', command });
    if (!res.ok) this.note(partitionGroup(partition), `configuration master refused: ${res.reason}`);
    return res;
  }

  private master(partition: number, command: MasterCommand): Promise<{ ok: boolean; reason?: string }> {
    return this.propose(partition, { op: 'master', partition, command });
  }

  /** `at`: when the complete arrived, after the new primary's Phase 1 stopped the old primary's renewals. */
  private async complete(group: string, from: NodeId, ballot: Ballot, at: number): Promise<void> {
    const partition = partitionIndex(group);
    const g = masterSection(this.state).groups[group];
    if (g?.active?.ballot === ballot) {
      // A repeated complete whose activation was lost.
      this.send(from, group, activatedMessage(g));
      return;
    }
    if (g?.next?.ballot !== ballot) return; // an abandoned or unknown ballot: refused, changes nothing
    if (!g.next.completed) {
      const res = await this.master(partition, { type: 'complete', group, ballot });
      if (!res.ok) return;
    }
    const seen = this.completedSeen.get(group);
    if (seen?.ballot !== ballot) this.completedSeen.set(group, { ballot, at });
    await this.activateWhenDue(partition, group, ballot);
  }

  /**
   * Activates the completed next ballot once the previous primary's lease
   * (recorded with the ballot's completion) ran out, counted on this
   * leader's clock from when it knew the ballot complete; a timer comes
   * back when it is due. A leader that takes over counts from its first look.
   */
  private async activateWhenDue(partition: number, group: string, ballot: Ballot): Promise<void> {
    const next = masterSection(this.state).groups[group]?.next;
    if (next?.ballot !== ballot || !next.completed) return; // activated meanwhile, or abandoned
    const wait = next.activateAfterMs ?? 0;
    let seen = this.completedSeen.get(group);
    if (seen?.ballot !== ballot) {
      seen = { ballot, at: this.clock.now() };
      this.completedSeen.set(group, seen);
    }
    const waited = this.clock.now() - seen.at;
    if (waited < wait) {
      this.note(group, `vpaxos ballot ${ballot} waits out the previous primary's read lease`, { waitMs: wait });
      if (!this.dueTimers.has(group)) {
        const h = this.clock.setTimeout(
          () => {
            this.dueTimers.delete(group);
            if (this.opts.leading()) void this.serially(group, () => this.activateWhenDue(partition, group, ballot));
          },
          wait - waited + 1,
        );
        (h as { unref?: () => void }).unref?.();
        this.dueTimers.set(group, h);
      }
      return;
    }
    await this.activate(partition, group, ballot, Math.floor(waited));
  }

  private async activate(partition: number, group: string, ballot: Ballot, waitedMs: number): Promise<void> {
    const res = await this.master(partition, {
      type: 'activate',
      group,
      ballot,
      waitedMs,
      ...(this.opts.lease !== undefined && this.opts.lease.ms > 0 ? { lease: this.opts.lease } : {}),
    });
    if (!res.ok) return;
    const g = masterSection(this.state).groups[group];
    const active = g?.active;
    if (g === undefined || active === undefined) return;
    const entry = this.state.partitions[partition];
    const health = masterSection(this.state).health[group];
    this.opts.log.info('vpaxos ballot activated', {
      group,
      ballot: active.ballot,
      primary: active.primary,
      acceptors: active.acceptors,
      underReplicated: health?.underReplicated ?? false,
      leaseMs: g.lease?.ms ?? 0,
      waitedMs,
    });
    for (const n of new Set([...active.acceptors, ...(entry?.replicas.map((r) => r.node) ?? [])])) {
      this.send(n, group, activatedMessage(g));
    }
  }

  private tick(): void {
    if (!this.opts.leading()) {
      this.leaderSince = undefined;
      this.nextSeen.clear();
      this.activeSeen.clear();
      this.completedSeen.clear();
      return;
    }
    const now = this.clock.now();
    this.leaderSince ??= now;
    if (this.state.clusterId === '') return;
    this.state.partitions.forEach((entry, partition) => {
      if (entry.engine !== 'vpaxos') return;
      const group = partitionGroup(partition);
      void this.serially(group, () => this.decide(partition, group, now));
    });
  }

  /** Whether SWIM believes `node` gone, or the meta group's leader (this node) stopped hearing from it. */
  private swimDead(node: NodeId): boolean {
    if (node === this.opts.self) return false;
    const m = this.opts
      .membership()
      ?.members()
      .find((x) => x.id === node);
    return (
      (m !== undefined && (m.state === 'dead' || m.state === 'left')) || this.opts.meta.unreachable().includes(node)
    );
  }

  /** Why `node` counts as failed in `group`'s active ballot, or undefined while it is healthy. */
  private failure(group: string, node: NodeId, primary: boolean, ballot: Ballot, now: number): Failure | undefined {
    if (this.swimDead(node)) return { reason: 'SWIM reports it dead', restarted: false };
    const h = this.heard.get(`${group}/${node}`);
    const since = Math.max(this.leaderSince ?? now, this.activeSeen.get(group)?.at ?? now);
    if ((h === undefined || h.at < since) && now - since > this.failAfterMs)
      return { reason: `no heartbeat for ${now - since} ms`, restarted: false };
    if (h !== undefined && now - Math.max(h.at, since) > this.failAfterMs)
      return { reason: `no heartbeat for ${now - h.at} ms`, restarted: false };
    const seen = this.activeSeen.get(group);
    if (primary && h !== undefined && seen?.ballot === ballot) {
      // A restarted primary has lost its activation (it is not durable): it serves nothing until a new ballot.
      seen.incarnation ??= h.incarnation;
      if (h.incarnation !== seen.incarnation)
        return { reason: `it restarted (incarnation ${h.incarnation}) since ballot ${ballot}`, restarted: true };
      // One that restarted before this master first heard it (a whole cluster restarted) says it serves no ballot.
      // A primary leading the next ballot left the active one on purpose (a reconfiguration): not a failure.
      const next = masterSection(this.state).groups[group]?.next;
      const servedAt = Math.max(this.serving.get(group) ?? 0, since);
      if (next?.primary !== node && now - servedAt > this.failAfterMs)
        return { reason: `it has not served ballot ${ballot} for ${now - servedAt} ms (restarted)`, restarted: true };
    }
    return undefined;
  }

  private async decide(partition: number, group: string, now: number): Promise<void> {
    const entry = this.state.partitions[partition]!;
    const g = masterSection(this.state).groups[group];
    const target = vpaxosReplicas(this.state.replicationFactor);
    const active = g?.active;
    if (active !== undefined) {
      const seen = this.activeSeen.get(group);
      if (seen?.ballot !== active.ballot) this.activeSeen.set(group, { ballot: active.ballot, at: now });
      // The activation may have been lost: repeat it to the primary.
      this.send(active.primary, group, activatedMessage(g!));
    }
    const next = g?.next;
    if (next !== undefined) {
      let seen = this.nextSeen.get(group);
      if (seen?.ballot !== next.ballot) {
        seen = { ballot: next.ballot, at: now, sentAt: 0 };
        this.nextSeen.set(group, seen);
      }
      if (next.completed) {
        // Completed, not yet activated (waiting out a lease, or the previous meta leader stopped in between).
        await this.activateWhenDue(partition, group, next.ballot);
        return;
      }
      // A ballot with a failed acceptor cannot complete (Phase 2 writes to every acceptor): abandon it now.
      const gone = next.acceptors.filter((a) =>
        active?.acceptors.includes(a)
          ? this.failure(group, a, false, next.ballot, now) !== undefined
          : this.swimDead(a),
      );
      if (now - seen.at < this.ballotTimeoutMs && gone.length === 0) {
        if (now - seen.sentAt >= 1000) {
          seen.sentAt = now;
          this.send(next.primary, group, {
            type: 'newBallot',
            ballot: next.ballot,
            prevBallot: next.prevBallot,
            prevAcceptors: active !== undefined && active.ballot === next.prevBallot ? active.acceptors : [],
            acceptors: next.acceptors,
          });
        }
        return;
      }
      this.note(group, 'vpaxos ballot abandoned', {
        ballot: next.ballot,
        why: gone.length > 0 ? `${gone.join(', ')} failed` : `not completed within ${this.ballotTimeoutMs} ms`,
      });
      // A replacement that kept the ballot from completing is not picked again for a while.
      for (const a of next.acceptors) if (!active?.acceptors.includes(a)) this.shunned.set(a, now + 30_000);
    }
    const maxBallot = g?.maxBallot ?? 0;
    if (active === undefined) {
      // The partition's first ballot: its founding replicas, the first as primary.
      const acceptors = votersOf(entry);
      const down = acceptors.filter((a) => this.swimDead(a));
      if (down.length > 0) return this.note(group, `first ballot waits for ${down.join(', ')}`);
      await this.newBallot(partition, group, maxBallot + 1, 0, [], acceptors[0]!, acceptors, false);
      return;
    }
    const failed = new Map<NodeId, Failure>();
    for (const a of active.acceptors) {
      const why = this.failure(group, a, a === active.primary, active.ballot, now);
      if (why !== undefined) failed.set(a, why);
    }
    if (failed.size > 0) {
      let survivors = active.acceptors.filter((a) => !failed.has(a));
      // None left but a primary that restarted (the lone acceptor of a degraded ballot, say): its votes are
      // durable, so a new ballot of it resumes the partition, as any survivor's would. Waiting for another
      // would wait for ever: it stays "restarted" to this ballot.
      if (survivors.length === 0) survivors = active.acceptors.filter((a) => failed.get(a)!.restarted);
      for (const [node, { reason }] of failed) {
        const r = await this.propose(partition, {
          op: 'reportFailure',
          partition,
          failure: { node, ballot: active.ballot, reason },
        });
        if (r.ok) this.opts.log.warn('vpaxos replica failed', { group, node, reason, ballot: active.ballot });
      }
      if (survivors.length === 0) {
        this.note(group, 'vpaxos partition has no surviving replica: it is unavailable until one returns');
        return;
      }
      const primary = failed.has(active.primary) ? survivors[0]! : active.primary;
      const acceptors = [primary, ...survivors.filter((a) => a !== primary)];
      await this.newBallot(
        partition,
        group,
        maxBallot + 1,
        active.ballot,
        active.acceptors,
        primary,
        acceptors,
        acceptors.length < target,
        true,
      );
      return;
    }
    if (active.acceptors.length < target) {
      const replacement = this.replacement(active.acceptors);
      if (replacement === undefined) return this.note(group, 'vpaxos partition under-replicated: no live node to add');
      await this.newBallot(
        partition,
        group,
        maxBallot + 1,
        active.ballot,
        active.acceptors,
        active.primary,
        [...active.acceptors, replacement],
        false,
      );
    }
  }

  /** A live registered node holding none of `acceptors`, the one with the fewest replicas first. */
  private replacement(acceptors: NodeId[]): NodeId | undefined {
    const ms = this.opts.membership();
    const alive = (id: NodeId): boolean =>
      id === this.opts.self || (ms?.members().some((m) => m.id === id && m.state === 'alive') ?? false);
    const load = new Map<NodeId, number>();
    for (const p of this.state.partitions) for (const r of p.replicas) load.set(r.node, (load.get(r.node) ?? 0) + 1);
    const now = this.clock.now();
    return Object.values(this.state.nodes)
      .filter(
        (n) =>
          !n.leaving &&
          !acceptors.includes(n.id) &&
          alive(n.id) &&
          !this.swimDead(n.id) &&
          (this.shunned.get(n.id) ?? 0) < now,
      )
      .map((n) => n.id)
      .sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || (a < b ? -1 : 1))[0];
  }

  private async newBallot(
    partition: number,
    group: string,
    ballot: Ballot,
    prevBallot: Ballot,
    prevAcceptors: NodeId[],
    primary: NodeId,
    acceptors: NodeId[],
    degraded: boolean,
    failover = false,
  ): Promise<void> {
    const res = await this.master(partition, {
      type: 'newBallot',
      group,
      ballot,
      prevBallot,
      config: { primary, acceptors },
      ...(degraded ? { degraded: true } : {}),
    });
    if (!res.ok) return;
    this.opts.log.info('vpaxos ballot started', { group, ballot, prevBallot, primary, acceptors, degraded });
    // (A test hook: a meta leader outside the ballot may crash here; one inside it would take the survivor along.)
    if (failover && !acceptors.includes(this.opts.self)) this.opts.afterFailoverBallot?.();
    const now = this.clock.now();
    this.nextSeen.set(group, { ballot, at: now, sentAt: now });
    this.send(primary, group, { type: 'newBallot', ballot, prevBallot, prevAcceptors, acceptors });
  }
}

/** The `activated` announcement of `g`'s active ballot, with the lease its primary was granted. */
function activatedMessage(g: GroupConfigState): MasterMessage {
  const a = g.active!;
  return {
    type: 'activated',
    ballot: a.ballot,
    primary: a.primary,
    acceptors: a.acceptors,
    ...(g.lease !== undefined ? { leaseMs: g.lease.ms } : {}),
  };
}

/** The partition index of group `p<i>`. */
function partitionIndex(group: string): number {
  return Number(group.slice(1));
}
