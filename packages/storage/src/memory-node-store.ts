import type {
  ConfState,
  Entry,
  GroupId,
  GroupWrite,
  HardState,
  LogIndex,
  RaftLogReader,
  Snapshot,
  SnapshotMeta,
  Term,
} from '@cohort/core';
import { CompactedError, StorageError, UnavailableError } from '@cohort/core/errors';
import {
  type AcceptorStateStore,
  type StoredAcceptorState,
  type StoredVote,
  checkAcceptorWrite,
} from './acceptor-state.js';
import { DEFAULT_CHUNK_BYTES, Rechunker, joinChunks, makeStats, splitChunks } from './chunks.js';
import {
  type LogPosition,
  checkCompact,
  checkSnapshotSave,
  cloneMeta,
  limitSize,
  logFullError,
  planBatch,
} from './log-rules.js';
import { MemoryEntryCrcs } from './memory-entry-crcs.js';
import { MemoryPartitionKv } from './memory-kv.js';
import {
  type MemGroup,
  type MemState,
  appendTo,
  clearEntries,
  cloneMemState,
  compactTo,
  emptyMemGroup,
  emptyMemState,
  entryBytes,
  lastIndexOf,
  memGroup,
  termOf,
} from './memory-state.js';
import {
  type DurableNodeStore,
  type LogLimits,
  type LogStats,
  type PartitionKv,
  type ResolvedLogLimits,
  type SnapshotSink,
  type SnapshotSource,
  type TransactionOptions,
  resolveLimits,
} from './types.js';

/** Options of {@link MemoryNodeStore}. */
export interface MemoryNodeStoreOptions {
  limits?: LogLimits;
  /**
   * Whether every write is durable when it returns. When false, writes stay
   * volatile until `sync()`, and `crash()` loses them.
   * @default true
   */
  autoSync?: boolean;
  /**
   * Size of a snapshot chunk.
   * @default 1048576
   */
  chunkBytes?: number;
  /**
   * Name used in error messages in place of a file name.
   * @default 'memory'
   */
  name?: string;
}

/** Options of a single {@link MemoryNodeStore.write}. */
export interface MemoryWriteOptions {
  /** @default the store's `autoSync` */
  sync?: boolean;
}

/** Options of {@link MemoryNodeStore.sync}. */
export interface MemorySyncOptions {
  /**
   * Leave the applies (non-durable transactions) pending unless a write other than a plain log append
   * follows them, as the SQLite store's writer may (see its `writerApplyBatchMs`): the plain appends
   * after them become durable without them, and a crash loses them; a compaction, a snapshot, an
   * acceptor write or a durable transaction after them makes them durable first.
   * @default false
   */
  holdApplies?: boolean;
}

/** Options of {@link MemoryNodeStore.crash}. */
export interface MemoryCrashOptions {
  /**
   * Also tear the last synced log write: the bytes of its last entry are
   * damaged, so reading that entry fails its CRC check (as a torn sector would).
   * @default false
   */
  tornLastWrite?: boolean;
}

type Op = (s: MemState) => void;

/**
 * What a pending op is, for {@link MemoryNodeStore.sync}'s `holdApplies`: a plain log append (no snapshot),
 * an apply (a non-durable transaction's), or anything else, which stays in order with everything before it.
 */
const OP_LOG = 0;
const OP_APPLY = 1;
const OP_ORDERED = 2;

/** Read in place of a group never written; never mutated (writes go through `memGroup`). */
const EMPTY_GROUP: MemGroup = emptyMemGroup();

/**
 * The in-memory {@link DurableNodeStore} for simulation and tests. It keeps a
 * live state (what reads see) and a durable one; a write is durable once
 * synced, and {@link crash} throws away every write that was not.
 */
export class MemoryNodeStore implements DurableNodeStore, AcceptorStateStore {
  private live: MemState = emptyMemState();
  private durable: MemState = emptyMemState();
  /** Ops applied to `live` but not yet to `durable`, in order, and what each is (`OP_*`). */
  private pending: Op[] = [];
  private pendingKinds: number[] = [];
  /** Ops of the transaction in progress, when one is. */
  private txn: Op[] | undefined;
  private closed = false;
  private readonly limits: ResolvedLogLimits;
  private readonly autoSync: boolean;
  private readonly chunkBytes: number;
  private readonly name: string;
  /** CRC of every stored entry, computed when written and checked on every read. */
  private readonly crcs: MemoryEntryCrcs;
  /** The last entry of the newest log write, before and after it is synced. */
  private unsyncedLogWrite: { group: GroupId; index: LogIndex } | undefined;
  private syncedLogWrite: { group: GroupId; index: LogIndex } | undefined;

  constructor(opts: MemoryNodeStoreOptions = {}) {
    this.limits = resolveLimits(opts.limits);
    this.autoSync = opts.autoSync ?? true;
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.name = opts.name ?? 'memory';
    this.crcs = new MemoryEntryCrcs(this.name);
  }

  group(group: GroupId): RaftLogReader {
    return new MemoryLogReader(
      () => this.readGroup(group),
      (e) => this.crcs.check(group, e),
    );
  }

  groups(): GroupId[] {
    return [...this.live.groups.keys()].sort();
  }

  write(batch: GroupWrite[], opts: MemoryWriteOptions = {}): Promise<void> {
    try {
      this.writeSync(batch, opts);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Like {@link write}, done when it returns. The store keeps the written
   * entries themselves, not copies: they, and their `data`, must not be
   * modified once handed over (the engine's entries never are). A modified
   * one fails its checksum when read, as a damaged disk would.
   */
  writeSync(batch: GroupWrite[], opts: MemoryWriteOptions = {}): void {
    this.assertOpen();
    const plans = planBatch(batch, (g) => this.position(g), this.name);
    const stored = plans.map((p) => {
      if (p.entries) for (const e of p.entries) this.crcs.stamp(p.group, e);
      return {
        group: p.group,
        hardState: p.hardState,
        // The list is copied (the caller may reuse it), its entries are not.
        entries: p.entries?.slice(),
        snapshot: p.snapshot && {
          meta: cloneMeta(p.snapshot.meta),
          chunks: splitChunks(p.snapshot.data, this.chunkBytes),
        },
      };
    });
    for (const p of stored) {
      const last = p.entries?.at(-1);
      if (last) this.unsyncedLogWrite = { group: p.group, index: last.index };
    }
    this.apply(
      (s) => {
        for (const p of stored) {
          const g = memGroup(s, p.group);
          if (p.snapshot) {
            g.snapMeta = p.snapshot.meta;
            g.snapChunks = p.snapshot.chunks;
            g.compactIndex = p.snapshot.meta.index;
            g.compactTerm = p.snapshot.meta.term;
            clearEntries(g);
          }
          if (p.entries) appendTo(g, p.entries);
          if (p.hardState) g.hardState = p.hardState;
        }
      },
      opts.sync,
      stored.some((p) => p.snapshot) ? OP_ORDERED : OP_LOG,
    );
  }

  saveSnapshot(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): Promise<void> {
    try {
      this.saveSnapshotSync(group, snapshot, compactTo);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  saveSnapshotSync(group: GroupId, snapshot: Snapshot, compactTo: LogIndex): void {
    const sink = this.beginSnapshot(group, snapshot.meta);
    sink.write(snapshot.data);
    sink.finish(compactTo);
  }

  beginSnapshot(group: GroupId, meta: SnapshotMeta): SnapshotSink {
    this.assertOpen();
    const chunks: Uint8Array[] = [];
    const rechunker = new Rechunker(this.chunkBytes, (c) => chunks.push(c));
    let done = false;
    const snapMeta = cloneMeta(meta);
    return {
      write: (data) => {
        if (done) throw new StorageError(`${this.name}: group ${group}: snapshot already finished or aborted`);
        rechunker.write(data);
      },
      finish: (compactIndex) => {
        if (done) throw new StorageError(`${this.name}: group ${group}: snapshot already finished or aborted`);
        done = true;
        rechunker.flush();
        const pos = this.position(group);
        checkSnapshotSave(this.name, group, pos, snapMeta, compactIndex);
        this.apply((s) => {
          const g = memGroup(s, group);
          g.snapMeta = snapMeta;
          g.snapChunks = chunks;
          if (snapMeta.index > lastIndexOf(g)) {
            g.compactIndex = snapMeta.index;
            g.compactTerm = snapMeta.term;
            clearEntries(g);
          } else {
            compactTo(g, compactIndex);
          }
        });
      },
      abort: () => {
        done = true;
      },
    };
  }

  openSnapshot(group: GroupId): SnapshotSource | undefined {
    const g = this.live.groups.get(group);
    if (!g || (g.snapMeta.index === 0 && g.snapChunks.length === 0)) return undefined;
    const chunks = g.snapChunks;
    return {
      meta: cloneMeta(g.snapMeta),
      size: chunks.reduce((n, c) => n + c.length, 0),
      chunks: () => chunks.values(),
    };
  }

  compact(group: GroupId, index: LogIndex): void {
    this.assertOpen();
    const pos = this.position(group);
    checkCompact(group, pos, index, this.name);
    if (index > pos.snapshotIndex) {
      throw new StorageError(
        `${this.name}: group ${group}: cannot compact to ${index}, past the snapshot at ${pos.snapshotIndex}`,
      );
    }
    this.apply((s) => compactTo(memGroup(s, group), index));
  }

  stats(group: GroupId): LogStats {
    const g = this.readGroup(group);
    const { bytes, since } = entryBytes(g, g.snapMeta.index);
    return makeStats(
      {
        compactIndex: g.compactIndex,
        lastIndex: lastIndexOf(g),
        snapshotIndex: g.snapMeta.index,
        bytes,
        bytesSinceSnapshot: since,
      },
      this.limits,
    );
  }

  admitProposal(group: GroupId, bytes: number): void {
    const st = this.stats(group);
    if (st.bytes + bytes > this.limits.maxLogBytes) throw logFullError(this.name, group, st.bytes, this.limits);
  }

  kv(partition: string): PartitionKv {
    return this.partitionKv(partition);
  }

  /** Test hook: damages the stored row of `key` so that reading it throws `StorageError`. */
  corruptKvRow(partition: string, key: Uint8Array): void {
    this.partitionKv(partition).corruptRow(key);
  }

  /**
   * Simulated disk fault: damages the stored bytes of entry `index` of
   * `group` (live and durable), so that reading it throws `StorageError`.
   */
  corruptEntry(group: GroupId, index: LogIndex): void {
    const g = this.live.groups.get(group);
    if (!g || index <= g.compactIndex || index > lastIndexOf(g)) {
      throw new StorageError(`${this.name}: group ${group}: no entry ${index} to corrupt`);
    }
    this.crcs.damage(this.live, group, index);
    this.crcs.damage(this.durable, group, index);
  }

  transaction<T>(fn: () => T, opts: TransactionOptions = {}): T {
    this.assertOpen();
    if (this.txn) return fn();
    this.txn = [];
    let ops: Op[];
    try {
      const result = fn();
      ops = this.txn;
      this.txn = undefined;
      const kind = opts.durable === false ? OP_APPLY : OP_ORDERED;
      for (const op of ops) {
        this.pending.push(op);
        this.pendingKinds.push(kind);
      }
      // A non-durable transaction stays volatile until the next synced write, as SQLite's WAL does.
      if (this.autoSync && opts.durable !== false) this.sync();
      return result;
    } catch (err) {
      // Roll the live state back to durable + pending, without the failed transaction's ops.
      this.txn = undefined;
      this.live = cloneMemState(this.durable);
      for (const op of this.pending) op(this.live);
      throw err;
    }
  }

  /** The Vertical Paxos acceptor state of `group`, as reads see it (durable, unless `autoSync` is off). */
  loadAcceptor(group: GroupId): StoredAcceptorState {
    this.assertOpen();
    const a = this.live.acceptors.get(group);
    return {
      maxBallot: a?.maxBallot ?? 0,
      votes: a ? [...a.votes.values()].sort((x, y) => x.slot - y.slot).map((v) => ({ ...v })) : [],
      compacted: a?.compacted ?? 0,
    };
  }

  /**
   * Stores an acceptor's promise (never lowered) and votes, as the SQLite
   * store does; durable when this returns unless `autoSync` is off, in which
   * case `crash()` before `sync()` loses them.
   */
  saveAcceptor(group: GroupId, maxBallot: number | undefined, votes: StoredVote[], compactTo?: number): Promise<void> {
    try {
      checkAcceptorWrite(this.name, group, maxBallot, votes, compactTo);
      if (this.txn) throw new StorageError(`${this.name}: an acceptor write cannot run inside a transaction`);
      const copies = votes.map((v) => ({ ...v }));
      this.apply((s) => {
        let a = s.acceptors.get(group);
        if (!a) {
          a = { maxBallot: 0, votes: new Map(), compacted: 0 };
          s.acceptors.set(group, a);
        }
        if (maxBallot !== undefined && maxBallot > a.maxBallot) a.maxBallot = maxBallot;
        for (const v of copies) if (compactTo === undefined || v.slot > compactTo) a.votes.set(v.slot, v);
        if (compactTo !== undefined) {
          for (const slot of [...a.votes.keys()]) if (slot <= compactTo) a.votes.delete(slot);
          if (compactTo > a.compacted) a.compacted = compactTo;
        }
      });
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Makes every write so far durable (the fsync), or, with `holdApplies`, every one but the applies it may leave. */
  sync(opts: MemorySyncOptions = {}): void {
    // The applies left pending (every one of them OP_APPLY).
    let kept: Op[] = [];
    for (let i = 0; i < this.pending.length; i++) {
      const op = this.pending[i] as Op;
      const kind = this.pendingKinds[i] as number;
      if (opts.holdApplies === true && kind === OP_APPLY) {
        kept.push(op);
        continue;
      }
      if (kind === OP_ORDERED && kept.length > 0) {
        for (const k of kept) k(this.durable);
        kept = [];
      }
      op(this.durable);
    }
    this.pending = kept;
    this.pendingKinds = kept.map(() => OP_APPLY);
    if (this.unsyncedLogWrite) this.syncedLogWrite = this.unsyncedLogWrite;
    this.unsyncedLogWrite = undefined;
  }

  /** Writes applied but not yet synced; a crash now would lose them. */
  unsyncedWrites(): number {
    return this.pending.length;
  }

  /**
   * Simulates a crash and restart: every write not synced is lost; reads see
   * the durable state. With `tornLastWrite`, the last synced log write is torn too.
   */
  crash(opts: MemoryCrashOptions = {}): void {
    this.live = cloneMemState(this.durable);
    this.pending = [];
    this.pendingKinds = [];
    this.txn = undefined;
    this.closed = false;
    this.unsyncedLogWrite = undefined;
    const torn = this.syncedLogWrite;
    if (opts.tornLastWrite && torn) {
      const g = this.live.groups.get(torn.group);
      if (g && torn.index > g.compactIndex && torn.index <= lastIndexOf(g)) this.corruptEntry(torn.group, torn.index);
    }
  }

  close(): void {
    this.closed = true;
  }

  private apply(op: Op, sync?: boolean, kind = OP_ORDERED): void {
    this.assertOpen();
    op(this.live);
    if (this.txn) {
      this.txn.push(op);
      return;
    }
    this.pending.push(op);
    this.pendingKinds.push(kind);
    if (sync ?? this.autoSync) this.sync();
  }

  private partitionKv(partition: string): MemoryPartitionKv {
    return new MemoryPartitionKv(this.name, partition, {
      live: () => this.live,
      apply: (op, sync) => this.apply(op, sync),
    });
  }

  private readGroup(group: GroupId): MemGroup {
    return this.live.groups.get(group) ?? EMPTY_GROUP;
  }

  private position(group: GroupId): LogPosition {
    const g = this.readGroup(group);
    return {
      compactIndex: g.compactIndex,
      lastIndex: lastIndexOf(g),
      snapshotIndex: g.snapMeta.index,
      hardState: g.hardState,
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageError(`${this.name}: the store is closed`);
  }
}

/** The engine's view of one group of a {@link MemoryNodeStore}. */
class MemoryLogReader implements RaftLogReader {
  constructor(
    private readonly g: () => MemGroup,
    private readonly check: (e: Entry) => void,
  ) {}

  initialState(): { hardState: HardState; confState: ConfState } {
    const g = this.g();
    return { hardState: { ...g.hardState }, confState: cloneMeta(g.snapMeta).confState };
  }

  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    const g = this.g();
    if (lo <= g.compactIndex)
      throw new CompactedError(`entries from ${lo} are compacted (first index ${g.compactIndex + 1})`);
    const last = lastIndexOf(g);
    if (hi > last + 1) throw new UnavailableError(`entries up to ${hi - 1} requested, last index is ${last}`);
    const out = limitSize(g.entries.slice(lo - g.compactIndex - 1, hi - g.compactIndex - 1), maxBytes);
    for (const e of out) this.check(e);
    return out;
  }

  term(i: LogIndex): Term {
    return termOf(this.g(), i);
  }

  firstIndex(): LogIndex {
    return this.g().compactIndex + 1;
  }

  lastIndex(): LogIndex {
    return lastIndexOf(this.g());
  }

  snapshot(): Snapshot {
    const g = this.g();
    return { meta: cloneMeta(g.snapMeta), data: joinChunks(g.snapChunks) };
  }
}
