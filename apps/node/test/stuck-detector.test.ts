import { describe, expect, it } from 'vitest';
import { StuckDetector } from '../src/stuck-detector.js';

describe('StuckDetector', () => {
  it('flags a group whose proposals wait with no commit progress for the threshold', () => {
    const d = new StuckDetector(5000);
    expect(d.observe('p1', 10, 12, 0)).toBe(false);
    expect(d.observe('p1', 10, 13, 4999)).toBe(false);
    expect(d.observe('p1', 10, 13, 5000)).toBe(true);
    // The commit moves: not stuck, and the wait starts again.
    expect(d.observe('p1', 11, 13, 6000)).toBe(false);
    expect(d.observe('p1', 11, 13, 10_999)).toBe(false);
    expect(d.observe('p1', 11, 13, 11_000)).toBe(true);
  });

  it('does not flag an idle group, nor a fresh proposal after a long quiet spell', () => {
    const d = new StuckDetector(5000);
    expect(d.observe('p1', 10, 10, 0)).toBe(false);
    expect(d.observe('p1', 10, 10, 60_000)).toBe(false);
    // A proposal appended just now: pending from this sample on, not since the last one.
    expect(d.observe('p1', 10, 11, 120_000)).toBe(false);
    expect(d.observe('p1', 10, 11, 124_000)).toBe(false);
    expect(d.observe('p2', 3, 4, 124_000)).toBe(false);
  });
});
