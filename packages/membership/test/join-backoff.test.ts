import { SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { JOIN_MAX_ATTEMPTS, joinBackoffDelay } from '../src/join-backoff.js';

describe('join backoff', () => {
  it('doubles from 100 ms up to 10 s, jittered by at most 25% either way', () => {
    const random = new SeededRandom(42);
    for (let trial = 0; trial < 200; trial++) {
      for (let attempt = 0; attempt < JOIN_MAX_ATTEMPTS; attempt++) {
        const raw = Math.min(10_000, 100 * 2 ** attempt);
        const d = joinBackoffDelay(attempt, random);
        expect(d).toBeGreaterThanOrEqual(raw * 0.75);
        expect(d).toBeLessThanOrEqual(raw * 1.25);
      }
    }
  });

  it('actually jitters (both below and above the nominal delay)', () => {
    const random = new SeededRandom(7);
    const ds = Array.from({ length: 100 }, () => joinBackoffDelay(3, random));
    expect(Math.min(...ds)).toBeLessThan(800 * 0.9);
    expect(Math.max(...ds)).toBeGreaterThan(800 * 1.1);
  });

  it('is capped at 10 s before jitter and makes 10 attempts', () => {
    expect(JOIN_MAX_ATTEMPTS).toBe(10);
    const mid = { next: () => 0.5, int: (lo: number) => lo };
    expect(joinBackoffDelay(0, mid)).toBe(100);
    expect(joinBackoffDelay(9, mid)).toBe(10_000);
  });
});
