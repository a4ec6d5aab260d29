import type { Entry, GroupId, GroupWrite, HardState, LogIndex, Snapshot, SnapshotMeta } from '@cohort/core';
import { ProposalDroppedError, StorageError } from '@cohort/core/errors';
import type { ResolvedLogLimits } from './types.js';

/** Where a group's log stands, as far as validating a write needs to know. */
export interface LogPosition {
  /** Last index folded into the snapshot or compacted away (first index - 1). */
  compactIndex: LogIndex;
  lastIndex: LogIndex;
  snapshotIndex: LogIndex;
  hardState: HardState;
}

/** What one {@link GroupWrite} does to a group's log, after validation. */
export interface WritePlan {
  group: string;
  hardState?: HardState;
  /** Replaces the whole log (applied first). */
  snapshot?: Snapshot;
  /** Entries to write; the log is truncated from `entries[0].index` first. Never empty when present. */
  entries?: Entry[];
  /** Position after the write. */
  after: LogPosition;
}

/**
 * Validates a batch against the groups' positions and returns one plan per
 * write, in order; throws `StorageError` before anything is changed.
 */
export function planBatch(batch: GroupWrite[], position: (group: string) => LogPosition, file: string): WritePlan[] {
  const projected = new Map<string, LogPosition>();
  const plans: WritePlan[] = [];
  for (const w of batch) {
    const pos = { ...(projected.get(w.group) ?? position(w.group)) };
    const plan: WritePlan = { group: w.group, after: pos };
    if (w.snapshot) {
      const s = w.snapshot;
      if (s.meta.index < pos.snapshotIndex) {
        throw new StorageError(
          `${file}: group ${w.group}: snapshot at index ${s.meta.index} is older than the stored one at ${pos.snapshotIndex}`,
        );
      }
      plan.snapshot = s;
      pos.compactIndex = s.meta.index;
      pos.lastIndex = s.meta.index;
      pos.snapshotIndex = s.meta.index;
    }
    if (w.entries && w.entries.length > 0) {
      let ents = w.entries;
      for (let k = 1; k < ents.length; k++) {
        const prev = ents[k - 1] as Entry;
        if ((ents[k] as Entry).index !== prev.index + 1) {
          throw new StorageError(
            `${file}: group ${w.group}: entries to append are not contiguous (${prev.index} then ${(ents[k] as Entry).index})`,
          );
        }
      }
      const first = (ents[0] as Entry).index;
      if (first > pos.lastIndex + 1) {
        throw new StorageError(
          `${file}: group ${w.group}: appending at ${first} would leave a hole after the last index ${pos.lastIndex}`,
        );
      }
      // Entries already folded into the snapshot are committed and identical: skip them.
      if (first <= pos.compactIndex) ents = ents.slice(pos.compactIndex + 1 - first);
      if (ents.length > 0) {
        plan.entries = ents;
        pos.lastIndex = (ents[ents.length - 1] as Entry).index;
      }
    }
    if (w.hardState) {
      const hs = w.hardState;
      const old = pos.hardState;
      // Raft §5.1: currentTerm never decreases; §5.2: at most one vote per term.
      if (hs.term < old.term) {
        throw new StorageError(`${file}: group ${w.group}: term would go back from ${old.term} to ${hs.term}`);
      }
      if (hs.term === old.term && old.vote !== '' && hs.vote !== old.vote) {
        throw new StorageError(
          `${file}: group ${w.group}: vote in term ${hs.term} would change from ${old.vote} to ${hs.vote || '(none)'}`,
        );
      }
      plan.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
      pos.hardState = plan.hardState;
    }
    projected.set(w.group, pos);
    plans.push(plan);
  }
  return plans;
}

/** Validates a compaction target against a group's position. */
export function checkCompact(group: string, pos: LogPosition, index: LogIndex, file: string): void {
  if (index > pos.lastIndex) {
    throw new StorageError(`${file}: group ${group}: cannot compact to ${index}, past the last index ${pos.lastIndex}`);
  }
}

/** Keeps the first entry, then as many as fit in `maxBytes` of data (etcd's limitSize). */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = (ents[0] as Entry).data.length;
  let n = 1;
  for (; n < ents.length; n++) {
    size += (ents[n] as Entry).data.length;
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

/** A defensive copy, so a caller reusing its buffers cannot change stored entries. */
export function copyEntry(e: Entry): Entry {
  return { term: e.term, index: e.index, type: e.type, data: e.data.slice() };
}

/** Validates saving an application snapshot at `meta.index` and compacting to `compactIndex`. */
export function checkSnapshotSave(
  file: string,
  group: GroupId,
  pos: LogPosition,
  meta: SnapshotMeta,
  compactIndex: LogIndex,
): void {
  if (meta.index < pos.snapshotIndex) {
    throw new StorageError(
      `${file}: group ${group}: snapshot at ${meta.index} is older than the stored one at ${pos.snapshotIndex}`,
    );
  }
  if (compactIndex > meta.index) {
    throw new StorageError(
      `${file}: group ${group}: cannot compact to ${compactIndex}, past the snapshot's index ${meta.index}`,
    );
  }
  if (meta.index <= pos.lastIndex) checkCompact(group, pos, compactIndex, file);
}

/** The error refusing a proposal while the group's log is over `maxLogBytes`. */
export function logFullError(file: string, group: GroupId, bytes: number, limits: ResolvedLogLimits): Error {
  return new ProposalDroppedError(
    `${file}: group ${group}: the log holds ${bytes} bytes, at its max log size of ${limits.maxLogBytes}; ` +
      'proposals are refused until a snapshot compacts it',
  );
}

export function cloneMeta(m: SnapshotMeta): SnapshotMeta {
  const c = m.confState;
  return {
    index: m.index,
    term: m.term,
    confState: {
      voters: [...c.voters],
      learners: [...c.learners],
      votersOutgoing: [...c.votersOutgoing],
      learnersNext: [...c.learnersNext],
      autoLeave: c.autoLeave,
    },
  };
}
