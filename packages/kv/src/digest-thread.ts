import { Worker } from 'node:worker_threads';
import { StorageError } from '@cohort/core';
import { type ViewPin, workerModuleUrl } from '@cohort/storage';

/** A digest asked of the digest thread. */
export interface DigestThreadRequest {
  id: number;
  pin: ViewPin;
  /** How long it waits for the store's writer to reach the mark, in ms. */
  waitMs: number;
  /** The share of one CPU it may take for this digest (0-1]: it rests between bursts to stay within it. */
  cpuShare: number;
}

/** The digest thread's answer to request `id`. */
export type DigestThreadReply =
  | { id: number; type: 'digest'; index: number; digest: string }
  | { id: number; type: 'error'; message: string };

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

interface Waiter {
  where: string;
  resolve(d: { index: number; digest: string }): void;
  reject(err: Error): void;
}

/** A thread idle this long stops (the next digest starts another). */
const IDLE_MS = 20 * 60_000;

/**
 * The process's digest thread, started on first use and kept while digests come (every consistency
 * check, every 10 minutes by default): the store's writer waits at a mark until the thread took its
 * snapshot there, and a thread already running takes it in about a millisecond where a new one takes
 * 70-100 ms to start. Several digests (partitions) interleave on it.
 */
class DigestThread {
  private worker: Worker | undefined;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 0;
  private idle: ReturnType<typeof setTimeout> | undefined;

  digest(pin: ViewPin, opts: DigestThreadOptions): Promise<{ index: number; digest: string }> {
    const where = `${pin.source.file}: partition ${pin.source.partition}`;
    return new Promise((resolve, reject) => {
      let worker: Worker;
      try {
        worker = this.started();
      } catch (err) {
        reject(new StorageError(`${where}: cannot start the digest thread: ${(err as Error).message}`));
        return;
      }
      if (this.idle !== undefined) clearTimeout(this.idle);
      this.idle = undefined;
      const id = ++this.nextId;
      this.waiting.set(id, { where, resolve, reject });
      const req: DigestThreadRequest = {
        id,
        pin,
        waitMs: opts.waitMs ?? 60_000,
        cpuShare: opts.cpuShare ?? 0.5,
      };
      worker.postMessage(req);
    });
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(workerModuleUrl('digest-worker.js', import.meta.url));
    worker.on('message', (m: DigestThreadReply) => {
      const w = this.waiting.get(m.id);
      if (w === undefined) return;
      this.waiting.delete(m.id);
      if (m.type === 'digest') w.resolve({ index: m.index, digest: m.digest });
      else w.reject(new StorageError(`${w.where}: digest failed: ${m.message}`));
      if (this.waiting.size === 0) {
        this.idle = setTimeout(() => this.stop(worker), IDLE_MS);
        this.idle.unref();
      }
    });
    const gone = (why: string): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const w of this.waiting.values()) w.reject(new StorageError(`${w.where}: ${why}`));
      this.waiting.clear();
    };
    worker.on('error', (err) => gone(`digest thread failed: ${err.message}`));
    worker.on('exit', (code) => gone(`digest thread exited with code ${code} before its answer`));
    // Neither a digest under way nor the idle thread keeps the process alive (after the listeners:
    // adding a message listener refs the port again).
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private stop(worker: Worker): void {
    this.idle = undefined;
    if (this.worker !== worker || this.waiting.size > 0) return;
    this.worker = undefined;
    void worker.terminate();
  }
}

const thread = new DigestThread();

/**
 * Computes {@link digestView}'s digest of a partition at `pin` (see `PartitionKv.pinView`) on the
 * process's digest thread: the event loop pays only a message. Resolves with the digest and the
 * applied index of the state it covers.
 */
export function digestOnThread(
  pin: ViewPin,
  opts: DigestThreadOptions = {},
): Promise<{ index: number; digest: string }> {
  return thread.digest(pin, opts);
}
