import type { SnapshotMeta } from '@cohort/core';
import type { VpSnapshotReader, VpSnapshotWriter, VpStateMachine } from '@cohort/vpaxos';

/** A state machine's state at an applied slot (what a durable write keeps, what a snapshot carries). */
export interface SimKvImage {
  index: number;
  data: [string, string][];
}

const NO_CONF = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

/**
 * The commands the simulated KV state machine applies (text: `set\0key\0value`
 * or `incr\0key`). Its state survives a crash as of the last durable acceptor
 * write (see {@link SimAcceptorStore}, which keeps its image: the fsync of a
 * write covers the applies before it, as SQLite's WAL does), and it streams
 * and installs snapshots as the KV state machine does, so compacted slots
 * reach a lagging replica.
 */
export class SimKv implements VpStateMachine<string> {
  readonly data = new Map<string, string>();
  private index = 0;

  constructor(image?: SimKvImage) {
    if (image) {
      this.index = image.index;
      for (const [k, v] of image.data) this.data.set(k, v);
    }
  }

  apply(slot: number, bytes: Uint8Array): string {
    this.index = slot;
    const [op, key, value] = new TextDecoder().decode(bytes).split('\0') as [string, string, string | undefined];
    if (op === 'set') {
      this.data.set(key, value ?? '');
      return 'ok';
    }
    const cur = this.data.get(key) ?? '0';
    if (!/^-?(0|[1-9][0-9]*)$/.test(cur)) return 'error';
    const next = String(BigInt(cur) + 1n);
    this.data.set(key, next);
    return next;
  }

  /** Consecutive chosen values in slot order; a no-op (no data) only moves the applied slot. */
  applyMany(entries: readonly { slot: number; data: Uint8Array }[]): (string | undefined)[] {
    return entries.map((e) => {
      if (e.data.length > 0) return this.apply(e.slot, e.data);
      this.index = e.slot;
      return undefined;
    });
  }

  /** The highest slot applied, no-ops included. */
  applied(): { index: number } {
    return { index: this.index };
  }

  get(key: string): string {
    return this.data.get(key) ?? '';
  }

  image(): SimKvImage {
    return { index: this.index, data: [...this.data] };
  }

  openSnapshot(): VpSnapshotReader {
    const image = this.image();
    const rows = image.data;
    let at = 0;
    let first = true;
    return {
      meta: { index: image.index, term: 0, confState: NO_CONF },
      next: (maxBytes) => {
        if (!first && at >= rows.length) return undefined;
        first = false;
        const chunk: [string, string][] = [];
        let size = 0;
        while (at < rows.length && (chunk.length === 0 || size < maxBytes)) {
          const row = rows[at++] as [string, string];
          chunk.push(row);
          size += row[0].length + row[1].length + 8;
        }
        return new TextEncoder().encode(JSON.stringify(chunk));
      },
      close: () => {},
    };
  }

  receiveSnapshot(meta: SnapshotMeta): VpSnapshotWriter {
    const rows: [string, string][] = [];
    let expect = 0;
    return {
      write: (seq, chunk) => {
        if (seq !== expect) throw new RangeError(`snapshot chunk ${seq} out of order (expected ${expect})`);
        expect++;
        rows.push(...(JSON.parse(new TextDecoder().decode(chunk)) as [string, string][]));
      },
      commit: () => {
        this.data.clear();
        for (const [k, v] of rows) this.data.set(k, v);
        this.index = meta.index;
      },
      abort: () => {},
    };
  }
}
