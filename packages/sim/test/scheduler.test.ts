import { SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { Scheduler, SimClock, SimNetwork } from '../src/index.js';

describe('Scheduler', () => {
  it('runs events in time order and breaks ties by scheduling order', () => {
    const s = new Scheduler();
    const seen: string[] = [];
    s.at(20, () => seen.push('b'));
    s.at(10, () => seen.push('a'));
    s.at(20, () => seen.push('c'));
    s.at(5, () => s.after(15, () => seen.push('d')));
    s.runUntil(100);
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    expect(s.now()).toBe(100);
  });

  it('does not run cancelled events', () => {
    const s = new Scheduler();
    let ran = false;
    const h = s.after(10, () => {
      ran = true;
    });
    s.cancel(h);
    s.runUntil(20);
    expect(ran).toBe(false);
    expect(s.executed).toBe(0);
  });

  it('keeps order over many random events', () => {
    const s = new Scheduler();
    const r = new SeededRandom(3);
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) s.at(r.int(0, 500), () => times.push(s.now()));
    s.runUntil(1000);
    expect(times).toHaveLength(2000);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });
});

describe('Scheduler.runUntilAsync', () => {
  it('runs every promise continuation an event caused before the next event', async () => {
    const s = new Scheduler();
    const seen: string[] = [];
    const chain = async (): Promise<void> => {
      for (let i = 0; i < 50; i++) await null;
      seen.push('chain done');
    };
    s.at(10, () => {
      seen.push('a');
      void chain();
    });
    s.at(10, () => seen.push('b'));
    await s.runUntilAsync(20);
    expect(seen).toEqual(['a', 'chain done', 'b']);
  });

  it('stops at the first event after which the check throws', async () => {
    const s = new Scheduler();
    let n = 0;
    for (let t = 1; t <= 10; t++) s.at(t, () => n++);
    await expect(
      s.runUntilAsync(100, () => {
        if (n === 3) throw new Error('violation');
      }),
    ).rejects.toThrow('violation');
    expect(s.now()).toBe(3);
  });
});

describe('SimClock', () => {
  it('reads simulated time at its rate and fires timers in local time', () => {
    const s = new Scheduler();
    const fast = new SimClock(s, { rate: 2 });
    let firedAt = -1;
    fast.setTimeout(() => {
      firedAt = s.now();
    }, 100);
    s.runUntil(200);
    expect(firedAt).toBe(50);
    expect(fast.now()).toBe(400);
  });
});

describe('SimNetwork', () => {
  function setup(seed: number, faults = {}) {
    const s = new Scheduler();
    const net = new SimNetwork<number>(s, new SeededRandom(seed), faults);
    const got: Record<string, number[]> = { a: [], b: [], c: [] };
    for (const id of ['a', 'b', 'c']) net.attach(id, (_from, m) => got[id]?.push(m));
    return { s, net, got };
  }

  it('delivers within the delay bounds and reorders with random delays', () => {
    const { s, net, got } = setup(1, { minDelay: 1, maxDelay: 50 });
    for (let i = 0; i < 100; i++) net.send('a', 'b', i);
    s.runUntil(50);
    expect(got.b).toHaveLength(100);
    expect(got.b).not.toEqual([...(got.b ?? [])].sort((x, y) => x - y));
  });

  it('drops and duplicates at the configured rates', () => {
    const { s, net, got } = setup(2, { dropRate: 0.3, dupRate: 0.2 });
    for (let i = 0; i < 1000; i++) net.send('a', 'b', i);
    s.runUntil(100);
    expect(net.stats.dropped).toBeGreaterThan(200);
    expect(net.stats.dropped).toBeLessThan(400);
    expect(net.stats.duplicated).toBeGreaterThan(100);
    expect(got.b?.length).toBe(1000 - net.stats.dropped + net.stats.duplicated);
  });

  it('cuts symmetric partitions, one-way links, and messages already in flight', () => {
    const { s, net, got } = setup(3);
    net.send('a', 'c', 0);
    net.partition(['a'], ['b', 'c']);
    net.send('a', 'b', 1);
    net.send('b', 'a', 2);
    net.send('b', 'c', 3);
    s.runUntil(100);
    expect(got).toEqual({ a: [], b: [], c: [3] });
    net.heal();
    net.cutOneWay('a', 'b');
    net.send('a', 'b', 4);
    net.send('b', 'a', 5);
    s.runUntil(200);
    expect(got).toEqual({ a: [5], b: [], c: [3] });
  });

  it('loses messages to a detached node', () => {
    const { s, net, got } = setup(4);
    net.send('a', 'b', 1);
    net.detach('b');
    s.runUntil(100);
    expect(got.b).toEqual([]);
    expect(net.stats.blocked).toBe(1);
  });

  it('draws each fault from its own stream: duplication does not change which messages are lost', () => {
    const survivors = (dupRate: number) => {
      const { s, net, got } = setup(5, { dropRate: 0.3, dupRate });
      for (let i = 0; i < 300; i++) net.send('a', 'b', i);
      s.runUntil(100);
      return [...new Set(got.b)].sort((x, y) => x - y);
    };
    expect(survivors(0.4)).toEqual(survivors(0));
  });

  it('replays exactly from its seed', () => {
    const order = (seed: number) => {
      const { s, net, got } = setup(seed, { dropRate: 0.1, dupRate: 0.1, maxDelay: 30 });
      for (let i = 0; i < 200; i++) net.send('a', 'b', i);
      s.runUntil(100);
      return got.b;
    };
    expect(order(9)).toEqual(order(9));
    expect(order(9)).not.toEqual(order(10));
  });
});
