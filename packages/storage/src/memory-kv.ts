import { StorageError } from '@cohort/core/errors';
import { emptyConfState } from '@cohort/core/raft-types';
import { hexKey, responseCrc } from './kv-checksums.js';
import { cloneMeta } from './log-rules.js';
import {
  type MemSource,
  checkedRecord,
  checkedResponse,
  checkedSession,
  memRow,
  memSession,
} from './memory-kv-rows.js';
import { MemoryKvInstaller, MemoryKvView } from './memory-kv-view.js';
import type { MemPartition, MemRow, MemState } from './memory-state.js';
import { memPartition } from './memory-state.js';
import type {
  AppliedState,
  ClientSession,
  KvInstaller,
  KvPutOptions,
  KvRecord,
  KvScanOptions,
  KvView,
  PartitionKv,
} from './types.js';
import { ownedKeyValue, putRevisions } from './types.js';

/** The store's hooks a partition writes through, so its durability model holds. */
export interface MemHooks {
  live(): MemState;
  /** Applies `op` to the live state now and to the durable state once synced. */
  apply(op: (s: MemState) => void, sync?: boolean): void;
}

/** One partition's KV data inside a {@link MemoryNodeStore}; writes go through the store's durability model. */
export class MemoryPartitionKv implements PartitionKv {
  private readonly src: MemSource;

  constructor(
    name: string,
    private readonly partition: string,
    private readonly hooks: MemHooks,
  ) {
    this.src = { name, partition };
  }

  get(key: Uint8Array): KvRecord | undefined {
    const r = this.part()?.kv.get(hexKey(key));
    return r && checkedRecord(this.src, r);
  }

  put(key: Uint8Array, value: Uint8Array, opts: KvPutOptions): KvRecord {
    const k = hexKey(key);
    const stored = this.part()?.kv.get(k);
    // The row it replaces is checked as a read of it would be (the SQLite store's writer checks it too).
    const old = stored && checkedRecord(this.src, stored);
    const { createRevision, version } = putRevisions(old, opts.revision, opts.now);
    const [ownKey, ownValue] = ownedKeyValue(key, value);
    const rec: KvRecord = {
      key: ownKey,
      value: ownValue,
      createRevision,
      modifyRevision: opts.revision,
      version,
    };
    if (opts.expiresAt !== undefined) rec.expiresAt = opts.expiresAt;
    if (opts.type !== undefined) rec.type = opts.type;
    const row = memRow(this.partition, rec);
    this.write((p) => p.kv.set(k, row));
    return { ...rec };
  }

  delete(key: Uint8Array): boolean {
    const k = hexKey(key);
    if (!this.part()?.kv.has(k)) return false;
    this.write((p) => p.kv.delete(k));
    return true;
  }

  scan(opts: KvScanOptions = {}): KvRecord[] {
    const p = this.part();
    if (!p) return [];
    const start = opts.start && hexKey(opts.start);
    const end = opts.end && hexKey(opts.end);
    // Hex strings of bytes sort exactly as the bytes do.
    const keys = [...p.kv.keys()].filter((k) => (start === undefined || k >= start) && (end === undefined || k < end));
    keys.sort();
    const limited = opts.limit === undefined ? keys : keys.slice(0, opts.limit);
    return limited.map((k) => checkedRecord(this.src, p.kv.get(k) as MemRow));
  }

  count(): number {
    return this.part()?.kv.size ?? 0;
  }

  expired(nowMs: number, limit: number): Uint8Array[] {
    const p = this.part();
    if (!p) return [];
    const due: [number, string, Uint8Array][] = [];
    for (const [k, row] of p.kv) {
      const at = row.record.expiresAt;
      if (at !== undefined && at <= nowMs) due.push([at, k, row.record.key]);
    }
    due.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    return due.slice(0, limit).map((d) => d[2].slice());
  }

  applied(): AppliedState {
    const a = this.part()?.applied;
    return a ? cloneMeta(a) : { index: 0, term: 0, confState: emptyConfState() };
  }

  appliedIndex(): number {
    return this.part()?.applied.index ?? 0;
  }

  logTime(): number {
    return this.part()?.logTime ?? 0;
  }

  setApplied(state: AppliedState, logTime?: number): void {
    const copy = cloneMeta(state);
    this.write((p) => {
      p.applied = copy;
      if (logTime !== undefined) p.logTime = logTime;
    });
  }

  session(clientId: string): ClientSession | undefined {
    const s = this.part()?.sessions.get(clientId);
    return s && checkedSession(this.src, clientId, s);
  }

  response(clientId: string, seq: number): Uint8Array | undefined {
    const s = this.part()?.sessions.get(clientId);
    return s && checkedResponse(this.src, clientId, seq, s);
  }

  saveResponse(clientId: string, seq: number, response: Uint8Array, logTime: number, lowWater = 0): void {
    const old = this.part()?.sessions.get(clientId);
    const s = old ? checkedSession(this.src, clientId, old) : { clientId, lowWater: 0, lastActive: logTime };
    const mark = Math.max(s.lowWater, lowWater);
    const responses = new Map([...(old?.responses ?? [])].filter(([n]) => n > mark));
    const copy = response.slice();
    if (seq > mark) responses.set(seq, { response: copy, crc: responseCrc(this.partition, clientId, seq, copy) });
    const next = memSession(
      this.partition,
      { clientId, lowWater: mark, lastActive: Math.max(s.lastActive, logTime) },
      responses,
    );
    this.write((p) => p.sessions.set(clientId, next));
  }

  raiseLowWater(clientId: string, lowWater: number, logTime: number): void {
    const old = this.part()?.sessions.get(clientId);
    const s = old ? checkedSession(this.src, clientId, old) : { clientId, lowWater: 0, lastActive: logTime };
    const mark = Math.max(s.lowWater, lowWater);
    const responses = new Map([...(old?.responses ?? [])].filter(([seq]) => seq > mark));
    const next = memSession(
      this.partition,
      { clientId, lowWater: mark, lastActive: Math.max(s.lastActive, logTime) },
      responses,
    );
    this.write((p) => p.sessions.set(clientId, next));
  }

  idleSessions(logTime: number, limit: number): string[] {
    const p = this.part();
    if (!p) return [];
    const idle = [...p.sessions].filter(([, s]) => s.lastActive < logTime);
    idle.sort((a, b) => a[1].lastActive - b[1].lastActive || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return idle.slice(0, limit).map(([id]) => id);
  }

  dropSession(clientId: string): void {
    if (!this.part()?.sessions.has(clientId)) return;
    this.write((p) => p.sessions.delete(clientId));
  }

  beginInstall(): KvInstaller {
    return new MemoryKvInstaller(this.src, (kv, sessions, applied, logTime) => {
      const generation = (this.part()?.generation ?? 0) + 1;
      const appliedCopy = cloneMeta(applied);
      // Each application gets its own maps: the live and durable states must never share a mutable one.
      this.hooks.apply((s) => {
        s.partitions.set(this.partition, {
          generation,
          applied: appliedCopy,
          logTime,
          kv: new Map(kv),
          sessions: new Map(sessions),
        });
      }, true);
    });
  }

  openView(): KvView {
    return new MemoryKvView(this.src, this.part());
  }

  /** The same view as {@link openView}: one held in memory costs the store nothing. */
  openDetachedView(): Promise<KvView> {
    try {
      return Promise.resolve(this.openView());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Test hook of the store: damages the stored bytes of `key` so its CRC check fails. */
  corruptRow(key: Uint8Array): void {
    const k = hexKey(key);
    const row = this.part()?.kv.get(k);
    if (!row) throw new StorageError(`${this.src.name}: partition ${this.partition}: no row for key ${k} to corrupt`);
    const damaged: MemRow = { record: row.record, crc: (row.crc ^ 1) >>> 0 };
    this.hooks.apply((s) => memPartition(s, this.partition).kv.set(k, damaged), true);
  }

  private part(): MemPartition | undefined {
    return this.hooks.live().partitions.get(this.partition);
  }

  private write(op: (p: MemPartition) => void): void {
    this.hooks.apply((s) => op(memPartition(s, this.partition)));
  }
}
