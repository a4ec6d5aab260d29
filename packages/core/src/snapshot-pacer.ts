/** Options of {@link SnapshotPacer}. */
export interface SnapshotPacerOptions {
  /** The fastest a transfer may go, in bytes per second (the configured snapshot rate); 0: unlimited, no pacing. */
  maxBytesPerSec: number;
  /**
   * The slowest it goes however slow the writes get. At or above `maxBytesPerSec`
   * the rate is fixed at the maximum (no adaptation).
   */
  minBytesPerSec: number;
  /** Writes slower than their latency before the transfer times this slow it down. @default 1.15 */
  tolerance?: number;
  /** Time between two adjustments, so the effect of one shows before the next. @default 250 */
  adjustEveryMs?: number;
  /** Writes older than this no longer say anything about the load: the transfer goes at full rate. @default 1000 */
  quietAfterMs?: number;
  /** Called each time the rate is cut (for the host's counters; {@link SnapshotPacer.backoffs} counts them too). */
  onBackoff?: () => void;
}

/**
 * Bytes of state per snapshot chunk by default (the Raft and Vertical Paxos
 * hosts' transfers). A chunk is read and encoded in one turn of the sender's
 * event loop, and decoded and stored in one of the receiver's: at 1M keys,
 * 1 MiB chunks took 57 ms of a Raft leader's on average and up to 151 ms
 * (under the profiler: 7.4 s for 130 chunks, two thirds reading rows, a third
 * encoding), a stall in every write it was serving meanwhile.
 */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

/** The write latency now: an average over about the last hundred writes (EWMA weight of the newest). */
const FAST = 0.02;
/** Writes since the last adjustment that make their mean the measure of it (else the recent average is). */
const MIN_WINDOW = 20;
/**
 * The long-run latency, what the node's writes take without a transfer (the baseline), is a moving
 * average over time with this time constant: a disturbance of a few seconds just before a transfer (a
 * node restarting, the copy of the state made for it) moves the baseline by a fraction of its excess.
 * Weighted per write instead, it followed the last few hundred writes, a fifth of a second at 2,500
 * writes/s: one transfer began at a 35 ms baseline while the writes took 20 ms, and the transfer took
 * two fifths of their throughput within the tolerance.
 */
const SLOW_TAU_MS = 10_000;
/** Writes are averaged over at least this long before their mean moves the long-run level. */
const SLOW_BUCKET_MS = 100;
/**
 * Fewer writes during a transfer count against it only while they take at least this share of their
 * latency before it: a load that fell (clients gone) also makes writes faster.
 */
const RATE_LATENCY_FLOOR = 0.9;

/**
 * Paces snapshot transfers by the writes the node serves meanwhile, so a
 * follower's catch-up takes the spare capacity, not the writes' share: the
 * rate backs off (multiplicatively) while the write latency is above the
 * tolerance times its level before the transfers started, and grows back
 * (additively) while it is not, between a floor and the configured rate. With
 * closed-loop clients throughput is clients / latency, so holding the latency
 * within 1.15x holds throughput at 87% or more (the target is 80%: the margin is for
 * noise in the latency average). It backs off too while fewer writes complete than
 * before by more than the tolerance and they are no faster (what clients that share
 * the node's cores lose beyond its own latency). No writes: full rate.
 *
 * Pure: it reads no clock; the host passes its injected clock's `now` with
 * each call, so the simulator paces in simulated time. One pacer may serve
 * several transfers and groups of a node (the Raft host shares one between
 * its groups); each host feeds it the latency of the writes it completes.
 *
 * @example
 * ```ts
 * const pacer = new SnapshotPacer({ maxBytesPerSec: 16 << 20, minBytesPerSec: 1 << 20 });
 * pacer.observeWrite(appliedAt - proposedAt, appliedAt); // each completed write
 * pacer.begin(); // a transfer starts
 * const bytesPerSec = pacer.rate(clock.now()); // before each chunk
 * pacer.end(); // it ended
 * ```
 */
export class SnapshotPacer {
  private readonly tolerance: number;
  private readonly adjustEveryMs: number;
  private readonly quietAfterMs: number;
  private fast: number | undefined;
  private slow: number | undefined;
  /** The long-run rate of writes (per ms), averaged as {@link slow} is. */
  private slowRate: number | undefined;
  /** The rate of writes before the transfers began (fixed while they run). */
  private baselineRate: number | undefined;
  /** When the writes of the current window began to count (the last adjustment). */
  private windowStart: number | undefined;
  /** The writes not yet in the long-run level: their summed latency, count, and when the level last moved. */
  private bucketSum = 0;
  private bucketCount = 0;
  private slowAt: number | undefined;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  /** The latency the writes had before the transfers began (fixed while they run). */
  private baseline: number | undefined;
  private current: number;
  private lastAdjustAt = Number.NEGATIVE_INFINITY;
  /** The writes completed since the last adjustment: their summed latency and count. */
  private windowSum = 0;
  private windowCount = 0;
  private active = 0;
  /** Times the rate was cut since the pacer was made. */
  backoffs = 0;

  constructor(private readonly opts: SnapshotPacerOptions) {
    this.tolerance = opts.tolerance ?? 1.15;
    this.adjustEveryMs = opts.adjustEveryMs ?? 250;
    this.quietAfterMs = opts.quietAfterMs ?? 1000;
    this.current = opts.maxBytesPerSec;
  }

  /** Whether the rate adapts at all (a limit, and a floor below it). */
  get adaptive(): boolean {
    return this.opts.maxBytesPerSec > 0 && this.opts.minBytesPerSec < this.opts.maxBytesPerSec;
  }

  /** The write latency (ms) running transfers measure the writes against (they back off above it times the tolerance); undefined when none run. */
  get baselineMs(): number | undefined {
    return this.active > 0 ? this.baseline : undefined;
  }

  /**
   * Fields for a transfer's log line: `writeLatencyBaselineMs`, the latency the writes are held to, while
   * transfers run on an adaptive pacer; none otherwise.
   */
  logFields(): { writeLatencyBaselineMs?: number } {
    const baseline = this.baselineMs;
    return this.adaptive && baseline !== undefined ? { writeLatencyBaselineMs: Math.round(baseline * 10) / 10 } : {};
  }

  /** A client write took `latencyMs` from proposal to reply. */
  observeWrite(latencyMs: number, now: number): void {
    const gap = now - this.lastWriteAt;
    this.lastWriteAt = now;
    this.windowSum += latencyMs;
    this.windowCount++;
    this.fast = this.fast === undefined ? latencyMs : this.fast + FAST * (latencyMs - this.fast);
    // The long-run level learns only while no transfer runs: a transfer must not raise its own bar.
    if (this.active === 0) this.learn(latencyMs, now, gap);
  }

  private learn(latencyMs: number, now: number, gap: number): void {
    if (gap > this.quietAfterMs) {
      // A quiet spell says nothing about the writes' rate or latency while they are served (a benchmark's
      // pause, a client's): the level stands as it was, and a new bucket starts with this write.
      this.bucketSum = 0;
      this.bucketCount = 0;
      this.slowAt = now;
    }
    this.bucketSum += latencyMs;
    this.bucketCount++;
    this.slowAt ??= now;
    const elapsed = now - this.slowAt;
    if (this.slow !== undefined && elapsed < SLOW_BUCKET_MS) return;
    const mean = this.bucketSum / this.bucketCount;
    // The time since the level last moved weighs the bucket (a quiet spell is not counted: see above).
    const weight = 1 - Math.exp(-elapsed / SLOW_TAU_MS);
    this.slow = this.slow === undefined ? mean : this.slow + weight * (mean - this.slow);
    if (elapsed > 0) {
      const perMs = this.bucketCount / elapsed;
      this.slowRate = this.slowRate === undefined ? perMs : this.slowRate + weight * (perMs - this.slowRate);
    }
    this.slowAt = now;
    this.bucketSum = 0;
    this.bucketCount = 0;
  }

  /** A transfer starts. */
  begin(): void {
    if (this.active++ === 0) {
      this.baseline = this.slow ?? this.fast;
      this.baselineRate = this.slowRate;
      this.windowStart = undefined;
      this.bucketSum = 0;
      this.bucketCount = 0;
      this.slowAt = undefined;
      this.current = this.opts.maxBytesPerSec;
      this.lastAdjustAt = Number.NEGATIVE_INFINITY;
      this.windowSum = 0;
      this.windowCount = 0;
    }
  }

  /** A transfer ended. */
  end(): void {
    this.active = Math.max(0, this.active - 1);
  }

  /**
   * When a transfer's next chunk may leave, once a chunk of `bytes` went at `sentAt`; `due` is when that
   * chunk itself was due (undefined for a transfer's first). The schedule carries over from chunk to
   * chunk, so a timer that fires a little early never adds up to a faster rate, and restarts from
   * `sentAt` after a chunk that left late, so a slow stretch is never made up in a burst. Undefined:
   * no limit now.
   */
  nextDue(due: number | undefined, sentAt: number, bytes: number, now: number): number | undefined {
    const rate = this.rate(now);
    if (rate <= 0) return undefined;
    return Math.max(due ?? sentAt, sentAt) + (bytes * 1000) / rate;
  }

  /** The rate the next chunk goes at, in bytes per second (0: unlimited). */
  rate(now: number): number {
    if (!this.adaptive) return this.opts.maxBytesPerSec;
    const { maxBytesPerSec: max, minBytesPerSec: min } = this.opts;
    if (now - this.lastWriteAt > this.quietAfterMs || this.fast === undefined) {
      // Nothing to protect.
      this.current = max;
      return max;
    }
    if (now - this.lastAdjustAt < this.adjustEveryMs) return this.current;
    this.lastAdjustAt = now;
    // The mean of every write since the last adjustment, stalls included: the recent average alone
    // forgets a stall within a few dozen writes, and a transfer whose cost comes as stalls between
    // fast stretches would run on at a rate that takes a quarter of the writes' throughput.
    const level = this.windowCount >= MIN_WINDOW ? this.windowSum / this.windowCount : this.fast;
    const windowRate =
      this.windowStart !== undefined && now > this.windowStart
        ? this.windowCount / (now - this.windowStart)
        : undefined;
    this.windowSum = 0;
    this.windowCount = 0;
    this.windowStart = now;
    // Writes that started during the transfer have no earlier level: their first average stands for it.
    // Never ratcheted down to a lull's: a dip would then make every normal write look slow.
    this.baseline ??= this.fast;
    if (level > this.baseline * this.tolerance || this.fewerWrites(windowRate, level)) {
      this.current = Math.max(min, this.current / 2);
      this.backoffs++;
      this.opts.onBackoff?.();
    } else {
      this.current = Math.min(max, this.current + max / 16);
    }
    return this.current;
  }

  /**
   * Whether fewer writes complete than before the transfer, by more than the tolerance, while they take
   * no less time. The node's own latency misses part of what a transfer costs its clients: where the
   * nodes share cores, the receiver's install takes CPU from the node's reading of requests and from the
   * clients themselves (in the scale benchmark the clients' latency rose 25% with the leader's within
   * 5%); with clients that wait for each answer, that shows as fewer writes. A load that merely fell
   * (fewer clients) shows as fewer writes too, but also as faster ones, and is left alone.
   */
  private fewerWrites(windowRate: number | undefined, level: number): boolean {
    if (windowRate === undefined || this.baselineRate === undefined || this.baseline === undefined) return false;
    return windowRate * this.tolerance < this.baselineRate && level >= this.baseline * RATE_LATENCY_FLOOR;
  }
}
