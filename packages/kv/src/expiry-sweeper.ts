import { type Clock, ErrorCode, type Logger, type ReplicatedGroup, type TimerHandle, silentLogger } from '@cohort/core';
import type { KvResponse } from './request.js';

/** Options of {@link ExpirySweeper}. */
export interface ExpirySweeperOptions {
  /** The group whose leader sweeps; followers only wait for the deletes in the log. */
  group: ReplicatedGroup;
  /** Up to `limit` keys of this replica expired at wall-clock `now`. */
  expiredKeys: (now: number, limit: number) => Uint8Array[];
  /**
   * Proposes one command deleting `keys`, each only if still expired when it
   * applies (a key rewritten meanwhile stays). Resolves once applied, or
   * with a failure.
   */
  deleteExpired: (keys: Uint8Array[]) => Promise<KvResponse>;
  clock: Clock;
  /** Wall-clock Unix milliseconds. @default Date.now */
  wallClock?: () => number;
  /** Pause between sweeps that found less than a full batch. @default 100 */
  intervalMs?: number;
  /** Most keys one delete command carries. @default 256 */
  batchSize?: number;
  logger?: Logger;
}

/** What {@link ExpirySweeper} did since it started. */
export interface SweeperStats {
  /** Delete commands proposed. */
  proposals: number;
  /** Keys those commands named. */
  keys: number;
  /** Proposals that failed (leadership lost, timeout); their keys are found again by a later sweep. */
  failures: number;
}

/**
 * Reclaims the space of expired keys: on the leader, every `intervalMs`, it
 * asks the state machine for a bounded batch of expired keys and proposes
 * one delete for them, at once again while batches come back full. Reads
 * never show an expired key either way; the sweep only frees the rows.
 */
export class ExpirySweeper {
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly batchSize: number;
  private readonly wallClock: () => number;
  private timer: TimerHandle | undefined;
  private running = false;
  readonly stats: SweeperStats = { proposals: 0, keys: 0, failures: 0 };

  constructor(private readonly opts: ExpirySweeperOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'expiry', group: opts.group.id });
    this.intervalMs = opts.intervalMs ?? 100;
    this.batchSize = opts.batchSize ?? 256;
    this.wallClock = opts.wallClock ?? Date.now;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) {
      throw new RangeError(`expiry sweeper batchSize must be a whole number above 0, got ${this.batchSize}`);
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(this.intervalMs);
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One sweep: resolves with the number of keys proposed for deletion (0 on a follower). */
  async sweep(): Promise<number> {
    if (this.opts.group.status().role !== 'leader') return 0;
    const keys = this.opts.expiredKeys(this.wallClock(), this.batchSize);
    if (keys.length === 0) return 0;
    this.stats.proposals++;
    this.stats.keys += keys.length;
    const res = await this.opts
      .deleteExpired(keys)
      .catch((err: unknown): KvResponse => ({ type: 'failure', code: ErrorCode.Internal, message: String(err) }));
    if (res.type === 'failure') {
      this.stats.failures++;
      this.log.debug('expired keys not deleted; a later sweep retries', { keys: keys.length, err: res.message });
      return 0;
    }
    return keys.length;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      this.sweep().then(
        (n) => this.schedule(n >= this.batchSize ? 0 : this.intervalMs),
        (err: unknown) => {
          this.log.warn('expiry sweep failed', { err: String(err) });
          this.schedule(this.intervalMs);
        },
      );
    }, ms);
  }
}
