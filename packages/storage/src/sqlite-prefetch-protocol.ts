// Messages between a SqliteNodeStore and its read-ahead thread (see sqlite-prefetch.ts).

/** The thread's `workerData`. */
export interface PrefetchData {
  /** The node's database. */
  file: string;
  /** A read taking at least this long (ms) counts as one that went to the disk... */
  coldMs: number;
  /** ...if the thread read from storage during its batch (see `ReadAheadOptions.ioCheck`). */
  ioCheck: boolean;
}

/**
 * Keys to read, as one transferred buffer: key `i` is `bytes[offset_i, offset_i + lens[i])`, in
 * generation `gens[i]`.
 */
export interface PrefetchBatch {
  gens: number[];
  lens: number[];
  bytes: Uint8Array;
}

/** The thread's answer to each batch, in order. */
export type PrefetchReply =
  | { type: 'done'; keys: number; found: number; cold: number; coldMs: number }
  | { type: 'failed'; message: string };
