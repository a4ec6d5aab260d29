import type { NodeId } from '@cohort/core';
import type { Ballot, Message, Proposal } from '@cohort/vpaxos';
import { InvariantViolationError, type RunPosition } from '../errors.js';
import { hashBytes } from '../trace.js';
import type { SimAcceptorStore } from './sim-acceptor-store.js';

/**
 * Vertical Paxos' safety properties, checked as the hosts report what they
 * did: no two values chosen for a slot; at most one active primary per
 * ballot; an acceptor never votes below its promise (across restarts); a
 * value is chosen only once every acceptor of its configuration holds it
 * durably; a lease read never misses a chosen value.
 */
export class VpInvariants {
  /** Hash of the value chosen at each slot. */
  private readonly chosen = new Map<number, number>();
  private readonly primaries = new Map<Ballot, NodeId>();
  /** The highest ballot each acceptor showed it promised (by a 1b, a reject or a 2b), never forgotten. */
  private readonly promised = new Map<NodeId, Ballot>();
  /** The highest slot any primary found chosen. */
  maxChosen = 0;
  /** The ballot the master activated last. */
  private masterActive: Ballot = 0;
  checks = 0;
  violation: InvariantViolationError | undefined;

  constructor(
    private readonly where: () => RunPosition,
    private readonly stores: (id: NodeId) => SimAcceptorStore | undefined,
  ) {}

  private fail(property: string, detail: string): never {
    const err = new InvariantViolationError(property, detail, this.where());
    this.violation ??= err;
    throw err;
  }

  private choose(node: NodeId, slot: number, value: Uint8Array): void {
    const h = hashBytes(value);
    const prev = this.chosen.get(slot);
    if (prev === undefined) this.chosen.set(slot, h);
    else if (prev !== h) this.fail('one value per slot', `${node} holds a different value chosen at slot ${slot}`);
  }

  /** A replica applied a chosen value. */
  onApply(node: NodeId, slot: number, value: Uint8Array): void {
    this.checks++;
    this.choose(node, slot, value);
  }

  /** A replica became the active primary of `ballot`. */
  onActivated(node: NodeId, ballot: Ballot): void {
    this.checks++;
    const prev = this.primaries.get(ballot);
    if (prev !== undefined && prev !== node)
      this.fail('one active primary per ballot', `${prev} and ${node} both active in ballot ${ballot}`);
    this.primaries.set(ballot, node);
  }

  /** A replica sent a message: its promise as others see it never goes back, and it never votes below it. */
  onSend(node: NodeId, msg: Message): void {
    const p = this.promised.get(node) ?? 0;
    if (msg.type === 'p2b') {
      this.checks++;
      if (msg.ballot < p)
        this.fail('no vote below maxBallot', `${node} acknowledged ballot ${msg.ballot} after promising ${p}`);
      this.promised.set(node, msg.ballot);
    } else if (msg.type === 'p1b') {
      this.promised.set(node, Math.max(p, msg.ballot));
    } else if (msg.type === 'reject') {
      this.promised.set(node, Math.max(p, msg.maxBallot));
    }
  }

  /** The active primary of `ballot` found `entries` chosen: every acceptor must hold each of them durably. */
  onChosen(node: NodeId, ballot: Ballot, acceptors: NodeId[], entries: Proposal[]): void {
    for (const e of entries) {
      this.checks++;
      for (const a of acceptors) {
        const store = this.stores(a);
        // A slot at or below the acceptor's durable compaction point is held by its durable state machine
        // (it applied the slot, or installed a snapshot holding it); one value per slot is checked on apply.
        if (store !== undefined && e.slot <= store.durableCompacted()) continue;
        const v = store?.durableVote(e.slot);
        if (!v || hashBytes(v.value) !== hashBytes(e.value)) {
          this.fail(
            'chosen only with every acceptor',
            `${node} (ballot ${ballot}) found slot ${e.slot} chosen but acceptor ${a} does not hold it durably`,
          );
        }
      }
      this.choose(node, e.slot, e.value);
      if (e.slot > this.maxChosen) this.maxChosen = e.slot;
    }
  }

  /** The master activated `ballot`. */
  onMasterActivated(ballot: Ballot): void {
    this.masterActive = Math.max(this.masterActive, ballot);
  }

  /**
   * A lease read is served at `index`: nothing beyond it may have been chosen,
   * and no newer primary may be active yet (the master waits out the lease).
   */
  onLeaseRead(node: NodeId, ballot: Ballot, index: number): void {
    this.checks++;
    if (ballot < this.masterActive) {
      this.fail(
        'lease read not stale',
        `${node} served a lease read in ballot ${ballot} after ballot ${this.masterActive} was activated`,
      );
    }
    if (index < this.maxChosen) {
      this.fail(
        'lease read not stale',
        `${node} (ballot ${ballot}) served a lease read at slot ${index}, but slot ${this.maxChosen} is chosen`,
      );
    }
  }
}
