import { describe, expect, it } from 'vitest';
import { NotLeaderError, SeededRandom, clockSignal } from '../src/index.js';

describe('SeededRandom', () => {
  it('replays the same stream from the same seed', () => {
    const a = new SeededRandom(42);
    const b = new SeededRandom(42);
    const xs = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(xs);
    expect(new Set(xs).size).toBe(100);
  });

  it('keeps int() within its inclusive bounds and reaches both ends', () => {
    const r = new SeededRandom(7);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const v = r.int(3, 6);
      expect(v).toBeGreaterThanOrEqual(3);
      expect(v).toBeLessThanOrEqual(6);
      seen.add(v);
    }
    expect([...seen].sort()).toEqual([3, 4, 5, 6]);
  });
});

describe('errors', () => {
  it('carry a literal name, a wire code and the leader hint', () => {
    const e = new NotLeaderError('n2', '127.0.0.1:7002');
    expect(e.name).toBe('NotLeaderError');
    expect(e.code).toBe('NOT_LEADER');
    expect(e.leaderId).toBe('n2');
    expect(e.message).toContain('n2');
  });
});

describe('clockSignal', () => {
  it('aborts with a TimeoutError when the injected clock fires, and never once cleared', () => {
    const timers: { fn: () => void; ms: number; live: boolean }[] = [];
    const clock = {
      now: () => 0,
      setTimeout: (fn: () => void, ms: number) => {
        const t = { fn, ms, live: true };
        timers.push(t);
        return t;
      },
      clearTimeout: (h: object) => {
        (h as { live: boolean }).live = false;
      },
      defer: (fn: () => void) => fn(),
    };
    const fired = clockSignal(clock, 250);
    expect(timers[0]?.ms).toBe(250);
    expect(fired.signal.aborted).toBe(false);
    timers[0]?.fn();
    expect(fired.signal.aborted).toBe(true);
    expect((fired.signal.reason as Error).name).toBe('TimeoutError');
    const cleared = clockSignal(clock, 100);
    cleared.clear();
    expect(timers[1]?.live).toBe(false);
    expect(cleared.signal.aborted).toBe(false);
  });
});
