import { Worker } from 'node:worker_threads';
import type { Logger } from '@cohort/core';
import { StorageError } from '@cohort/core/errors';
import {
  type PrefetchBatch,
  type PrefetchData,
  type PrefetchReply,
  threadReadBytes,
} from './sqlite-prefetch-protocol.js';
import { workerModuleUrl } from './sqlite-write-queue.js';

/**
 * When a store reads ahead (see {@link ReadAhead}): `auto` while its reads go to the disk, `on`
 * always, `off` never.
 */
export type ReadAheadMode = 'auto' | 'on' | 'off';

/** The read modes {@link ReadAheadMode} takes, for option parsers. */
export const READ_AHEAD_MODES: readonly ReadAheadMode[] = ['auto', 'on', 'off'];

/** Options of {@link ReadAhead}. */
export interface ReadAheadOptions {
  /** `auto` or `on`; `off` never reads ahead, and only counts the slow reads it is told of. */
  mode: ReadAheadMode;
  /**
   * Keys sent to the thread and not read yet, at most; keys asked past it are dropped (read ahead is
   * advice: a thread behind the disk must not queue without bound). @default 4096
   */
  maxKeysInFlight?: number;
  /**
   * A read taking at least this long (ms) counts as one that went to the disk, if the thread read from
   * storage since it last looked (see {@link ReadAheadOptions.ioCheck}). @default 0.25
   */
  coldMs?: number;
  /**
   * Whether a slow read counts only when the thread's storage reads (Linux's
   * `/proc/thread-self/io`, `read_bytes`) grew since the last slow read: on a busy machine most slow
   * reads of pages in memory are the thread waiting for a CPU, and without this check `auto` would
   * stay on with nothing to gain. Where the file is missing every slow read counts. @default true
   */
  ioCheck?: boolean;
  /**
   * In `auto`, reads on the event loop that went to the disk within a second that turn read ahead
   * on: a burst says the pages the applies read are cold, a stray one only that one page was.
   * @default 8
   */
  burstReads?: number;
  /**
   * In `auto`, the share of the thread's reads that must go to the disk to keep read ahead on,
   * reckoned over {@link coldShareWindow} keys: below it the thread's reads cost more than the
   * waits they spare the event loop (a lookup of a page in memory takes the thread ~10-20 µs of CPU,
   * a read from the disk holds the event loop 0.25 ms or more). @default 0.02
   */
  minColdShare?: number;
  /**
   * Keys over which {@link minColdShare} is reckoned, or fewer: those read in half of
   * {@link armMs}, when the thread reads fewer in that time. Cold reads come in bursts (the pages
   * of a region the OS paged out together), and a short window takes one burst for a cold share:
   * at 256 keys, a million keys written at random kept read ahead on at 0.14% cold. @default 4096
   */
  coldShareWindow?: number;
  /** In `auto`, how long (ms) read ahead stays on once turned on (or kept on). @default 10000 */
  armMs?: number;
  /** In `auto`, how long (ms) the thread may stay unused before it stops. @default 60000 */
  idleStopMs?: number;
  logger?: Logger;
  /** The clock (ms), for tests. @default performance.now */
  now?: () => number;
}

/** What a {@link ReadAhead} did, for metrics and tests. */
export interface ReadAheadStats {
  /** Keys asked while read ahead was on. */
  asked: number;
  /** Keys the thread read. */
  read: number;
  /** Of those, keys it found a row for. */
  found: number;
  /** Keys dropped: the thread had {@link ReadAheadOptions.maxKeysInFlight} unread. */
  dropped: number;
  /** Reads on this thread (the event loop's) that went to the disk. */
  coldHere: number;
  /** Reads on the read-ahead thread that went to the disk. */
  coldThere: number;
  /** Whether read ahead is on now. */
  on: boolean;
}

/**
 * The share of reads that went to the disk, reckoned over windows of `keys` reads, or of what was read
 * in `ms` when fewer were: `add` says at the end of each window whether `minShare` of its reads or more
 * were cold.
 */
export class ColdShare {
  private read = 0;
  private cold = 0;
  private from = 0;

  constructor(
    private readonly keys: number,
    private readonly ms: number,
    private readonly minShare: number,
  ) {}

  /** Counts `read` reads at `now`, `cold` of them gone to the disk: true when they end a window cold enough. */
  add(now: number, read: number, cold: number): boolean {
    if (this.read === 0) this.from = now;
    this.read += read;
    this.cold += cold;
    if (this.read < this.keys && now - this.from < this.ms) return false;
    const enough = this.cold >= this.read * this.minShare;
    this.read = 0;
    this.cold = 0;
    return enough;
  }
}

/**
 * Reads KV rows ahead of the event loop, on a thread of its own with its own read-only
 * connection. The event loop reads a key's row when it applies an entry that writes the key (for
 * its create revision and version) and when it serves a read; when the row's page is not in the
 * OS page cache, that read waits for the disk on the event loop, and behind a disk busy with other
 * fsyncs it waits for seconds: no heartbeat, acknowledgement or client is served meanwhile (seen
 * with a million keys, on a machine that pages out file pages unused for a minute). The store asks
 * for an entry's keys as the entry is appended, a commit's fsync and more before its apply, so the
 * page is in memory by the time the apply reads it. (Client reads are not read ahead: a read index
 * round is too little head start, and the thread's lookups cost more CPU than they saved.)
 *
 * In `auto` mode it is on only while reads go to the disk: a read slower than
 * {@link ReadAheadOptions.coldMs} while its thread read from storage ({@link ReadAheadOptions.ioCheck})
 * counts as cold; a burst of cold reads on the event loop turns read ahead on for
 * {@link ReadAheadOptions.armMs}, and it stays on while enough of the thread's reads are cold
 * ({@link ReadAheadOptions.minColdShare}). Off, it costs one comparison per key.
 * Advisory throughout: it changes nothing, a failure only turns it off (logged), and keys asked
 * while the thread is behind are dropped.
 */
export class ReadAhead {
  private readonly max: number;
  private readonly coldMs: number;
  private readonly armMs: number;
  private readonly idleStopMs: number;
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private worker: Worker | undefined;
  private disabled = false;
  private closed = false;
  private gens: number[] = [];
  private keys: Uint8Array[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private inFlight = 0;
  private armedUntil = Number.NEGATIVE_INFINITY;
  private lastUse = 0;
  private idleTimer: ReturnType<typeof setInterval> | undefined;
  private readonly counts = { asked: 0, read: 0, found: 0, dropped: 0, coldHere: 0, coldThere: 0 };
  /** The event loop's thread's storage reads when last looked at (see {@link ReadAheadOptions.ioCheck}). */
  private ioSeen: number | undefined;
  private readonly ioCheck: boolean;
  private readonly burstReads: number;
  /** The event loop's cold reads in the current second: when it began, how many. */
  private burstFrom = Number.NEGATIVE_INFINITY;
  private burst = 0;
  /** The share of the thread's reads that went to the disk. */
  private readonly coldShare: ColdShare;

  constructor(
    private readonly file: string,
    private readonly opts: ReadAheadOptions,
  ) {
    this.max = opts.maxKeysInFlight ?? 4096;
    this.coldMs = opts.coldMs ?? 0.25;
    this.armMs = opts.armMs ?? 10_000;
    this.idleStopMs = opts.idleStopMs ?? 60_000;
    this.now = opts.now ?? (() => performance.now());
    this.log = opts.logger;
    this.ioCheck = opts.ioCheck ?? true;
    this.burstReads = opts.burstReads ?? 8;
    this.coldShare = new ColdShare(opts.coldShareWindow ?? 4096, this.armMs / 2, opts.minColdShare ?? 0.02);
    // The store is opened on the thread that reads it.
    if (this.ioCheck) this.ioSeen = threadReadBytes();
    if (!(Number.isSafeInteger(this.max) && this.max > 0)) {
      throw new StorageError(`read ahead: maxKeysInFlight must be a whole number above 0; got ${this.max}`);
    }
  }

  /** Whether keys asked now are read ahead. */
  on(): boolean {
    if (this.disabled || this.closed || this.opts.mode === 'off') return false;
    return this.opts.mode === 'on' || this.now() < this.armedUntil;
  }

  /** Reads `keys` of generation `gen` ahead, if read ahead is on. */
  want(gen: number, keys: Iterable<Uint8Array>): void {
    if (!this.on()) return;
    for (const key of keys) {
      this.counts.asked++;
      if (this.inFlight + this.keys.length >= this.max) {
        this.counts.dropped++;
        continue;
      }
      this.gens.push(gen);
      this.keys.push(key);
      this.pendingBytes += key.length;
    }
    if (this.keys.length > 0 && !this.scheduled) {
      this.scheduled = true;
      // One message per turn: everything asked while this turn runs.
      queueMicrotask(() => this.flush());
    }
  }

  /** Reports a read on the event loop that took `ms`: a slow one turns `auto` read ahead on. */
  readTook(ms: number): void {
    if (ms < this.coldMs) return;
    if (this.ioCheck) {
      // Slow reads are rare: one look at the thread's I/O each.
      const io = threadReadBytes();
      const seen = this.ioSeen;
      this.ioSeen = io;
      if (io !== undefined && seen !== undefined && io <= seen) return;
    }
    this.counts.coldHere++;
    if (this.opts.mode !== 'auto') return;
    const now = this.now();
    if (now - this.burstFrom >= 1000) {
      this.burstFrom = now;
      this.burst = 0;
    }
    if (++this.burst >= this.burstReads) this.arm();
  }

  stats(): ReadAheadStats {
    return { ...this.counts, on: this.on() };
  }

  /** Stops the thread; later asks do nothing. */
  close(): void {
    this.closed = true;
    this.stopThread();
  }

  private arm(): void {
    this.armedUntil = this.now() + this.armMs;
  }

  private flush(): void {
    this.scheduled = false;
    const keys = this.keys;
    if (keys.length === 0 || this.closed) return;
    const gens = this.gens;
    const lens = keys.map((k) => k.length);
    // The keys are views of shared pools (an entry's bytes, Node's 64 KiB buffer pool): a buffer of
    // their own, transferred, crosses without copying whole pools.
    const bytes = new Uint8Array(this.pendingBytes);
    let at = 0;
    for (const k of keys) {
      bytes.set(k, at);
      at += k.length;
    }
    this.keys = [];
    this.gens = [];
    this.pendingBytes = 0;
    let worker: Worker;
    try {
      worker = this.started();
    } catch (err) {
      this.disable(`cannot start its thread: ${(err as Error).message}`);
      return;
    }
    this.inFlight += keys.length;
    this.lastUse = this.now();
    const batch: PrefetchBatch = { gens, lens, bytes };
    worker.postMessage(batch, [bytes.buffer]);
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const data: PrefetchData = { file: this.file, coldMs: this.coldMs, ioCheck: this.ioCheck };
    const worker = new Worker(workerModuleUrl('sqlite-prefetch-worker.js'), { workerData: data });
    worker.on('message', (m: PrefetchReply) => {
      if (m.type === 'failed') {
        this.disable(m.message);
        return;
      }
      this.inFlight -= m.keys;
      this.counts.read += m.keys;
      this.counts.found += m.found;
      this.counts.coldThere += m.cold;
      if (this.coldShare.add(this.now(), m.keys, m.cold)) this.arm();
    });
    worker.on('error', (err) => this.disable(err.message));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.disable(`its thread exited with code ${code}`);
    });
    // Neither the thread nor its messages keep the process alive (after the listeners, which ref it).
    worker.unref();
    this.worker = worker;
    if (this.opts.mode === 'auto') {
      // An unused thread costs its heap: stop it once read ahead has been off for a while.
      this.idleTimer = setInterval(
        () => {
          if (this.inFlight === 0 && this.now() - this.lastUse >= this.idleStopMs) this.stopThread();
        },
        Math.max(1000, this.idleStopMs / 4),
      );
      this.idleTimer.unref();
    }
    return worker;
  }

  private stopThread(): void {
    if (this.idleTimer !== undefined) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    const worker = this.worker;
    this.worker = undefined;
    this.inFlight = 0;
    if (worker !== undefined) void worker.terminate();
  }

  private disable(why: string): void {
    if (this.disabled || this.closed) return;
    this.disabled = true;
    this.stopThread();
    this.log?.warn('read ahead is off for good: the event loop reads rows itself from now on', {
      file: this.file,
      err: why,
    });
  }
}
