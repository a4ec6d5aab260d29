import { Worker } from 'node:worker_threads';
import { StorageError } from '@cohort/core';
import { type ViewPin, workerModuleUrl } from '@cohort/storage';

/** What the digest thread is started with (its `workerData`). */
export interface DigestThreadStart {
  pin: ViewPin;
  /** How long it waits for the store's writer to reach the mark, in ms. */
  waitMs: number;
  /** The share of one CPU it may take (0-1]: it rests between pages to stay within it. */
  cpuShare: number;
}

/** The digest thread's one message. */
export type DigestThreadReply = { type: 'digest'; index: number; digest: string } | { type: 'error'; message: string };

/** Options of {@link digestOnThread}. */
export interface DigestThreadOptions {
  /** @default 60000 */
  waitMs?: number;
  /**
   * The share of one CPU the digest may take: a million-row partition is seconds of hashing, and
   * every replica digests at the same log index, so an unpaced digest takes a core from each node at
   * once. @default 0.5
   */
  cpuShare?: number;
}

/**
 * Computes {@link digestView}'s digest of a partition at `pin` (see `PartitionKv.pinView`) on a
 * worker thread of its own: the event loop pays only the thread's start. Resolves with the digest
 * and the applied index of the state it covers.
 */
export function digestOnThread(
  pin: ViewPin,
  opts: DigestThreadOptions = {},
): Promise<{ index: number; digest: string }> {
  const where = `${pin.source.file}: partition ${pin.source.partition}`;
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      fn();
    };
    const start: DigestThreadStart = { pin, waitMs: opts.waitMs ?? 60_000, cpuShare: opts.cpuShare ?? 0.5 };
    let worker: Worker;
    try {
      worker = new Worker(workerModuleUrl('digest-worker.js', import.meta.url), { workerData: start });
    } catch (err) {
      reject(new StorageError(`${where}: cannot start the digest thread: ${(err as Error).message}`));
      return;
    }
    // A digest under way never keeps the process alive.
    worker.unref();
    worker.once('message', (m: DigestThreadReply) =>
      settle(() => {
        if (m.type === 'digest') resolve({ index: m.index, digest: m.digest });
        else reject(new StorageError(`${where}: digest failed: ${m.message}`));
      }),
    );
    worker.once('error', (err) =>
      settle(() => reject(new StorageError(`${where}: digest thread failed: ${err.message}`))),
    );
    worker.once('exit', (code) =>
      settle(() => reject(new StorageError(`${where}: digest thread exited with code ${code} before its answer`))),
    );
  });
}
