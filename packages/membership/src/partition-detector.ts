/** What the partition detector concludes from reachable vs expected cluster size. */
export type PartitionStatus =
  | { readonly kind: 'healthy'; readonly reachable: number; readonly expected: number }
  | {
      readonly kind: 'suspect';
      readonly reachable: number;
      readonly expected: number;
      readonly graceRemainingMs: number;
    }
  | { readonly kind: 'partitioned'; readonly reachable: number; readonly expected: number; readonly minority: boolean };

/** Options of the split-brain detector (`PartitionDetector`). */
export interface PartitionOptions {
  /** Reachable / expected must be strictly above this to be healthy. @default 0.5 */
  readonly threshold?: number;
  /** How long the quorum may be missing before the cluster is declared partitioned. @default 30000 */
  readonly gracePeriodMs?: number;
}

/**
 * Split-brain detection: the fraction of expected members that is reachable.
 * Exactly the threshold is not a quorum. A shortfall is `suspect` for the grace
 * period, then `partitioned`; `minority` says this side holds at most half.
 */
export class PartitionDetector {
  private readonly threshold: number;
  private readonly graceMs: number;
  private since: number | undefined;

  constructor(options: PartitionOptions = {}) {
    this.threshold = options.threshold ?? 0.5;
    this.graceMs = options.gracePeriodMs ?? 30_000;
    if (!(this.threshold >= 0 && this.threshold < 1)) throw new RangeError('partition threshold must be in [0, 1)');
  }

  /** Re-evaluates with the current sizes (both include this node). */
  check(reachable: number, expected: number, now: number): PartitionStatus {
    if (expected <= 0 || reachable / expected > this.threshold) {
      this.since = undefined;
      return { kind: 'healthy', reachable, expected };
    }
    this.since ??= now;
    const remaining = this.since + this.graceMs - now;
    if (remaining > 0) return { kind: 'suspect', reachable, expected, graceRemainingMs: remaining };
    return { kind: 'partitioned', reachable, expected, minority: reachable * 2 <= expected };
  }

  /** When a suspect status turns into partitioned, if one is pending. */
  deadline(): number | undefined {
    return this.since === undefined ? undefined : this.since + this.graceMs;
  }
}
