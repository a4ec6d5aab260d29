import { CorruptStateError, StorageError } from '@cohort/core/errors';
import { emptyConfState } from '@cohort/core/raft-types';
import type Database from 'better-sqlite3';
import { carvedKeyValue } from './byte-slabs.js';
import { hexKey, kvRowCrc, partitionCrc, responseCrc, sessionCrc } from './kv-checksums.js';
import { packRows } from './kv-row-pack.js';
import { cloneMeta } from './log-rules.js';
import { recordOf } from './record-copy.js';
import { GENERATION_CURRENT, GENERATION_RETIRED, GENERATION_STAGING } from './schema.js';
import { copyPartitionImage, discardImage, removeImage } from './sqlite-kv-image.js';
import { type OverOwner, OverPut } from './sqlite-kv-over.js';
import {
  KvOverlay,
  type PendingPartition,
  type RecordUndo,
  type Tagged,
  isResponseOf,
  responseKey,
  rowKey,
} from './sqlite-kv-overlay.js';
import { BATCH_ROWS, type RunTransaction, kvStatements, readPartition } from './sqlite-kv-partition.js';
import type { KvRowCache, KvRowCacheScope } from './sqlite-kv-row-cache.js';
import {
  type KvRow,
  type ResponseRow,
  type RowSource,
  type SessionRow,
  blob,
  toRecord,
  toResponse,
  toSession,
  view,
} from './sqlite-kv-rows.js';
import type { KvStatements } from './sqlite-kv-statements.js';
import { SqliteKvView } from './sqlite-kv-view.js';
import { OVER_CORRUPT, OVER_INSERTED, type Op } from './sqlite-ops.js';
import type { ReadAhead } from './sqlite-prefetch.js';
import { newPinControl } from './sqlite-view-pin.js';
import type {
  AppliedState,
  ClientSession,
  DetachedImage,
  KvInstaller,
  KvPutOptions,
  KvRecord,
  KvScanOptions,
  KvView,
  PartitionKv,
  SessionRecord,
  ViewPin,
} from './types.js';
import { type ReplacedRow, putRevisions, typeCode } from './types.js';

/** What a partition needs from its store: transactions whose writes go to the store's writer. */
export interface PartitionHost {
  /** Runs `fn` as one transaction (joining an open one); its ops go to the writer as one job. */
  run: RunTransaction;
  /** Adds a write to the open transaction. */
  emit(op: Op): void;
  /** Adds the put of a `putOver` op just emitted: it learns what the writer found once that commits. */
  over(m: OverPut): void;
  /** The seq of the open transaction's job. */
  seq(): number;
  /** Records how to undo an in-memory change if the open transaction rolls back. */
  undo: RecordUndo;
  /** A new generation id. */
  newGeneration(): number;
  /** Blocks until the writer committed everything queued (up to job `upTo`, when given). */
  barrier(upTo?: number): void;
  /** Resolves once the writer committed everything queued so far (rejects as `barrier` throws). */
  written(): Promise<void>;
  /**
   * Queues a mark (see {@link PartitionKv.pinView}) after everything queued, the open transaction
   * included; false when the store writes on the caller's thread (no mark can be waited at there).
   */
  pin(ctrl: SharedArrayBuffer): boolean;
  /** Blocks while more than a few jobs wait for the writer, so a bulk load never queues without bound. */
  throttle(): void;
  /** Queues the purge of a generation (after everything queued). */
  purge(generation: number): void;
  /** Runs `fn` in a read transaction of the store's connection (one consistent snapshot). */
  read<T>(fn: () => T): T;
  /** Lets the reads of this turn share one read transaction of the store's connection, if it has none open. */
  scope(): void;
  /** Whether a write transaction is open (its reads are a write's: an apply's). */
  writing(): boolean;
  /** The store's read-ahead thread, if it keeps one (see {@link ReadAhead}). */
  readonly readAhead: ReadAhead | undefined;
}

/** Sessions a partition keeps in memory (see `SqlitePartitionKv.sessionCache`): one per RESP connection in use, with room. */
const SESSION_CACHE_SIZE = 4096;

/**
 * One partition's KV data, sessions and applied state in the node's SQLite
 * file. Writes go to the store's writer as statements; until it reports them
 * committed, a {@link KvOverlay} holds what they changed and every read
 * merges it over the database, so reads see every write at once.
 */
export class SqlitePartitionKv implements PartitionKv, OverOwner {
  private readonly st: KvStatements;
  private readonly src: RowSource;
  private readonly ov = new KvOverlay();
  /** The current generation's id, once known; 0 while the partition has no row. */
  private gen: number | undefined;
  /** Rows of the current generation, once counted; kept up to date by put and delete. */
  private rows: number | undefined;
  /**
   * Sessions as last read (CRC checked) or written, up to
   * {@link SESSION_CACHE_SIZE} (the oldest entry goes first): a write with a
   * session reads its row twice (the retry check, then the response save), and
   * each RESP connection has one, written on every write of the connection.
   * With each, `maxSeq` when known: no response is stored above it, so the
   * retry check of a new sequence number (every write but a retry) needs no
   * read. Only this object writes the partition, so the copies stay exact; a
   * rolled-back transaction or an installed snapshot drops them all.
   */
  private readonly sessionCache = new Map<string, { s: ClientSession; maxSeq: number | undefined }>();
  /**
   * The partition row as last read from the file (CRC checked) or written:
   * every applied batch reads the applied position and log time, and only
   * this object writes the row.
   */
  private lastPartition: PendingPartition | undefined;
  /**
   * The row last read from the file for a key without a pending write (or its
   * absence): a write reads its key twice (the command's check of the current
   * value, then put's revision bookkeeping). Dropped by every write to the
   * partition's rows, so it never outlives what it read.
   */
  private lastRead: { gen: number; key: string; rec: KvRecord | undefined } | undefined;
  /**
   * This partition's rows in the store's row cache, shared by its partitions (see {@link KvRowCache}); undefined
   * when the store keeps none, so reads and writes pay nothing for it.
   */
  private readonly cache: KvRowCacheScope | undefined;
  /**
   * Raised whenever this object can no longer vouch for what it cached (a
   * rolled-back transaction, a new generation): every entry cached before goes stale.
   */
  private cacheEpoch = 0;
  /**
   * At or below the last activity of every session of the current generation
   * (stored or pending), once known: the idle sweep (every few entries, on
   * every replica) finds nothing before that log time and skips its query.
   * Set from each sweep's answer, lowered by every session written.
   */
  private idleFloor: number | undefined;
  /**
   * Set when the writer found a row corrupt as it replaced it (a put over whatever the key held reads the
   * old row there, not here): the next applied batch throws it, so the partition is repaired.
   */
  private corruption: CorruptStateError | undefined;

  constructor(
    db: Database.Database,
    file: string,
    partition: string,
    private readonly host: PartitionHost,
    /** Rows read or written last, shared by the store's partitions; undefined when the store keeps none. */
    cache: KvRowCache | undefined,
  ) {
    this.st = kvStatements(db);
    this.src = { file, partition };
    this.cache = cache?.scope();
  }

  /** Forgets the cached generation (after a rolled-back transaction that may have created it). */
  forget(): void {
    this.gen = undefined;
    this.rows = undefined;
    this.sessionCache.clear();
    this.lastPartition = undefined;
    this.lastRead = undefined;
    this.cacheEpoch++;
    this.idleFloor = undefined;
  }

  /** Jobs up to `upTo` committed: their rows are on disk now. */
  committed(upTo: number): void {
    this.ov.release(upTo);
  }

  get(key: Uint8Array): KvRecord | undefined {
    const rk = rowKey(key);
    return this.lookup(key, rk, true);
  }

  /**
   * {@link get} with the key's overlay key `rk` (its row cache key too) worked out once by the caller (a write
   * looks them up again). `copy` false hands out the last read's or the cache's own record: for a caller
   * that only reads it (a write's revisions), never one that returns it. A pending row is copied either way:
   * copying reads the create revision and version of a put over an unread row, which works them out while
   * the overlay still leads to it (the write about to replace it would cut that chain).
   */
  private lookup(key: Uint8Array, rk: string, copy: boolean): KvRecord | undefined {
    const o = this.ov.rows.get(rk);
    if (o !== undefined) return o.v && recordOf(o.v);
    const gen = this.readGen();
    const last = this.lastRead;
    if (last !== undefined && last.gen === gen && last.key === rk) {
      return last.rec && (copy ? recordOf(last.rec) : last.rec);
    }
    const cache = this.cache;
    if (cache !== undefined) {
      const cached = cache.get(rk, this.cacheEpoch);
      if (cached === null) return undefined;
      if (cached !== undefined) return copy ? recordOf(cached) : cached;
    }
    this.host.scope();
    const ahead = this.host.readAhead;
    const t0 = ahead === undefined ? 0 : performance.now();
    const r = this.st.get.get(gen, blob(key)) as KvRow | undefined;
    // A read that went to the disk held the event loop: read ahead while they do.
    if (ahead !== undefined) ahead.readTook(performance.now() - t0);
    const rec = r && toRecord(this.src, r);
    this.lastRead = { gen, key: rk, rec: rec && recordOf(rec) };
    // Offered for a client's read, not a write's (an apply's own reads would only churn the cache: the key is written next).
    if (cache !== undefined && !this.host.writing() && cache.admit(rk)) {
      cache.set(rk, this.cacheEpoch, rec ? recordOf(rec) : null);
    }
    return rec;
  }

  prefetch(keys: () => Iterable<Uint8Array>): void {
    const ahead = this.host.readAhead;
    if (ahead === undefined || !ahead.on()) return;
    const gen = this.readGen();
    if (gen !== 0) ahead.want(gen, keys());
  }

  put(key: Uint8Array, value: Uint8Array, opts: KvPutOptions): KvRecord {
    let written: KvRecord | undefined;
    this.host.run(() => {
      const gen = this.writeGen();
      const rk = rowKey(key);
      const now = opts.now;
      if (now !== undefined) {
        const prev = this.overBase(gen, rk, opts.revision);
        if (prev !== false) {
          written = this.putOver(gen, rk, key, value, opts, now, prev);
          return;
        }
      }
      const existing = this.lookup(key, rk, false);
      this.lastRead = undefined;
      const { createRevision: create, version } = putRevisions(existing, opts.revision, now);
      if (existing === undefined && this.rows !== undefined) this.rows++;
      const type = typeCode(opts.type);
      const crc = kvRowCrc(this.src.partition, key, value, create, opts.revision, opts.expiresAt, version, type);
      const [k, v] = carvedKeyValue(key, value);
      const rec: KvRecord = {
        key: k,
        value: v,
        createRevision: create,
        modifyRevision: opts.revision,
        version,
      };
      if (opts.expiresAt !== undefined) rec.expiresAt = opts.expiresAt;
      if (opts.type !== undefined) rec.type = opts.type;
      this.host.emit([
        'put',
        gen,
        rec.key,
        rec.value,
        create,
        opts.revision,
        opts.expiresAt ?? null,
        crc,
        version,
        type,
      ]);
      this.ov.set(this.ov.rows, rk, rec, this.host.seq(), this.host.undo);
      // The overlay answers reads until the write commits; the cache then has what the file holds.
      this.cache?.offer(rk, this.cacheEpoch, rec);
      written = recordOf(rec);
    }, true);
    return written as KvRecord;
  }

  /**
   * Whether a put over whatever `rk` holds at `revision` can go without reading the key's
   * row: false when memory knows the row (a pending write whose create revision and version are known, the
   * row last read, a cached row), or when the pending put it would follow has the same revision (two puts of a
   * key in one EXEC: the file cannot tell them apart, see {@link resolve}). Else the pending put over
   * the key it follows, or undefined when it follows the file's row.
   */
  private overBase(gen: number, rk: string, revision: number): OverPut | undefined | false {
    const o = this.ov.rows.get(rk);
    if (o !== undefined) {
      const head = o.over;
      return head !== undefined && !head.known && head.revision !== revision ? head : false;
    }
    const last = this.lastRead;
    if (last !== undefined && last.gen === gen && last.key === rk) return false;
    if (this.cache?.has(rk, this.cacheEpoch) === true) return false;
    return undefined;
  }

  /**
   * The put of {@link put} given `now`, with the key's row unread: the writer reads it (it reads that page
   * to write the row anyway) and reports the create revision and version it wrote; until then the record
   * returned (and the overlay's) works them out when read ({@link resolve}).
   */
  private putOver(
    gen: number,
    rk: string,
    key: Uint8Array,
    value: Uint8Array,
    opts: KvPutOptions,
    now: number,
    prev: OverPut | undefined,
  ): KvRecord {
    const seq = this.host.seq();
    const [k, v] = carvedKeyValue(key, value);
    const m: OverPut = new OverPut(
      this,
      k,
      v,
      opts.revision,
      opts.expiresAt,
      now,
      seq,
      prev,
      this.rows !== undefined,
      rk,
      opts.type,
    );
    const rec = m.record;
    this.host.emit([
      'putOver',
      gen,
      rec.key,
      rec.value,
      opts.revision,
      opts.expiresAt ?? null,
      typeCode(opts.type),
      now,
      this.src.partition,
    ]);
    this.host.over(m);
    this.lastRead = undefined;
    this.ov.set(this.ov.rows, rk, rec, seq, this.host.undo, m);
    return rec;
  }

  reported(m: OverPut, create: number, version: number, found: number): void {
    if (found === OVER_CORRUPT && this.corruption === undefined) {
      this.corruption = new CorruptStateError(
        `${this.src.file}: partition ${this.src.partition}: KV row for key ${hexKey(m.record.key)} was corrupt (checksum mismatch) when a write replaced it; restore the partition from a healthy replica's snapshot`,
        this.src.partition,
      );
    }
    const rk = m.rk ?? rowKey(m.record.key);
    if (!m.known) {
      m.settle(create, version);
      if (found === OVER_INSERTED) this.inserted(m);
    }
    // The file holds the row now: offered to the row cache as a put's row is (so a key written again and again
    // is cached as before, and its next write is a plain one, read from memory), unless a later write of the
    // key is pending (it offers its own row, or its report will).
    if (this.cache !== undefined && found !== OVER_CORRUPT && this.ov.rows.get(rk)?.over === m) {
      this.cache.offer(rk, this.cacheEpoch, recordOf(m.record));
    }
  }

  /** `m` added a row to the partition: counted, unless the count was taken with it (or is not kept). */
  private inserted(m: OverPut): void {
    if (m.counts && this.rows !== undefined) this.rows++;
  }

  /** Works out `m`'s create revision and version ({@link resolve}). */
  resolveOf(m: OverPut): void {
    if (m.rk !== undefined) this.resolve(m.rk);
    if (!m.known) {
      throw new StorageError(
        `${this.src.file}: partition ${this.src.partition}: the create revision and version written at revision ${m.revision} for key ${hexKey(m.record.key)} are unknown (its write never committed)`,
      );
    }
  }

  /**
   * Works out the create revision and version of the pending puts over `rk`'s row not known yet: the
   * chain of them back to a known one, or to the row in the file. The file holds none of the chain when
   * its row's mod revision is below the chain's first (the chain's revisions increase): the chain
   * follows that row then. Otherwise the writer committed part of the chain and its report is on its
   * way: taken ({@link PartitionHost.barrier} up to that part's job), and the rest follows it.
   */
  private resolve(rk: string): void {
    for (;;) {
      const head = this.ov.rows.get(rk)?.over;
      if (head === undefined || head.known) return;
      const chain: OverPut[] = [];
      let m: OverPut | undefined = head;
      for (; m !== undefined && !m.known; m = m.prev) chain.push(m);
      chain.reverse();
      let base: ReplacedRow | undefined;
      if (m !== undefined) base = m;
      else {
        const first = chain[0] as OverPut;
        const row = this.storedRow(head.record.key);
        if (row !== undefined && row.modifyRevision >= first.revision) {
          const stored = row.modifyRevision;
          const at = chain.find((c) => c.revision === stored);
          if (at === undefined) {
            throw new StorageError(
              `${this.src.file}: partition ${this.src.partition}: key ${hexKey(head.record.key)} is stored at revision ${stored}, which none of its pending writes has`,
            );
          }
          this.host.barrier(at.seq);
          if (!at.known) {
            throw new StorageError(
              `${this.src.file}: partition ${this.src.partition}: the writer committed the write of key ${hexKey(head.record.key)} at revision ${stored} without reporting it`,
            );
          }
          continue;
        }
        base = row;
      }
      for (const c of chain) {
        const existed = base !== undefined;
        c.learn(base);
        if (!existed) this.inserted(c);
        base = c;
      }
      return;
    }
  }

  /** The key's row in the file (CRC checked), past every cache and the overlay. */
  private storedRow(key: Uint8Array): KvRecord | undefined {
    this.host.scope();
    const r = this.st.get.get(this.readGen(), blob(key)) as KvRow | undefined;
    return r && toRecord(this.src, r);
  }

  delete(key: Uint8Array): boolean {
    const rk = rowKey(key);
    if (this.lookup(key, rk, false) === undefined) return false;
    this.lastRead = undefined;
    this.host.run(() => {
      // A copy (`slice` of a `Buffer` is a view): the op is packed for the writer later, and the caller may
      // change its bytes meanwhile.
      this.host.emit(['del', this.readGen(), new Uint8Array(key)]);
      this.ov.set(this.ov.rows, rk, undefined, this.host.seq(), this.host.undo);
      this.cache?.offer(rk, this.cacheEpoch, null);
      if (this.rows !== undefined) this.rows--;
    }, true);
    return true;
  }

  scan(opts: KvScanOptions = {}): KvRecord[] {
    const limit = opts.limit ?? -1;
    const pending = [...this.ov.rows.values()].filter((o) => inRange(rowKeyBytes(o), opts));
    const params = {
      gen: this.readGen(),
      start: opts.start ? blob(opts.start) : Buffer.alloc(0),
      // At most one stored row per pending key is replaced or hidden.
      limit: limit < 0 ? -1 : limit + pending.length,
    };
    const rows = (
      opts.end ? this.st.scanTo.all({ ...params, end: blob(opts.end) }) : this.st.scan.all(params)
    ) as KvRow[];
    const out = rows.map((r) => toRecord(this.src, r));
    if (pending.length === 0) return limit < 0 ? out : out.slice(0, limit);
    const merged = out.filter((r) => !this.ov.rows.has(rowKey(r.key)));
    for (const o of pending) if (o.v) merged.push(recordOf(o.v));
    merged.sort((a, b) => Buffer.compare(blob(a.key), blob(b.key)));
    return limit < 0 ? merged : merged.slice(0, limit);
  }

  count(): number {
    // Counted once (a scan of the primary key), then maintained: a status call stays O(1). Puts over rows
    // not read count once what they replaced is known: worked out here for those pending.
    if (this.rows !== undefined) {
      for (const [rk, o] of this.ov.rows) if (o.over !== undefined && !o.over.known) this.resolve(rk);
    }
    if (this.rows === undefined) {
      const gen = this.readGen();
      this.rows = this.host.read(() => {
        // Stored rows, corrected key by key for what is pending, all within one read snapshot.
        let n = this.st.count.get(gen) as number;
        for (const [k, o] of this.ov.rows) {
          const stored = this.st.createRev.get(gen, Buffer.from(k, 'latin1')) !== undefined;
          n += (o.v ? 1 : 0) - (stored ? 1 : 0);
        }
        return n;
      });
      // That count has every pending put in it: none counts again once what it replaced is known.
      for (const o of this.ov.rows.values()) {
        for (let m = o.over; m !== undefined && !m.known; m = m.prev) m.counts = false;
      }
    }
    return this.rows;
  }

  expired(nowMs: number, limit: number): Uint8Array[] {
    const pending = this.ov.rows.size;
    const stored = (
      this.st.expiredAt.all(this.readGen(), nowMs, limit + pending) as { key: Buffer; expires_at: number }[]
    ).map((r) => ({ key: view(r.key), at: r.expires_at }));
    if (pending === 0) return stored.slice(0, limit).map((r) => r.key);
    const merged = stored.filter((r) => !this.ov.rows.has(rowKey(r.key)));
    for (const o of this.ov.rows.values()) {
      if (o.v?.expiresAt !== undefined && o.v.expiresAt <= nowMs)
        merged.push({ key: o.v.key.slice(), at: o.v.expiresAt });
    }
    merged.sort((a, b) => a.at - b.at || Buffer.compare(blob(a.key), blob(b.key)));
    return merged.slice(0, limit).map((r) => r.key);
  }

  applied(): AppliedState {
    const o = this.ov.partition.get('');
    if (o !== undefined) return cloneMeta(o.v.applied);
    const row = this.partitionRow();
    return row ? cloneMeta(row.applied) : { index: 0, term: 0, confState: emptyConfState() };
  }

  appliedIndex(): number {
    const o = this.ov.partition.get('');
    if (o !== undefined) return o.v.applied.index;
    return this.partitionRow()?.applied.index ?? 0;
  }

  logTime(): number {
    const o = this.ov.partition.get('');
    if (o !== undefined) return o.v.logTime;
    return this.partitionRow()?.logTime ?? 0;
  }

  /** The partition row as stored (the overlay aside); undefined when the partition was never written. */
  private partitionRow(): PendingPartition | undefined {
    if (this.lastPartition === undefined) {
      const r = readPartition(this.st, this.src);
      if (r !== undefined) this.lastPartition = { generation: r.generation, applied: r.applied, logTime: r.logTime };
    }
    return this.lastPartition;
  }

  setApplied(state: AppliedState, logTime?: number): void {
    if (this.corruption !== undefined) throw this.corruption;
    this.host.run(() => {
      const gen = this.writeGen();
      const time = logTime ?? this.logTime();
      this.setPartition(gen, state, time);
    }, true);
  }

  session(clientId: string): ClientSession | undefined {
    const cached = this.sessionCache.get(clientId);
    if (cached !== undefined) return { ...cached.s };
    const o = this.ov.sessions.get(clientId);
    if (o !== undefined) return o.v.session && { ...o.v.session };
    const gen = this.readGen();
    const r = this.st.session.get(gen, clientId) as SessionRow | undefined;
    if (!r) return undefined;
    const read = toSession(this.src, r);
    // Nothing of this session is pending (the overlay has no entry): the file holds all its responses.
    const max = this.st.maxResponseSeq.pluck().get(gen, clientId) as number | null;
    this.cacheSession(read, max ?? 0);
    return { ...read };
  }

  response(clientId: string, seq: number): Uint8Array | undefined {
    const max = this.sessionCache.get(clientId)?.maxSeq;
    if (max !== undefined && seq > max) return undefined;
    const o = this.ov.sessions.get(clientId);
    if (o !== undefined) {
      // Responses at or below the low-water mark were deleted with it; a dropped session's, with it.
      const s = o.v.session;
      if (s === undefined || seq <= s.lowWater) return undefined;
      const pending = this.ov.responses.get(responseKey(clientId, seq));
      if (pending !== undefined) return pending.v;
      if (this.ov.hidesStored(o.v)) return undefined;
    }
    const r = this.st.response.get(this.readGen(), clientId, seq) as ResponseRow | undefined;
    return r && toResponse(this.src, clientId, r).response;
  }

  saveResponse(clientId: string, seq: number, response: Uint8Array, logTime: number, lowWater = 0): void {
    this.host.run(() => {
      const gen = this.writeGen();
      const known = this.session(clientId);
      const s = known ?? { clientId, lowWater: 0, lastActive: logTime };
      const mark = Math.max(s.lowWater, lowWater);
      if (mark > s.lowWater) this.host.emit(['delResponsesUpTo', gen, clientId, mark]);
      // A new session has no responses stored.
      this.putSession(
        gen,
        { clientId, lowWater: mark, lastActive: Math.max(s.lastActive, logTime) },
        known === undefined ? 0 : undefined,
      );
      if (seq > mark) {
        const copy = response.slice();
        const crc = responseCrc(this.src.partition, clientId, seq, copy);
        this.host.emit(['putResponse', gen, clientId, seq, copy, crc]);
        this.ov.set(this.ov.responses, responseKey(clientId, seq), copy, this.host.seq(), this.host.undo);
        const cached = this.sessionCache.get(clientId);
        if (cached?.maxSeq !== undefined && seq > cached.maxSeq) cached.maxSeq = seq;
      }
    }, true);
  }

  raiseLowWater(clientId: string, lowWater: number, logTime: number): void {
    this.host.run(() => {
      const gen = this.writeGen();
      const known = this.session(clientId);
      const s = known ?? { clientId, lowWater: 0, lastActive: logTime };
      if (lowWater > s.lowWater) this.host.emit(['delResponsesUpTo', gen, clientId, lowWater]);
      this.putSession(
        gen,
        { clientId, lowWater: Math.max(s.lowWater, lowWater), lastActive: Math.max(s.lastActive, logTime) },
        known === undefined ? 0 : undefined,
      );
    }, true);
  }

  idleSessions(logTime: number, limit: number): string[] {
    if (this.idleFloor !== undefined && logTime <= this.idleFloor) return [];
    const { idle, oldest } = this.idleSessionsRead(logTime, limit);
    // The oldest activity there is: the first idle session's; with none idle, the oldest session's (none: no
    // sweep finds anything until a session is written, which lowers the floor to its activity).
    this.idleFloor = idle[0]?.at ?? oldest;
    return idle.map((r) => r.id);
  }

  private idleSessionsRead(logTime: number, limit: number): { idle: { id: string; at: number }[]; oldest: number } {
    const pending = this.ov.sessions.size;
    const rows = (
      this.st.leastActive.all(this.readGen(), limit + pending) as { client_id: string; last_active: number }[]
    ).map((r) => ({ id: r.client_id, at: r.last_active }));
    // At or below every stored session's activity (a row a pending write replaces included: lower is safe).
    let oldest = rows[0]?.at ?? Number.POSITIVE_INFINITY;
    const stored = rows.filter((r) => r.at < logTime);
    if (pending === 0) return { idle: stored.slice(0, limit), oldest };
    const merged = stored.filter((r) => !this.ov.sessions.has(r.id));
    for (const [id, o] of this.ov.sessions) {
      const s = o.v.session;
      if (s === undefined) continue;
      if (s.lastActive < oldest) oldest = s.lastActive;
      if (s.lastActive < logTime) merged.push({ id, at: s.lastActive });
    }
    merged.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { idle: merged.slice(0, limit), oldest };
  }

  dropSession(clientId: string): void {
    this.host.run(() => {
      this.sessionCache.delete(clientId);
      const gen = this.readGen();
      this.host.emit(['delSession', gen, clientId]);
      this.host.emit(['delResponses', gen, clientId]);
      for (const k of this.ov.responses.keys()) {
        if (isResponseOf(k, clientId)) this.ov.set(this.ov.responses, k, undefined, this.host.seq(), this.host.undo);
      }
      this.ov.set(
        this.ov.sessions,
        clientId,
        { session: undefined, droppedBy: this.host.seq() },
        this.host.seq(),
        this.host.undo,
      );
    }, true);
  }

  beginInstall(): KvInstaller {
    const staging = this.host.newGeneration();
    this.host.run(() => this.host.emit(['insGeneration', staging, this.src.partition, GENERATION_STAGING]), true);
    return new SqliteKvInstaller(this.src, staging, this.host, (applied, logTime) =>
      this.switchTo(staging, applied, logTime),
    );
  }

  openView(): KvView {
    // The view reads the file: everything written so far must be in it.
    this.host.barrier();
    return SqliteKvView.open(this.src);
  }

  pinView(): ViewPin | undefined {
    const ctrl = newPinControl();
    if (!this.host.pin(ctrl)) return undefined;
    return { source: { file: this.src.file, partition: this.src.partition }, ctrl };
  }

  async openDetachedView(): Promise<KvView> {
    const copy = await this.openDetachedImage();
    try {
      return SqliteKvView.open(this.src, { file: copy.image, onClose: copy.close });
    } catch (err) {
      removeImage(copy.image);
      throw err;
    }
  }

  async openDetachedImage(): Promise<DetachedImage> {
    // The copy reads the file: everything written so far must be in it. Waited for without blocking
    // the event loop (the writer's backlog and its fsync can take a while on a busy disk); what commits
    // meanwhile may be in the copy too, which records the applied position it holds.
    await this.host.written();
    const image = await copyPartitionImage(this.src.file, this.src.partition);
    let closed = false;
    return {
      source: { file: this.src.file, partition: this.src.partition },
      image,
      close: () => {
        if (closed) return;
        closed = true;
        discardImage(image);
      },
    };
  }

  /** Makes `staging` the current generation with `applied`, durably, then purges the old one. */
  private switchTo(staging: number, applied: AppliedState, logTime: number): void {
    let old = 0;
    this.host.run(() => {
      old = this.writeGen();
      this.host.emit(['setGenerationStatus', GENERATION_RETIRED, old]);
      this.host.emit(['setGenerationStatus', GENERATION_CURRENT, staging]);
      this.setPartition(staging, applied, logTime);
    }, true);
    // Durable before it returns (the installer's contract); the overlay of the old generation is moot then.
    this.host.barrier();
    this.ov.clear();
    this.gen = staging;
    this.rows = undefined;
    this.corruption = undefined;
    this.sessionCache.clear();
    this.lastRead = undefined;
    this.cacheEpoch++;
    this.idleFloor = undefined;
    this.host.purge(old);
  }

  private setPartition(gen: number, applied: AppliedState, logTime: number): void {
    this.host.emit([
      'updPartition',
      ...partitionValues(this.src.partition, gen, applied, logTime).slice(1),
      this.src.partition,
    ]);
    this.lastPartition = { generation: gen, applied: cloneMeta(applied), logTime };
    this.ov.set(
      this.ov.partition,
      '',
      { generation: gen, applied: cloneMeta(applied), logTime },
      this.host.seq(),
      this.host.undo,
    );
  }

  private putSession(gen: number, s: ClientSession, maxSeq?: number): void {
    if (this.idleFloor !== undefined && s.lastActive < this.idleFloor) this.idleFloor = s.lastActive;
    this.host.emit(['putSession', gen, s.clientId, s.lowWater, s.lastActive, sessionCrc(this.src.partition, s)]);
    const droppedBy = this.ov.sessions.get(s.clientId)?.v.droppedBy ?? 0;
    this.ov.set(this.ov.sessions, s.clientId, { session: { ...s }, droppedBy }, this.host.seq(), this.host.undo);
    this.cacheSession({ ...s }, maxSeq ?? this.sessionCache.get(s.clientId)?.maxSeq);
  }

  /**
   * Keeps `s` (a copy the caller gives up) as the latest of its session, with the highest sequence number
   * of a response it has stored (undefined: not known), dropping the oldest entry past the bound.
   */
  private cacheSession(s: ClientSession, maxSeq: number | undefined): void {
    const cache = this.sessionCache;
    cache.delete(s.clientId);
    cache.set(s.clientId, { s, maxSeq });
    if (cache.size > SESSION_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  }

  /** The current generation for reading; 0 (no rows) when the partition was never written. */
  private readGen(): number {
    if (this.gen === undefined) {
      this.gen = this.ov.partition.get('')?.v.generation ?? readPartition(this.st, this.src)?.generation;
    }
    return this.gen ?? 0;
  }

  /** The current generation, creating the partition (within the caller's transaction) when new. */
  private writeGen(): number {
    const gen = this.readGen();
    if (gen !== 0) return gen;
    const created = this.host.newGeneration();
    this.host.emit(['insGeneration', created, this.src.partition, GENERATION_CURRENT]);
    this.host.emit([
      'insPartition',
      ...partitionValues(this.src.partition, created, { index: 0, term: 0, confState: emptyConfState() }, 0),
    ]);
    this.ov.set(
      this.ov.partition,
      '',
      { generation: created, applied: { index: 0, term: 0, confState: emptyConfState() }, logTime: 0 },
      this.host.seq(),
      this.host.undo,
    );
    this.lastPartition = {
      generation: created,
      applied: { index: 0, term: 0, confState: emptyConfState() },
      logTime: 0,
    };
    this.gen = created;
    return created;
  }
}

function rowKeyBytes(o: Tagged<KvRecord | undefined>): Uint8Array | undefined {
  return o.v?.key;
}

/** Whether a pending row (a tombstone's key is unknown here: it counts as in range) falls in the scan's range. */
function inRange(key: Uint8Array | undefined, opts: KvScanOptions): boolean {
  if (key === undefined) return true;
  const k = blob(key);
  if (opts.start && Buffer.compare(k, blob(opts.start)) < 0) return false;
  if (opts.end && Buffer.compare(k, blob(opts.end)) >= 0) return false;
  return true;
}

/** The column values of a `kv_partitions` row. */
function partitionValues(
  name: string,
  generation: number,
  applied: AppliedState,
  logTime: number,
): [string, number, number, number, string, number, number] {
  return [
    name,
    generation,
    applied.index,
    applied.term,
    JSON.stringify(applied.confState),
    logTime,
    partitionCrc(name, generation, applied, logTime),
  ];
}

/** Writes a new generation in bounded transactions. */
class SqliteKvInstaller implements KvInstaller {
  private rows: KvRecord[] = [];
  private sessions: SessionRecord[] = [];
  private buffered = 0;
  private done = false;

  constructor(
    private readonly src: RowSource,
    private readonly gen: number,
    private readonly host: PartitionHost,
    private readonly switchTo: (applied: AppliedState, logTime: number) => void,
  ) {}

  put(record: KvRecord): void {
    this.assertActive();
    this.rows.push(record);
    if (++this.buffered >= BATCH_ROWS) this.flush();
  }

  putSession(session: SessionRecord): void {
    this.assertActive();
    this.sessions.push(session);
    this.buffered += 1 + session.responses.length;
    if (this.buffered >= BATCH_ROWS) this.flush();
  }

  commit(applied: AppliedState, logTime = 0): void {
    this.assertActive();
    this.flush();
    this.done = true;
    this.switchTo(applied, logTime);
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.rows = [];
    this.sessions = [];
    this.host.purge(this.gen);
  }

  private flush(): void {
    const { rows, sessions } = this;
    this.rows = [];
    this.sessions = [];
    this.buffered = 0;
    const p = this.src.partition;
    // Not fsynced: the commit's durable transaction makes every flush before it durable (WAL order).
    this.host.throttle();
    this.host.run(() => {
      // One buffer for the batch's rows: a thousand rows as statement arguments cost the writer's
      // message a structured clone of each (see kv-row-pack.ts).
      if (rows.length > 0) {
        const packed = rows.map((r) => {
          const type = typeCode(r.type);
          return {
            key: r.key,
            value: r.value,
            createRevision: r.createRevision,
            modifyRevision: r.modifyRevision,
            expiresAt: r.expiresAt ?? null,
            crc: kvRowCrc(p, r.key, r.value, r.createRevision, r.modifyRevision, r.expiresAt, r.version, type),
            version: r.version,
            type,
          };
        });
        this.host.emit(['putRows', this.gen, packRows(packed)]);
      }
      for (const s of sessions) {
        const session = { clientId: s.clientId, lowWater: s.lowWater, lastActive: s.lastActive };
        this.host.emit(['putSession', this.gen, s.clientId, s.lowWater, s.lastActive, sessionCrc(p, session)]);
        for (const x of s.responses) {
          this.host.emit([
            'putResponse',
            this.gen,
            s.clientId,
            x.seq,
            x.response,
            responseCrc(p, s.clientId, x.seq, x.response),
          ]);
        }
      }
    }, false);
  }

  private assertActive(): void {
    if (this.done) {
      throw new StorageError(
        `${this.src.file}: partition ${this.src.partition}: snapshot install already committed or aborted`,
      );
    }
  }
}
