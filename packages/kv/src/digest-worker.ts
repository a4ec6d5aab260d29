/**
 * The digest thread (see {@link digestOnThread}): for each request it opens a view of the partition
 * at the mark it was given (the store's writer waits there until it has), then hashes the views it
 * holds in turns of a few ms each, resting between turns to keep within each digest's share of a
 * CPU, and posts each digest when done. Between turns it takes new requests, so a mark never waits
 * for another digest to finish.
 */
import { parentPort } from 'node:worker_threads';
import { type KvView, openPinnedView } from '@cohort/storage';
import type { DigestThreadReply, DigestThreadRequest } from './digest-thread.js';
import { digestSteps } from './digest.js';

const port = parentPort;
if (!port) throw new Error('digest-worker.js runs as a worker thread (see digestOnThread)');

/** Work per turn, in ms: short, so a new request's mark is taken soon and a rest never holds much up. */
const TURN_MS = 10;

interface Digest {
  id: number;
  view: KvView;
  steps: Generator<void, string, void>;
  share: number;
}

const digests: Digest[] = [];
let scheduled = false;

const reply = (r: DigestThreadReply): void => port.postMessage(r);
const errorOf = (id: number, err: unknown): DigestThreadReply => ({
  id,
  type: 'error',
  message: (err as Error).message ?? String(err),
});

port.on('message', (req: DigestThreadRequest) => {
  let view: KvView;
  try {
    // The view reads a copy made at the mark, within the digest's share of a CPU too.
    view = openPinnedView(req.pin, req.waitMs, { cpuShare: req.cpuShare });
  } catch (err) {
    reply(errorOf(req.id, err));
    return;
  }
  digests.push({ id: req.id, view, steps: digestSteps(view), share: Math.min(1, Math.max(0.01, req.cpuShare)) });
  if (!scheduled) {
    scheduled = true;
    setImmediate(turn);
  }
});

/** Hashes the first digest for up to {@link TURN_MS}, then rests in proportion and passes to the next. */
function turn(): void {
  scheduled = false;
  const d = digests.shift();
  if (d === undefined) return;
  const started = performance.now();
  let done = false;
  try {
    while (performance.now() - started < TURN_MS) {
      const r = d.steps.next();
      if (r.done) {
        done = true;
        reply({ id: d.id, type: 'digest', index: d.view.applied.index, digest: r.value });
        break;
      }
    }
  } catch (err) {
    done = true;
    reply(errorOf(d.id, err));
  }
  if (done) d.view.close();
  else digests.push(d);
  if (digests.length === 0) return;
  const busy = performance.now() - started;
  scheduled = true;
  setTimeout(turn, (busy * (1 - d.share)) / d.share);
}
