import { describe, expect, it } from 'vitest';
import { CircuitBreaker, CircuitBreakers } from '../src/index.js';

const opts = { window: 10, windowMs: 10_000, minFailures: 3, failureRate: 0.5, cooldownMs: 1000 };

/** A breaker that saw `failures` failures at time 0 (opened when they reach the thresholds). */
function failed(b: CircuitBreaker, failures: number, now = 0): void {
  for (let i = 0; i < failures; i++) {
    expect(b.admit(now).ok).toBe(true);
    b.failure(now);
  }
}

describe('CircuitBreaker', () => {
  it('stays closed below the minimum of failures, and below the failure rate', () => {
    const b = new CircuitBreaker('n2', opts);
    failed(b, 2);
    expect(b.state(0)).toBe('closed');
    // 3 failures of 7 outcomes: not more than half.
    for (let i = 0; i < 4; i++) b.success(1);
    b.failure(2);
    expect(b.state(2)).toBe('closed');
    expect(b.admit(2)).toEqual({ ok: true, probe: false });
    expect(b.opens).toBe(0);
  });

  it('opens closed → open at the minimum of failures over the rate, and refuses at once until the cooldown ends', () => {
    const b = new CircuitBreaker('n2', opts);
    b.success(0);
    failed(b, 3, 100);
    expect(b.state(100)).toBe('open');
    expect(b.opens).toBe(1);
    const refused = b.admit(600);
    expect(refused).toEqual({
      ok: false,
      probeAt: 1100,
      reason: '3 of its last 4 forwards failed (unreachable or timed out)',
    });
    expect(b.admit(1099).ok).toBe(false);
    expect(b.rejections).toBe(2);
    // Outcomes of forwards admitted before it opened change nothing while it is open.
    b.success(700);
    b.failure(700);
    expect(b.state(700)).toBe('open');
    expect(b.opens).toBe(1);
  });

  it('forgets outcomes older than the window, by count and by age', () => {
    const byCount = new CircuitBreaker('n2', opts);
    failed(byCount, 2);
    for (let i = 0; i < 10; i++) byCount.success(1);
    failed(byCount, 2, 2);
    expect(byCount.state(2)).toBe('closed');
    const byAge = new CircuitBreaker('n2', opts);
    failed(byAge, 2, 0);
    failed(byAge, 1, 10_000);
    expect(byAge.state(10_000)).toBe('closed');
    failed(byAge, 2, 10_001);
    expect(byAge.state(10_001)).toBe('open');
  });

  it('goes open → half-open after the cooldown: one probe goes, the others are refused while it is in flight', () => {
    const b = new CircuitBreaker('n2', opts);
    failed(b, 3);
    expect(b.state(1000)).toBe('half-open');
    expect(b.admit(1000)).toEqual({ ok: true, probe: true });
    const other = b.admit(1001);
    expect(other.ok).toBe(false);
    expect(!other.ok && other.reason).toMatch(/a probe is in flight$/);
  });

  it('closes half-open → closed when the probe is answered, with an empty window', () => {
    const b = new CircuitBreaker('n2', opts);
    failed(b, 3);
    expect(b.admit(1000).ok).toBe(true);
    b.success(1010, true);
    expect(b.state(1010)).toBe('closed');
    expect(b.admit(1010)).toEqual({ ok: true, probe: false });
    // The failures before it opened are forgotten: it takes the minimum again to reopen.
    failed(b, 2, 1020);
    expect(b.state(1020)).toBe('closed');
    failed(b, 1, 1020);
    expect(b.state(1020)).toBe('open');
    expect(b.opens).toBe(2);
  });

  it('reopens half-open → open for another cooldown when the probe fails', () => {
    const b = new CircuitBreaker('n2', opts);
    failed(b, 3);
    expect(b.admit(1500)).toEqual({ ok: true, probe: true });
    b.failure(1600, true);
    expect(b.state(1600)).toBe('open');
    expect(b.opens).toBe(2);
    expect(b.admit(2000)).toEqual({
      ok: false,
      probeAt: 2600,
      reason: 'the probe after the cooldown failed too',
    });
    expect(b.admit(2600)).toEqual({ ok: true, probe: true });
  });

  it('lets the next forward probe at once when a probe ends saying nothing of the peer', () => {
    const b = new CircuitBreaker('n2', opts);
    failed(b, 3);
    expect(b.admit(1000).ok).toBe(true);
    b.release(1200, true);
    expect(b.state(1200)).toBe('half-open');
    expect(b.admit(1200)).toEqual({ ok: true, probe: true });
    // A release outside a probe changes nothing.
    const c = new CircuitBreaker('n3', opts);
    c.release(0);
    expect(c.state(0)).toBe('closed');
  });

  it('refuses invalid options with the rule broken', () => {
    expect(() => new CircuitBreaker('n2', { failureRate: 1 })).toThrow(/failureRate in \[0, 1\)/);
    expect(() => new CircuitBreakers({ minFailures: 0 })).toThrow(/minFailures must be at least 1/);
  });
});

describe('CircuitBreakers', () => {
  it('keeps one breaker per peer, shared, and reports each by peer and each opening and closing', () => {
    const changes: string[] = [];
    const all = new CircuitBreakers(opts, (peer, state) => changes.push(`${peer} ${state}`));
    expect(all.of('n3')).toBe(all.of('n3'));
    failed(all.of('n3'), 3);
    all.of('n3').admit(10);
    all.of('n2').success(0);
    expect(all.stats(10)).toEqual([
      { peer: 'n2', state: 'closed', opens: 0, rejections: 0 },
      { peer: 'n3', state: 'open', opens: 1, rejections: 1 },
    ]);
    expect(all.stats(1000)[1]!.state).toBe('half-open');
    expect(all.of('n3').admit(1000)).toEqual({ ok: true, probe: true });
    all.of('n3').success(1001, true);
    expect(all.of('n3').closes).toBe(1);
    expect(changes).toEqual(['n3 open', 'n3 closed']);
  });
});
