import type { ConfState, Entry, Snapshot, SnapshotMeta } from '@cohort/core';

/**
 * Where a state machine stands: its last applied entry and the group's
 * membership after it, recorded durably in the same transaction as the state.
 */
export type AppliedState = SnapshotMeta;

/** The outcome of one applied entry: the proposer's result, or the error every replica met alike. */
export type ApplyOutcome<R> = { ok: true; value: R } | { ok: false; error: Error };

/**
 * The application replicated by one group, keeping its state on disk. Calls
 * come in log order on every replica: `applyBatch` must be deterministic.
 */
export interface DurableStateMachine<R = unknown> {
  /** The last applied position as durably recorded (index 0 for a new machine). */
  applied(): AppliedState;
  /**
   * Applies committed entries in log order, in one transaction that also
   * records the applied position (the last entry's index and term, with
   * `confState`). Entries without a command (the leader's no-op, membership
   * changes) only move the position. The transaction need not be fsynced:
   * the host keeps the log until a later durable write covers it. Returns one
   * outcome per entry, `undefined` for entries without a command.
   */
  applyBatch(entries: Entry[], confState: ConfState): (ApplyOutcome<R> | undefined)[];
  /**
   * Advice: `entries` are being written to this replica's log and will be applied once committed (a
   * commit's fsync or more from now). A machine whose state is on disk may start reading what their
   * apply will read, off the caller's thread, so the apply finds it in memory. Must change no state
   * and no outcome; entries it is told of may never be applied (a new leader replaces them).
   */
  prefetch?(entries: readonly Entry[]): void;
  /**
   * A consistent view of the state at the applied position (or, when it takes a while to open, at the
   * position then: never before the one at the call), for a snapshot; applying continues meanwhile.
   * A transfer reads it at a paced rate for as long as it takes: a view that costs the store while
   * open should be a copy.
   */
  openSnapshot(): SnapshotReader | Promise<SnapshotReader>;
  /** Starts receiving a snapshot; the current state stays untouched until `commit`. */
  receiveSnapshot(meta: SnapshotMeta): SnapshotWriter;
  /**
   * Replaces the state with an image a store kept from before state lived on
   * disk (data directory migration). A machine that never had images omits it.
   */
  restoreLegacy?(snapshot: Snapshot): void;
}

/** Reads a snapshot chunk by chunk from a consistent view. */
export interface SnapshotReader {
  /** The applied position the view is at. */
  readonly meta: SnapshotMeta;
  /**
   * The next chunk of about `maxBytes` (at least one record), or `undefined` after the last; a
   * reader on another thread answers with a promise (in the order asked).
   */
  next(maxBytes: number): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /** Releases the view. */
  close(): void;
}

/** Builds a received snapshot aside and switches to it atomically. */
export interface SnapshotWriter {
  /** Adds chunk `seq` (0, 1, 2, ... in order); throws a typed error on a corrupt chunk or an unknown format version. */
  write(seq: number, chunk: Uint8Array): void;
  /** Replaces the state by what was written, at the snapshot's position, atomically. */
  commit(): void;
  /** Drops what was written. */
  abort(): void;
}
