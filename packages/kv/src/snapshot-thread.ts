import { Worker } from 'node:worker_threads';
import { CorruptStateError, type SnapshotMeta, StorageError } from '@cohort/core';
import type { SnapshotReader } from '@cohort/raft';
import { type DetachedImage, workerModuleUrl } from '@cohort/storage';

/** What the snapshot thread is started with (its `workerData`). */
export type SnapshotThreadStart = Pick<DetachedImage, 'source' | 'image'>;
/** A request for the next chunk. */
export interface SnapshotThreadRequest {
  maxBytes: number;
}
/** The snapshot thread's messages: the view opened, then one answer per request, in order. */
export type SnapshotThreadReply =
  | { type: 'open'; meta: SnapshotMeta }
  | { type: 'chunk'; data: Uint8Array }
  | { type: 'end' }
  | { type: 'error'; message: string; corruptPartition?: string };

interface Waiter {
  resolve(chunk: Uint8Array | undefined): void;
  reject(err: Error): void;
}

/**
 * Reads a snapshot on a worker thread: rows read, checked and encoded there, each chunk moved to the
 * event loop's thread as a buffer, one chunk read ahead. On the event loop, a transfer then costs only
 * its sends: reading and encoding a 256 KiB chunk of a million-row partition took ~12 ms of it, a
 * stall for every request in flight each time (and as much again in garbage collection).
 * Closing it stops the thread and deletes the copy.
 */
export class WorkerSnapshotReader implements SnapshotReader {
  private readonly waiters: Waiter[] = [];
  /** The chunk read ahead (its request is in flight or answered). */
  private ahead: Promise<Uint8Array | undefined> | undefined;
  private failed: Error | undefined;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    private readonly copy: DetachedImage,
    readonly meta: SnapshotMeta,
  ) {
    // Made on the thread's `open` message, so every message from here on answers a request.
    worker.on('message', (m: SnapshotThreadReply) => {
      const w = this.waiters.shift();
      if (!w) return;
      if (m.type === 'chunk') w.resolve(m.data);
      else if (m.type === 'error') w.reject(threadError(m));
      else w.resolve(undefined);
    });
  }

  /** Starts the thread over `copy` (which the reader then owns); resolves once its view is open. */
  static open(copy: DetachedImage): Promise<WorkerSnapshotReader> {
    return new Promise((resolve, reject) => {
      let worker: Worker;
      try {
        worker = new Worker(workerModuleUrl('snapshot-worker.js', import.meta.url), {
          workerData: { source: copy.source, image: copy.image } satisfies SnapshotThreadStart,
        });
      } catch (err) {
        copy.close();
        reject(err);
        return;
      }
      // A transfer under way never keeps the process alive.
      worker.unref();
      let reader: WorkerSnapshotReader | undefined;
      const fail = (err: Error) => {
        if (reader) {
          reader.fail(err);
          return;
        }
        copy.close();
        void worker.terminate();
        reject(err);
      };
      worker.once('message', (m: SnapshotThreadReply) => {
        if (m.type === 'open') {
          reader = new WorkerSnapshotReader(worker, copy, m.meta);
          resolve(reader);
        } else if (m.type === 'error') fail(threadError(m));
        else fail(new StorageError(`snapshot thread: expected its view to open, got ${m.type}`));
      });
      worker.on('error', (err) =>
        fail(
          new StorageError(
            `${copy.source.file}: partition ${copy.source.partition}: snapshot thread failed: ${err.message}`,
          ),
        ),
      );
      worker.on('exit', (code) => {
        fail(
          new StorageError(
            `${copy.source.file}: partition ${copy.source.partition}: snapshot thread exited with code ${code}`,
          ),
        );
      });
    });
  }

  next(maxBytes: number): Promise<Uint8Array | undefined> {
    const got = this.ahead ?? this.request(maxBytes);
    this.ahead = undefined;
    void got.then(
      (chunk) => {
        // Read the next one while this one is sent.
        if (chunk !== undefined && !this.closed && this.ahead === undefined) {
          this.ahead = this.request(maxBytes);
          // Its failure reaches whoever asks for it; until then it must not count as unhandled.
          this.ahead.catch(() => {});
        }
      },
      () => {},
    );
    return got;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fail(new StorageError('snapshot reader closed'));
    void this.worker.terminate();
    this.copy.close();
  }

  private request(maxBytes: number): Promise<Uint8Array | undefined> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.worker.postMessage({ maxBytes } satisfies SnapshotThreadRequest);
    });
  }

  /** The thread is gone (or the reader closed): every request waiting and every later one fails. */
  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiters.splice(0)) w.reject(this.failed);
  }
}

function threadError(m: { message: string; corruptPartition?: string }): Error {
  return m.corruptPartition !== undefined
    ? new CorruptStateError(m.message, m.corruptPartition)
    : new StorageError(m.message);
}
