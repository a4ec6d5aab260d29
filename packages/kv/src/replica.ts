import {
  CodecError,
  type ConfState,
  type Entry,
  type LogIndex,
  type Snapshot,
  type SnapshotMeta,
  emptyConfState,
} from '@cohort/core';
import type { AppliedState, ApplyOutcome, DurableStateMachine, SnapshotReader, SnapshotWriter } from '@cohort/raft';
import { KvSnapshotPb } from './generated/kv-command.js';
import type { KvResult } from './result.js';
import { KvStateMachine } from './state-machine.js';

/** Marks a {@link KvReplica.snapshot} image: chunks of the streamed format, framed. */
const MAGIC = new TextEncoder().encode('CKVS');

/**
 * The KV state machine as the Raft host's `DurableStateMachine` (delegating
 * to {@link KvStateMachine}), plus the older whole-image calls
 * (`apply`/`snapshot`/`restore`) for tools and tests. Its snapshot joins the streamed chunks in memory, so
 * it suits small states only; the streamed path never does this.
 */
export class KvReplica implements DurableStateMachine<KvResult> {
  private confState: ConfState = emptyConfState();

  constructor(readonly kv: KvStateMachine = new KvStateMachine()) {}

  // The DurableStateMachine seam the Raft host drives: the KV machine itself.
  applied(): AppliedState {
    return this.kv.applied();
  }

  applyBatch(entries: Entry[], confState: ConfState): (ApplyOutcome<KvResult> | undefined)[] {
    this.confState = confState;
    return this.kv.applyBatch(entries, confState);
  }

  openSnapshot(): SnapshotReader {
    return this.kv.openSnapshot();
  }

  receiveSnapshot(meta: SnapshotMeta): SnapshotWriter {
    return this.kv.receiveSnapshot(meta);
  }

  restoreLegacy(snapshot: Snapshot): void {
    this.kv.restoreLegacy(snapshot);
  }

  apply(entry: Entry): KvResult {
    const [out] = this.kv.applyBatch([entry], this.confState);
    if (!out) return { type: 'ok' };
    if (!out.ok) throw out.error;
    return out.value;
  }

  skip(index: LogIndex): void {
    const term = this.kv.applied().term;
    this.kv.applyBatch([{ index, term, type: 'normal', data: new Uint8Array() }], this.confState);
  }

  snapshot(): Uint8Array {
    const reader = this.kv.openSnapshot();
    const parts: Uint8Array[] = [MAGIC, u32(reader.meta.index), u32(reader.meta.term)];
    try {
      for (let c = reader.next(1 << 20); c; c = reader.next(1 << 20)) parts.push(u32(c.length), c);
    } finally {
      reader.close();
    }
    return Buffer.concat(parts);
  }

  restore(data: Uint8Array): void {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (buf.length < 12 || !buf.subarray(0, 4).equals(MAGIC)) {
      // An image of the format before state lived on disk; it carries its applied index.
      let index = 0;
      try {
        index = Number(KvSnapshotPb.decode(data).appliedIndex);
      } catch {
        // restoreLegacy reports the malformed image.
      }
      this.kv.restoreLegacy({ meta: { index, term: 0, confState: this.confState }, data });
      return;
    }
    const meta = { index: buf.readUInt32BE(4), term: buf.readUInt32BE(8), confState: this.confState };
    const writer = this.kv.receiveSnapshot(meta);
    try {
      let off = 12;
      for (let seq = 0; off < buf.length; seq++) {
        if (off + 4 > buf.length) throw new CodecError(`KV snapshot image is truncated at byte ${off}`);
        const len = buf.readUInt32BE(off);
        writer.write(seq, buf.subarray(off + 4, off + 4 + len));
        off += 4 + len;
      }
      writer.commit();
    } catch (err) {
      writer.abort();
      throw err;
    }
  }
}

function u32(n: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
