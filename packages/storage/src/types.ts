import type { GroupId, GroupWrite, LogIndex, LogStats, NodeStore, Snapshot, SnapshotMeta } from '@cohort/core';

/** Size bounds of one group's log (seed 002's snapshot and log-size policy). */
export interface LogLimits {
  /**
   * Entries appended since the last snapshot after which the group should snapshot.
   * @default 10000
   */
  snapshotEntries?: number;
  /**
   * Bytes of entry data appended since the last snapshot after which the group should snapshot.
   * @default 104857600 (100 MB)
   */
  snapshotBytes?: number;
  /**
   * Bytes of entry data the log may hold; past it new proposals are refused until compaction catches up.
   * @default 524288000 (500 MB)
   */
  maxLogBytes?: number;
}

/** The resolved limits, every field present. */
export type ResolvedLogLimits = Required<LogLimits>;

/** Fills in the defaults of {@link LogLimits}. */
export function resolveLimits(limits: LogLimits = {}): ResolvedLogLimits {
  return {
    snapshotEntries: limits.snapshotEntries ?? 10_000,
    snapshotBytes: limits.snapshotBytes ?? 100 * 1024 * 1024,
    maxLogBytes: limits.maxLogBytes ?? 500 * 1024 * 1024,
  };
}

export type { LogStats } from '@cohort/core';

/** Streams a snapshot into the store chunk by chunk, so a large one never sits whole in memory. */
export interface SnapshotSink {
  /** Appends the next piece of snapshot data (any size; the store re-chunks it). */
  write(data: Uint8Array): void;
  /** Makes the snapshot the group's current one and drops log entries up to `compactTo`, durably. */
  finish(compactTo: LogIndex): void;
  /** Discards what was written so far. */
  abort(): void;
}

/** Reads a stored snapshot chunk by chunk; every chunk's checksum is verified as it is read. */
export interface SnapshotSource {
  meta: SnapshotMeta;
  /** Total bytes of snapshot data. */
  size: number;
  chunks(): Iterable<Uint8Array>;
}

/** Where a partition's state machine stands: its last applied entry and the membership after it (index 0: never applied). */
export type AppliedState = SnapshotMeta;

/**
 * The Redis type of a key other than a string: its collection is encoded in
 * the row's value (see `@cohort/kv`'s collection codec). Absent: a string.
 */
export type KvCollectionType = 'hash' | 'list';

/** What a put takes from the row it replaces. */
export interface ReplacedRow {
  readonly createRevision: number;
  readonly version: number;
  readonly expiresAt?: number | undefined;
}

/**
 * The create revision and version a put at `revision` leaves over `old` (undefined: no row): `old`'s create
 * revision and its version plus one, or `revision` and 1 when there is no row, or (`now` given, see
 * {@link KvPutOptions.now}) the row expired by then.
 */
export function putRevisions(
  old: ReplacedRow | undefined,
  revision: number,
  now?: number,
): { createRevision: number; version: number } {
  const live = old !== undefined && (now === undefined || old.expiresAt === undefined || old.expiresAt > now);
  return live
    ? { createRevision: old.createRevision, version: old.version + 1 }
    : { createRevision: revision, version: 1 };
}

/**
 * A put's own copies of its key and value, sharing one new buffer. Copies, not views: the caller's bytes
 * are often a view of a whole log entry, or a `Buffer` of Node's shared pool (whose `slice` is a view), which
 * the stored record would keep alive, and which the caller may change after the put. One buffer for both
 * where two copies made two: the record outlives V8's young generation (the SQLite store keeps it until
 * its write commits, and its row cache after), and a row of a 10-byte key and a 100-byte value so takes
 * ~350 bytes of heap instead of ~480 (~1,010 of resident memory instead of ~1,210).
 */
export function ownedKeyValue(key: Uint8Array, value: Uint8Array): [Uint8Array, Uint8Array] {
  const bytes = new ArrayBuffer(key.byteLength + value.byteLength);
  const k = new Uint8Array(bytes, 0, key.byteLength);
  k.set(key);
  const v = new Uint8Array(bytes, key.byteLength, value.byteLength);
  v.set(value);
  return [k, v];
}

/** A row's type as stored: 0 a string, 1 a hash, 2 a list. */
export function typeCode(type: KvCollectionType | undefined): number {
  return type === undefined ? 0 : type === 'hash' ? 1 : 2;
}

/** The type a stored code stands for; throws on a code this build does not know. */
export function typeOfCode(code: number | undefined): KvCollectionType | undefined {
  if (code === undefined || code === 0) return undefined;
  if (code === 1) return 'hash';
  if (code === 2) return 'list';
  throw new Error(`unknown KV row type ${code}`);
}

/** One key of a partition's KV data, with etcd-style revisions. */
export interface KvRecord {
  key: Uint8Array;
  value: Uint8Array;
  /** The key's type when not a string; the value then holds the encoded collection. */
  type?: KvCollectionType;
  /** Revision (log index) that created the key. */
  createRevision: number;
  /** Revision (log index) of the last write to the key. */
  modifyRevision: number;
  /** Writes to the key since it was created (1 after the creating write), as etcd's version. */
  version: number;
  /** Expiry time in ms since the epoch (log time), when the key has one. */
  expiresAt?: number;
}

/** Options of {@link PartitionKv.put}. */
export interface KvPutOptions {
  /** The revision (log index) of this write. */
  revision: number;
  /** Expiry in ms since the epoch; absent means the key never expires. */
  expiresAt?: number;
  /** The key's type when not a string (a put replaces the type, as it replaces the value). */
  type?: KvCollectionType;
  /**
   * The write's log time (ms), for a put over whatever the key holds: a row expired by then counts as
   * absent (the new row starts at version 1, its create revision this write's), as a read-modify-write
   * that dropped it first would leave it. Given it, a store need not read the old row before the put:
   * the SQLite store leaves that to its writer thread, which reads the row's page to write it anyway,
   * and learns the create revision and version from it (the record {@link PartitionKv.put} returns
   * reads them when first asked). Without it, an existing row's create revision and version carry over
   * whatever its expiry.
   */
  now?: number;
}

/** A key range for {@link PartitionKv.scan}: `start` inclusive, `end` exclusive, byte order. */
export interface KvScanOptions {
  /** @default the first key */
  start?: Uint8Array;
  /** @default past the last key */
  end?: Uint8Array;
  /** @default unlimited */
  limit?: number;
}

/**
 * A client's exactly-once session: every sequence number at or below
 * `lowWater` was acknowledged to the client and forgotten; the responses of
 * applied numbers above it are kept until the client raises the mark.
 */
export interface ClientSession {
  clientId: string;
  lowWater: number;
  /** Log time (ms) of the session's last applied write; sessions idle too long are dropped. */
  lastActive: number;
}

/** A stored response of one applied sequence number. */
export interface SessionResponse {
  seq: number;
  response: Uint8Array;
}

/** A session with its stored responses in sequence order, as a snapshot carries it. */
export interface SessionRecord extends ClientSession {
  responses: SessionResponse[];
}

/**
 * A consistent read-only view of one partition at one instant; the store
 * keeps writing meanwhile. Close it promptly: SQLite cannot checkpoint past
 * an open view.
 */
export interface KvView {
  /** The applied state as of the view. */
  readonly applied: AppliedState;
  /** The log time as of the view (see {@link PartitionKv.logTime}). */
  readonly logTime: number;
  /** Up to `limit` rows after `afterKey` (from the first when absent), in key order. */
  rows(afterKey: Uint8Array | undefined, limit: number): KvRecord[];
  /** Up to `limit` sessions after `afterClientId`, in client id order, with their responses. */
  sessions(afterClientId: string | undefined, limit: number): SessionRecord[];
  close(): void;
}

/**
 * Builds a partition's new state aside (a new generation) in bounded
 * transactions; the current state stays untouched and readable until
 * {@link commit} switches to it in O(1).
 */
export interface KvInstaller {
  /** Adds a row (with its revisions and version); rows may come in any order. */
  put(record: KvRecord): void;
  /** Adds a session and its stored responses. */
  putSession(session: SessionRecord): void;
  /**
   * Switches the partition to the new state and records `applied` and
   * `logTime`, atomically and durably; then purges the old state.
   * @param logTime @default 0
   */
  commit(applied: AppliedState, logTime?: number): void;
  /** Drops what was written. */
  abort(): void;
}

/**
 * The KV data, client sessions and applied state of one partition. Every row
 * carries a CRC-32C checked on each read from the file; a mismatch throws
 * `StorageError` naming the file, partition and key. (A store may answer a
 * read from rows it read and checked before, kept in memory.)
 */
export interface PartitionKv {
  get(key: Uint8Array): KvRecord | undefined;
  /**
   * Advice that the keys `keys()` lists will be read soon (an entry being appended writes them once
   * it commits): a store that reads from disk may start bringing
   * their rows into memory off the caller's thread. It calls `keys` only when it reads ahead at all
   * (finding the keys may cost a decode). Changes nothing, answers nothing; a store may ignore it.
   */
  prefetch?(keys: () => Iterable<Uint8Array>): void;
  /**
   * Writes `key`; keeps the create revision of an existing key and adds one to its version (1 when new;
   * see {@link KvPutOptions.now} for an expired one). Returns the record written, the caller's to keep
   * (a watch event's); its create revision and version may be worked out only when first read.
   */
  put(key: Uint8Array, value: Uint8Array, opts: KvPutOptions): KvRecord;
  /** Removes `key`; returns whether it existed. */
  delete(key: Uint8Array): boolean;
  /** Keys in byte order within the range. */
  scan(opts?: KvScanOptions): KvRecord[];
  /** Number of rows, expired ones not yet deleted included. */
  count(): number;
  /** Up to `limit` keys whose expiry is at or before `nowMs`, earliest first. */
  expired(nowMs: number, limit: number): Uint8Array[];
  /** The applied state recorded with the data. */
  applied(): AppliedState;
  /** The index of {@link applied}, read without copying the state (every read answers with it). */
  appliedIndex(): number;
  /**
   * The state machine's log time (ms) recorded with the applied state: the
   * latest time stamped by a leader on an applied entry (0 when never set).
   */
  logTime(): number;
  /**
   * Records the applied state, and the log time when given (else keeps it);
   * call it in the transaction that writes the batch's data.
   */
  setApplied(state: AppliedState, logTime?: number): void;
  session(clientId: string): ClientSession | undefined;
  /** The stored response of `(clientId, seq)`, if kept. */
  response(clientId: string, seq: number): Uint8Array | undefined;
  /**
   * Stores the response of an applied `(clientId, seq)`, creating the
   * session, and marks it active at `logTime`; with `lowWater`, also raises
   * the low-water mark as {@link raiseLowWater} does, in the same write.
   */
  saveResponse(clientId: string, seq: number, response: Uint8Array, logTime: number, lowWater?: number): void;
  /** Raises the session's low-water mark (never lowers it), dropping the responses at or below it. */
  raiseLowWater(clientId: string, lowWater: number, logTime: number): void;
  /** Up to `limit` sessions last active before `logTime`, oldest first. */
  idleSessions(logTime: number, limit: number): string[];
  /** Removes a session and its responses. */
  dropSession(clientId: string): void;
  /** Starts building a replacement state (a snapshot being installed). */
  beginInstall(): KvInstaller;
  /**
   * A consistent view of the partition as of now. While it is open the store cannot
   * checkpoint past it (see {@link KvView}): for reads that end soon.
   */
  openView(): KvView;
  /**
   * A consistent view of the partition as of about now (at or after every write made before the
   * call), that costs the store nothing however long it stays open: the SQLite store copies the
   * partition aside on a worker thread first (seconds for a million rows, in one short read
   * transaction) and the view reads the copy. For readers that take long, such as a snapshot streamed
   * to a follower at a paced rate.
   */
  openDetachedView(): Promise<KvView>;
  /**
   * The copy {@link openDetachedView} reads, for a reader on another thread, which opens it with
   * {@link openImageView}: a snapshot streamed from a worker costs the event loop nothing. Only
   * stores that keep the copy in a file have it (the SQLite one). The caller closes it when done.
   */
  openDetachedImage?(): Promise<DetachedImage>;
  /**
   * Marks this point of the partition's writes (after every write made so far, before any made after
   * the call) for a reader on another thread, which opens a view of exactly that state with
   * {@link openPinnedView}: a digest or a scan of a whole partition at one log index that costs the
   * event loop nothing and stops nothing. The store's writer, once it committed everything before the
   * mark, waits for the reader to take its snapshot (a few ms; see {@link PinnedViewOptions}) before
   * it commits what came after. Only a store that writes on a thread of its own has it; undefined when
   * this store writes on the caller's thread.
   */
  pinView?(): ViewPin | undefined;
}

/** A point in a partition's writes marked by {@link PartitionKv.pinView}, for {@link openPinnedView} on any thread. */
export interface ViewPin {
  /** The node's database and the partition. */
  readonly source: { readonly file: string; readonly partition: string };
  /** The handshake between the store's writer and the reader (shared between threads). */
  readonly ctrl: SharedArrayBuffer;
}

/** A copy of a partition's state in a file of its own (see {@link PartitionKv.openDetachedImage}). */
export interface DetachedImage {
  /** The node's database the copy was made from (errors name it) and the partition. */
  readonly source: { readonly file: string; readonly partition: string };
  /** The copy's file. */
  readonly image: string;
  /** Deletes the copy (off the event loop); call it once every view of it is closed. */
  close(): void;
}

/** Options of {@link DurableNodeStore.transaction}. */
export interface TransactionOptions {
  /**
   * Whether the commit is fsynced. A non-durable transaction becomes durable
   * with the next durable write committed after it (WAL order); a crash before
   * loses it whole. The SQLite store's writer thread may commit plain log
   * appends before it (see `SqliteNodeStoreOptions.writerApplyBatchMs`), never
   * a compaction, a snapshot or any other write.
   * @default true
   */
  durable?: boolean;
  /**
   * Whether every read inside sees one snapshot of the store (one read transaction, with a store that
   * writes on another thread), which costs less than a snapshot per read: for a batch that reads and
   * writes rows and opens no view. Reads still see the transaction's own writes and every earlier one.
   * @default false
   */
  snapshotReads?: boolean;
}

/**
 * A {@link NodeStore} with Cohort's storage extras: log size policy,
 * explicit compaction, chunked snapshots and per-partition KV tables.
 */
export interface DurableNodeStore extends NodeStore {
  /**
   * One transaction with one fsync for the whole batch; resolves once durable.
   * Entries are immutable once written: the store may keep them in its cache,
   * so callers must not reuse their data buffers.
   */
  write(batch: GroupWrite[]): Promise<void>;
  /**
   * {@link write} done before it returns, on the caller's thread; throws
   * instead of rejecting. For tools, tests and recovery, never a hot path.
   */
  writeSync(batch: GroupWrite[]): void;
  /** {@link NodeStore.saveSnapshot} done before it returns; throws instead of rejecting. */
  saveSnapshotSync(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): void;
  /** Drops entries up to and including `index` (which must be in the log or be the last compacted index). */
  compact(group: GroupId, index: LogIndex): void;
  /** Sizes of the group's log and what the size policy says. */
  stats(group: GroupId): LogStats;
  /** Throws `ProposalDroppedError` when the group's log is past `maxLogBytes`. */
  admitProposal(group: GroupId, bytes: number): void;
  /** Starts writing a snapshot the application produced. */
  beginSnapshot(group: GroupId, meta: SnapshotMeta): SnapshotSink;
  /** The group's current snapshot for chunked reading, if it has one. */
  openSnapshot(group: GroupId): SnapshotSource | undefined;
  /** Groups with any stored state. */
  groups(): GroupId[];
  /** The KV data of one partition. */
  kv(partition: string): PartitionKv;
  /** Runs `fn` as one atomic transaction (KV writes of one applied batch); nested calls join the outer one. */
  transaction<T>(fn: () => T, opts?: TransactionOptions): T;
  /** Running totals of the commits that reached the database, for metrics (stores without a database: absent). */
  writerStats?(): WriterStats;
  /**
   * Since when, and why, commits wait for disk space (they are retried, in
   * order, until space is freed); undefined while they go through. Absent:
   * the store never waits for space.
   */
  writeStall?(): WriteStall | undefined;
  /** Calls `fn` when commits start waiting for disk space, and with undefined once they resume. */
  watchWriteStall?(fn: (stall: WriteStall | undefined) => void): void;
}

/** Commits waiting for disk space: the first failed `since` (ms since the epoch) with SQLite's `reason`. */
export interface WriteStall {
  since: number;
  reason: string;
}

/** Running totals of the commits a store made. */
export interface WriterStats {
  /** Write jobs committed (log writes, apply transactions, acceptor writes, ...). */
  jobs: number;
  /** Transactions committed: group commit puts several jobs in one. */
  commits: number;
  /** Time the commits took where they ran (the writer thread), fsyncs included, in ms. */
  commitMs: number;
  /** Of `commits`, those fsynced (`synchronous=FULL`: a durable job among theirs); the others held no durable job (apply transactions, purges). */
  durableCommits: number;
  /**
   * Time jobs waited for the writer, in ms: for each batch it took (everything handed to it while it was busy),
   * from the oldest job's hand-off to the start of the batch's commits: the writer thread waking up and taking
   * the message (waiting for a CPU, on a busy machine), or still committing earlier jobs. 0 where writes run inline.
   */
  waitMs: number;
  /**
   * How long the writer holds apply transactions to commit them together now, in ms (see
   * `SqliteNodeStoreOptions.writerApplyBatchMs`: less while their commits read most of their pages from the
   * file system); 0 where writes run inline or holding is off.
   */
  applyHoldMs: number;
}
