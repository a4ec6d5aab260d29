import { readdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Worker, threadId } from 'node:worker_threads';
import { StorageError } from '@cohort/core/errors';
import { workerModuleUrl } from './sqlite-write-queue.js';

/** What the image thread is asked to copy (its `workerData`). */
export interface ImageRequest {
  /** The node's database. */
  source: string;
  /** The image file to create. */
  image: string;
  partition: string;
}

/** What the image thread answers. */
export type ImageResult = { ok: true } | { ok: false; message: string };

/** The infix of an image's file name: `<database>-image-<pid>-<n>`, beside the database. */
const IMAGE_INFIX = '-image-';
let made = 0;

/**
 * Copies `partition`'s current state (rows, sessions, applied position) out
 * of the database `source` into a new image file beside it, on a worker
 * thread, and returns the image's path. The caller owns the file: delete it
 * when done ({@link removeImage}); one left by a crash goes with
 * {@link removeStaleImages}.
 */
export function copyPartitionImage(source: string, partition: string): Promise<string> {
  const image = newImagePath(source);
  const fail = (message: string): StorageError => {
    removeImage(image);
    return new StorageError(
      `${source}: partition ${partition}: cannot copy the partition aside for a snapshot: ${message}`,
    );
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const worker = new Worker(workerModuleUrl('sqlite-kv-image-worker.js'), {
      workerData: { source, image, partition } satisfies ImageRequest,
    });
    // A copy under way never keeps the process alive; a file it leaves is removed at the next open.
    worker.unref();
    worker.once('message', (r: ImageResult) => {
      settled = true;
      if (r.ok) resolve(image);
      else reject(fail(r.message));
    });
    worker.once('error', (err) => {
      if (settled) return;
      settled = true;
      reject(fail(err.message));
    });
    worker.once('exit', (code) => {
      if (settled) return;
      settled = true;
      reject(fail(`the copying thread exited with code ${code}`));
    });
  });
}

/** A new image's path beside `source`: unique in this process across its threads. */
export function newImagePath(source: string): string {
  return `${source}${IMAGE_INFIX}${process.pid}-${threadId}-${++made}`;
}

/** Deletes an image (it has no journal: the copy runs with `journal_mode = OFF`). */
export function removeImage(image: string): void {
  rmSync(image, { force: true });
}

/**
 * Deletes an image off the event loop (freeing the blocks of a file of a hundred megabytes and more
 * takes a while); one that stays, for a failure here, is removed at the store's next open.
 */
export function discardImage(image: string): void {
  rm(image, { force: true }).catch(() => {});
}

/** Deletes every image of the database `file` left by an earlier process; returns how many. */
export function removeStaleImages(file: string): number {
  const prefix = `${basename(file)}${IMAGE_INFIX}`;
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(dirname(file));
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    rmSync(join(dirname(file), name), { force: true });
    n++;
  }
  return n;
}
