import type { GroupId } from '@cohort/core';
import { MemoryNodeStore } from '@cohort/storage';
import type { AcceptorState, AcceptorStore, Ballot, Vote } from '@cohort/vpaxos';
import type { Scheduler } from '../scheduler.js';
import type { SimKvImage } from './sim-kv.js';

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
  /** The durable compaction point (one group per simulated store), for the checker. */
  private compacted = 0;
  /** Reads the replica's state machine now (set by the replica on each start). */
  machineImage: (() => SimKvImage) | undefined;
  /**
   * The state machine as of the last durable write: a write's fsync makes the
   * applies before it durable too (SQLite's WAL order); a crash restarts the
   * machine from here.
   */
  durableImage: SimKvImage | undefined;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly latency: () => number,
    private readonly mutations: VpMutations = {},
  ) {}

  loadAcceptor(group: GroupId): AcceptorState {
    const s = this.store.loadAcceptor(group);
    return this.mutations.forgetPromises ? { ...s, maxBallot: 0 } : s;
  }

  async saveAcceptor(group: GroupId, maxBallot: Ballot | undefined, votes: Vote[], compactTo?: number): Promise<void> {
    this.groups.add(group);
    // What the machine applied before this write starts is durable once it is.
    const image = this.machineImage?.();
    await this.store.saveAcceptor(group, maxBallot, votes, compactTo);
    const epoch = this.epoch;
    const synced = new Promise<void>((resolve) => {
      this.scheduler.after(this.latency(), () => {
        if (epoch !== this.epoch) return;
        // The fsync: this write and every one before it are durable.
        this.store.sync();
        if (image !== undefined && image.index >= (this.durableImage?.index ?? 0)) this.durableImage = image;
        for (const v of votes) if (compactTo === undefined || v.slot > compactTo) this.durable.set(v.slot, { ...v });
        if (compactTo !== undefined && compactTo > this.compacted) {
          this.compacted = compactTo;
          for (const s of [...this.durable.keys()]) if (s <= compactTo) this.durable.delete(s);
        }
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
    for (const g of this.groups) {
      const s = this.store.loadAcceptor(g);
      for (const v of s.votes) this.durable.set(v.slot, v);
      this.compacted = s.compacted;
    }
  }

  /** The synced vote at `slot` (for the invariant checker). */
  durableVote(slot: number): Vote | undefined {
    return this.durable.get(slot);
  }

  /** The durable compaction point: slots up to it are held by the durable state machine (for the checker). */
  durableCompacted(): number {
    return this.compacted;
  }
}
