import type { NodeId } from '@cohort/core';
import type { PartitionStatus, SwimConfig } from '@cohort/membership';
import { SwimCluster } from './swim-cluster.js';

const HOUR_MS = 3_600_000;

/** Crash-detection latencies, in protocol periods. */
export interface DetectionResult {
  readonly size: number;
  readonly trials: number;
  /** Crash to the first member suspecting it. */
  readonly firstDetection: readonly number[];
  /** Crash to every live member suspecting it (or holding it dead). */
  readonly allSuspect: readonly number[];
  /** Crash to every live member holding it dead. */
  readonly allDead: readonly number[];
  /** Trials in which not every member learned of the crash within the bound. */
  readonly incomplete: number;
}

/**
 * Crashes members one at a time (the next after everyone holds the previous
 * one dead) and times detection and dissemination.
 */
export function detection(
  size: number,
  seed: number,
  crashes: number,
  config: Partial<SwimConfig> = {},
): DetectionResult {
  const c = new SwimCluster({ size, seed, config });
  const period = c.periodMs;
  c.run(5 * period);
  const first: number[] = [];
  const allSuspect: number[] = [];
  const allDead: number[] = [];
  let incomplete = 0;
  let victim: NodeId | undefined;
  let crashAt = 0;
  let firstAt: number | undefined;
  const suspecting = new Set<NodeId>();
  const dead = new Set<NodeId>();
  c.onChange((o) => {
    if (o.change.id !== victim || o.observer === victim) return;
    if (o.change.to === 'suspect' || o.change.to === 'dead') {
      firstAt ??= o.time;
      suspecting.add(o.observer);
    }
    if (o.change.to === 'dead') dead.add(o.observer);
  });
  for (let i = 0; i < crashes; i++) {
    c.run(c.rng.int(0, period));
    victim = c.pickLive();
    crashAt = c.now;
    firstAt = undefined;
    suspecting.clear();
    dead.clear();
    c.crash(victim);
    const observers = c.liveIds().length;
    let suspectAt: number | undefined;
    const done = c.run(200 * period, () => {
      if (suspectAt === undefined && suspecting.size >= observers) suspectAt = c.now;
      return dead.size >= observers;
    });
    if (!done || firstAt === undefined || suspectAt === undefined) {
      incomplete += 1;
      continue;
    }
    first.push((firstAt - crashAt) / period);
    allSuspect.push((suspectAt - crashAt) / period);
    allDead.push((c.now - crashAt) / period);
  }
  return { size, trials: crashes, firstDetection: first, allSuspect, allDead, incomplete };
}

/** False positives and load over a fault-free (apart from `links` and slow members) run. */
export interface StabilityResult {
  readonly size: number;
  readonly simulatedMs: number;
  /** Distinct (member, incarnation) suspicions of live members, per member-hour. */
  readonly falseSuspicionsPerMemberHour: number;
  /** Distinct (member, incarnation) dead declarations of live members, per member-hour. */
  readonly falseDeadPerMemberHour: number;
  readonly falseDead: number;
  readonly messagesPerMemberSecond: number;
  readonly bytesPerMemberSecond: number;
}

/** Runs `durationMs` with `dropRate` loss and `slowCount` members whose messages are held `slowDelayMs`. */
export function stability(
  size: number,
  seed: number,
  durationMs: number,
  options: { dropRate?: number; slowCount?: number; slowDelayMs?: number; config?: Partial<SwimConfig> } = {},
): StabilityResult {
  const c = new SwimCluster({ size, seed, config: options.config ?? {}, links: { dropRate: options.dropRate ?? 0 } });
  for (let i = 0; i < (options.slowCount ?? 0); i++) c.slow.set(`m${i}`, options.slowDelayMs ?? 3 * c.periodMs);
  c.run(5 * c.periodMs);
  const suspicions = new Set<string>();
  const deaths = new Set<string>();
  c.onChange((o) => {
    if (o.change.to === 'suspect' && o.change.local) suspicions.add(`${o.change.id}@${o.change.incarnation}`);
    if (o.change.to === 'dead') deaths.add(`${o.change.id}@${o.change.incarnation}`);
  });
  const before = totals(c);
  c.run(durationMs);
  const after = totals(c);
  const memberHours = (size * durationMs) / HOUR_MS;
  const seconds = durationMs / 1000;
  return {
    size,
    simulatedMs: durationMs,
    falseSuspicionsPerMemberHour: suspicions.size / memberHours,
    falseDeadPerMemberHour: deaths.size / memberHours,
    falseDead: deaths.size,
    messagesPerMemberSecond: (after.messages - before.messages) / size / seconds,
    bytesPerMemberSecond: (after.bytes - before.bytes) / size / seconds,
  };
}

function totals(c: SwimCluster): { messages: number; bytes: number } {
  let messages = 0;
  let bytes = 0;
  for (const s of c.sent.values()) {
    messages += s.messages;
    bytes += s.bytes;
  }
  return { messages, bytes };
}

/** Join and leave dissemination under churn, in protocol periods. */
export interface ChurnResult {
  readonly size: number;
  readonly joins: number;
  readonly leaves: number;
  readonly joinKnownByAll: readonly number[];
  readonly leaveKnownByAll: readonly number[];
  readonly falseDead: number;
}

/** Every `everyMs` one member leaves gracefully and a new one joins through a random live member. */
export function churn(size: number, seed: number, rounds: number, everyMs = 5000): ChurnResult {
  const c = new SwimCluster({ size, seed });
  c.run(5 * c.periodMs);
  const seen = new Map<NodeId, Map<string, number>>();
  let falseDead = 0;
  c.onChange((o) => {
    const byTarget = seen.get(o.change.id);
    if (byTarget && !byTarget.has(`${o.observer}:${o.change.to}`)) byTarget.set(`${o.observer}:${o.change.to}`, o.time);
    if (o.change.to === 'dead') falseDead += 1;
  });
  // Who should learn of each change: the members running when it happened.
  const joins: { id: NodeId; at: number; observers: NodeId[] }[] = [];
  const leaves: { id: NodeId; at: number; observers: NodeId[] }[] = [];
  for (let i = 0; i < rounds; i++) {
    const leaving = c.pickLive(['m0']);
    if (!seen.has(leaving)) seen.set(leaving, new Map());
    leaves.push({ id: leaving, at: c.now, observers: c.liveIds().filter((x) => x !== leaving) });
    c.leave(leaving);
    const joined = c.join(c.pickLive([leaving]));
    seen.set(joined, new Map());
    joins.push({ id: joined, at: c.now, observers: c.liveIds().filter((x) => x !== joined && x !== leaving) });
    c.run(everyMs);
  }
  c.run(30 * c.periodMs);
  const live = c.liveIds();
  const knownByAll = (target: NodeId, at: number, state: string, observers: NodeId[]): number | undefined => {
    const times = seen.get(target);
    let last = at;
    for (const o of observers) {
      if (!live.includes(o)) continue;
      if (c.stateOf(o, target) !== state && !(state === 'alive' && c.stateOf(o, target) === 'left')) return undefined;
      const t = times?.get(`${o}:${state}`);
      if (t !== undefined) last = Math.max(last, t);
    }
    return (last - at) / c.periodMs;
  };
  const joinTimes = joins.flatMap((j) => {
    const t = knownByAll(j.id, j.at, 'alive', j.observers);
    return t === undefined ? [] : [t];
  });
  const leaveTimes = leaves.flatMap((l) => {
    const t = knownByAll(l.id, l.at, 'left', l.observers);
    return t === undefined ? [] : [t];
  });
  return {
    size,
    joins: joins.length,
    leaves: leaves.length,
    joinKnownByAll: joinTimes,
    leaveKnownByAll: leaveTimes,
    falseDead,
  };
}

/** The 3-2 split of five members and its healing. */
export interface PartitionResult {
  /** Split to every member holding the other side dead, in periods. */
  readonly splitDetected: number;
  /** The minority side's detector verdict 60 s after the split. */
  readonly minorityStatus: PartitionStatus;
  /** The majority side's verdict at the same time. */
  readonly majorityStatus: PartitionStatus;
  /** Heal to every member holding all five alive again, in periods (NaN if not within 300 periods). */
  readonly healed: number;
}

/** Splits five members 3-2, waits 60 s, heals, and times each phase. */
export function partition(seed: number): PartitionResult {
  const c = new SwimCluster({ size: 5, seed });
  const period = c.periodMs;
  c.run(5 * period);
  const majority = ['m0', 'm1', 'm2'];
  const minority = ['m3', 'm4'];
  const splitAt = c.now;
  c.network.partition(majority, minority);
  const sideDead = (): boolean =>
    majority.every((a) => minority.every((b) => c.stateOf(a, b) === 'dead' && c.stateOf(b, a) === 'dead'));
  c.run(200 * period, sideDead);
  const splitDetected = sideDead() ? (c.now - splitAt) / period : Number.NaN;
  c.run(Math.max(0, splitAt + 60_000 - c.now));
  const minorityStatus = c.swim('m3').partitionStatus();
  const majorityStatus = c.swim('m0').partitionStatus();
  c.network.heal();
  const healAt = c.now;
  const allAlive = (): boolean => c.liveIds().every((a) => c.liveIds().every((b) => c.stateOf(a, b) === 'alive'));
  const ok = c.run(300 * period, allAlive);
  return { splitDetected, minorityStatus, majorityStatus, healed: ok ? (c.now - healAt) / period : Number.NaN };
}

/** Three of five members crash at once. */
export interface MassFailureResult {
  /** Crash to the first survivor suspecting each crashed member, in periods. */
  readonly firstDetection: readonly number[];
  /** Crash to both survivors holding all three dead, in periods. */
  readonly allDead: number;
  /** Crash to the survivors' partition detector saying partitioned, in periods. */
  readonly partitioned: number;
  readonly finalStatus: PartitionStatus;
}

/** Crashes m2, m3, m4 of five at once. */
export function massFailure(seed: number): MassFailureResult {
  const c = new SwimCluster({ size: 5, seed });
  const period = c.periodMs;
  c.run(5 * period);
  const crashed = ['m2', 'm3', 'm4'];
  const firstAt = new Map<NodeId, number>();
  c.onChange((o) => {
    if (crashed.includes(o.change.id) && o.change.to !== 'alive' && !firstAt.has(o.change.id)) {
      firstAt.set(o.change.id, o.time);
    }
  });
  const at = c.now;
  for (const id of crashed) c.crash(id);
  const dead = (): boolean => ['m0', 'm1'].every((s) => crashed.every((x) => c.stateOf(s, x) === 'dead'));
  c.run(200 * period, dead);
  const allDead = dead() ? (c.now - at) / period : Number.NaN;
  const isPartitioned = (): boolean => c.swim('m0').partitionStatus().kind === 'partitioned';
  c.run(200 * period, isPartitioned);
  return {
    firstDetection: crashed.map((id) => ((firstAt.get(id) ?? Number.NaN) - at) / period),
    allDead,
    partitioned: isPartitioned() ? (c.now - at) / period : Number.NaN,
    finalStatus: c.swim('m0').partitionStatus(),
  };
}
