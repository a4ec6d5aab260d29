import {
  type ConfState,
  type GroupId,
  type HardState,
  type NodeStore,
  type RaftLogReader,
  type Snapshot,
  type SnapshotMeta,
  StorageError,
} from '@cohort/core';
import type { DurableStateMachine } from './durable-state-machine.js';

/** Where a group starts: the engine's reader, the machine's applied position and the log's snapshot. */
export interface GroupStart {
  /** The store's reader, presenting the machine's membership when the machine is past the snapshot. */
  reader: RaftLogReader;
  /** The machine's applied position. */
  applied: SnapshotMeta;
  /** The stored snapshot's position (the latest marker). */
  snapshot: SnapshotMeta;
  /** An image from before state lived on disk was restored into the machine. */
  restoredLegacy: boolean;
  /** A marker was written at the machine's applied index: it had installed a snapshot whose marker was lost. */
  repaired: boolean;
  /** The repair's durable write, when there was one: a failure stops the host like any failed write. */
  repairWrite?: Promise<void>;
}

const EMPTY = new Uint8Array(0);

/**
 * Reconciles a group's log with its durable state machine before its engine
 * starts. A restarted node resumes from the machine's own applied index; no
 * snapshot is replayed. Two repairs: an old data directory whose snapshot
 * still holds a whole image newer than the machine is restored through
 * `restoreLegacy`; a machine ahead of the log's last index (the node died
 * between installing a streamed snapshot and writing its marker) gets the
 * marker now.
 */
export function startGroup(store: NodeStore, group: GroupId, sm: DurableStateMachine<unknown>): GroupStart {
  const inner = store.group(group);
  let snap: Snapshot = inner.snapshot();
  let applied = sm.applied();
  let restoredLegacy = false;
  if (snap.data.length > 0 && snap.meta.index > applied.index) {
    if (sm.restoreLegacy === undefined) {
      throw new StorageError(
        `group ${group}: the store holds a snapshot image at index ${snap.meta.index} but the state machine cannot restore images; migrate the data directory with a build that can`,
      );
    }
    sm.restoreLegacy(snap);
    applied = sm.applied();
    restoredLegacy = true;
  }
  let repaired = false;
  let repairWrite: Promise<void> | undefined;
  if (applied.index > inner.lastIndex()) {
    // The store applies a write to its readers when it is issued; the engine reads nothing before the
    // host's first round, whose write the store queues after this one.
    repairWrite = store.write([{ group, snapshot: { meta: applied, data: EMPTY } }]);
    if (inner.lastIndex() < applied.index) {
      throw new StorageError(
        `group ${group}: could not record the state machine's applied index ${applied.index} as the log's snapshot (the log ends at ${inner.lastIndex()})`,
      );
    }
    snap = inner.snapshot();
    repaired = true;
  }
  if (applied.index < snap.meta.index) {
    throw new StorageError(
      `group ${group}: the state machine is at index ${applied.index} but the log was compacted through ${snap.meta.index}; its state was lost. Wipe this node's data directory so a leader sends it a snapshot`,
    );
  }
  const start: GroupStart = {
    reader: applied.index > snap.meta.index ? withMembership(inner, applied.confState) : inner,
    applied,
    snapshot: snap.meta,
    restoredLegacy,
    repaired,
  };
  if (repairWrite) start.repairWrite = repairWrite;
  return start;
}

/** `reader`, reporting `confState` as the membership to start with: the machine recorded it with its applied index. */
function withMembership(reader: RaftLogReader, confState: ConfState): RaftLogReader {
  return {
    initialState(): { hardState: HardState; confState: ConfState } {
      return { hardState: reader.initialState().hardState, confState };
    },
    entries: (lo, hi, maxBytes) => reader.entries(lo, hi, maxBytes),
    term: (i) => reader.term(i),
    firstIndex: () => reader.firstIndex(),
    lastIndex: () => reader.lastIndex(),
    snapshot: () => reader.snapshot(),
  };
}
