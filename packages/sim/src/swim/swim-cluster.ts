import { type NodeId, SeededRandom } from '@cohort/core';
import {
  type MembershipEvent,
  type StateChange,
  Swim,
  type SwimConfig,
  type SwimOutput,
  decodeSwim,
  encodeSwim,
} from '@cohort/membership';
import { type LinkFaults, SimNetwork } from '../network.js';
import { type EventHandle, Scheduler } from '../scheduler.js';

/** Shape of a simulated SWIM cluster. */
export interface SwimClusterOptions {
  /** Members at the start, named m0..m(n-1), all knowing each other. */
  readonly size: number;
  /** Every random choice (network, engines) derives from it: a run replays exactly. */
  readonly seed: number;
  /** Engine tunables. @default the engine defaults */
  readonly config?: Partial<SwimConfig>;
  /** Link behaviour. @default 1 to 10 ms delay, no loss */
  readonly links?: Partial<LinkFaults>;
}

/** One state change seen by one member, at a simulated time. */
export interface Observation {
  readonly time: number;
  readonly observer: NodeId;
  readonly change: StateChange;
}

export interface SimMember {
  readonly id: NodeId;
  swim: Swim;
  up: boolean;
  wake: EventHandle | undefined;
  wakeAt: number;
}

/**
 * Whole SWIM clusters in one process on the simulator's scheduler and network:
 * frames go through the real codec, time is simulated, faults are seeded.
 */
export class SwimCluster {
  readonly scheduler = new Scheduler();
  readonly network: SimNetwork<Uint8Array>;
  readonly members = new Map<NodeId, SimMember>();
  /** Extra one-way delay of messages from or to a member (a slow but alive member). */
  readonly slow = new Map<NodeId, number>();
  /** Messages and bytes sent, by sender. */
  readonly sent = new Map<NodeId, { messages: number; bytes: number }>();
  readonly seed: number;
  private readonly random: SeededRandom;
  private readonly config: Partial<SwimConfig>;
  private readonly changeListeners: ((o: Observation) => void)[] = [];
  private readonly eventListeners: ((observer: NodeId, e: MembershipEvent) => void)[] = [];
  private nextId: number;

  constructor(options: SwimClusterOptions) {
    this.seed = options.seed;
    const root = new SeededRandom(options.seed);
    this.network = new SimNetwork<Uint8Array>(this.scheduler, root.fork(), options.links ?? {});
    this.random = root.fork();
    this.config = options.config ?? {};
    this.nextId = options.size;
    for (let i = 0; i < options.size; i++) this.create(`m${i}`);
    const all = [...this.members.values()].map((m) => m.swim.member(m.id)!);
    for (const m of this.members.values()) m.swim.bootstrap(all);
    for (const m of this.members.values()) this.reschedule(m);
  }

  /** Simulated milliseconds since the start. */
  get now(): number {
    return this.scheduler.now();
  }

  /** The base protocol period. */
  get periodMs(): number {
    return this.config.probeIntervalMs ?? 1000;
  }

  onChange(fn: (o: Observation) => void): void {
    this.changeListeners.push(fn);
  }

  onEvent(fn: (observer: NodeId, e: MembershipEvent) => void): void {
    this.eventListeners.push(fn);
  }

  /** Ids of members whose process runs. */
  liveIds(): NodeId[] {
    return [...this.members.values()].filter((m) => m.up).map((m) => m.id);
  }

  /** What `observer` believes about `id`. */
  stateOf(observer: NodeId, id: NodeId): string | undefined {
    return this.members.get(observer)?.swim.member(id)?.state;
  }

  swim(id: NodeId): Swim {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id} (seed ${this.seed})`);
    return m.swim;
  }

  /** Runs `ms` of simulated time, or until `stop` holds (checked between events). */
  run(ms: number, stop: () => boolean = () => false): boolean {
    this.scheduler.runUntil(this.now + ms, stop);
    return stop();
  }

  /** Stops a member's process without a word. */
  crash(id: NodeId): void {
    const m = this.members.get(id);
    if (!m) return;
    m.up = false;
    if (m.wake) this.scheduler.cancel(m.wake);
    m.wake = undefined;
    this.network.detach(id);
  }

  /** Starts a new member (or a restarted one under an old id) and joins it through `seed`. */
  join(seed: NodeId, id: NodeId = `m${this.nextId++}`): NodeId {
    const m = this.create(id);
    const seedMember = this.swim(seed).member(seed);
    this.emit(m, m.swim.join([{ id: seed, address: seedMember?.address ?? seed }], this.now));
    return id;
  }

  /** Starts a graceful leave; the process stops once the announcement spread (or after 5 s). */
  leave(id: NodeId): void {
    const m = this.members.get(id);
    if (!m?.up) return;
    this.emit(m, m.swim.leave(this.now));
    const deadline = this.now + 5000;
    const check = (): void => {
      if (!m.up) return;
      if (m.swim.leaveDisseminated() || this.now >= deadline) this.crash(id);
      else this.scheduler.after(50, check);
    };
    this.scheduler.after(50, check);
  }

  /** A random live member id, from the cluster's own stream. */
  pickLive(exclude: readonly NodeId[] = []): NodeId {
    const ids = this.liveIds().filter((x) => !exclude.includes(x));
    const id = ids[this.random.int(0, ids.length - 1)];
    if (id === undefined) throw new Error(`no live member to pick (seed ${this.seed})`);
    return id;
  }

  /** The cluster's random stream (for scenario choices). */
  get rng(): SeededRandom {
    return this.random;
  }

  private create(id: NodeId): SimMember {
    this.crash(id);
    const swim = new Swim({ self: id, address: id, random: this.random.fork(), config: this.config });
    const m: SimMember = { id, swim, up: true, wake: undefined, wakeAt: Number.POSITIVE_INFINITY };
    this.members.set(id, m);
    this.sent.set(id, this.sent.get(id) ?? { messages: 0, bytes: 0 });
    this.network.attach(id, (from, frame) => {
      if (m.up) this.emit(m, m.swim.step(from, decodeSwim(frame), this.now));
    });
    return m;
  }

  private emit(m: SimMember, out: SwimOutput): void {
    const counter = this.sent.get(m.id)!;
    for (const o of out.messages) {
      const frame = encodeSwim(o.message);
      counter.messages += 1;
      counter.bytes += frame.length;
      const extra = (this.slow.get(m.id) ?? 0) + (this.slow.get(o.to) ?? 0);
      if (extra > 0) this.scheduler.after(extra, () => this.network.send(m.id, o.to, frame));
      else this.network.send(m.id, o.to, frame);
    }
    for (const change of out.changes) {
      for (const fn of this.changeListeners) fn({ time: this.now, observer: m.id, change });
    }
    for (const e of out.events) for (const fn of this.eventListeners) fn(m.id, e);
    this.reschedule(m);
  }

  private reschedule(m: SimMember): void {
    if (!m.up) return;
    const at = Math.max(this.now, m.swim.nextDeadline());
    if (m.wake && !m.wake.cancelled && m.wakeAt <= at) return;
    if (m.wake) this.scheduler.cancel(m.wake);
    m.wakeAt = at;
    m.wake = this.scheduler.at(at, () => {
      m.wake = undefined;
      m.wakeAt = Number.POSITIVE_INFINITY;
      if (m.up) this.emit(m, m.swim.tick(this.now));
    });
  }
}
