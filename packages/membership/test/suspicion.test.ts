import { describe, expect, it } from 'vitest';
import { Suspicion, suspicionBounds, suspicionTimeout } from '../src/suspicion.js';

describe('suspicion timeout', () => {
  it('min = mult x max(1, log10 N) x interval, max = 6 x min', () => {
    expect(suspicionBounds(5, 1000, 4, 6)).toEqual({ minMs: 4000, maxMs: 24_000 });
    expect(suspicionBounds(100, 1000, 4, 6).minMs).toBeCloseTo(8000, 6);
    expect(suspicionBounds(100, 1000, 4, 6).maxMs).toBeCloseTo(48_000, 6);
    expect(suspicionBounds(1000, 200, 5, 6).minMs).toBeCloseTo(3000, 6);
  });

  it('starts at max and shrinks logarithmically with confirmations down to min', () => {
    const [min, max] = [4000, 24_000];
    const t0 = suspicionTimeout(0, 2, min, max);
    const t1 = suspicionTimeout(1, 2, min, max);
    const t2 = suspicionTimeout(2, 2, min, max);
    expect(t0).toBe(max);
    expect(t1).toBeCloseTo(max - (Math.log(2) / Math.log(3)) * (max - min), 6);
    expect(t2).toBe(min);
    expect(suspicionTimeout(9, 2, min, max)).toBe(min);
  });

  it('counts only independent confirmations', () => {
    const s = new Suspicion(1000, 'a', 2, 4000, 24_000);
    expect(s.deadline()).toBe(25_000);
    expect(s.confirm('a')).toBe(false);
    expect(s.confirm('b')).toBe(true);
    expect(s.confirm('b')).toBe(false);
    expect(s.confirmations).toBe(1);
    expect(s.confirm('c')).toBe(true);
    expect(s.deadline()).toBe(5000);
  });
});
