import { describe, expect, it } from 'vitest';
import { PhiAccrualDetector, log10UpperTail } from '../src/phi-accrual.js';

describe('phi accrual detector', () => {
  it('gives no verdict before five samples', () => {
    const d = new PhiAccrualDetector();
    for (let t = 0; t <= 4000; t += 1000) d.heartbeat(t); // 4 intervals
    expect(d.sampleCount).toBe(4);
    expect(d.phi(10_000)).toBeUndefined();
    d.heartbeat(5000);
    expect(d.phi(5000)).toBeDefined();
  });

  it('matches the normal upper tail: phi is -log10 of the tail probability', () => {
    // Constant 1000 ms intervals: the std dev is the 100 ms floor, so N(1000, 100).
    const d = new PhiAccrualDetector({ minStdDeviationMs: 100 });
    for (let i = 0; i < 10; i++) d.addSample(1000);
    expect(d.phiOf(1000)).toBeCloseTo(-Math.log10(0.5), 5);
    expect(d.phiOf(1000 + 100 * 1.644854)).toBeCloseTo(-Math.log10(0.05), 4);
    expect(d.phiOf(1000 + 100 * 3.719016)).toBeCloseTo(4, 3);
    expect(d.phiOf(1000 - 100 * 1.281552)).toBeCloseTo(-Math.log10(0.9), 4);
  });

  it('uses the sample std dev when it exceeds the floor', () => {
    const d = new PhiAccrualDetector({ minStdDeviationMs: 1 });
    for (const v of [800, 1200, 800, 1200, 800, 1200]) d.addSample(v); // mean 1000, std 200
    expect(d.phiOf(1000 + 200 * 2.326348)).toBeCloseTo(2, 3);
  });

  it('grows with the time since the last heartbeat and crosses the default threshold 8', () => {
    const d = new PhiAccrualDetector();
    for (let t = 0; t <= 10_000; t += 1000) d.heartbeat(t);
    const a = d.phi(11_000) ?? 0;
    const b = d.phi(11_300) ?? 0;
    const c = d.phi(11_700) ?? 0;
    expect(a).toBeLessThan(b);
    expect(b).toBeLessThan(c);
    expect(d.threshold).toBe(8);
    expect(d.isSuspicious(500)).toBe(false);
    expect(d.isSuspicious(1000 + 100 * 5.7)).toBe(true);
  });

  it('tolerates the acceptable pause', () => {
    const strict = new PhiAccrualDetector();
    const lenient = new PhiAccrualDetector({ acceptablePauseMs: 2000 });
    for (let i = 0; i < 5; i++) {
      strict.addSample(1000);
      lenient.addSample(1000);
    }
    expect(strict.isSuspicious(2500)).toBe(true);
    expect(lenient.isSuspicious(2500)).toBe(false);
  });

  it('keeps only the window', () => {
    const d = new PhiAccrualDetector({ windowSize: 5 });
    for (let i = 0; i < 5; i++) d.addSample(100_000);
    for (let i = 0; i < 5; i++) d.addSample(1000);
    expect(d.sampleCount).toBe(5);
    expect(d.phiOf(1000)).toBeCloseTo(-Math.log10(0.5), 5);
  });

  it('stays finite far in the tail', () => {
    const v = -log10UpperTail(40);
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeGreaterThan(300);
  });
});
