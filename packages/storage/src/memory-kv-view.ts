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
import type { MemPartition, MemRow, MemSession } from './memory-state.js';
import type { AppliedState, KvInstaller, KvRecord, KvView, SessionRecord } from './types.js';

/** A frozen copy of a partition (the in-memory store's rows are immutable, so copying the maps suffices). */
export class MemoryKvView implements KvView {
  readonly applied: AppliedState;
  readonly logTime: number;
  private readonly kv: Map<string, MemRow>;
  private readonly keys: string[];
  private readonly sessionMap: Map<string, MemSession>;
  private readonly clients: string[];
  private closed = false;

  constructor(
    private readonly src: MemSource,
    p: MemPartition | undefined,
  ) {
    this.applied = cloneMeta(p?.applied ?? { index: 0, term: 0, confState: emptyConfState() });
    this.logTime = p?.logTime ?? 0;
    this.kv = new Map(p?.kv);
    this.keys = [...this.kv.keys()].sort();
    this.sessionMap = new Map(p?.sessions);
    this.clients = [...this.sessionMap.keys()].sort();
  }

  rows(afterKey: Uint8Array | undefined, limit: number): KvRecord[] {
    this.assertOpen();
    const from = afterKey === undefined ? 0 : upperBound(this.keys, hexKey(afterKey));
    return this.keys.slice(from, from + limit).map((k) => checkedRecord(this.src, this.kv.get(k) as MemRow));
  }

  sessions(afterClientId: string | undefined, limit: number): SessionRecord[] {
    this.assertOpen();
    const from = afterClientId === undefined ? 0 : upperBound(this.clients, afterClientId);
    return this.clients.slice(from, from + limit).map((id) => {
      const s = this.sessionMap.get(id) as MemSession;
      const responses = [...s.responses.keys()]
        .sort((a, b) => a - b)
        .map((seq) => ({ seq, response: checkedResponse(this.src, id, seq, s) as Uint8Array }));
      return { ...checkedSession(this.src, id, s), responses };
    });
  }

  close(): void {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed)
      throw new StorageError(`${this.src.name}: partition ${this.src.partition}: the read view is closed`);
  }
}

/** The index of the first element greater than `x` in sorted `xs`. */
function upperBound(xs: string[], x: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((xs[mid] as string) <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Builds a partition's replacement aside; `install` switches to it in one durable write. */
export class MemoryKvInstaller implements KvInstaller {
  private kv = new Map<string, MemRow>();
  private sessions = new Map<string, MemSession>();
  private done = false;

  constructor(
    private readonly src: MemSource,
    private readonly install: (
      kv: Map<string, MemRow>,
      sessions: Map<string, MemSession>,
      applied: AppliedState,
      logTime: number,
    ) => void,
  ) {}

  put(record: KvRecord): void {
    this.assertActive();
    const copy: KvRecord = {
      key: record.key.slice(),
      value: record.value.slice(),
      createRevision: record.createRevision,
      modifyRevision: record.modifyRevision,
      version: record.version,
    };
    if (record.expiresAt !== undefined) copy.expiresAt = record.expiresAt;
    if (record.type !== undefined) copy.type = record.type;
    this.kv.set(hexKey(record.key), memRow(this.src.partition, copy));
  }

  putSession(session: SessionRecord): void {
    this.assertActive();
    const p = this.src.partition;
    const responses = new Map(
      session.responses.map((r) => {
        const response = r.response.slice();
        return [r.seq, { response, crc: responseCrc(p, session.clientId, r.seq, response) }] as const;
      }),
    );
    const s = { clientId: session.clientId, lowWater: session.lowWater, lastActive: session.lastActive };
    this.sessions.set(session.clientId, memSession(p, s, responses));
  }

  commit(applied: AppliedState, logTime = 0): void {
    this.assertActive();
    this.done = true;
    this.install(this.kv, this.sessions, applied, logTime);
  }

  abort(): void {
    this.done = true;
    this.kv = new Map();
    this.sessions = new Map();
  }

  private assertActive(): void {
    if (this.done) {
      throw new StorageError(
        `${this.src.name}: partition ${this.src.partition}: snapshot install already committed or aborted`,
      );
    }
  }
}
