import type { GroupId, LogIndex, Term } from './ids.js';
import type { ConfState, Entry, HardState, Snapshot } from './raft-types.js';

/**
 * What a Raft engine reads from durable storage (the counterpart of etcd/raft's
 * `Storage`). Errors: `CompactedError` for positions folded into the snapshot,
 * `UnavailableError` for positions past the last entry.
 */
export interface RaftLogReader {
  /** The hard state and membership recorded at start. */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at least one if any exist, at most `maxBytes` of data after the first. */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[];
  /** The term of entry `i`; `i` may be the snapshot's index. */
  term(i: LogIndex): Term;
  /** Index of the first entry still in the log (snapshot index + 1). */
  firstIndex(): LogIndex;
  /** Index of the last entry (the snapshot's index when the log is empty). */
  lastIndex(): LogIndex;
  /** The most recent snapshot. */
  snapshot(): Snapshot;
}

/** One group's share of a durable write; everything in it lands atomically. */
export interface GroupWrite {
  group: GroupId;
  hardState?: HardState;
  /** Entries to append; an entry at an existing index truncates the log from there. */
  entries?: Entry[];
  /** A snapshot received from the leader, which replaces the log up to its index. */
  snapshot?: Snapshot;
}

/** Sizes of one group's log, and what the store's size policy says about them. */
export interface LogStats {
  firstIndex: LogIndex;
  lastIndex: LogIndex;
  /** Index of the last snapshot (0 when none). */
  snapshotIndex: LogIndex;
  /** Entries still in the log. */
  entries: number;
  /** Bytes of entry data still in the log. */
  bytes: number;
  /** Entries after the last snapshot's index. */
  entriesSinceSnapshot: number;
  /** Bytes of entry data after the last snapshot's index. */
  bytesSinceSnapshot: number;
  /** The group crossed the store's entry or byte threshold since its last snapshot: it should snapshot. */
  shouldSnapshot: boolean;
  /** The log holds more than the store's max log size: new proposals are refused. */
  overLimit: boolean;
}

/**
 * The durable store of all groups on a node. One `write` is one transaction
 * with one fsync (group commit); no message that depends on it may leave
 * before it returns.
 */
export interface NodeStore {
  /** The reader for one group (created empty on first use). */
  group(group: GroupId): RaftLogReader;
  /**
   * Persists a batch across groups atomically and durably; resolves once it
   * is durable (fsync included). Calls are queued: a later write never
   * becomes durable before an earlier one.
   */
  write(batch: GroupWrite[]): Promise<void>;
  /** Records a snapshot the application produced at `index` and drops entries up to `compactTo`; resolves once durable. */
  saveSnapshot(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): Promise<void>;
  close(): void;
  /** Sizes of the group's log against the store's snapshot and size policy (optional). */
  stats?(group: GroupId): LogStats;
  /** Throws `ProposalDroppedError` while the group's log is over its max size (optional; call before proposing). */
  admitProposal?(group: GroupId, bytes: number): void;
  /**
   * True when `write` hands the work to another thread and returns at once:
   * the caller's thread keeps serving sockets while the disk syncs. A store
   * that syncs on the caller's thread leaves it unset.
   */
  readonly writesOffThread?: boolean;
  /**
   * For a store that writes on another thread: hands the writes made so far to that thread now,
   * rather than when the caller's turn ends (where the writes of one turn cross together). For a
   * write whose fsync should overlap what the caller does next. Optional; a no-op elsewhere.
   */
  startWrites?(): void;
  /**
   * For a store whose writes commit after `write` or a machine's apply transaction returns (another
   * thread): undefined when at most `slack` of the writes and transactions queued so far are not
   * committed to the file yet (0 by default: all of them committed), else a promise that resolves
   * once everything queued so far is (not necessarily fsynced), or once commits start waiting for
   * disk space (undefined meanwhile: a writer that cannot move is not waited on). The host waits on
   * it before it opens a snapshot view, off the event loop. A store that writes on the caller's thread omits it.
   */
  settled?(slack?: number): Promise<void> | undefined;
}
