import type { GroupId } from '@cohort/core';
import type { AcceptorState, AcceptorStore, Ballot, Vote } from '@cohort/vpaxos';
import type { Scheduler } from '../scheduler.js';

/** Deliberate bugs for tests proving the simulator's checks fail. */
export interface VpMutations {
  /** The store acknowledges a write before it is durable (a crash loses acknowledged votes). */
  ackBeforeDurable?: boolean;
  /** A crash forgets the acceptor's promise (maxBallot back to 0). */
  forgetPromises?: boolean;
  /** The master activates a new primary without waiting out the previous lease. */
  skipLeaseWait?: boolean;
}

/**
 * A replica's acceptor state on a simulated disk: a write becomes durable
 * after a simulated latency; a crash loses every write not yet durable (and
 * its `saveAcceptor` promise never settles, as the process is gone).
 */
export class SimAcceptorStore implements AcceptorStore {
  private maxBallot: Ballot = 0;
  private readonly votes = new Map<number, Vote>();
  /** Bumped by a crash: a write of an earlier incarnation never lands. */
  private epoch = 0;
  /** Writes started and not yet durable. */
  inFlight = 0;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly latency: () => number,
    /** Deliberate bugs, for tests proving the checks fail. */
    private readonly mutations: VpMutations = {},
  ) {}

  loadAcceptor(_group: GroupId): AcceptorState {
    return { maxBallot: this.maxBallot, votes: [...this.votes.values()].map((v) => ({ ...v })) };
  }

  saveAcceptor(_group: GroupId, maxBallot: Ballot | undefined, votes: Vote[]): Promise<void> {
    const epoch = this.epoch;
    const copy = votes.map((v) => ({ ...v }));
    this.inFlight++;
    if (this.mutations.ackBeforeDurable) {
      this.scheduler.after(this.latency(), () => {
        if (epoch !== this.epoch) return;
        this.inFlight--;
        if (maxBallot !== undefined && maxBallot > this.maxBallot) this.maxBallot = maxBallot;
        for (const v of copy) this.votes.set(v.slot, v);
      });
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.scheduler.after(this.latency(), () => {
        if (epoch !== this.epoch) return;
        this.inFlight--;
        if (maxBallot !== undefined && maxBallot > this.maxBallot) this.maxBallot = maxBallot;
        for (const v of copy) this.votes.set(v.slot, v);
        resolve();
      });
    });
  }

  /** The process crashed: writes in flight are lost. */
  crash(): void {
    this.epoch++;
    this.inFlight = 0;
    if (this.mutations.forgetPromises) this.maxBallot = 0;
  }

  /** The durable vote at `slot` (for the invariant checker). */
  durableVote(slot: number): Vote | undefined {
    return this.votes.get(slot);
  }

  durableMaxBallot(): Ballot {
    return this.maxBallot;
  }
}
