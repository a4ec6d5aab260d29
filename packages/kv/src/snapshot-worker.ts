/**
 * The thread a snapshot transfer reads on (see {@link WorkerSnapshotReader}): it opens the
 * partition's copy, then answers each request with the next encoded chunk, moved (not copied) to
 * the event loop's thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CorruptStateError } from '@cohort/core';
import { openImageView } from '@cohort/storage';
import { KvSnapshotReader } from './snapshot-stream.js';
import type { SnapshotThreadReply, SnapshotThreadRequest, SnapshotThreadStart } from './snapshot-thread.js';

const port = parentPort;
if (!port) throw new Error('snapshot-worker.js runs as a worker thread (see WorkerSnapshotReader)');

const failure = (err: unknown): SnapshotThreadReply => ({
  type: 'error',
  message: (err as Error).message ?? String(err),
  ...(err instanceof CorruptStateError ? { corruptPartition: err.partition } : {}),
});

let reader: KvSnapshotReader | undefined;
try {
  reader = new KvSnapshotReader(openImageView(workerData as SnapshotThreadStart));
  port.postMessage({ type: 'open', meta: reader.meta } satisfies SnapshotThreadReply);
} catch (err) {
  port.postMessage(failure(err));
}

port.on('message', (req: SnapshotThreadRequest) => {
  if (!reader) return;
  let reply: SnapshotThreadReply;
  let chunk: Uint8Array | undefined;
  try {
    chunk = reader.next(req.maxBytes);
    // Only a buffer of its own can move; a view into a larger one is copied first.
    if (chunk && (chunk.byteOffset !== 0 || chunk.byteLength !== chunk.buffer.byteLength)) chunk = chunk.slice();
    reply = chunk ? { type: 'chunk', data: chunk } : { type: 'end' };
  } catch (err) {
    reply = failure(err);
  }
  port.postMessage(reply, chunk ? [chunk.buffer as ArrayBuffer] : []);
});
