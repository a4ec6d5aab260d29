import { Worker } from 'node:worker_threads';
import type { Logger } from '@cohort/core';
import { StorageError } from '@cohort/core/errors';
import type { PrefetchBatch, PrefetchData, PrefetchReply } from './sqlite-prefetch-protocol.js';
import { workerModuleUrl } from './sqlite-write-queue.js';
import { threadReadBytes } from './thread-io.js';

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
   * In `auto`, the share of its time the event loop must spend in reads that went to the disk, over
   * a second, to turn read ahead on; and the share of the time the thread's reads that went to the
   * disk must take, over half of {@link armMs}, to keep it on (those are waits it spared the event
   * loop). Below it, reading ahead costs the node more than the waits it spares: each turn's keys
   * cross to the thread and back (two thread wake-ups), and the lookups take a CPU; measured at a
   * million keys on two cores, about 20-90 µs of CPU per key read ahead on every node, 4-26% of a
   * core per node under load, while the event loop met 2-9 cold reads a second there (short of 5%
   * of a second: this rule left read ahead off). A count of cold reads instead kept it on there,
   * and the writes were 5-44% slower for it. @default 0.05
   */
  minColdTime?: number;
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
 * The time reads spent waiting on the disk, reckoned over windows of `ms` starting with the first
 * read that went there: `add` says whether the window's waits came to `share` of its length. It says
 * so as soon as they do (a single wait that long is enough), and the next window starts empty.
 */
export class ColdTime {
  private from = Number.NEGATIVE_INFINITY;
  private spent = 0;

  constructor(
    private readonly ms: number,
    private readonly share: number,
  ) {}

  /** Counts `coldMs` spent on the disk at `now`: true when the window's waits reached its share. */
  add(now: number, coldMs: number): boolean {
    if (coldMs <= 0) return false;
    if (now - this.from >= this.ms) {
      this.from = now;
      this.spent = 0;
    }
    this.spent += coldMs;
    if (this.spent < this.ms * this.share) return false;
    this.from = Number.NEGATIVE_INFINITY;
    return true;
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
 * In `auto` mode it is on only while reads spend time on the disk: a read slower than
 * {@link ReadAheadOptions.coldMs} while its thread read from storage ({@link ReadAheadOptions.ioCheck})
 * counts as cold; when the event loop's cold reads take {@link ReadAheadOptions.minColdTime} of a
 * second, read ahead turns on for {@link ReadAheadOptions.armMs}, and it stays on while the thread's
 * cold reads take that share of their window. Off, it costs one comparison per key.
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
  /** The time the event loop's reads spent on the disk, over seconds. */
  private readonly loopCold: ColdTime;
  /** The time the thread's reads spent on the disk, over half of {@link armMs}. */
  private readonly threadCold: ColdTime;

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
    const minColdTime = opts.minColdTime ?? 0.05;
    if (!(minColdTime >= 0 && minColdTime <= 1)) {
      throw new StorageError(`read ahead: minColdTime must be a share from 0 to 1; got ${minColdTime}`);
    }
    this.loopCold = new ColdTime(1000, minColdTime);
    this.threadCold = new ColdTime(this.armMs / 2, minColdTime);
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
    if (this.loopCold.add(this.now(), ms)) this.arm();
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
      if (this.threadCold.add(this.now(), m.coldMs)) this.arm();
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
