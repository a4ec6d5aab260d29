import { StorageError } from '@cohort/core/errors';
import { emptyConfState } from '@cohort/core/raft-types';
import type Database from 'better-sqlite3';
import { kvRowCrc, partitionCrc, responseCrc, sessionCrc } from './kv-checksums.js';
import { GENERATION_CURRENT, GENERATION_RETIRED, GENERATION_STAGING } from './schema.js';
import {
  BATCH_ROWS,
  type RunTransaction,
  kvStatements,
  purgeGeneration,
  readPartition,
} from './sqlite-kv-partition.js';
import {
  type KvRow,
  type ResponseRow,
  type RowSource,
  type SessionRow,
  blob,
  toRecord,
  toResponse,
  toSession,
} from './sqlite-kv-rows.js';
import type { KvStatements } from './sqlite-kv-statements.js';
import { SqliteKvView } from './sqlite-kv-view.js';
import type {
  AppliedState,
  ClientSession,
  KvInstaller,
  KvPutOptions,
  KvRecord,
  KvScanOptions,
  KvView,
  PartitionKv,
  SessionRecord,
} from './types.js';

/** One partition's KV data, sessions and applied state in the node's SQLite file. */
export class SqlitePartitionKv implements PartitionKv {
  private readonly st: KvStatements;
  private readonly src: RowSource;
  /** The current generation's id, once known; 0 while the partition has no row. */
  private gen: number | undefined;
  /** Rows of the current generation, once counted; kept up to date by put and delete. */
  private rows: number | undefined;
  /**
   * The session last read (CRC checked) or written: a write with a session
   * reads it twice (the retry check, then the response save). Only this
   * object writes the partition, so the copy stays exact.
   */
  private lastSession: ClientSession | undefined;

  constructor(
    db: Database.Database,
    file: string,
    partition: string,
    private readonly run: RunTransaction,
  ) {
    this.st = kvStatements(db);
    this.src = { file, partition };
  }

  /** Forgets the cached generation (after a rolled-back transaction that may have created it). */
  forget(): void {
    this.gen = undefined;
    this.rows = undefined;
    this.lastSession = undefined;
  }

  get(key: Uint8Array): KvRecord | undefined {
    const r = this.st.get.get(this.readGen(), blob(key)) as KvRow | undefined;
    return r && toRecord(this.src, r);
  }

  put(key: Uint8Array, value: Uint8Array, opts: KvPutOptions): void {
    const gen = this.writeGen();
    const k = blob(key);
    const existing = this.st.createRev.get(gen, k) as number | undefined;
    const create = existing ?? opts.revision;
    if (existing === undefined && this.rows !== undefined) this.rows++;
    const crc = kvRowCrc(this.src.partition, key, value, create, opts.revision, opts.expiresAt);
    this.st.put.run(gen, k, blob(value), create, opts.revision, opts.expiresAt ?? null, crc);
  }

  delete(key: Uint8Array): boolean {
    const deleted = this.st.del.run(this.readGen(), blob(key)).changes > 0;
    if (deleted && this.rows !== undefined) this.rows--;
    return deleted;
  }

  scan(opts: KvScanOptions = {}): KvRecord[] {
    const rows = this.st.scan.all({
      gen: this.readGen(),
      start: opts.start ? blob(opts.start) : Buffer.alloc(0),
      end: opts.end ? blob(opts.end) : null,
      limit: opts.limit ?? -1,
    }) as KvRow[];
    return rows.map((r) => toRecord(this.src, r));
  }

  count(): number {
    // Counted once (a scan of the primary key), then maintained: a status call stays O(1).
    if (this.rows === undefined) this.rows = this.st.count.get(this.readGen()) as number;
    return this.rows;
  }

  expired(nowMs: number, limit: number): Uint8Array[] {
    return (this.st.expired.all(this.readGen(), nowMs, limit) as Buffer[]).map(
      (b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
    );
  }

  applied(): AppliedState {
    return readPartition(this.st, this.src)?.applied ?? { index: 0, term: 0, confState: emptyConfState() };
  }

  logTime(): number {
    return readPartition(this.st, this.src)?.logTime ?? 0;
  }

  setApplied(state: AppliedState, logTime?: number): void {
    const gen = this.writeGen();
    const time = logTime ?? this.logTime();
    this.st.updPartition.run(...partitionValues(this.src.partition, gen, state, time).slice(1), this.src.partition);
  }

  session(clientId: string): ClientSession | undefined {
    if (this.lastSession?.clientId === clientId) return { ...this.lastSession };
    const r = this.st.session.get(this.readGen(), clientId) as SessionRow | undefined;
    if (!r) return undefined;
    this.lastSession = toSession(this.src, r);
    return { ...this.lastSession };
  }

  response(clientId: string, seq: number): Uint8Array | undefined {
    const r = this.st.response.get(this.readGen(), clientId, seq) as ResponseRow | undefined;
    return r && toResponse(this.src, clientId, r).response;
  }

  saveResponse(clientId: string, seq: number, response: Uint8Array, logTime: number, lowWater = 0): void {
    const gen = this.writeGen();
    const s = this.session(clientId) ?? { clientId, lowWater: 0, lastActive: logTime };
    const mark = Math.max(s.lowWater, lowWater);
    if (mark > s.lowWater) this.st.delResponsesUpTo.run(gen, clientId, mark);
    this.putSession(gen, { clientId, lowWater: mark, lastActive: Math.max(s.lastActive, logTime) });
    if (seq > mark) {
      const crc = responseCrc(this.src.partition, clientId, seq, response);
      this.st.putResponse.run(gen, clientId, seq, blob(response), crc);
    }
  }

  raiseLowWater(clientId: string, lowWater: number, logTime: number): void {
    const gen = this.writeGen();
    const s = this.session(clientId) ?? { clientId, lowWater: 0, lastActive: logTime };
    if (lowWater > s.lowWater) this.st.delResponsesUpTo.run(gen, clientId, lowWater);
    this.putSession(gen, {
      clientId,
      lowWater: Math.max(s.lowWater, lowWater),
      lastActive: Math.max(s.lastActive, logTime),
    });
  }

  idleSessions(logTime: number, limit: number): string[] {
    return this.st.idle.all(this.readGen(), logTime, limit) as string[];
  }

  dropSession(clientId: string): void {
    if (this.lastSession?.clientId === clientId) this.lastSession = undefined;
    const gen = this.readGen();
    this.st.delSession.run(gen, clientId);
    this.st.delResponses.run(gen, clientId);
  }

  beginInstall(): KvInstaller {
    let staging = 0;
    this.run(() => {
      staging = Number(this.st.insGeneration.run(this.src.partition, GENERATION_STAGING).lastInsertRowid);
    }, true);
    return new SqliteKvInstaller(this.st, this.src, staging, this.run, (applied, logTime) =>
      this.switchTo(staging, applied, logTime),
    );
  }

  openView(): KvView {
    return SqliteKvView.open(this.src);
  }

  /** Makes `staging` the current generation with `applied`, durably, then purges the old one. */
  private switchTo(staging: number, applied: AppliedState, logTime: number): void {
    let old = 0;
    this.run(() => {
      old = this.writeGen();
      this.st.setGenerationStatus.run(GENERATION_RETIRED, old);
      this.st.setGenerationStatus.run(GENERATION_CURRENT, staging);
      this.st.updPartition.run(
        ...partitionValues(this.src.partition, staging, applied, logTime).slice(1),
        this.src.partition,
      );
    }, true);
    this.gen = staging;
    this.rows = undefined;
    this.lastSession = undefined;
    purgeGeneration(this.st, old, this.run);
  }

  private putSession(gen: number, s: ClientSession): void {
    this.st.putSession.run(gen, s.clientId, s.lowWater, s.lastActive, sessionCrc(this.src.partition, s));
    this.lastSession = { ...s };
  }

  /** The current generation for reading; 0 (no rows) when the partition was never written. */
  private readGen(): number {
    if (this.gen === undefined) this.gen = readPartition(this.st, this.src)?.generation;
    return this.gen ?? 0;
  }

  /** The current generation, creating the partition (within the caller's transaction) when new. */
  private writeGen(): number {
    const gen = this.readGen();
    if (gen !== 0) return gen;
    const created = Number(this.st.insGeneration.run(this.src.partition, GENERATION_CURRENT).lastInsertRowid);
    this.st.insPartition.run(
      ...partitionValues(this.src.partition, created, { index: 0, term: 0, confState: emptyConfState() }, 0),
    );
    this.gen = created;
    return created;
  }
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
    private readonly st: KvStatements,
    private readonly src: RowSource,
    private readonly gen: number,
    private readonly run: RunTransaction,
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
    purgeGeneration(this.st, this.gen, this.run);
  }

  private flush(): void {
    const { rows, sessions } = this;
    this.rows = [];
    this.sessions = [];
    this.buffered = 0;
    const p = this.src.partition;
    // Not fsynced: the commit's durable transaction makes every flush before it durable (WAL order).
    this.run(() => {
      for (const r of rows) {
        const crc = kvRowCrc(p, r.key, r.value, r.createRevision, r.modifyRevision, r.expiresAt);
        this.st.put.run(
          this.gen,
          blob(r.key),
          blob(r.value),
          r.createRevision,
          r.modifyRevision,
          r.expiresAt ?? null,
          crc,
        );
      }
      for (const s of sessions) {
        const session = { clientId: s.clientId, lowWater: s.lowWater, lastActive: s.lastActive };
        this.st.putSession.run(this.gen, s.clientId, s.lowWater, s.lastActive, sessionCrc(p, session));
        for (const x of s.responses) {
          this.st.putResponse.run(
            this.gen,
            s.clientId,
            x.seq,
            blob(x.response),
            responseCrc(p, s.clientId, x.seq, x.response),
          );
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
