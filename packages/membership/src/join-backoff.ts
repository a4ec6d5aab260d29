import type { Random } from '@cohort/core';

/** Options of `joinBackoffDelay`. */
export interface JoinBackoffOptions {
  /** First delay. @default 100 */
  readonly baseMs?: number;
  /** Largest delay before jitter. @default 10000 */
  readonly maxMs?: number;
  /** Relative jitter, both ways. @default 0.25 */
  readonly jitter?: number;
}

/** How many join attempts are made before giving up. */
export const JOIN_MAX_ATTEMPTS = 10;

/** The wait after failed attempt `attempt` (0-based): exponential from base to max, then jittered. */
export function joinBackoffDelay(attempt: number, random: Random, options: JoinBackoffOptions = {}): number {
  const base = options.baseMs ?? 100;
  const max = options.maxMs ?? 10_000;
  const jitter = options.jitter ?? 0.25;
  const raw = Math.min(max, base * 2 ** Math.max(0, attempt));
  return raw * (1 - jitter + 2 * jitter * random.next());
}
