import { describe, expect, it } from 'vitest';
import { EVENT_CHANNEL_CAPACITY, EventChannel } from '../src/events.js';

type E = { type: 'n'; i: number };

describe('event channel', () => {
  it('delivers every event to every subscriber', async () => {
    const ch = new EventChannel<E>();
    const a = ch.subscribe();
    const b = ch.subscribe();
    ch.publish({ type: 'n', i: 1 });
    ch.publish({ type: 'n', i: 2 });
    expect(await a.next()).toEqual({ type: 'n', i: 1 });
    expect(await a.next()).toEqual({ type: 'n', i: 2 });
    expect(b.poll()).toEqual({ type: 'n', i: 1 });
  });

  it('a slow subscriber loses the oldest events and is told how many (capacity 1000)', () => {
    expect(EVENT_CHANNEL_CAPACITY).toBe(1000);
    const ch = new EventChannel<E>();
    const slow = ch.subscribe();
    const fast = ch.subscribe();
    let seen = 0;
    for (let i = 0; i < 1500; i++) {
      ch.publish({ type: 'n', i });
      if (fast.poll() !== undefined) seen++;
    }
    expect(seen).toBe(1500);
    expect(slow.poll()).toEqual({ type: 'EventsDropped', count: 500 });
    expect(slow.poll()).toEqual({ type: 'n', i: 500 });
    expect(slow.droppedCount).toBe(500);
    expect(fast.droppedCount).toBe(0);
  });

  it('publishing never waits for a reader', () => {
    const ch = new EventChannel<E>(10);
    ch.subscribe();
    const t0 = performance.now();
    for (let i = 0; i < 100_000; i++) ch.publish({ type: 'n', i });
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('wakes a waiting reader and ends it on close', async () => {
    const ch = new EventChannel<E>();
    const s = ch.subscribe();
    const pending = s.next();
    ch.publish({ type: 'n', i: 7 });
    expect(await pending).toEqual({ type: 'n', i: 7 });
    const after = s.next();
    ch.close();
    expect(await after).toBeUndefined();
    expect(ch.subscriberCount).toBe(0);
  });
});
