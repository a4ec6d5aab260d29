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
import { copyPartitionTo } from './sqlite-kv-image-copy.js';
import type { ImageRequest, ImageResult } from './sqlite-kv-image.js';

const req = workerData as ImageRequest;

let result: ImageResult;
try {
  copyPartitionTo(req.source, req.image, req.partition);
  result = { ok: true };
} catch (err) {
  result = { ok: false, message: (err as Error).message };
}
parentPort?.postMessage(result);
