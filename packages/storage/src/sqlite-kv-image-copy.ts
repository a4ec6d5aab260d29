import { StorageError } from '@cohort/core/errors';
import Database from 'better-sqlite3';
import { migrate } from './schema.js';
import { abandonPin, awaitPin, takePin } from './sqlite-view-pin.js';

/** Rows copied per statement when a copy is paced. */
const PACED_CHUNK_ROWS = 10_000;
const rest = new Int32Array(new SharedArrayBuffer(4));

/** Where a copy's read snapshot of the source is taken: at a writer's mark (`PartitionKv.pinView`). */
export interface CopyAt {
  ctrl: SharedArrayBuffer;
  /** How long to wait for the writer to reach the mark, in ms. */
  waitMs: number;
}

/**
 * Copies `partition`'s current generation out of the database `source` into
 * the new file `image` (the same schema, that partition only), on the calling
 * thread, in one read transaction of the source. With `at`, that transaction's
 * snapshot is exactly the state at the writer's mark (the writer waits there
 * until it is taken). The image is scratch: no journal, no fsync. With a
 * `cpuShare` below 1 the rows are copied in chunks with rests between them, so
 * the copy takes about that share of a CPU (and of the disk's writes), for
 * longer: the read transaction stays open that much longer.
 */
export function copyPartitionTo(source: string, image: string, partition: string, at?: CopyAt, cpuShare = 1): void {
  let db: Database.Database;
  try {
    db = new Database(image);
  } catch (err) {
    if (at) abandonPin(at.ctrl);
    throw err;
  }
  let taken = at === undefined;
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    migrate(db, image);
    db.prepare('ATTACH DATABASE ? AS src').run(source);
    if (at) {
      const reached = awaitPin(at.ctrl, at.waitMs);
      if (reached === 'timeout') throw new StorageError(`the writer did not reach the mark within ${at.waitMs} ms`);
      if (reached === 'abandoned') throw new StorageError('the writer stopped waiting for this reader');
    }
    db.transaction(() => {
      // The read transaction on the source starts here: the partition row and its rows are one instant.
      const p = db.prepare('SELECT generation FROM src.kv_partitions WHERE name = ?').get(partition) as
        | { generation: number }
        | undefined;
      if (at && !takePin(at.ctrl)) throw new StorageError('the writer stopped waiting for this reader');
      taken = true;
      if (p === undefined) return;
      const generation = p.generation;
      db.prepare('INSERT INTO main.kv_generations SELECT * FROM src.kv_generations WHERE gen_id = ?').run(generation);
      db.prepare('INSERT INTO main.kv_partitions SELECT * FROM src.kv_partitions WHERE name = ?').run(partition);
      if (cpuShare >= 1) {
        db.prepare('INSERT INTO main.kv SELECT * FROM src.kv WHERE gen_id = ? ORDER BY key').run(generation);
      } else {
        copyRowsPaced(db, generation, Math.max(0.01, cpuShare));
      }
      db.prepare('INSERT INTO main.sessions SELECT * FROM src.sessions WHERE gen_id = ? ORDER BY client_id').run(
        generation,
      );
      db.prepare(
        'INSERT INTO main.session_responses SELECT * FROM src.session_responses WHERE gen_id = ? ORDER BY client_id, seq',
      ).run(generation);
    })();
    db.exec('DETACH DATABASE src');
  } catch (err) {
    // The writer need not wait for a reader that failed before its snapshot.
    if (at && !taken) abandonPin(at.ctrl);
    throw err;
  } finally {
    db.close();
  }
}

/** Copies the rows of `generation` in key order, {@link PACED_CHUNK_ROWS} at a time, resting to keep within `share`. */
function copyRowsPaced(db: Database.Database, generation: number, share: number): void {
  const first = db.prepare('INSERT INTO main.kv SELECT * FROM src.kv WHERE gen_id = ? ORDER BY key LIMIT ?');
  const next = db.prepare('INSERT INTO main.kv SELECT * FROM src.kv WHERE gen_id = ? AND key > ? ORDER BY key LIMIT ?');
  const last = db.prepare('SELECT key FROM main.kv WHERE gen_id = ? ORDER BY key DESC LIMIT 1').pluck();
  let after: Buffer | undefined;
  for (;;) {
    const started = performance.now();
    const copied =
      after === undefined
        ? first.run(generation, PACED_CHUNK_ROWS).changes
        : next.run(generation, after, PACED_CHUNK_ROWS).changes;
    if (copied < PACED_CHUNK_ROWS) return;
    after = last.get(generation) as Buffer;
    const busy = performance.now() - started;
    Atomics.wait(rest, 0, 0, (busy * (1 - share)) / share);
  }
}
