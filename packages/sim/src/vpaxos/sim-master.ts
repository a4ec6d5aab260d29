import type { NodeId } from '@cohort/core';
import {
  type Ballot,
  ConfigMaster,
  type MasterMessage,
  VP_MASTER_PROTOCOL,
  decodeMasterMessage,
  encodeMasterMessage,
} from '@cohort/vpaxos';
import { SimClock } from '../clock.js';
import type { SimNetwork } from '../network.js';
import type { Scheduler } from '../scheduler.js';
import { type RequestIds, type SimFrame, SimTransport } from '../transport/sim-transport.js';
import { MASTER_ID, VP_GROUP } from './sim-vp-node.js';

/** Options of the simulated master process. */
export interface SimMasterOptions {
  /** Every replica that may join a configuration. */
  nodes: NodeId[];
  f: number;
  leaseMs: number;
  maxDriftMs: number;
  /** A replica not heard from for this long is failed. */
  failAfterMs: number;
  /** A ballot not completed within this long is abandoned for a new one. */
  ballotTimeoutMs: number;
  /** A deliberate bug: activate without the lease wait. */
  skipLeaseWait?: boolean;
}

/** What the master did, for coverage. */
export interface MasterEvents {
  onActivated(
    config: { ballot: Ballot; primary: NodeId; acceptors: NodeId[] },
    afterFailure: boolean,
    waitedMs: number,
  ): void;
  onAbandoned(ballot: Ballot): void;
}

/**
 * The configuration master as a reliable simulated process (its replication on
 * the meta group comes later): the pure {@link ConfigMaster} plus failure
 * detection from the replicas' `alive` messages. On a failed member of the
 * active configuration it issues a new ballot: the survivors (a surviving
 * primary stays primary) plus live replacements up to f+1; it activates a
 * ballot once its primary reports `complete`, after the lease wait.
 */
export class SimMaster {
  readonly master: ConfigMaster;
  private readonly clock: SimClock;
  private readonly transport: SimTransport;
  private readonly lastAlive = new Map<NodeId, { at: number; incarnation: number }>();
  /** The incarnation of each member when the active ballot was activated. */
  private activeIncarnations = new Map<NodeId, number>();
  private nextStarted = 0;
  /** The active configuration lost a member: the next activation is a failover. */
  private failing = false;
  private completedAt = new Map<Ballot, number>();

  constructor(
    scheduler: Scheduler,
    network: SimNetwork<SimFrame>,
    ids: RequestIds,
    private readonly opts: SimMasterOptions,
    private readonly events: MasterEvents,
  ) {
    this.master = new ConfigMaster({ f: opts.f, leaseMs: opts.leaseMs, maxDriftMs: opts.maxDriftMs });
    this.clock = new SimClock(scheduler);
    this.transport = new SimTransport(MASTER_ID, network, this.clock, ids);
    this.transport.handle(VP_MASTER_PROTOCOL, (from, frame) => this.onFrame(from, frame));
    this.clock.setTimeout(() => this.tick(), 100);
  }

  private send(to: NodeId, m: MasterMessage): void {
    this.transport.send(to, VP_MASTER_PROTOCOL, encodeMasterMessage(VP_GROUP, m)).catch(() => {});
  }

  private alive(id: NodeId, now: number): boolean {
    const a = this.lastAlive.get(id);
    return a !== undefined && now - a.at < this.opts.failAfterMs;
  }

  private onFrame(from: NodeId, frame: Uint8Array): void {
    const { msg } = decodeMasterMessage(frame);
    const now = this.clock.now();
    if (msg.type === 'alive') {
      this.lastAlive.set(from, { at: now, incarnation: msg.incarnation });
    } else if (msg.type === 'complete') {
      const s = this.master.state(VP_GROUP);
      if (s.active?.ballot === msg.ballot) {
        // A repeated complete whose activation was lost.
        this.send(from, this.activated());
        return;
      }
      if (this.completedAt.has(msg.ballot)) return;
      const r = this.master.apply({ type: 'complete', group: VP_GROUP, ballot: msg.ballot });
      if (!r.ok || r.type !== 'complete') return;
      this.completedAt.set(msg.ballot, now);
      const wait = r.activateAfterMs;
      // The mutation claims the wait it did not do (the check in ConfigMaster trusts the proposer's clock).
      this.clock.setTimeout(() => this.activate(msg.ballot, wait), this.opts.skipLeaseWait ? 0 : wait);
    }
  }

  private activate(ballot: Ballot, waited: number): void {
    const r = this.master.apply({ type: 'activate', group: VP_GROUP, ballot, waitedMs: waited });
    if (!r.ok || r.type !== 'activate') return;
    this.activeIncarnations = new Map(r.config.acceptors.map((a) => [a, this.lastAlive.get(a)?.incarnation ?? 0]));
    this.events.onActivated(r.config, this.failing, waited);
    this.failing = false;
    for (const n of this.opts.nodes) this.send(n, this.activated());
  }

  private tick(): void {
    this.clock.setTimeout(() => this.tick(), 100);
    const now = this.clock.now();
    const s = this.master.state(VP_GROUP);
    const active = s.active;
    if (active) {
      // Repeat the activation to the primary (it may have been lost).
      this.send(active.primary, this.activated());
      const failed = active.acceptors.filter(
        (a) => !this.alive(a, now) || this.lastAlive.get(a)?.incarnation !== this.activeIncarnations.get(a),
      );
      // A restarted backup keeps its promises and votes; a restarted primary lost its role.
      const primaryLost = failed.includes(active.primary);
      const backupsLost = failed.filter((a) => a !== active.primary && !this.alive(a, now));
      if (!primaryLost && backupsLost.length === 0) return;
      if (primaryLost) this.failing = true;
    }
    if (s.next && !s.next.completed && now - this.nextStarted < this.opts.ballotTimeoutMs) {
      this.send(s.next.primary, this.newBallotMessage(s.next.ballot, s.next.prevBallot, s.next.acceptors));
      return;
    }
    if (s.next?.completed) return; // waiting out the lease before activating
    if (s.next) this.events.onAbandoned(s.next.ballot);
    this.startBallot(s.maxBallot + 1, active?.ballot ?? 0, active?.acceptors ?? [], active?.primary, now);
  }

  private startBallot(
    ballot: Ballot,
    prevBallot: Ballot,
    prev: NodeId[],
    prevPrimary: NodeId | undefined,
    now: number,
  ): void {
    const live = this.opts.nodes.filter((n) => this.alive(n, now));
    const survivors = prev.filter((n) => live.includes(n));
    const primary =
      prevPrimary !== undefined && survivors.includes(prevPrimary) && !this.failing
        ? prevPrimary
        : (survivors[0] ?? live[0]);
    if (primary === undefined) return;
    const acceptors = [primary, ...survivors.filter((n) => n !== primary)];
    for (const n of live) if (acceptors.length < this.opts.f + 1 && !acceptors.includes(n)) acceptors.push(n);
    const r = this.master.apply({
      type: 'newBallot',
      group: VP_GROUP,
      ballot,
      prevBallot,
      config: { primary, acceptors },
    });
    if (!r.ok) return; // too few live replicas: try again on a later tick
    this.nextStarted = now;
    this.send(primary, this.newBallotMessage(ballot, prevBallot, acceptors));
  }

  /** The active configuration with the lease granted to its primary. */
  private activated(): MasterMessage {
    const s = this.master.state(VP_GROUP);
    const a = s.active;
    if (a === undefined) throw new Error('no active configuration to announce');
    return { type: 'activated', ...a, ...(s.lease !== undefined ? { leaseMs: s.lease.ms } : {}) };
  }

  private newBallotMessage(ballot: Ballot, prevBallot: Ballot, acceptors: NodeId[]): MasterMessage {
    const prev = this.master.state(VP_GROUP).active;
    return {
      type: 'newBallot',
      ballot,
      prevBallot,
      prevAcceptors: prev && prev.ballot === prevBallot ? prev.acceptors : [],
      acceptors,
    };
  }
}
