import type { GroupId } from '@cohort/core';
import { MemoryNodeStore } from '@cohort/storage';
import type { AcceptorState, AcceptorStore, Ballot, Vote } from '@cohort/vpaxos';
import type { Scheduler } from '../scheduler.js';

/** Deliberate bugs for tests proving the simulator's checks fail. */
export interface VpMutations {
  /** The store acknowledges a write before it is durable (a crash loses acknowledged votes). */
  ackBeforeDurable?: boolean;
  /** A restarted acceptor forgets its promise (loads maxBallot 0). */
  forgetPromises?: boolean;
  /** The master activates a new primary without waiting out the previous lease. */
  skipLeaseWait?: boolean;
  /** Clients read from a replica that believes it is the active primary, with no confirmation or lease. */
  unconfirmedReads?: boolean;
}

/**
 * A replica's acceptor state in storage's {@link MemoryNodeStore} (the same
 * contract as the SQLite store) on a simulated disk: each write is synced
 * after a simulated latency and only then acknowledged; a crash loses every
 * write not yet synced (its `saveAcceptor` promise never settles, the process
 * is gone). Keeps a copy of the synced votes for the invariant checker.
 */
export class SimAcceptorStore implements AcceptorStore {
  private readonly store = new MemoryNodeStore({ autoSync: false, name: 'sim' });
  /** The synced votes by slot (what survives a crash), for the checker (one group per simulated store). */
  private readonly durable = new Map<number, Vote>();
  /** Bumped by a crash: a write of an earlier incarnation never lands. */
  private epoch = 0;
  /** The groups written, to rebuild the checker's copy after a crash. */
  private readonly groups = new Set<GroupId>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly latency: () => number,
    private readonly mutations: VpMutations = {},
  ) {}

  loadAcceptor(group: GroupId): AcceptorState {
    const s = this.store.loadAcceptor(group);
    return this.mutations.forgetPromises ? { ...s, maxBallot: 0 } : s;
  }

  async saveAcceptor(group: GroupId, maxBallot: Ballot | undefined, votes: Vote[]): Promise<void> {
    this.groups.add(group);
    await this.store.saveAcceptor(group, maxBallot, votes);
    const epoch = this.epoch;
    const synced = new Promise<void>((resolve) => {
      this.scheduler.after(this.latency(), () => {
        if (epoch !== this.epoch) return;
        // The fsync: this write and every one before it are durable.
        this.store.sync();
        for (const v of votes) this.durable.set(v.slot, { ...v });
        resolve();
      });
    });
    if (!this.mutations.ackBeforeDurable) await synced;
  }

  /** The process crashed: writes not synced are lost. */
  crash(): void {
    this.epoch++;
    this.store.crash();
    // Writes synced by a later sync were made durable with it; rebuild the checker's copy from the store.
    this.durable.clear();
    for (const g of this.groups) for (const v of this.store.loadAcceptor(g).votes) this.durable.set(v.slot, v);
  }

  /** The synced vote at `slot` (for the invariant checker). */
  durableVote(slot: number): Vote | undefined {
    return this.durable.get(slot);
  }
}
