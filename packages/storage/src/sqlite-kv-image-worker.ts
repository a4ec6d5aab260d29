// Copies one partition's current generation out of the node's database into
// an image file of its own (the same schema, that partition only), on a thread
// of its own so the event loop never waits on it. The copy runs in one read
// transaction of the database, for the seconds it takes; the image is then
// read for as long as a snapshot transfer lasts without holding anything in
// the database (an open read transaction stops SQLite's checkpoints from
// getting past it, so a transfer of minutes would grow the WAL by gigabytes).
//
// The image is scratch: no journal, no fsync (`synchronous = OFF` here touches
// only this file; the node's database keeps `synchronous = FULL`, and nothing
// acknowledged depends on the image). A crash leaves a file that the store
// deletes when it next opens.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { migrate } from './schema.js';
import type { ImageRequest, ImageResult } from './sqlite-kv-image.js';

const req = workerData as ImageRequest;

function copy(): ImageResult {
  const db = new Database(req.image);
  try {
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    migrate(db, req.image);
    db.prepare('ATTACH DATABASE ? AS src').run(req.source);
    db.transaction(() => {
      // The read transaction on the source starts here: the partition row and its rows are one instant.
      const p = db.prepare('SELECT generation FROM src.kv_partitions WHERE name = ?').get(req.partition) as
        | { generation: number }
        | undefined;
      if (p === undefined) return;
      const generation = p.generation;
      db.prepare('INSERT INTO main.kv_generations SELECT * FROM src.kv_generations WHERE gen_id = ?').run(generation);
      db.prepare('INSERT INTO main.kv_partitions SELECT * FROM src.kv_partitions WHERE name = ?').run(req.partition);
      db.prepare('INSERT INTO main.kv SELECT * FROM src.kv WHERE gen_id = ? ORDER BY key').run(generation);
      db.prepare('INSERT INTO main.sessions SELECT * FROM src.sessions WHERE gen_id = ? ORDER BY client_id').run(
        generation,
      );
      db.prepare(
        'INSERT INTO main.session_responses SELECT * FROM src.session_responses WHERE gen_id = ? ORDER BY client_id, seq',
      ).run(generation);
    })();
    db.exec('DETACH DATABASE src');
    return { ok: true };
  } finally {
    db.close();
  }
}

let result: ImageResult;
try {
  result = copy();
} catch (err) {
  result = { ok: false, message: (err as Error).message };
}
parentPort?.postMessage(result);
