import type { NodeId } from '@cohort/core';

/**
 * Lifeguard's suspicion bounds (as in memberlist):
 * min = suspicionMult x max(1, log10 n) x probeInterval, max = maxMult x min.
 */
export function suspicionBounds(
  n: number,
  probeIntervalMs: number,
  suspicionMult: number,
  maxMult: number,
): { minMs: number; maxMs: number } {
  const minMs = suspicionMult * Math.max(1, Math.log10(Math.max(1, n))) * probeIntervalMs;
  return { minMs, maxMs: maxMult * minMs };
}

/**
 * Lifeguard suspicion timeout after `confirmations` independent confirmations
 * out of `expected`: starts at max and falls logarithmically to min.
 */
export function suspicionTimeout(confirmations: number, expected: number, minMs: number, maxMs: number): number {
  if (expected < 1) return minMs;
  const frac = Math.log(Math.min(confirmations, expected) + 1) / Math.log(expected + 1);
  return Math.max(minMs, maxMs - frac * (maxMs - minMs));
}

/** One member's suspicion: who accused it and when it turns dead. */
export class Suspicion {
  private readonly accusers = new Set<NodeId>();

  constructor(
    readonly startedAt: number,
    firstAccuser: NodeId,
    private readonly expected: number,
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {
    this.accusers.add(firstAccuser);
  }

  /** Independent confirmations beyond the first accusation. */
  get confirmations(): number {
    return this.accusers.size - 1;
  }

  /** Adds an accuser; true when it is a new, independent one (worth re-gossiping). */
  confirm(accuser: NodeId): boolean {
    if (this.accusers.has(accuser)) return false;
    this.accusers.add(accuser);
    return true;
  }

  /** The sequence number of the last-chance probe, once sent. */
  lastChanceSeq: number | undefined;
  private extendedTo = 0;

  /** Gives the member until `until` (a last-chance probe is out). */
  extend(until: number, seq: number): void {
    this.extendedTo = until;
    this.lastChanceSeq = seq;
  }

  /** When the member is declared dead unless refuted. */
  deadline(): number {
    const t = this.startedAt + suspicionTimeout(this.confirmations, this.expected, this.minMs, this.maxMs);
    return this.lastChanceSeq === undefined ? t : Math.max(t, this.extendedTo);
  }
}
