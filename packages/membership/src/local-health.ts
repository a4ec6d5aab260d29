/**
 * Lifeguard local health awareness: a score in [0, max - 1] raised by missed
 * acks and missing nacks, lowered by successful probes; it stretches this
 * node's probe interval and timeout so a slow node accuses others less.
 */
export class LocalHealth {
  private value = 0;

  /** @param maxMultiplier the largest stretch factor. */
  constructor(private readonly maxMultiplier: number) {}

  /** The current score. */
  get score(): number {
    return this.value;
  }

  /** Adds `delta` (negative for good news), clamped to the allowed range. */
  apply(delta: number): void {
    this.value = Math.min(this.maxMultiplier - 1, Math.max(0, this.value + delta));
  }

  /** `ms` stretched by the current score. */
  scale(ms: number): number {
    return ms * (this.value + 1);
  }
}
