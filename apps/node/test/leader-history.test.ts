import { describe, expect, it } from 'vitest';
import { LeaderHistory } from '../src/leader-history.js';

describe('leader history', () => {
  it('times a failover from losing the leader to knowing the next; the first election is none', () => {
    const seen: [string, number][] = [];
    const h = new LeaderHistory((g, ms) => seen.push([g, ms]));
    h.observe('p0', '', 0);
    h.observe('p0', 'n1', 400);
    expect(h.watermarks('p0', 1000)).toEqual({ leaderForMs: 600, leaderChanges: 1 });
    h.observe('p0', '', 5000);
    expect(h.watermarks('p0', 5200)).toEqual({ leaderlessForMs: 200, leaderChanges: 1 });
    h.observe('p0', 'n2', 5750);
    expect(h.watermarks('p0', 6000)).toEqual({ leaderForMs: 250, lastFailoverMs: 750, leaderChanges: 2 });
    expect(seen).toEqual([['p0', 750]]);
  });

  it('counts a direct change of leader without timing a failover; repeats change nothing', () => {
    const h = new LeaderHistory();
    h.observe('p1', 'n1', 0);
    h.observe('p1', 'n1', 10);
    h.observe('p1', 'n3', 100);
    expect(h.watermarks('p1', 100)).toEqual({ leaderForMs: 0, leaderChanges: 1 });
    expect(h.watermarks('p9', 100)).toBeUndefined();
    h.forget('p1');
    expect(h.watermarks('p1', 100)).toBeUndefined();
  });
});
