import { StorageError } from '@cohort/core/errors';
import Database from 'better-sqlite3';
import { migrate } from './schema.js';
import { abandonPin, awaitPin, takePin } from './sqlite-view-pin.js';

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
 * until it is taken). The image is scratch: no journal, no fsync.
 */
export function copyPartitionTo(source: string, image: string, partition: string, at?: CopyAt): void {
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
      db.prepare('INSERT INTO main.kv SELECT * FROM src.kv WHERE gen_id = ? ORDER BY key').run(generation);
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
