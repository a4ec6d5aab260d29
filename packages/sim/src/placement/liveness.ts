import type { NodeId } from '@cohort/core';
import type { Liveness, MembershipView } from '@cohort/kv';
import type { SimNetwork } from '../network.js';
import type { Scheduler } from '../scheduler.js';
import type { SimFrame } from '../transport/sim-transport.js';

/** What the failure detector needs to know of the simulated nodes. */
export interface LivenessTruth {
  /** Every node ever started, in start order. */
  all(): readonly NodeId[];
  /** Whether `id`'s process runs now. */
  up(id: NodeId): boolean;
  /** Whether `id` left the cluster for good (decommissioned and stopped). */
  left(id: NodeId): boolean;
}

/**
 * The simulated failure detector (SWIM's role on a real node): each
 * observer's view of each peer follows the truth (a crashed, stopped or
 * cut-off peer is dead, a peer that left is left) once the change has lasted
 * `delayMs`, as SWIM's suspicion timeout does; a flapping link never reaches
 * a view. Polled every 100 simulated ms. Each observer also has a partition
 * detector: it is in a minority when fewer than half of the members it knows
 * are alive in its view.
 */
export class SimLiveness {
  /** Per observer, per peer: the state its view reports, and since when the truth differs from it. */
  private readonly views = new Map<NodeId, Map<NodeId, { state: Liveness; changedAt: number | undefined }>>();
  /** State changes reported, for coverage. */
  changes = 0;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly network: SimNetwork<SimFrame>,
    private readonly truth: LivenessTruth,
    private readonly delayMs: number,
  ) {}

  /** Starts polling. */
  start(): void {
    const poll = (): void => {
      this.poll();
      this.scheduler.after(100, poll);
    };
    this.scheduler.after(100, poll);
  }

  /** What `observer` sees of `peer` now, in truth. */
  private actual(observer: NodeId, peer: NodeId): Liveness {
    if (this.truth.left(peer)) return 'left';
    if (!this.truth.up(peer)) return 'dead';
    return this.network.isCut(observer, peer) || this.network.isCut(peer, observer) ? 'dead' : 'alive';
  }

  private viewOf(observer: NodeId): Map<NodeId, { state: Liveness; changedAt: number | undefined }> {
    let v = this.views.get(observer);
    if (v === undefined) {
      v = new Map();
      this.views.set(observer, v);
    }
    return v;
  }

  private poll(): void {
    const now = this.scheduler.now();
    const all = this.truth.all();
    for (const observer of all) {
      if (!this.truth.up(observer)) continue;
      const view = this.viewOf(observer);
      for (const peer of all) {
        if (peer === observer) continue;
        const truth = this.actual(observer, peer);
        const seen = view.get(peer);
        if (seen === undefined) {
          // A peer first heard of: joined, so alive in the view at once if it is.
          view.set(peer, { state: truth === 'alive' ? 'alive' : 'suspect', changedAt: now });
          continue;
        }
        if (seen.state === truth) {
          seen.changedAt = undefined;
          continue;
        }
        seen.changedAt ??= now;
        if (now - seen.changedAt >= this.delayMs || (truth === 'alive' && seen.state === 'suspect')) {
          seen.state = truth;
          seen.changedAt = undefined;
          this.changes++;
        }
      }
    }
  }

  /** The membership view `observer`'s meta service reads (its own process's failure detector). */
  viewFor(observer: NodeId): MembershipView {
    return {
      members: () => {
        const out: { id: NodeId; state: Liveness }[] = [{ id: observer, state: 'alive' }];
        for (const [id, s] of this.viewOf(observer)) out.push({ id, state: s.state });
        return out;
      },
      minority: () => {
        const view = this.viewOf(observer);
        let known = 1;
        let alive = 1;
        for (const s of view.values()) {
          if (s.state === 'left') continue;
          known++;
          if (s.state === 'alive') alive++;
        }
        return alive * 2 < known;
      },
    };
  }

  /** Whether `observer`'s view has `peer` alive. */
  alive(observer: NodeId, peer: NodeId): boolean {
    return peer === observer || this.viewOf(observer).get(peer)?.state === 'alive';
  }

  /** A restarted observer starts with a fresh view (a new SWIM process). */
  forget(observer: NodeId): void {
    this.views.delete(observer);
  }
}
