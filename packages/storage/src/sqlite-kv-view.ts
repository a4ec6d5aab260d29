import { StorageError } from '@cohort/core/errors';
import { emptyConfState } from '@cohort/core/raft-types';
import Database from 'better-sqlite3';
import { SCAN_PAGE_CACHE_BYTES, setPageCache } from './page-cache.js';
import { copyPartitionTo } from './sqlite-kv-image-copy.js';
import { newImagePath, removeImage } from './sqlite-kv-image.js';
import { readPartition } from './sqlite-kv-partition.js';
import {
  type KvRow,
  type ResponseRow,
  type RowSource,
  type SessionRow,
  blob,
  toRecord,
  toSessionRecord,
} from './sqlite-kv-rows.js';
import { type KvStatements, prepareKvStatements } from './sqlite-kv-statements.js';
import type { AppliedState, DetachedImage, KvRecord, KvView, SessionRecord, ViewPin } from './types.js';

/**
 * A partition as of one instant: a second, read-only connection holding a
 * WAL read transaction, so the writer keeps committing while the view pages
 * through the rows it saw.
 */
export class SqliteKvView implements KvView {
  private closed = false;

  private constructor(
    private readonly db: Database.Database,
    private readonly st: KvStatements,
    private readonly src: RowSource,
    private readonly gen: number,
    readonly applied: AppliedState,
    readonly logTime: number,
    private readonly onClose: (() => void) | undefined,
  ) {}

  /**
   * Opens a view of `src.partition` in `src.file` as of now (the last committed transaction); with
   * `image`, of the partition's copy in that file instead (errors still name `src.file`, whose bytes
   * the copy holds), and `onClose` runs once the view is closed.
   */
  static open(src: RowSource, image?: { file: string; onClose: () => void }): SqliteKvView {
    let db: Database.Database;
    try {
      db = new Database(image?.file ?? src.file, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw new StorageError(
        `${src.file}: partition ${src.partition}: cannot open a read view: ${(err as Error).message}`,
      );
    }
    try {
      // A view scans in key order, reading each page about once.
      setPageCache(db, SCAN_PAGE_CACHE_BYTES);
      const st = prepareKvStatements(db);
      // The read transaction's snapshot starts at its first read: the partition row.
      db.prepare('BEGIN').run();
      const p = readPartition(st, src);
      const applied = p?.applied ?? { index: 0, term: 0, confState: emptyConfState() };
      return new SqliteKvView(db, st, src, p?.generation ?? 0, applied, p?.logTime ?? 0, image?.onClose);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  rows(afterKey: Uint8Array | undefined, limit: number): KvRecord[] {
    this.assertOpen();
    // The empty key sorts first, so "after" an absent key starts at it inclusively.
    const rows = (
      afterKey === undefined
        ? this.st.scan.all({ gen: this.gen, start: Buffer.alloc(0), limit })
        : this.st.rowsAfter.all(this.gen, blob(afterKey), limit)
    ) as KvRow[];
    return rows.map((r) => toRecord(this.src, r));
  }

  sessions(afterClientId: string | undefined, limit: number): SessionRecord[] {
    this.assertOpen();
    const rows = (
      afterClientId === undefined
        ? this.st.sessionsFirst.all(this.gen, limit)
        : this.st.sessionsAfter.all(this.gen, afterClientId, limit)
    ) as SessionRow[];
    return rows.map((r) => toSessionRecord(this.src, r, this.st.responses.all(this.gen, r.client_id) as ResponseRow[]));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.db.close();
    } finally {
      this.onClose?.();
    }
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new StorageError(`${this.src.file}: partition ${this.src.partition}: the read view is closed`);
    }
  }
}

/**
 * Opens a view of a partition's copy made by {@link PartitionKv.openDetachedImage}, on any thread (a
 * worker streaming a snapshot); closing the view leaves the copy in place for its owner to close.
 */
export function openImageView(copy: Pick<DetachedImage, 'source' | 'image'>): KvView {
  return SqliteKvView.open(copy.source, { file: copy.image, onClose: () => {} });
}

/** Options of {@link openPinnedView}. */
export interface PinnedViewOptions {
  /**
   * The share of a CPU the copy may take (0-1]; below 1 it copies in chunks with rests between them
   * (its read transaction of the database then stays open longer). @default 1
   */
  cpuShare?: number;
}

/**
 * Opens a view of exactly the state a partition's writes stood at when {@link PartitionKv.pinView}
 * marked them, on any thread (a worker digesting a partition); waits up to `waitMs` for the writer to
 * get there. The partition is copied aside at the mark (one read transaction of the database, for the
 * seconds the copy takes) and the view reads the copy, so a slow reader holds nothing in the database:
 * a view of the database itself would keep SQLite from checkpointing its WAL past it for as long as it
 * is open (~230 MB of WAL per node in a 32 s digest of a million keys under load). The copy is deleted
 * when the view closes; the caller closes it.
 */
export function openPinnedView(pin: ViewPin, waitMs = 60_000, opts: PinnedViewOptions = {}): KvView {
  const src: RowSource = pin.source;
  const image = newImagePath(src.file);
  try {
    copyPartitionTo(src.file, image, src.partition, { ctrl: pin.ctrl, waitMs }, opts.cpuShare);
  } catch (err) {
    removeImage(image);
    throw new StorageError(
      `${src.file}: partition ${src.partition}: cannot open a pinned read view: ${(err as Error).message}`,
    );
  }
  try {
    return SqliteKvView.open(src, { file: image, onClose: () => removeImage(image) });
  } catch (err) {
    removeImage(image);
    throw err;
  }
}
