import { randomBytes } from 'node:crypto';
import {
  type ConfState,
  DiskFullError,
  type Entry,
  type LogIndex,
  type Snapshot,
  type SnapshotMeta,
} from '@cohort/core';
import type { AppliedState, ApplyOutcome, DurableStateMachine, SnapshotReader, SnapshotWriter } from '@cohort/raft';
import { type DurableNodeStore, type KvRecord, MemoryNodeStore, type PartitionKv } from '@cohort/storage';
import { isExpired } from './apply-op.js';
import { type KvCommand, decodeCommand, entryCommand } from './command.js';
import { type DigestThreadOptions, digestOnThread } from './digest-thread.js';
import { digestSteps, digestView } from './digest.js';
import { installLegacy } from './legacy-snapshot.js';
import { withMethods } from './method-proxy.js';
import { decimal, readResult, revision } from './reads.js';
import type { KvReadOp } from './request.js';
import type { KvResult } from './result.js';
import { applySessionCommand, sweepIdleSessions } from './session-apply.js';
import { KvSnapshotReader, KvSnapshotWriter } from './snapshot-stream.js';
import { WorkerSnapshotReader } from './snapshot-thread.js';
import { IntentCount, type TxnContext, applyTxnAware, intents, lockOf, recordState, viewOf } from './txn/apply-txn.js';
import { writes } from './txn/intent-codec.js';
import { isReservedKey } from './txn/keyspace.js';
import { opKeys } from './txn/op-keys.js';
import type { KvEvent, KvEventListener } from './watch-hub.js';

/** The seed of reads that use none (all but RANDOMKEY). */
const NO_SEED = new Uint8Array(8);

/** Rows a range without a limit reads per scan. */
const RANGE_PAGE = 1024;

/** The smallest key after `key` in byte order. */
function successor(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/** Whether `end` is {@link successor}`(start)`: `[start, end)` holds `start` alone. */
function isSuccessor(start: Uint8Array, end: Uint8Array): boolean {
  const n = start.length;
  if (end.length !== n + 1 || end[n] !== 0) return false;
  // Byte by byte: a key is short, and every single-key read asks (a view to compare would be garbage).
  for (let i = 0; i < n; i++) if (start[i] !== end[i]) return false;
  return true;
}

/** Commands {@link KvStateMachine.prefetch} decoded and kept for their apply, at most. */
const DECODED_KEPT = 4096;

/** Idle sessions are swept on log indexes that are multiples of this. */
const SWEEP_EVERY = 16;

/** Options of {@link KvStateMachine}. */
export interface KvStateMachineOptions {
  /**
   * Log time (ms) after which a client session with no write is dropped.
   * @default 3600000 (1 hour)
   */
  sessionTtlMs?: number;
  /**
   * Idle sessions dropped at most per sweep (on every 16th log index), so expiry never stalls apply.
   * @default 64
   */
  sessionSweepBatch?: number;
  /**
   * Digests of `checksum` entries kept for {@link KvStateMachine.digestAt}.
   * @default 16
   */
  digestHistory?: number;
  /**
   * Runs the next slice of a `checksum` entry's digest (production: the
   * node clock's `defer`), so a digest of a large partition never blocks
   * the event loop; `digestAt` is undefined until it is done. Absent, the
   * digest is computed in full while the entry applies (tests, simulation).
   */
  defer?: (fn: () => void) => void;
  /**
   * Computes a `checksum` entry's digest on a worker thread of its own when the store can mark its
   * writes for one (`PartitionKv.pinView`: the SQLite store with its writer thread), so the event loop
   * pays nothing for it; the digest is still of exactly the entry's index. Otherwise, or when absent,
   * as {@link defer} says. `digestAt` is undefined until it is done.
   */
  digestThread?: DigestThreadOptions;
  /**
   * Log time (ms) an aborted transaction record, or a participant's note of
   * an abort that came before its prepare, is kept: past any retry of the
   * transaction's steps (which go in sessions, so at least `sessionTtlMs`).
   * @default sessionTtlMs
   */
  txnRetentionMs?: number;
}

/** Pages of a digest hashed per slice when digests are spread over turns. */
const DIGEST_PAGES_PER_SLICE = 16;

/**
 * The replicated key-value state machine of one partition, on disk: applies
 * committed entries in one transaction per batch that also records the
 * applied position, so a restart resumes from it. Deterministic: time comes
 * from the entries (the leader's stamp), kept monotonic as the log time.
 * Holds no rows in memory: reads go to the store.
 */
export class KvStateMachine implements DurableStateMachine<KvResult> {
  private readonly kv: PartitionKv;
  private readonly sessionTtl: number;
  private readonly sweepBatch: number;
  private readonly digestHistory: number;
  private readonly digests = new Map<LogIndex, string>();
  /** Indexes whose digest is still being computed, slice by slice. */
  private readonly pendingDigests = new Set<LogIndex>();
  /** Why the digest at an index could not be computed here (the last few). */
  private readonly digestFailures = new Map<LogIndex, string>();
  private readonly defer: ((fn: () => void) => void) | undefined;
  private readonly digestThread: DigestThreadOptions | undefined;
  /** Transaction rules' state: the intent count and the retention of aborted records. */
  private readonly txn: TxnContext;
  private readonly store: DurableNodeStore;
  /** A private in-memory store nobody else syncs: the machine syncs it after each batch so it never grows a backlog. */
  private readonly privateStore: MemoryNodeStore | undefined;
  /** Told of every change as batches apply (watches); see {@link setEventListener}. */
  private listener: KvEventListener | undefined;
  /** The partition as commands see it while a listener is set: its puts and deletes are recorded as events. */
  private observed: PartitionKv | undefined;
  /** Events of the batch being applied. */
  private pending: KvEvent[] = [];
  /** The index of the entry being applied (the revision of its events). */
  private applying = 0;
  /**
   * Commands decoded by {@link prefetch}, by log index, for the apply to reuse (an index and term
   * name one entry); dropped when applied, all dropped past {@link DECODED_KEPT}.
   */
  private readonly decoded = new Map<LogIndex, { term: number; cmd: KvCommand }>();

  /**
   * @param store the node's store; without one, a fresh in-memory store (tests and tools)
   * @param partition the partition whose rows this machine owns
   */
  constructor(
    store?: DurableNodeStore,
    readonly partition = 'kv',
    opts: KvStateMachineOptions = {},
  ) {
    if (store === undefined) this.privateStore = new MemoryNodeStore();
    this.store = store ?? (this.privateStore as MemoryNodeStore);
    this.kv = this.store.kv(partition);
    this.sessionTtl = opts.sessionTtlMs ?? 3_600_000;
    this.sweepBatch = opts.sessionSweepBatch ?? 64;
    this.digestHistory = opts.digestHistory ?? 16;
    this.defer = opts.defer;
    this.digestThread = opts.digestThread;
    this.txn = { intents: new IntentCount(), retentionMs: opts.txnRetentionMs ?? this.sessionTtl };
  }

  applied(): AppliedState {
    return this.kv.applied();
  }

  /**
   * Tells `listener` of every key change as entries apply (after each
   * batch's transaction), and of a snapshot replacing the partition.
   */
  setEventListener(listener: KvEventListener | undefined): void {
    this.listener = listener;
    if (listener === undefined) {
      this.observed = undefined;
      return;
    }
    const kv = this.kv;
    // Every method bound once (this is the apply path): puts and deletes also record their events.
    const methods = new Map<PropertyKey, unknown>([
      [
        'put',
        (key: Uint8Array, value: Uint8Array, opts: Parameters<PartitionKv['put']>[2]) => {
          const record = kv.put(key, value, opts);
          // Its create revision and version may be worked out only when a watcher reads them.
          if (!isReservedKey(key)) this.pending.push({ type: 'put', key: record.key, revision: this.applying, record });
          return record;
        },
      ],
      [
        'delete',
        (key: Uint8Array) => {
          const existed = kv.delete(key);
          if (existed && !isReservedKey(key))
            this.pending.push({ type: 'delete', key: key.slice(), revision: this.applying });
          return existed;
        },
      ],
    ]);
    this.observed = withMethods(kv, methods);
  }

  /** The index of the last entry applied. */
  get appliedIndex(): LogIndex {
    return this.kv.appliedIndex();
  }

  /** The latest log time applied (ms): the maximum of the leader stamps seen. */
  get logTime(): number {
    return this.kv.logTime();
  }

  /** Number of keys held, including expired keys the sweeper has not deleted yet (DBSIZE). */
  get size(): number {
    return viewOf(this.kv).count();
  }

  /**
   * Applies committed entries in one non-fsynced transaction with the applied
   * position. Entries at or below the applied index are skipped (a replay
   * after a restart). A `checksum` entry ends its transaction early, so its
   * digest is taken from a view at exactly its index.
   */
  applyBatch(entries: Entry[], confState: ConfState): (ApplyOutcome<KvResult> | undefined)[] {
    const outcomes: (ApplyOutcome<KvResult> | undefined)[] = [];
    let from = 0;
    this.pending = [];
    while (from < entries.length) {
      let checksumAt: LogIndex | undefined;
      let to = from;
      try {
        this.store.transaction(
          () => {
            let applied = this.kv.applied();
            let logTime = this.kv.logTime();
            const before = applied.index;
            for (; to < entries.length && checksumAt === undefined; to++) {
              const e = entries[to] as Entry;
              if (e.index <= applied.index) {
                outcomes.push(undefined);
                continue;
              }
              const out = this.applyEntry(e, logTime);
              logTime = out.logTime;
              outcomes.push(out.outcome);
              if (out.checksum) checksumAt = e.index;
              applied = { index: e.index, term: e.term, confState };
            }
            if (applied.index > before) this.kv.setApplied(applied, logTime);
          },
          { durable: false, snapshotReads: true },
        );
      } catch (err) {
        // Rolled back: what the transaction steps counted is void.
        this.txn.intents.reset();
        throw err;
      }
      if (checksumAt !== undefined) {
        try {
          this.recordDigest(checksumAt);
        } catch (err) {
          // A view waits for the writer, which waits for disk space: this replica records no digest at
          // this index (a check then finds it missing, not different). The entries are applied regardless.
          if (!(err instanceof DiskFullError)) throw err;
        }
      }
      from = to;
    }
    this.privateStore?.sync();
    if (this.listener) {
      const events = this.pending;
      this.pending = [];
      this.tell(() => this.listener?.applied(events, this.kv.applied().index));
    }
    return outcomes;
  }

  /**
   * Reads ahead the rows the apply of `entries` will read (entries being appended: see
   * `DurableStateMachine.prefetch`), when the store reads ahead at all.
   */
  prefetch(entries: readonly Entry[]): void {
    this.kv.prefetch?.(() => {
      const keys: Uint8Array[] = [];
      if (this.decoded.size + entries.length > DECODED_KEPT) this.decoded.clear();
      for (const e of entries) {
        const cmd = entryCommand(e);
        if (cmd === undefined) continue;
        this.decoded.set(e.index, { term: e.term, cmd });
        const k = opKeys(cmd);
        if (k !== 'all') for (const key of k) keys.push(key);
      }
      return keys;
    });
  }

  /**
   * Applies the entry at `index` holding an encoded command, alone in its
   * batch; throws what the entry's outcome holds on bytes that are not a command.
   * A convenience for tests and single-node tools.
   */
  apply(index: LogIndex, data: Uint8Array): KvResult {
    const applied = this.kv.applied();
    const [out] = this.applyBatch([{ index, term: applied.term, type: 'normal', data }], applied.confState);
    if (!out) throw new Error(`entry ${index} is at or below the applied index ${applied.index}`);
    if (!out.ok) throw out.error;
    return out.value;
  }

  /** The digest recorded by the `checksum` entry at `index`, while it is among the last few kept. */
  digestAt(index: LogIndex): string | undefined {
    return this.digests.get(index);
  }

  /** A digest of the partition as it stands now (see {@link digestAt} for replicas to compare). */
  digest(): string {
    const view = this.kv.openView();
    try {
      return digestView(view);
    } finally {
      view.close();
    }
  }

  /** The value of `key` if present and not expired at `now` (log-time ms). */
  get(key: Uint8Array, now: number): Uint8Array | undefined {
    const rec = viewOf(this.kv).get(key);
    return rec && !isExpired(rec, now) ? rec.value : undefined;
  }

  /** Whether `key` is present and not expired at `now`. */
  has(key: Uint8Array, now: number): boolean {
    return this.get(key, now) !== undefined;
  }

  /** Remaining time to live of `key` in ms (PTTL): -2 when absent or expired, -1 when it never expires. */
  ttl(key: Uint8Array, now: number): number {
    const rec = viewOf(this.kv).get(key);
    if (!rec || isExpired(rec, now)) return -2;
    return rec.expiresAt === undefined ? -1 : rec.expiresAt - now;
  }

  /**
   * A read at log time `now` (see `KvReadOp`; `range` is {@link range}); RANDOMKEY starts from a
   * random point. Arrays of values are lists of bulk or nil results.
   */
  read(op: Exclude<KvReadOp, 'range'>, keys: Uint8Array[], args: Uint8Array[], now: number): KvResult {
    if (op === 'txnRecord') return recordState(this.kv, Buffer.from(keys[0] ?? []).toString('utf8'));
    const kv = viewOf(this.kv);
    if (op === 'revisions') {
      return { type: 'list', items: keys.map((k) => ({ type: 'bulk', value: decimal(revision(kv, k, now)) })) };
    }
    // Only RANDOMKEY uses the seed: every other read skips the cost of drawing it (it showed in profiles of GET).
    return readResult(kv, op, keys, args, now, op === 'randomkey' ? randomBytes(8) : NO_SEED);
  }

  /**
   * The transaction intent a read of `keys` (`all`: a read of any key, such
   * as SCAN or DBSIZE; a range: its keys) meets, unless its transaction is in
   * `pass` (found pending, so the read is served from the state before it):
   * only intents that change their key count. Undefined when none.
   */
  readLock(
    keys: Uint8Array[] | 'all' | { start: Uint8Array; end: Uint8Array | undefined },
    pass?: ReadonlySet<string>,
  ): Extract<KvResult, { type: 'locked' }> | undefined {
    if (Array.isArray(keys) || keys === 'all') return lockOf(this.kv, keys, false, this.txn.intents, pass);
    if (this.txn.intents.of(this.kv) === 0) return undefined;
    const { start, end } = keys;
    for (const { key, intent } of intents(this.kv)) {
      const inside = Buffer.compare(key, start) >= 0 && (end === undefined || Buffer.compare(key, end) < 0);
      if (inside && writes(intent) && !pass?.has(intent.txn)) {
        return {
          type: 'locked',
          txn: intent.txn,
          recordPartition: intent.recordPartition,
          deadline: intent.deadline,
          write: true,
        };
      }
    }
    return undefined;
  }

  /** The lock a write of `keys` (`all`: FLUSHDB) would meet now: any transaction's intent on them. */
  writeLock(keys: Uint8Array[] | 'all'): Extract<KvResult, { type: 'locked' }> | undefined {
    return lockOf(this.kv, keys, true, this.txn.intents);
  }

  /**
   * The intents whose deadline (log time) is at or before `now`, one per
   * transaction: what the leader's resolver finishes when nobody met them.
   */
  staleIntents(now: number): { txn: string; recordPartition: number; deadline: number }[] {
    if (this.txn.intents.of(this.kv) === 0) return [];
    const out = new Map<string, { txn: string; recordPartition: number; deadline: number }>();
    for (const { intent } of intents(this.kv)) {
      if (intent.deadline <= now && !out.has(intent.txn)) {
        out.set(intent.txn, { txn: intent.txn, recordPartition: intent.recordPartition, deadline: intent.deadline });
      }
    }
    return [...out.values()];
  }

  /** Every intent of the partition with the key it locks (tests, invariants, tools). */
  intents(): { key: Uint8Array; txn: string; recordPartition: number; deadline: number; write: boolean }[] {
    if (this.txn.intents.of(this.kv) === 0) return [];
    return [...intents(this.kv)].map(({ key, intent }) => ({
      key,
      txn: intent.txn,
      recordPartition: intent.recordPartition,
      deadline: intent.deadline,
      write: writes(intent),
    }));
  }

  /** The record of `key` (revisions, version, expiry) if present and not expired at `now`. */
  record(key: Uint8Array, now: number): KvRecord | undefined {
    const rec = viewOf(this.kv).get(key);
    return rec && !isExpired(rec, now) ? rec : undefined;
  }

  /**
   * Up to `limit` records (0: no limit) of keys in `[start, end)` (to the last
   * key without `end`) not expired at `now`, in byte order; `more` when keys
   * in the range remain past the limit.
   */
  range(
    start: Uint8Array,
    end: Uint8Array | undefined,
    limit: number,
    now: number,
  ): { records: KvRecord[]; more: boolean } {
    // [key, key + 0x00) holds that one key: a point read, a third of a range scan's cost (an HTTP GET of a key).
    if (end !== undefined && isSuccessor(start, end)) {
      const r = viewOf(this.kv).get(start);
      return { records: r !== undefined && !isExpired(r, now) ? [r] : [], more: false };
    }
    const out: KvRecord[] = [];
    let from = start;
    for (;;) {
      const want = limit > 0 ? limit + 1 - out.length : RANGE_PAGE;
      const kv = viewOf(this.kv);
      const page = kv.scan(end === undefined ? { start: from, limit: want } : { start: from, end, limit: want });
      for (const r of page) if (!isExpired(r, now)) out.push(r);
      const last = page.at(-1);
      if (limit > 0 && out.length > limit) return { records: out.slice(0, limit), more: true };
      if (last === undefined || page.length < want) return { records: out, more: false };
      from = successor(last.key);
    }
  }

  /** Up to `limit` keys expired at `now`, earliest first: what the leader's sweeper proposes to delete. */
  expiredKeys(now: number, limit: number): Uint8Array[] {
    return this.kv.expired(now, limit);
  }

  /**
   * A snapshot of the partition for a transfer, read from a copy of it (made aside by the store), so a
   * transfer paced over minutes holds nothing open in the store; at the applied position once copied.
   * A store that keeps the copy in a file has it read and encoded on a worker thread
   * ({@link WorkerSnapshotReader}); the chunks then cost the event loop nothing to make.
   */
  async openSnapshot(): Promise<SnapshotReader> {
    if (this.kv.openDetachedImage) return WorkerSnapshotReader.open(await this.kv.openDetachedImage());
    return new KvSnapshotReader(await this.kv.openDetachedView());
  }

  receiveSnapshot(meta: SnapshotMeta): SnapshotWriter {
    const writer = new KvSnapshotWriter(this.partition, meta, this.kv.beginInstall());
    return {
      write: (seq, chunk) => writer.write(seq, chunk),
      commit: () => {
        writer.commit();
        this.txn.intents.reset();
        this.tell(() => this.listener?.reset(meta.index));
      },
      abort: () => writer.abort(),
    };
  }

  restoreLegacy(snapshot: Snapshot): void {
    const installer = this.kv.beginInstall();
    try {
      installLegacy(this.partition, snapshot, installer);
    } catch (err) {
      installer.abort();
      throw err;
    }
    installer.commit(snapshot.meta, 0);
    this.txn.intents.reset();
    this.tell(() => this.listener?.reset(snapshot.meta.index));
  }

  private applyEntry(
    e: Entry,
    logTime: number,
  ): { outcome: ApplyOutcome<KvResult> | undefined; logTime: number; checksum: boolean } {
    if (e.type !== 'normal' || e.data.length === 0) return { outcome: undefined, logTime, checksum: false };
    let cmd: KvCommand;
    const early = this.decoded.get(e.index);
    if (early !== undefined) this.decoded.delete(e.index);
    if (early !== undefined && early.term === e.term) cmd = early.cmd;
    else {
      try {
        cmd = decodeCommand(e.data);
      } catch (err) {
        return { outcome: { ok: false, error: err as Error }, logTime, checksum: false };
      }
    }
    // Log time only moves forward, whatever a new leader's clock says.
    const now = Math.max(logTime, cmd.now);
    this.applying = e.index;
    const value = applySessionCommand(this.observed ?? this.kv, cmd, e.index, now, (kv, op, index, at) =>
      applyTxnAware(kv, op, index, at, this.txn),
    );
    // Swept at log positions every replica shares, whatever its batching or restarts.
    if (e.index % SWEEP_EVERY === 0) sweepIdleSessions(this.kv, now - this.sessionTtl, this.sweepBatch);
    return { outcome: { ok: true, value }, logTime: now, checksum: cmd.op === 'checksum' };
  }

  private recordDigest(index: LogIndex): void {
    const pin = this.digestThread !== undefined ? this.kv.pinView?.() : undefined;
    if (pin !== undefined) {
      this.pendingDigests.add(index);
      digestOnThread(pin, this.digestThread).then(
        (d) => {
          this.pendingDigests.delete(index);
          if (d.index === index) this.keepDigest(index, d.digest);
          else this.failDigest(index, `the digest covers index ${d.index}, not ${index}`);
        },
        (err: Error) => {
          this.pendingDigests.delete(index);
          this.failDigest(index, err.message);
        },
      );
      return;
    }
    const defer = this.defer;
    if (defer === undefined) {
      this.keepDigest(index, this.digest());
      return;
    }
    // The view is taken now, right after the entry's transaction: the digest is of exactly that index.
    const view = this.kv.openView();
    const steps = digestSteps(view);
    this.pendingDigests.add(index);
    const slice = (): void => {
      try {
        for (let i = 0; i < DIGEST_PAGES_PER_SLICE; i++) {
          const r = steps.next();
          if (r.done) {
            view.close();
            this.pendingDigests.delete(index);
            this.keepDigest(index, r.value);
            return;
          }
        }
      } catch (err) {
        view.close();
        this.pendingDigests.delete(index);
        throw err;
      }
      defer(slice);
    };
    slice();
  }

  /** Calls the listener; what it throws never reaches the apply path (the entries are applied regardless). */
  private tell(fn: () => void): void {
    try {
      fn();
    } catch {
      // The listener's own failure (a watcher's connection) is its business.
    }
  }

  /** Why this replica has no digest of the `checksum` entry at `index`, when computing it failed. */
  digestFailure(index: LogIndex): string | undefined {
    return this.digestFailures.get(index);
  }

  private failDigest(index: LogIndex, why: string): void {
    this.digestFailures.set(index, why);
    while (this.digestFailures.size > this.digestHistory) {
      this.digestFailures.delete(this.digestFailures.keys().next().value as LogIndex);
    }
  }

  /** Whether the digest of the `checksum` entry at `index` is still being computed. */
  digestPending(index: LogIndex): boolean {
    return this.pendingDigests.has(index);
  }

  private keepDigest(index: LogIndex, digest: string): void {
    this.digests.set(index, digest);
    while (this.digests.size > this.digestHistory) {
      const oldest = this.digests.keys().next().value as LogIndex;
      this.digests.delete(oldest);
    }
  }
}
