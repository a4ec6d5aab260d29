/**
 * The thread a partition's digest is computed on (see {@link digestOnThread}): it opens a view of the
 * partition at the mark it was given, hashes it page by page, resting between pages to keep within
 * its share of a CPU, and posts the digest.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type KvView, openPinnedView } from '@cohort/storage';
import type { DigestThreadReply, DigestThreadStart } from './digest-thread.js';
import { digestSteps } from './digest.js';

const port = parentPort;
if (!port) throw new Error('digest-worker.js runs as a worker thread (see digestOnThread)');

/** Work between rests, in ms: short enough that a rest never holds the digest up long. */
const BURST_MS = 20;
const rest = new Int32Array(new SharedArrayBuffer(4));

function digest(start: DigestThreadStart): DigestThreadReply {
  const view: KvView = openPinnedView(start.pin, start.waitMs);
  try {
    const share = Math.min(1, Math.max(0.01, start.cpuShare));
    const steps = digestSteps(view);
    let burst = performance.now();
    for (;;) {
      const r = steps.next();
      if (r.done) return { type: 'digest', index: view.applied.index, digest: r.value };
      const busy = performance.now() - burst;
      if (busy >= BURST_MS) {
        if (share < 1) Atomics.wait(rest, 0, 0, (busy * (1 - share)) / share);
        burst = performance.now();
      }
    }
  } finally {
    view.close();
  }
}

let reply: DigestThreadReply;
try {
  reply = digest(workerData as DigestThreadStart);
} catch (err) {
  reply = { type: 'error', message: (err as Error).message ?? String(err) };
}
port.postMessage(reply);
