/** Options of the phi accrual failure detector (`PhiAccrualDetector`). */
export interface PhiAccrualOptions {
  /** How many recent intervals are kept. @default 100 */
  readonly windowSize?: number;
  /** No verdict before this many samples. @default 5 */
  readonly minSamples?: number;
  /** Floor of the standard deviation, so a very regular history does not make phi explode. @default 100 */
  readonly minStdDeviationMs?: number;
  /** Added to the mean: a pause this long is tolerated without raising phi. @default 0 */
  readonly acceptablePauseMs?: number;
  /** Phi at and above which the member is considered unavailable. @default 8 */
  readonly threshold?: number;
}

/**
 * Phi accrual failure detector (Hayashibara et al.): a bounded window of
 * heartbeat intervals, modelled as a normal distribution, and
 * phi = -log10(1 - CDF(elapsed)). Pure: times are passed in.
 */
export class PhiAccrualDetector {
  private readonly windowSize: number;
  private readonly minSamples: number;
  private readonly minStd: number;
  private readonly pause: number;
  /** The configured threshold. */
  readonly threshold: number;
  private readonly samples: number[] = [];
  private sum = 0;
  private sumSq = 0;
  private last: number | undefined;

  constructor(options: PhiAccrualOptions = {}) {
    this.windowSize = options.windowSize ?? 100;
    this.minSamples = options.minSamples ?? 5;
    this.minStd = options.minStdDeviationMs ?? 100;
    this.pause = options.acceptablePauseMs ?? 0;
    this.threshold = options.threshold ?? 8;
    if (this.windowSize < 1 || this.minSamples < 1 || this.minStd <= 0) {
      throw new RangeError('phi accrual: windowSize and minSamples must be >= 1 and minStdDeviationMs > 0');
    }
  }

  /** Records a heartbeat at `now`; the interval since the previous one becomes a sample. */
  heartbeat(now: number): void {
    if (this.last !== undefined) this.addSample(now - this.last);
    this.last = now;
  }

  /** Records one interval directly. */
  addSample(intervalMs: number): void {
    const v = Math.max(0, intervalMs);
    this.samples.push(v);
    this.sum += v;
    this.sumSq += v * v;
    if (this.samples.length > this.windowSize) {
      const old = this.samples.shift() ?? 0;
      this.sum -= old;
      this.sumSq -= old * old;
    }
  }

  /** How many samples the window holds. */
  get sampleCount(): number {
    return this.samples.length;
  }

  /** Phi at `now` given the last heartbeat; undefined before `minSamples` samples (no verdict). */
  phi(now: number): number | undefined {
    if (this.last === undefined) return undefined;
    return this.phiOf(now - this.last);
  }

  /** Phi of an interval of `elapsedMs` against the window; undefined before `minSamples` samples. */
  phiOf(elapsedMs: number): number | undefined {
    const n = this.samples.length;
    if (n < this.minSamples) return undefined;
    const mean = this.sum / n;
    const variance = Math.max(0, this.sumSq / n - mean * mean);
    const std = Math.max(Math.sqrt(variance), this.minStd);
    const y = (elapsedMs - (mean + this.pause)) / std;
    return -log10UpperTail(y);
  }

  /** Whether phi is at or above the threshold (false while there is no verdict). */
  isSuspicious(elapsedMs: number): boolean {
    const p = this.phiOf(elapsedMs);
    return p !== undefined && p >= this.threshold;
  }
}

/** log10 of P(Z > y) for a standard normal Z, computed in log space so large y does not underflow. */
export function log10UpperTail(y: number): number {
  // P(Z > y) = erfc(y / sqrt 2) / 2
  return (Math.log(0.5) + logErfc(y / Math.SQRT2)) / Math.LN10;
}

/** ln(erfc(x)), Chebyshev-fitted (fractional error below 1.2e-7 everywhere). */
function logErfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const logPos = Math.log(t) - z * z + poly;
  if (x >= 0) return logPos;
  return Math.log(2 - Math.exp(logPos));
}
