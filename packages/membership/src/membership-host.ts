import {
  type AbortOptions,
  type Clock,
  CodecError,
  type Logger,
  type NodeId,
  Protocols,
  type Random,
  type TimerHandle,
  type Transport,
  silentLogger,
  systemClock,
  systemRandom,
} from '@cohort/core';
import { decodeSwim, encodeSwim } from './codec.js';
import type { SwimConfig } from './config.js';
import { NoSeedsReachableError } from './errors.js';
import { EVENT_CHANNEL_CAPACITY, EventChannel, type MembershipEvent } from './events.js';
import { JOIN_MAX_ATTEMPTS, type JoinBackoffOptions, joinBackoffDelay } from './join-backoff.js';
import type { PartitionStatus } from './partition-detector.js';
import { type Seed, formatSeed } from './seeds.js';
import { Swim, type SwimOutput } from './swim.js';
import type { Member, Tags } from './types.js';

/** Options of {@link MembershipHost}. */
export interface MembershipHostOptions {
  /** The transport (started and stopped by the caller, shared with other protocols). */
  readonly transport: Transport;
  /** The address other members reach this node at. */
  readonly address: string;
  /** @default systemClock */
  readonly clock?: Clock;
  /** @default systemRandom */
  readonly random?: Random;
  /** @default silentLogger */
  readonly logger?: Logger;
  /** This node's tags. @default {} */
  readonly tags?: Tags;
  /** Starting incarnation. @default 0 */
  readonly incarnation?: number;
  /** Protocol tunables. */
  readonly config?: Partial<SwimConfig>;
  /** How long one join attempt waits for a seed's answer. @default 1000 */
  readonly joinAttemptTimeoutMs?: number;
  /** Backoff between join attempts. */
  readonly joinBackoff?: JoinBackoffOptions;
  /** Upper bound on waiting for the leave announcement to spread. @default 5000 */
  readonly leaveTimeoutMs?: number;
  /** Events buffered per subscriber. @default 1000 */
  readonly eventCapacity?: number;
}

/**
 * Runs the {@link Swim} engine over a {@link Transport} (protocol
 * `Protocols.swim`) with a real clock: decodes frames, drives timers, sends
 * the engine's messages and publishes its events.
 */
export class MembershipHost {
  /** Membership events; `subscribe()` for a reader. */
  readonly events: EventChannel<MembershipEvent>;
  private readonly swim: Swim;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly log: Logger;
  private readonly opts: MembershipHostOptions;
  private readonly known = new Map<NodeId, string>();
  private readonly waiters = new Set<() => void>();
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private running = false;

  constructor(options: MembershipHostOptions) {
    this.opts = options;
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? systemRandom;
    this.log = (options.logger ?? silentLogger).child({ component: 'membership' });
    this.events = new EventChannel(options.eventCapacity ?? EVENT_CHANNEL_CAPACITY);
    this.swim = new Swim({
      self: options.transport.self,
      address: options.address,
      random: this.random,
      ...(options.tags ? { tags: options.tags } : {}),
      ...(options.incarnation !== undefined ? { incarnation: options.incarnation } : {}),
      ...(options.config ? { config: options.config } : {}),
    });
  }

  /** This node's id. */
  get self(): NodeId {
    return this.swim.self;
  }

  /** Whether the protocol runs (between start and stop/leave). */
  get isRunning(): boolean {
    return this.running;
  }

  /** This node's incarnation. */
  get incarnation(): number {
    return this.swim.incarnation;
  }

  /** Registers the protocol handler and starts the protocol timers. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.transport.handle(Protocols.swim, (from, frame) => this.onFrame(from, frame));
    this.apply(this.swim.tick(this.clock.now()));
  }

  /**
   * Joins the cluster through `seeds`: up to 10 attempts with exponential
   * backoff (100 ms to 10 s, ±25% jitter). Resolves with the number of live
   * members; rejects with NoSeedsReachableError naming the seeds.
   */
  async join(seeds: readonly Seed[], options: AbortOptions = {}): Promise<number> {
    this.start();
    const others = seeds.filter((s) => s.id !== this.self);
    if (others.length === 0) return this.swim.liveMembers().length;
    for (const s of others) this.learnAddress(s.id, s.address);
    for (let attempt = 0; attempt < JOIN_MAX_ATTEMPTS; attempt++) {
      options.signal?.throwIfAborted();
      this.apply(this.swim.join(others, this.clock.now()));
      if (await this.waitFor(() => this.swim.hasPeers(), this.opts.joinAttemptTimeoutMs ?? 1000)) {
        return this.swim.liveMembers().length;
      }
      if (attempt + 1 < JOIN_MAX_ATTEMPTS) {
        const delay = joinBackoffDelay(attempt, this.random, this.opts.joinBackoff);
        this.log.info('no seed answered; retrying', { attempt: attempt + 1, delayMs: Math.round(delay) });
        await this.sleep(delay);
      }
    }
    throw new NoSeedsReachableError(others.map(formatSeed), JOIN_MAX_ATTEMPTS);
  }

  /** Announces a graceful leave, waits (bounded) for it to spread, then stops. */
  async leave(): Promise<void> {
    if (!this.running) return;
    this.apply(this.swim.leave(this.clock.now()));
    await this.waitFor(() => this.swim.leaveDisseminated(), this.opts.leaveTimeoutMs ?? 5000);
    this.stop();
  }

  /** Stops timers and ignores further frames (no announcement: use {@link leave} for that). */
  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    for (const w of [...this.waiters]) w();
    this.events.close();
  }

  /** Every member of the local view, this node included. */
  members(): Member[] {
    return this.swim.members();
  }

  /**
   * The failure detector's phi for member `id` now (see `Swim.phi`): near 0
   * while its acks come as usual, rising while a probe waits; undefined before
   * enough acks, for this node and for members not alive or suspect.
   */
  phi(id: NodeId): number | undefined {
    return this.swim.phi(id, this.clock.now());
  }

  /** Live members whose tag `key` is `value`. */
  nodesWithTag(key: string, value: string): Member[] {
    return this.swim.nodesWithTag(key, value);
  }

  /** Live members carrying all of `tags`. */
  nodesWithAllTags(tags: Tags): Member[] {
    return this.swim.nodesWithAllTags(tags);
  }

  /** The split-brain detector's verdict. */
  partitionStatus(): PartitionStatus {
    return this.swim.partitionStatus();
  }

  /** Replaces this node's tags. */
  setTags(tags: Tags): void {
    this.apply(this.swim.setTags(tags, this.clock.now()));
  }

  private onFrame(from: NodeId, frame: Uint8Array): void {
    if (!this.running) return;
    try {
      this.apply(this.swim.step(from, decodeSwim(frame), this.clock.now()));
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      this.log.warn('dropped a bad membership frame', { from, error: e.message });
    }
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.running) this.apply(this.swim.tick(this.clock.now()));
  }

  private apply(out: SwimOutput): void {
    for (const m of out.messages) {
      if (m.address) this.learnAddress(m.to, m.address);
      const frame = encodeSwim(m.message);
      if (frame.length > this.transport.maxFrameBytes) {
        this.log.warn('membership frame exceeds the transport limit; not sent', { to: m.to, bytes: frame.length });
        continue;
      }
      this.transport.send(m.to, Protocols.swim, frame).catch((e: unknown) => {
        this.log.debug('membership send failed', { to: m.to, error: String(e) });
      });
    }
    for (const e of out.events) this.events.publish(e);
    for (const w of [...this.waiters]) w();
    if (this.running) this.schedule();
  }

  private schedule(): void {
    const at = this.swim.nextDeadline();
    if (at >= this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => this.onTimer(), Math.max(1, at - this.clock.now()));
  }

  private learnAddress(id: NodeId, address: string): void {
    if (this.known.get(id) === address) return;
    this.known.set(id, address);
    this.transport.addPeer(id, address);
  }

  /** Resolves true once `cond` holds (checked after every engine step), false after `ms`. */
  private waitFor(cond: () => boolean, ms: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (cond() || !this.running) finish(cond());
      };
      const finish = (ok: boolean): void => {
        this.waiters.delete(check);
        this.clock.clearTimeout(handle);
        resolve(ok);
      };
      const handle = this.clock.setTimeout(() => finish(cond()), ms);
      this.waiters.add(check);
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }
}
