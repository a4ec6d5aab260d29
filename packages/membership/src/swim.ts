import type { NodeId, Random } from '@cohort/core';
import { type SwimConfig, resolveSwimConfig } from './config.js';
import type { MembershipEvent } from './events.js';
import { GossipQueue, Priority, updateSize } from './gossip-queue.js';
import { supersedes } from './incarnation.js';
import { LocalHealth } from './local-health.js';
import type { SwimMessage } from './messages.js';
import { PartitionDetector, type PartitionStatus } from './partition-detector.js';
import { PhiAccrualDetector } from './phi-accrual.js';
import { Suspicion, suspicionBounds } from './suspicion.js';
import { filterByAllTags, filterByTag, sameTags, validateTags } from './tags.js';
import type { Member, MemberState, MemberUpdate, Tags } from './types.js';

/** Options of {@link Swim}. */
export interface SwimOptions {
  /** This node's id. */
  readonly self: NodeId;
  /** Where others reach this node (handed to their Transport.addPeer). */
  readonly address: string;
  /** The only randomness the engine uses (probe order, target choice). */
  readonly random: Random;
  /** This node's tags. @default {} */
  readonly tags?: Tags;
  /** Starting incarnation; a restarted node learns its old one from the cluster and refutes above it. @default 0 */
  readonly incarnation?: number;
  /** Protocol tunables; see {@link SwimConfig}. */
  readonly config?: Partial<SwimConfig>;
}

/** One message for the host to send. `address` is set when the engine knows it. */
export interface Outgoing {
  readonly to: NodeId;
  readonly address?: string;
  readonly message: SwimMessage;
}

/** A state change applied to the local view; `local` when this node originated it (its own probe or timer). */
export interface StateChange {
  readonly id: NodeId;
  readonly from: MemberState | undefined;
  readonly to: MemberState;
  readonly incarnation: number;
  readonly local: boolean;
}

/** The work one input produced: messages to send, events to publish, state changes applied. */
export interface SwimOutput {
  readonly messages: Outgoing[];
  readonly events: MembershipEvent[];
  readonly changes: StateChange[];
}

/** Counters for measurement. */
export interface SwimStats {
  probes: number;
  probeFailures: number;
  suspicionsRaised: number;
  deathsDeclared: number;
  refutations: number;
  phiDeferrals: number;
  /** Full-state exchanges started because this node was paused or declared dead, so it missed gossip. */
  resyncs: number;
}

interface MemberRecord {
  id: NodeId;
  address: string;
  state: MemberState;
  incarnation: number;
  tags: Tags;
  suspicion: Suspicion | undefined;
}

interface Probe {
  readonly target: NodeId;
  readonly seq: number;
  readonly sentAt: number;
  readonly ackDeadline: number;
  readonly periodEnd: number;
  indirect: boolean;
  expectedNacks: number;
  nacks: number;
  acked: boolean;
}

const RECENT_PROBES = 256;

/**
 * The SWIM + Lifeguard membership engine, pure: time comes in as `now`
 * arguments, randomness from the injected Random, and every input returns
 * the messages to send and the events to publish.
 *
 * Failure detection combines SWIM and phi accrual this way: a probe that got
 * no ack (directly or through K relays) within the period makes the target
 * suspect only if the phi of its ack round trips, evaluated at the time
 * elapsed since the unanswered ping, is at or above the threshold, or if
 * there is no verdict yet (fewer than 5 samples). Otherwise the probe is held
 * open and the target becomes suspect once phi crosses, unless a late ack
 * arrives first; late acks are samples too, so a member that is slow but
 * alive raises its own mean and is not flapped.
 */
export class Swim {
  /** This node's id. */
  readonly self: NodeId;
  private readonly cfg: SwimConfig;
  private readonly random: Random;
  private readonly table = new Map<NodeId, MemberRecord>();
  /** Every id in the table, for O(1) random sampling. */
  private readonly ids: NodeId[] = [];
  private readonly suspects = new Set<NodeId>();
  private nLive = 0;
  private nDead = 0;
  /** Earliest suspicion deadline, recomputed lazily after any suspicion changed. */
  private suspicionMin: number | undefined;
  private readonly queue: GossipQueue;
  private readonly health: LocalHealth;
  private readonly partition: PartitionDetector;
  private readonly detectors = new Map<NodeId, PhiAccrualDetector>();
  private readonly recentProbes = new Map<number, { target: NodeId; sentAt: number }>();
  private readonly held = new Map<NodeId, { sentAt: number }>();
  private readonly relays = new Map<number, { requester: NodeId; seq: number; deadline: number }>();
  private probeOrder: NodeId[] = [];
  private probeIndex = 0;
  private probe: Probe | undefined;
  private seq = 0;
  private started = false;
  private nextProbeAt = 0;
  private nextGossipAt = 0;
  private nextPushPullAt = 0;
  private nextReconnectAt = 0;
  private partitionKind: PartitionStatus['kind'] = 'healthy';
  private lastPartition: PartitionStatus;
  private leaving = false;
  /** When tick last ran; a gap far beyond any timer means the process was paused (SIGSTOP, a long GC, a VM stall). */
  private lastTickAt: number | undefined;
  /** Set when this node learns it was declared dead: it missed the gossip of that time and asks for a full state. */
  private resyncWanted = false;
  private out: SwimOutput = { messages: [], events: [], changes: [] };
  /** Counters for measurement. */
  readonly stats: SwimStats = {
    probes: 0,
    probeFailures: 0,
    suspicionsRaised: 0,
    deathsDeclared: 0,
    refutations: 0,
    resyncs: 0,
    phiDeferrals: 0,
  };

  constructor(options: SwimOptions) {
    this.cfg = resolveSwimConfig(options.config);
    this.self = options.self;
    this.random = options.random;
    const tags = { ...(options.tags ?? {}) };
    validateTags(tags, this.cfg.tagLimits);
    this.insert({
      id: this.self,
      address: options.address,
      state: 'alive',
      incarnation: options.incarnation ?? 0,
      tags,
      suspicion: undefined,
    });
    this.queue = new GossipQueue({
      maxPerMessage: this.cfg.maxGossipPerMessage,
      maxBytes: this.cfg.maxGossipBytes,
      retransmitMult: this.cfg.retransmitMult,
    });
    this.health = new LocalHealth(this.cfg.awarenessMaxMultiplier);
    this.partition = new PartitionDetector(this.cfg.partition);
    this.lastPartition = { kind: 'healthy', reachable: 1, expected: 1 };
  }

  // ---------------------------------------------------------------- queries

  /** Every member of the local view, this node included. */
  members(): Member[] {
    return [...this.table.values()].map(toMember);
  }

  /**
   * Phi accrual suspicion of member `id` at `now`: how unlikely the wait of
   * the probe still unanswered by it is (0 waited when none is), against the
   * round trips of its past acks. Undefined before enough acks (no verdict),
   * and for a member not alive or suspect (not probed).
   */
  phi(id: NodeId, now: number): number | undefined {
    const r = this.table.get(id);
    const d = this.detectors.get(id);
    if (!r || !d || !isLive(r.state) || id === this.self) return undefined;
    let waited = 0;
    if (this.probe?.target === id && !this.probe.acked) waited = now - this.probe.sentAt;
    const h = this.held.get(id);
    if (h) waited = Math.max(waited, now - h.sentAt);
    const phi = d.phiOf(waited);
    return phi === undefined ? undefined : Math.max(0, phi);
  }

  /** One member, if known. */
  member(id: NodeId): Member | undefined {
    const r = this.table.get(id);
    return r ? toMember(r) : undefined;
  }

  /** This node's incarnation. */
  get incarnation(): number {
    return this.me().incarnation;
  }

  /** Lifeguard's local health score (0 is healthy). */
  get healthScore(): number {
    return this.health.score;
  }

  /** Members believed alive or suspect (not dead or left), this node included. */
  liveMembers(): Member[] {
    return this.members().filter((m) => m.state === 'alive' || m.state === 'suspect');
  }

  /** Live members whose tag `key` is `value`. */
  nodesWithTag(key: string, value: string): Member[] {
    return filterByTag(this.liveMembers(), key, value);
  }

  /** Live members carrying all of `tags`. */
  nodesWithAllTags(tags: Tags): Member[] {
    return filterByAllTags(this.liveMembers(), tags);
  }

  /** The partition detector's last verdict. */
  partitionStatus(): PartitionStatus {
    return this.lastPartition;
  }

  /** Whether another live member is known (a join succeeded). */
  hasPeers(): boolean {
    return this.nLive - (isLive(this.me().state) ? 1 : 0) > 0;
  }

  /** After {@link leave}: whether the leave announcement was sent as often as dissemination needs. */
  leaveDisseminated(): boolean {
    return this.leaving && (this.queue.peek(this.self) === undefined || !this.hasPeers());
  }

  /** Queued updates not yet fully disseminated. */
  get pendingBroadcasts(): number {
    return this.queue.size;
  }

  /** The earliest time at which {@link tick} has something to do. */
  nextDeadline(): number {
    let t = this.started ? this.nextProbeAt : 0;
    const p = this.probe;
    if (p && !p.acked) t = Math.min(t, p.indirect ? p.periodEnd : p.ackDeadline);
    if (this.queue.size > 0) t = Math.min(t, this.nextGossipAt);
    t = Math.min(t, this.nextPushPullAt);
    for (const r of this.relays.values()) t = Math.min(t, r.deadline);
    t = Math.min(t, this.earliestSuspicion());
    if (this.nDead > 0) t = Math.min(t, this.nextReconnectAt);
    const pd = this.partition.deadline();
    if (pd !== undefined && this.partitionKind !== 'partitioned') t = Math.min(t, pd);
    return t;
  }

  // ---------------------------------------------------------------- inputs

  /** Starts from a known member list (restored state or deployment config); emits no events. */
  bootstrap(members: readonly MemberUpdate[]): void {
    for (const u of members) {
      if (u.id === this.self || this.table.has(u.id)) continue;
      this.insert({ ...u, tags: { ...u.tags }, suspicion: undefined });
      this.addToProbeOrder(u.id);
    }
  }

  /** Asks each seed for its member list (the host retries with backoff until {@link hasPeers}). */
  join(seeds: readonly { id: NodeId; address: string }[], now: number): SwimOutput {
    this.start(now);
    for (const s of seeds) {
      if (s.id === this.self) continue;
      this.send(s.id, { type: 'push-pull', reply: false, join: true, members: this.fullState() }, s.address);
    }
    return this.flush();
  }

  /** Announces a graceful leave; keep ticking until {@link leaveDisseminated} (with a bound), then stop. */
  leave(now: number): SwimOutput {
    this.start(now);
    const me = this.me();
    if (!this.leaving) {
      this.leaving = true;
      me.incarnation += 1;
      this.setState(me, 'left');
      this.queue.enqueue(this.updateOf(me), Priority.Critical);
      this.gossipRound(now);
    }
    return this.flush();
  }

  /** Replaces this node's tags and spreads them at High priority. */
  setTags(tags: Tags, now: number): SwimOutput {
    validateTags(tags, this.cfg.tagLimits);
    this.start(now);
    const me = this.me();
    me.tags = { ...tags };
    me.incarnation += 1;
    this.queue.enqueue(this.updateOf(me), Priority.High);
    return this.flush();
  }

  /** Advances timers to `now`. */
  tick(now: number): SwimOutput {
    this.start(now);
    // The host ticks at least once per (stretched) probe period; a much longer gap means this process
    // stood still, and the updates gossiped meanwhile (tags, deaths, joins) were retransmitted to others only.
    const paused = this.lastTickAt !== undefined && now - this.lastTickAt > this.pauseGapMs();
    this.lastTickAt = now;
    if (paused || this.resyncWanted) this.resync(undefined);
    this.tickProbe(now);
    for (const [seq, r] of this.relays) {
      if (now < r.deadline) continue;
      // Lifeguard: a relay that got no ack answers with a nack, so the requester learns the relay is fine.
      this.relays.delete(seq);
      this.send(r.requester, { type: 'nack', seq: r.seq, gossip: this.piggyback(r.requester, 0) });
    }
    this.checkHeld(now);
    this.checkSuspicions(now);
    if (this.queue.size > 0 && now >= this.nextGossipAt) this.gossipRound(now);
    if (now >= this.nextPushPullAt) {
      this.nextPushPullAt = now + this.pushPullInterval();
      const peer = this.pick((r) => isLive(r.state) && r.id !== this.self, 1)[0];
      if (peer && !this.leaving) this.pushPull(peer.id, false);
    }
    if (now >= this.nextReconnectAt) {
      this.nextReconnectAt = now + this.cfg.reconnectIntervalMs;
      const dead = this.nDead > 0 ? this.pick((r) => r.state === 'dead', 1)[0] : undefined;
      if (dead && !this.leaving) this.pushPull(dead.id, false);
    }
    this.checkPartition(now);
    return this.flush();
  }

  /** Handles one message from `from`. */
  step(from: NodeId, message: SwimMessage, now: number): SwimOutput {
    this.start(now);
    if (message.type === 'push-pull') {
      for (const u of message.members) this.apply(u, now, true);
      if (!message.reply) this.pushPull(from, true);
      // A full-state exchange: whatever it said about us, this node now holds the sender's view.
      this.resyncWanted = false;
      this.checkPartition(now);
      return this.flush();
    }
    for (const u of message.gossip) this.apply(u, now, false);
    if (this.resyncWanted) this.resync(from);
    switch (message.type) {
      case 'ping':
        if (message.target === this.self) {
          this.send(from, { type: 'ack', seq: message.seq, gossip: this.piggyback(from, 0) });
        }
        break;
      case 'ack':
        this.onAck(message.seq, now);
        break;
      case 'nack':
        this.onNack(message.seq, now);
        break;
      case 'ping-req': {
        if (message.target === this.self) break;
        const seq = this.nextSeq();
        // The nack fires before the requester's period ends (it sent the ping-req one probe timeout in).
        const deadline = now + 0.8 * this.cfg.probeTimeoutMs;
        this.relays.set(seq, { requester: from, seq: message.seq, deadline });
        this.send(
          message.target,
          { type: 'ping', seq, target: message.target, gossip: this.piggyback(message.target, 0) },
          message.targetAddress,
        );
        break;
      }
      case 'gossip':
        break;
      default: {
        const never: never = message;
        throw new Error(`unhandled swim message ${String(never)}`);
      }
    }
    this.checkPartition(now);
    return this.flush();
  }

  // ---------------------------------------------------------------- probing

  private tickProbe(now: number): void {
    const p = this.probe;
    if (p && !p.acked && !p.indirect && now >= p.ackDeadline) {
      p.indirect = true;
      const target = this.table.get(p.target);
      const relays = this.pick(
        (r) => r.state === 'alive' && r.id !== this.self && r.id !== p.target,
        this.cfg.indirectChecks,
      );
      p.expectedNacks = relays.length;
      for (const r of relays) {
        this.send(r.id, {
          type: 'ping-req',
          seq: p.seq,
          target: p.target,
          targetAddress: target?.address ?? '',
          gossip: this.piggyback(r.id, 0),
        });
      }
    }
    if (p && now >= p.periodEnd) {
      this.probe = undefined;
      if (!p.acked) this.probeFailed(p, now);
    }
    if (this.probe === undefined && now >= this.nextProbeAt) {
      if (this.leaving) this.nextProbeAt = now + this.cfg.probeIntervalMs;
      else this.startProbe(now);
    }
  }

  private startProbe(now: number): void {
    const period = this.health.scale(this.cfg.probeIntervalMs);
    this.nextProbeAt = now + period;
    const target = this.nextTarget();
    if (target === undefined) return;
    const seq = this.nextSeq();
    this.stats.probes += 1;
    this.probe = {
      target: target.id,
      seq,
      sentAt: now,
      ackDeadline: now + this.health.scale(this.cfg.probeTimeoutMs),
      periodEnd: now + period,
      indirect: false,
      expectedNacks: 0,
      nacks: 0,
      acked: false,
    };
    this.rememberProbe(seq, target.id, now);
    // Lifeguard buddy system: a suspect target hears of its suspicion first, so it can refute at once.
    const buddy = target.state === 'suspect' ? [this.updateOf(target)] : [];
    const reserved = buddy.reduce((n, u) => n + updateSize(u), 0);
    this.send(target.id, {
      type: 'ping',
      seq,
      target: target.id,
      gossip: [...buddy, ...this.piggyback(target.id, reserved, buddy.length)],
    });
  }

  private onAck(seq: number, now: number): void {
    const relay = this.relays.get(seq);
    if (relay) {
      this.relays.delete(seq);
      this.send(relay.requester, { type: 'ack', seq: relay.seq, gossip: this.piggyback(relay.requester, 0) });
      return;
    }
    const sent = this.recentProbes.get(seq);
    if (sent) {
      this.recentProbes.delete(seq);
      this.detector(sent.target).addSample(now - sent.sentAt);
      this.held.delete(sent.target);
      const r = this.table.get(sent.target);
      // It answered the last-chance probe without a refutation reaching us: alive now, so suspect afresh.
      if (r?.state === 'suspect' && r.suspicion?.lastChanceSeq === seq) {
        r.suspicion = this.newSuspicion(this.self, now);
        this.suspicionMin = undefined;
      }
    }
    const p = this.probe;
    if (p && p.seq === seq && !p.acked) {
      p.acked = true;
      this.health.apply(-1);
    }
  }

  private onNack(seq: number, now: number): void {
    const p = this.probe;
    if (!p || p.seq !== seq) return;
    p.nacks += 1;
    // Every relay reached us and none reached the target: the outcome is known, so do not wait out the period.
    if (p.indirect && !p.acked && p.expectedNacks > 0 && p.nacks >= p.expectedNacks) {
      this.probe = undefined;
      this.probeFailed(p, now);
    }
  }

  private probeFailed(p: Probe, now: number): void {
    this.stats.probeFailures += 1;
    // Lifeguard LHA: relays that did not even nack point at our own slowness; a plain miss counts once.
    this.health.apply(p.expectedNacks > 0 ? p.expectedNacks - p.nacks : 1);
    const r = this.table.get(p.target);
    if (!r || !isLive(r.state)) return;
    if (r.state === 'alive' && !this.phiSaysDown(p.target, now - p.sentAt)) {
      this.stats.phiDeferrals += 1;
      // Phi is of the time since the first ping left unanswered: a later failed probe must not restart it.
      if (!this.held.has(p.target)) this.held.set(p.target, { sentAt: p.sentAt });
      return;
    }
    this.accuse(r, now);
  }

  private phiSaysDown(target: NodeId, elapsed: number): boolean {
    const d = this.detectors.get(target);
    const phi = d?.phiOf(elapsed);
    return phi === undefined || phi >= (d?.threshold ?? 0);
  }

  private checkHeld(now: number): void {
    for (const [id, h] of this.held) {
      const r = this.table.get(id);
      if (!r || r.state !== 'alive') {
        this.held.delete(id);
      } else if (this.phiSaysDown(id, now - h.sentAt)) {
        this.held.delete(id);
        this.accuse(r, now);
      }
    }
  }

  private accuse(r: MemberRecord, now: number): void {
    if (r.state === 'alive') this.stats.suspicionsRaised += 1;
    this.apply({ ...this.updateOf(r), state: 'suspect', by: this.self }, now, false, true);
  }

  private checkSuspicions(now: number): void {
    if (now < this.earliestSuspicion()) return;
    for (const id of [...this.suspects]) {
      const r = this.table.get(id);
      if (!r || r.state !== 'suspect' || !r.suspicion || now < r.suspicion.deadline()) continue;
      if (r.suspicion.lastChanceSeq === undefined && !this.leaving) {
        this.lastChanceProbe(r, now);
        continue;
      }
      this.stats.deathsDeclared += 1;
      this.apply({ ...this.updateOf(r), state: 'dead' }, now, false, true);
    }
  }

  /**
   * Before declaring a suspect dead, probe it once more (directly and through
   * K relays) carrying its suspicion: a live member that missed the gossip
   * refutes in its ack. A member that is really gone costs one period more.
   */
  private lastChanceProbe(r: MemberRecord, now: number): void {
    const seq = this.nextSeq();
    r.suspicion?.extend(now + this.health.scale(this.cfg.probeIntervalMs), seq);
    this.suspicionMin = undefined;
    this.rememberProbe(seq, r.id, now);
    const buddy = [this.updateOf(r)];
    this.send(r.id, { type: 'ping', seq, target: r.id, gossip: buddy });
    const relays = this.pick(
      (x) => x.state === 'alive' && x.id !== this.self && x.id !== r.id,
      this.cfg.indirectChecks,
    );
    for (const x of relays) {
      this.send(x.id, { type: 'ping-req', seq, target: r.id, targetAddress: r.address, gossip: buddy });
    }
  }

  private rememberProbe(seq: number, target: NodeId, now: number): void {
    this.recentProbes.set(seq, { target, sentAt: now });
    if (this.recentProbes.size > RECENT_PROBES) {
      const oldest = this.recentProbes.keys().next().value;
      if (oldest !== undefined) this.recentProbes.delete(oldest);
    }
  }

  private nextTarget(): MemberRecord | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (this.probeIndex < this.probeOrder.length) {
        const id = this.probeOrder[this.probeIndex++];
        const r = id === undefined ? undefined : this.table.get(id);
        if (r && r.id !== this.self && isLive(r.state)) return r;
      }
      // A full round done: reshuffle the live members (SWIM §4.3: round-robin over a random order).
      this.probeOrder = [...this.table.values()].filter((r) => r.id !== this.self && isLive(r.state)).map((r) => r.id);
      shuffle(this.probeOrder, this.random);
      this.probeIndex = 0;
    }
    return undefined;
  }

  private addToProbeOrder(id: NodeId): void {
    // New members go to a random position so they are probed within one round.
    const at = this.random.int(this.probeIndex, this.probeOrder.length);
    this.probeOrder.splice(at, 0, id);
  }

  // ---------------------------------------------------------------- state

  private apply(u: MemberUpdate, now: number, fromPushPull: boolean, local = false): void {
    if (u.id === this.self) {
      this.applyAboutSelf(u);
      return;
    }
    const r = this.table.get(u.id);
    if (!r) {
      if (u.state !== 'alive' && !fromPushPull) return;
      const rec: MemberRecord = { ...u, tags: { ...u.tags }, suspicion: undefined };
      this.insert(rec);
      this.addToProbeOrder(u.id);
      if (u.state === 'suspect') rec.suspicion = this.newSuspicion(u.by ?? this.self, now);
      this.out.changes.push({ id: u.id, from: undefined, to: u.state, incarnation: u.incarnation, local });
      if (u.state === 'alive') {
        this.out.events.push({ type: 'NodeJoined', member: toMember(rec) });
        this.queue.enqueue(u, Priority.Medium);
      }
      return;
    }
    if (!supersedes(u, r)) {
      // Lifeguard: another independent accuser of a current suspicion shortens its timeout.
      if (u.state === 'suspect' && r.state === 'suspect' && u.incarnation === r.incarnation && r.suspicion) {
        this.suspicionMin = undefined;
        if (r.suspicion.confirm(u.by ?? u.id))
          this.queue.enqueue({ ...this.updateOf(r), by: u.by ?? this.self }, Priority.Critical);
      }
      return;
    }
    const prev = r.state;
    const tagsChanged = !sameTags(r.tags, u.tags);
    // A suspicion belongs to one incarnation: a newer one starts its own timer.
    const sameSuspicion = prev === 'suspect' && r.incarnation === u.incarnation;
    const prevIncarnation = r.incarnation;
    r.incarnation = u.incarnation;
    this.setState(r, u.state);
    r.address = u.address || r.address;
    if (u.state === 'alive') r.tags = { ...u.tags };
    this.suspicionMin = undefined;
    if (u.state !== 'suspect') r.suspicion = undefined;
    else if (!sameSuspicion || !r.suspicion) r.suspicion = this.newSuspicion(u.by ?? this.self, now);
    if (prev !== u.state)
      this.out.changes.push({ id: u.id, from: prev, to: u.state, incarnation: u.incarnation, local });
    let priority: Priority = Priority.Medium;
    switch (u.state) {
      case 'alive':
        if (prev === 'dead') this.out.events.push({ type: 'NodeRecovered', id: u.id, incarnation: u.incarnation });
        if (prev === 'left') this.out.events.push({ type: 'NodeJoined', member: toMember(r) });
        if (tagsChanged && isLive(prev)) {
          this.out.events.push({ type: 'TagsUpdated', id: u.id, tags: r.tags });
          priority = Priority.High;
        }
        // A higher incarnation with the same tags is a refutation, even where no accusation was held: others may hold one.
        if (prev !== 'alive' || (u.incarnation > prevIncarnation && !tagsChanged)) priority = Priority.Refutation;
        // Dead and left members drop out of the round at its next reshuffle; bring a returning one back.
        if (!isLive(prev)) this.addToProbeOrder(u.id);
        break;
      case 'suspect':
        priority = Priority.Critical;
        break;
      case 'dead':
        if (isLive(prev)) this.out.events.push({ type: 'NodeFailed', id: u.id, incarnation: u.incarnation });
        priority = Priority.Critical;
        break;
      case 'left':
        if (prev !== 'left') this.out.events.push({ type: 'NodeLeft', id: u.id });
        priority = Priority.Critical;
        break;
    }
    this.queue.enqueue(
      u.state === 'suspect' ? { ...this.updateOf(r), by: u.by ?? this.self } : this.updateOf(r),
      priority,
    );
  }

  private applyAboutSelf(u: MemberUpdate): void {
    const me = this.me();
    if (this.leaving) return;
    if (u.state !== 'alive' && u.incarnation < me.incarnation) {
      // Someone still holds an older accusation (it missed our refutation): say we are alive again.
      if (this.queue.peek(this.self) === undefined) this.queue.enqueue(this.updateOf(me), Priority.Refutation);
      return;
    }
    if (u.state === 'alive' && u.incarnation <= me.incarnation) return;
    // SWIM §4.2: refute suspicion (or an older life's state) with a higher incarnation.
    me.incarnation = u.incarnation + 1;
    this.stats.refutations += 1;
    // Declared dead, this node was left out of the gossip since (memberlist pushes and pulls on a rejoin too).
    if (u.state === 'dead') this.resyncWanted = true;
    this.queue.enqueue(this.updateOf(me), Priority.Refutation);
  }

  private newSuspicion(accuser: NodeId, now: number): Suspicion {
    const n = this.liveCount();
    const { minMs, maxMs } = suspicionBounds(
      n,
      this.cfg.probeIntervalMs,
      this.cfg.suspicionMult,
      this.cfg.suspicionMaxTimeoutMult,
    );
    const expected = Math.max(0, Math.min(this.cfg.suspicionMult - 2, n - 2));
    return new Suspicion(now, accuser, expected, minMs, maxMs);
  }

  private checkPartition(now: number): void {
    const selfDown = isLive(this.me().state) ? 0 : 1;
    const reachable = this.nLive + selfDown;
    const expected = this.nLive + this.nDead + selfDown;
    const status = this.partition.check(reachable, expected, now);
    this.lastPartition = status;
    if (status.kind !== this.partitionKind) {
      this.partitionKind = status.kind;
      this.out.events.push({ type: 'PartitionDetected', status });
    }
  }

  // ---------------------------------------------------------------- sending

  private gossipRound(now: number): void {
    this.nextGossipAt = now + this.cfg.gossipIntervalMs;
    const peers = this.pick((r) => r.id !== this.self && isLive(r.state), this.cfg.gossipNodes);
    for (const peer of peers) {
      const gossip = this.piggyback(peer.id, 0);
      if (gossip.length === 0) break;
      this.send(peer.id, { type: 'gossip', gossip });
    }
  }

  /** A push/pull with `to` (or a live member), so a node that missed gossip catches up at once, not at the next anti-entropy round. */
  private resync(to: NodeId | undefined): void {
    this.resyncWanted = false;
    if (this.leaving) return;
    const peer =
      to !== undefined && to !== this.self ? to : this.pick((r) => isLive(r.state) && r.id !== this.self, 1)[0]?.id;
    if (peer === undefined) return;
    this.stats.resyncs += 1;
    this.pushPull(peer, false);
  }

  /** The longest a healthy host leaves between ticks: a probe period at its most stretched, plus one. */
  private pauseGapMs(): number {
    return (this.cfg.awarenessMaxMultiplier + 1) * this.cfg.probeIntervalMs;
  }

  private pushPull(to: NodeId, reply: boolean): void {
    this.send(to, { type: 'push-pull', reply, join: false, members: this.fullState() });
  }

  private piggyback(_to: NodeId, reservedBytes: number, reservedCount = 0): MemberUpdate[] {
    // Our own update (a refutation) rides first on everything we send: it is the only cure for an accusation.
    const picked = this.queue.select(this.liveCount(), reservedBytes, undefined, this.self);
    return reservedCount > 0 ? picked.slice(0, Math.max(0, this.cfg.maxGossipPerMessage - reservedCount)) : picked;
  }

  private send(to: NodeId, message: SwimMessage, address?: string): void {
    const addr = address ?? this.table.get(to)?.address;
    this.out.messages.push(addr ? { to, address: addr, message } : { to, message });
  }

  private fullState(): MemberUpdate[] {
    return [...this.table.values()].map((r) => this.updateOf(r));
  }

  /** Up to `k` distinct random members matching `pred`: sampled, with a full scan when matches are sparse. */
  private pick(pred: (r: MemberRecord) => boolean, k: number): MemberRecord[] {
    const out: MemberRecord[] = [];
    if (k <= 0) return out;
    const seen = new Set<NodeId>();
    for (let tries = 0; tries < 4 * k + 8 && out.length < k; tries++) {
      const id = this.ids[this.random.int(0, this.ids.length - 1)];
      if (id === undefined || seen.has(id)) continue;
      seen.add(id);
      const r = this.table.get(id);
      if (r && pred(r)) out.push(r);
    }
    if (out.length < k) {
      const rest = [...this.table.values()].filter((r) => pred(r) && !seen.has(r.id));
      shuffle(rest, this.random);
      out.push(...rest.slice(0, k - out.length));
    }
    return out;
  }

  private earliestSuspicion(): number {
    if (this.suspicionMin === undefined) {
      let t = Number.POSITIVE_INFINITY;
      for (const id of this.suspects) {
        const sus = this.table.get(id)?.suspicion;
        if (sus) t = Math.min(t, sus.deadline());
      }
      this.suspicionMin = t;
    }
    return this.suspicionMin;
  }

  private insert(r: MemberRecord): void {
    this.table.set(r.id, r);
    this.ids.push(r.id);
    this.count(r.id, r.state, 1);
  }

  private setState(r: MemberRecord, state: MemberState): void {
    this.count(r.id, r.state, -1);
    r.state = state;
    this.count(r.id, state, 1);
  }

  private count(id: NodeId, state: MemberState, delta: 1 | -1): void {
    this.suspicionMin = undefined;
    if (isLive(state)) this.nLive += delta;
    if (state === 'dead') this.nDead += delta;
    if (state === 'suspect') {
      if (delta > 0) this.suspects.add(id);
      else this.suspects.delete(id);
    }
  }

  private start(now: number): void {
    if (this.started) return;
    this.started = true;
    // Spread the first probe and push/pull over one interval so nodes started together do not sync up.
    this.nextProbeAt = now + this.random.next() * this.cfg.probeIntervalMs;
    this.nextGossipAt = now;
    this.nextPushPullAt = now + this.random.next() * this.pushPullInterval();
    this.nextReconnectAt = now + this.cfg.reconnectIntervalMs;
  }

  private pushPullInterval(): number {
    const n = this.liveCount();
    // Grows with log2 of the size beyond 32 members, like memberlist's push/pull scaling.
    const scale = n <= 32 ? 1 : 1 + Math.ceil(Math.log2(n / 32));
    return this.cfg.pushPullIntervalMs * scale;
  }

  private liveCount(): number {
    return Math.max(1, this.nLive);
  }

  private detector(id: NodeId): PhiAccrualDetector {
    let d = this.detectors.get(id);
    if (!d) {
      d = new PhiAccrualDetector(this.cfg.phi);
      this.detectors.set(id, d);
    }
    return d;
  }

  private me(): MemberRecord {
    const r = this.table.get(this.self);
    if (!r) throw new Error('invariant: the local member is always in the table');
    return r;
  }

  private updateOf(r: MemberRecord): MemberUpdate {
    return { id: r.id, address: r.address, incarnation: r.incarnation, state: r.state, tags: r.tags };
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) % Number.MAX_SAFE_INTEGER;
    return this.seq;
  }

  private flush(): SwimOutput {
    const o = this.out;
    this.out = { messages: [], events: [], changes: [] };
    return o;
  }
}

function isLive(s: MemberState): boolean {
  return s === 'alive' || s === 'suspect';
}

function toMember(r: MemberRecord): Member {
  return { id: r.id, address: r.address, state: r.state, incarnation: r.incarnation, tags: r.tags };
}

function shuffle<T>(a: T[], random: Random): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    const x = a[i] as T;
    a[i] = a[j] as T;
    a[j] = x;
  }
}
