import type { Millis, NodeId, SeededRandom } from '@cohort/core';
import type { Scheduler } from './scheduler.js';

/** Link behaviour of a {@link SimNetwork}; all probabilities are per message. */
export interface LinkFaults {
  /** Smallest one-way delay. @default 1 */
  minDelay: Millis;
  /** Largest one-way delay (uniform in between, so messages reorder). @default 10 */
  maxDelay: Millis;
  /** Probability a message is lost. @default 0 */
  dropRate: number;
  /** Probability a message is delivered twice. @default 0 */
  dupRate: number;
  /** Probability a message is held back by up to `spikeDelay` more (a late straggler). @default 0 */
  spikeRate: number;
  /** Extra delay of a straggler. @default 200 */
  spikeDelay: Millis;
}

/** Counters of what the network did. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  /** Lost to a partition or to a down receiver. */
  blocked: number;
}

/** Receives a message addressed to a node. */
export type Deliver<M> = (from: NodeId, msg: M) => void;

const DEFAULT_FAULTS: LinkFaults = {
  minDelay: 1,
  maxDelay: 10,
  dropRate: 0,
  dupRate: 0,
  spikeRate: 0,
  spikeDelay: 200,
};

/**
 * A simulated network carrying opaque messages between node ids, with delay,
 * loss, duplication, reordering and symmetric or one-way partitions. Every
 * random choice comes from the injected generator, so runs replay exactly.
 */
export class SimNetwork<M> {
  private readonly handlers = new Map<NodeId, Deliver<M>>();
  /** Directed links that are cut: `from -> to` is cut when `cut.get(from)` holds `to`. */
  private readonly cut = new Map<NodeId, Set<NodeId>>();
  private faults: LinkFaults;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, delayed: 0, blocked: 0 };
  // One stream per fault, so turning one on or off never changes the others' choices.
  private readonly delayRandom: SeededRandom;
  private readonly dropRandom: SeededRandom;
  private readonly dupRandom: SeededRandom;
  private readonly spikeRandom: SeededRandom;

  constructor(
    private readonly scheduler: Scheduler,
    random: SeededRandom,
    faults: Partial<LinkFaults> = {},
    /** Copies a message for each delivery, so receivers never share mutable state. */
    private readonly clone: (m: M) => M = (m) => m,
  ) {
    this.faults = { ...DEFAULT_FAULTS, ...faults };
    this.delayRandom = random.fork();
    this.dropRandom = random.fork();
    this.dupRandom = random.fork();
    this.spikeRandom = random.fork();
  }

  /** Replaces the link behaviour from now on. */
  setFaults(faults: Partial<LinkFaults>): void {
    this.faults = { ...this.faults, ...faults };
  }

  getFaults(): LinkFaults {
    return { ...this.faults };
  }

  /** Attaches a node; its messages are delivered to `deliver` until it is detached. */
  attach(id: NodeId, deliver: Deliver<M>): void {
    this.handlers.set(id, deliver);
  }

  /** Detaches a node (it crashed or left): messages to it are lost, including those in flight. */
  detach(id: NodeId): void {
    this.handlers.delete(id);
  }

  isAttached(id: NodeId): boolean {
    return this.handlers.has(id);
  }

  /** Cuts both directions between every node of `a` and every node of `b`. */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cutOneWay(x, y);
        this.cutOneWay(y, x);
      }
    }
  }

  /** Cuts only `from -> to`: `to` still reaches `from`. */
  cutOneWay(from: NodeId, to: NodeId): void {
    let s = this.cut.get(from);
    if (!s) {
      s = new Set();
      this.cut.set(from, s);
    }
    s.add(to);
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear();
  }

  /** Whether `from -> to` is currently cut. */
  isCut(from: NodeId, to: NodeId): boolean {
    // Most of a run has no partition: skip the lookup then.
    if (this.cut.size === 0) return false;
    return this.cut.get(from)?.has(to) === true;
  }

  /**
   * Sends `msg`; it arrives (or not) according to the faults and partitions
   * in force. `once` rules out duplication (a message on a stream, which a
   * connection delivers at most once); delay, loss and cuts still apply.
   */
  send(from: NodeId, to: NodeId, msg: M, once = false): void {
    this.stats.sent++;
    if (this.isCut(from, to)) {
      this.stats.blocked++;
      return;
    }
    const f = this.faults;
    if (f.dropRate > 0 && this.dropRandom.next() < f.dropRate) {
      this.stats.dropped++;
      return;
    }
    this.schedule(from, to, msg);
    if (!once && f.dupRate > 0 && this.dupRandom.next() < f.dupRate) {
      this.stats.duplicated++;
      this.schedule(from, to, msg);
    }
  }

  private schedule(from: NodeId, to: NodeId, msg: M): void {
    const f = this.faults;
    let delay = f.minDelay + this.delayRandom.next() * (f.maxDelay - f.minDelay);
    if (f.spikeRate > 0 && this.spikeRandom.next() < f.spikeRate) {
      this.stats.delayed++;
      delay += this.spikeRandom.next() * f.spikeDelay;
    }
    const copy = this.clone(msg);
    this.scheduler.after(Math.round(delay), () => this.deliver(from, to, copy));
  }

  private deliver(from: NodeId, to: NodeId, msg: M): void {
    // A partition or crash that began while the message was in flight still stops it.
    const h = this.handlers.get(to);
    if (!h || this.isCut(from, to)) {
      this.stats.blocked++;
      return;
    }
    this.stats.delivered++;
    h(from, msg);
  }
}
