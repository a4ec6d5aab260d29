import type { LogIndex } from '@cohort/core';
import type { LogStats, ResolvedLogLimits } from './types.js';

/** Default size of one stored snapshot chunk. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;

/** Collects written pieces into chunks of exactly `size` bytes (the last one shorter). */
export class Rechunker {
  private buf: Uint8Array;
  private used = 0;

  constructor(
    private readonly size: number,
    private readonly emit: (chunk: Uint8Array) => void,
  ) {
    this.buf = new Uint8Array(size);
  }

  write(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(this.size - this.used, data.length - off);
      this.buf.set(data.subarray(off, off + n), this.used);
      this.used += n;
      off += n;
      if (this.used === this.size) this.flush();
    }
  }

  /** Emits what is buffered, if anything. */
  flush(): void {
    if (this.used === 0) return;
    this.emit(this.buf.slice(0, this.used));
    this.used = 0;
  }
}

/** Splits `data` into chunks of at most `size` bytes (one empty chunk list for empty data). */
export function splitChunks(data: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < data.length; off += size) out.push(data.slice(off, off + size));
  return out;
}

/** Concatenates chunks into one buffer. */
export function joinChunks(chunks: Iterable<Uint8Array>, size?: number): Uint8Array {
  const list = [...chunks];
  const total = size ?? list.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of list) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Builds {@link LogStats} from a group's counters and the limits. */
export function makeStats(
  p: {
    compactIndex: LogIndex;
    lastIndex: LogIndex;
    snapshotIndex: LogIndex;
    bytes: number;
    bytesSinceSnapshot: number;
  },
  limits: ResolvedLogLimits,
): LogStats {
  const entriesSinceSnapshot = Math.max(0, p.lastIndex - p.snapshotIndex);
  return {
    firstIndex: p.compactIndex + 1,
    lastIndex: p.lastIndex,
    snapshotIndex: p.snapshotIndex,
    entries: p.lastIndex - p.compactIndex,
    bytes: p.bytes,
    entriesSinceSnapshot,
    bytesSinceSnapshot: p.bytesSinceSnapshot,
    shouldSnapshot: entriesSinceSnapshot >= limits.snapshotEntries || p.bytesSinceSnapshot >= limits.snapshotBytes,
    overLimit: p.bytes > limits.maxLogBytes,
  };
}
