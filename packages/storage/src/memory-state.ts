import type { Entry, HardState, LogIndex, SnapshotMeta, Term } from '@cohort/core';
import { CompactedError, UnavailableError } from '@cohort/core/errors';
import { emptyConfState, emptyHardState } from '@cohort/core/raft-types';
import type { StoredVote } from './acceptor-state.js';
import type { AppliedState, KvRecord } from './types.js';

/** One group's state in a {@link MemoryNodeStore}. */
export interface MemGroup {
  hardState: HardState;
  snapMeta: SnapshotMeta;
  snapChunks: Uint8Array[];
  /** Last index folded into the snapshot or compacted away. */
  compactIndex: LogIndex;
  compactTerm: Term;
  /** entries[k].index === compactIndex + 1 + k */
  entries: Entry[];
  /**
   * Running totals of the entries' data bytes: `sizes[k]` counts every entry up to `entries[k]` since the
   * group began, `sizeBase` those compacted away; so `stats()` costs no walk over the log.
   */
  sizes: number[];
  sizeBase: number;
}

/** A stored KV row with its CRC; never mutated (a write replaces it). */
export interface MemRow {
  record: KvRecord;
  crc: number;
}

/** A stored session with its responses and CRCs; never mutated (a write replaces it). */
export interface MemSession {
  lowWater: number;
  lastActive: number;
  crc: number;
  responses: ReadonlyMap<number, { response: Uint8Array; crc: number }>;
}

/** One partition's KV data in a {@link MemoryNodeStore}; keys are hex-encoded for the maps. */
export interface MemPartition {
  generation: number;
  applied: AppliedState;
  logTime: number;
  kv: Map<string, MemRow>;
  sessions: Map<string, MemSession>;
}

/** Everything a {@link MemoryNodeStore} holds; the store keeps a live and a durable copy. */
export interface MemState {
  groups: Map<string, MemGroup>;
  partitions: Map<string, MemPartition>;
  /** Vertical Paxos acceptor state per group: the promise and the votes by slot (votes are immutable). */
  acceptors: Map<string, { maxBallot: number; votes: Map<number, StoredVote>; compacted: number }>;
}

export function emptyMemGroup(): MemGroup {
  return {
    hardState: emptyHardState(),
    snapMeta: { index: 0, term: 0, confState: emptyConfState() },
    snapChunks: [],
    compactIndex: 0,
    compactTerm: 0,
    entries: [],
    sizes: [],
    sizeBase: 0,
  };
}

export function emptyMemState(): MemState {
  return { groups: new Map(), partitions: new Map(), acceptors: new Map() };
}

/** A copy sharing only immutable pieces (entries, records, chunks). */
export function cloneMemState(s: MemState): MemState {
  const groups = new Map<string, MemGroup>();
  for (const [id, g] of s.groups)
    groups.set(id, { ...g, entries: g.entries.slice(), sizes: g.sizes.slice(), snapChunks: g.snapChunks.slice() });
  const partitions = new Map<string, MemPartition>();
  for (const [id, p] of s.partitions) partitions.set(id, clonePartition(p));
  const acceptors = new Map<string, { maxBallot: number; votes: Map<number, StoredVote>; compacted: number }>();
  for (const [id, a] of s.acceptors)
    acceptors.set(id, { maxBallot: a.maxBallot, votes: new Map(a.votes), compacted: a.compacted });
  return { groups, partitions, acceptors };
}

export function memGroup(s: MemState, id: string): MemGroup {
  let g = s.groups.get(id);
  if (!g) {
    g = emptyMemGroup();
    s.groups.set(id, g);
  }
  return g;
}

/** A copy sharing only the immutable rows and sessions. */
export function clonePartition(p: MemPartition): MemPartition {
  return {
    generation: p.generation,
    applied: p.applied,
    logTime: p.logTime,
    kv: new Map(p.kv),
    sessions: new Map(p.sessions),
  };
}

export function memPartition(s: MemState, id: string): MemPartition {
  let p = s.partitions.get(id);
  if (!p) {
    p = {
      generation: 1,
      applied: { index: 0, term: 0, confState: emptyConfState() },
      logTime: 0,
      kv: new Map(),
      sessions: new Map(),
    };
    s.partitions.set(id, p);
  }
  return p;
}

export function lastIndexOf(g: MemGroup): LogIndex {
  return g.compactIndex + g.entries.length;
}

export function termOf(g: MemGroup, i: LogIndex): Term {
  if (i < g.compactIndex) throw new CompactedError(`term of ${i} is compacted (first index ${g.compactIndex + 1})`);
  if (i === g.compactIndex) return g.compactTerm;
  const e = g.entries[i - g.compactIndex - 1];
  if (!e) throw new UnavailableError(`term of ${i} requested, last index is ${lastIndexOf(g)}`);
  return e.term;
}

/** Truncates the log from `entries[0].index` and appends (entries already validated). */
export function appendTo(g: MemGroup, entries: Entry[]): void {
  const first = (entries[0] as Entry).index;
  const keep = first - g.compactIndex - 1;
  g.entries.length = keep;
  g.sizes.length = keep;
  let total = keep > 0 ? (g.sizes[keep - 1] as number) : g.sizeBase;
  for (const e of entries) {
    g.entries.push(e);
    total += e.data.length;
    g.sizes.push(total);
  }
}

/** Drops entries up to `index` (validated: compactIndex <= index <= lastIndex). */
export function compactTo(g: MemGroup, index: LogIndex): void {
  if (index <= g.compactIndex) return;
  const drop = index - g.compactIndex;
  g.compactTerm = termOf(g, index);
  g.sizeBase = g.sizes[drop - 1] as number;
  g.entries = g.entries.slice(drop);
  g.sizes = g.sizes.slice(drop);
  g.compactIndex = index;
}

/** Drops every entry: a snapshot past the end of the log replaces it. */
export function clearEntries(g: MemGroup): void {
  g.entries = [];
  g.sizes = [];
  g.sizeBase = 0;
}

/** Data bytes of the entries held, and of those past `afterIndex`. */
export function entryBytes(g: MemGroup, afterIndex: LogIndex): { bytes: number; since: number } {
  const n = g.entries.length;
  const end = n > 0 ? (g.sizes[n - 1] as number) : g.sizeBase;
  const k = Math.min(n, Math.max(0, afterIndex - g.compactIndex));
  const before = k > 0 ? (g.sizes[k - 1] as number) : g.sizeBase;
  return { bytes: end - g.sizeBase, since: end - before };
}
