import type { OverPut } from './sqlite-kv-over.js';
import type { AppliedState, ClientSession, KvRecord } from './types.js';

/** A value written by job `seq`, not yet reported committed. */
export interface Tagged<T> {
  v: T;
  seq: number;
  /** A row's put over whatever the key held (`v` is its record), until its create revision and version are known. */
  over?: OverPut;
}

/** A session as the pending writes left it. */
export interface PendingSession {
  /** Undefined: dropped. */
  session: ClientSession | undefined;
  /**
   * The job that dropped the session (0: none pending): until it commits, none of the client's stored
   * responses on disk count. A later write of the session carries it on; once that job committed, the
   * responses on disk are those written after the drop, and count again.
   */
  droppedBy: number;
}

/** The partition row as the pending writes left it. */
export interface PendingPartition {
  generation: number;
  applied: AppliedState;
  logTime: number;
}

/** Records how to undo an overlay change if the transaction making it rolls back. */
export type RecordUndo = (undo: () => void) => void;

/**
 * What a partition's writes changed that the writer thread has not committed
 * yet: the latest value per key (tombstones included), per session, per
 * stored response and of the partition row, each tagged with the job that
 * wrote it. Reads merge it over the database; an entry goes once its job
 * commits, unless a later job rewrote it. Keys in no entry are stable on
 * disk: every pending write has one.
 */
export class KvOverlay {
  /** By key bytes as a latin1 string; undefined: deleted. */
  readonly rows = new Map<string, Tagged<KvRecord | undefined>>();
  readonly sessions = new Map<string, Tagged<PendingSession>>();
  /**
   * By {@link responseKey}; undefined: dropped with its session. Those at or
   * below the session's low-water mark are deleted too: reads check the mark.
   */
  readonly responses = new Map<string, Tagged<Uint8Array | undefined>>();
  readonly partition = new Map<'', Tagged<PendingPartition>>();
  /**
   * Keys each job wrote, in job order: pairs of a map and a key, flat (a pair's own array would be one more
   * object per write outliving the young generation while the job is pending).
   */
  private readonly bySeq = new Map<number, (Map<string, Tagged<unknown>> | string)[]>();
  /** The last job released: what it and every job before it wrote is in the database. */
  private releasedUpTo = 0;

  get empty(): boolean {
    return this.rows.size === 0 && this.sessions.size === 0 && this.responses.size === 0 && this.partition.size === 0;
  }

  set<K extends string, T>(map: Map<K, Tagged<T>>, key: K, v: T, seq: number, undo: RecordUndo, over?: OverPut): void {
    const prev = map.get(key);
    map.set(key, over === undefined ? { v, seq } : { v, seq, over });
    undo(() => {
      // The entry this one replaced comes back while its job is pending; once the job committed (released
      // meanwhile, its entry being replaced then), the database holds its value, and an entry brought back
      // would never be released: a session dropped and saved again would hide its own stored responses.
      if (prev === undefined || prev.seq <= this.releasedUpTo) map.delete(key);
      else map.set(key, prev);
    });
    let keys = this.bySeq.get(seq);
    if (keys === undefined) {
      keys = [];
      this.bySeq.set(seq, keys);
    }
    keys.push(map as Map<string, Tagged<unknown>>, key);
  }

  /** Whether `p` hides the client's stored responses: the job that dropped the session is still pending. */
  hidesStored(p: PendingSession): boolean {
    return p.droppedBy > this.releasedUpTo;
  }

  /** Drops what jobs up to `upTo` wrote, where no later job rewrote it: the database holds it now. */
  release(upTo: number): void {
    if (upTo > this.releasedUpTo) this.releasedUpTo = upTo;
    for (const [seq, keys] of this.bySeq) {
      if (seq > upTo) break;
      for (let i = 0; i < keys.length; i += 2) {
        const map = keys[i] as Map<string, Tagged<unknown>>;
        const key = keys[i + 1] as string;
        if (map.get(key)?.seq === seq) map.delete(key);
      }
      this.bySeq.delete(seq);
    }
  }

  /** Forgets everything (once every job committed). */
  clear(): void {
    this.rows.clear();
    this.sessions.clear();
    this.responses.clear();
    this.partition.clear();
    this.bySeq.clear();
  }
}

/** A key's overlay map key. */
export function rowKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** A stored response's overlay map key. */
export function responseKey(clientId: string, seq: number): string {
  return `${clientId}\u0000${seq}`;
}

/** Whether an overlay response key belongs to `clientId`. */
export function isResponseOf(key: string, clientId: string): boolean {
  return key.length > clientId.length && key.startsWith(clientId) && key.charCodeAt(clientId.length) === 0;
}
