import { StorageError } from '@cohort/core';
import type { SnapshotMeta } from '@cohort/core';
import type { SnapshotReader, SnapshotWriter } from '@cohort/raft';
import type { KvInstaller, KvRecord, KvView, SessionRecord } from '@cohort/storage';
import { decodeChunk, encodeChunk } from './snapshot-codec.js';

/** Rows or sessions read from the view per page. */
const PAGE = 128;
/** Per-record framing overhead assumed when sizing a chunk. */
const OVERHEAD = 24;

function recordBytes(r: KvRecord): number {
  return r.key.length + r.value.length + OVERHEAD;
}

function sessionBytes(s: SessionRecord): number {
  return s.clientId.length + OVERHEAD + s.responses.reduce((n, r) => n + r.response.length + OVERHEAD, 0);
}

/**
 * Streams a view as chunks of about `maxBytes`: rows in key order, then
 * sessions; only one page of the view is in memory at a time.
 */
export class KvSnapshotReader implements SnapshotReader {
  readonly meta: SnapshotMeta;
  private rows: KvRecord[] = [];
  private sessions: SessionRecord[] = [];
  private afterKey: Uint8Array | undefined;
  private afterClient: string | undefined;
  private rowsDone = false;
  private sessionsDone = false;
  private seq = 0;

  constructor(private readonly view: KvView) {
    this.meta = view.applied;
  }

  next(maxBytes: number): Uint8Array | undefined {
    const chunk = { rows: [] as KvRecord[], sessions: [] as SessionRecord[], logTime: 0 };
    if (this.seq === 0) chunk.logTime = this.view.logTime;
    let size = 0;
    for (;;) {
      if (size > 0 && size >= maxBytes) break;
      const r = this.nextRow();
      if (r) {
        chunk.rows.push(r);
        size += recordBytes(r);
        continue;
      }
      const s = this.nextSession();
      if (!s) break;
      chunk.sessions.push(s);
      size += sessionBytes(s);
    }
    // The first chunk is sent even for an empty partition: it carries the log time.
    if (size === 0 && this.seq > 0) return undefined;
    this.seq++;
    return encodeChunk(chunk);
  }

  close(): void {
    this.view.close();
  }

  private nextRow(): KvRecord | undefined {
    if (this.rows.length === 0 && !this.rowsDone) {
      this.rows = this.view.rows(this.afterKey, PAGE).reverse();
      this.rowsDone = this.rows.length < PAGE;
      const last = this.rows[0];
      if (last) this.afterKey = last.key;
    }
    return this.rows.pop();
  }

  private nextSession(): SessionRecord | undefined {
    if (this.sessions.length === 0 && !this.sessionsDone) {
      this.sessions = this.view.sessions(this.afterClient, PAGE).reverse();
      this.sessionsDone = this.sessions.length < PAGE;
      const last = this.sessions[0];
      if (last) this.afterClient = last.clientId;
    }
    return this.sessions.pop();
  }
}

/** Feeds received chunks into an installer; the partition switches only on commit. */
export class KvSnapshotWriter implements SnapshotWriter {
  private expected = 0;
  private logTime = 0;

  constructor(
    private readonly partition: string,
    private readonly meta: SnapshotMeta,
    private readonly installer: KvInstaller,
  ) {}

  write(seq: number, chunk: Uint8Array): void {
    // A chunk sent again after a lost acknowledgement was already written: nothing to do.
    if (seq < this.expected) return;
    if (seq !== this.expected) {
      throw new StorageError(
        `partition ${this.partition}: snapshot at ${this.meta.index}: chunk ${seq} arrived, expected chunk ${this.expected}`,
      );
    }
    const decoded = decodeChunk(this.partition, seq, chunk);
    if (seq === 0) this.logTime = decoded.logTime;
    for (const r of decoded.rows) this.installer.put(r);
    for (const s of decoded.sessions) this.installer.putSession(s);
    this.expected++;
  }

  commit(): void {
    this.installer.commit(this.meta, this.logTime);
  }

  abort(): void {
    this.installer.abort();
  }
}
