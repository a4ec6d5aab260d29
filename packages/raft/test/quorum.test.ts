import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jointCommitted, jointVoteResult } from '../src/quorum/joint.js';
import { majorityCommitted, majorityVoteResult } from '../src/quorum/majority.js';
import { Inflights } from '../src/tracker/inflights.js';

const set = (...ids: string[]): Set<string> => new Set(ids);
const acked = (m: Record<string, number>) => (id: string) => m[id];

describe('quorum helpers', () => {
  it('the committed index is the highest index a majority holds', () => {
    expect(majorityCommitted(set('a', 'b', 'c'), acked({ a: 5, b: 3, c: 1 }))).toBe(3);
    expect(majorityCommitted(set('a', 'b', 'c', 'd'), acked({ a: 5, b: 4, c: 3, d: 1 }))).toBe(3);
    expect(majorityCommitted(set('a', 'b', 'c'), acked({ a: 5 }))).toBe(0);
  });

  it('the committed index does not depend on the order the voters acknowledged in', () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.nat(50), { nil: undefined }), { minLength: 1, maxLength: 9 }), (acks) => {
        const voters = new Set(acks.map((_, i) => `n${i}`));
        const sorted = acks.map((a) => a ?? 0).sort((a, b) => b - a);
        expect(majorityCommitted(voters, (id) => acks[Number(id.slice(1))])).toBe(sorted[Math.floor(acks.length / 2)]);
      }),
    );
  });

  it('a joint config commits only what both majorities hold', () => {
    const cfg = { incoming: set('a', 'd', 'e'), outgoing: set('a', 'b', 'c') };
    expect(jointCommitted(cfg, acked({ a: 9, b: 9, c: 9, d: 2, e: 1 }))).toBe(2);
    expect(jointCommitted({ incoming: set('a'), outgoing: set() }, acked({ a: 4 }))).toBe(4);
  });

  it('a vote is won on a majority of grants and lost once a majority is out of reach', () => {
    const v = (m: Record<string, boolean>) => new Map(Object.entries(m));
    expect(majorityVoteResult(set('a', 'b', 'c'), v({ a: true, b: true }))).toBe('won');
    expect(majorityVoteResult(set('a', 'b', 'c'), v({ a: true, b: false }))).toBe('pending');
    expect(majorityVoteResult(set('a', 'b', 'c'), v({ a: true, b: false, c: false }))).toBe('lost');
    const cfg = { incoming: set('a', 'd', 'e'), outgoing: set('a', 'b', 'c') };
    expect(jointVoteResult(cfg, v({ a: true, b: true, d: true }))).toBe('won');
    expect(jointVoteResult(cfg, v({ a: true, b: true }))).toBe('pending');
    expect(jointVoteResult(cfg, v({ a: true, b: true, d: false, e: false }))).toBe('lost');
  });

  it('inflights are bounded by count and bytes and freed by acknowledgement', () => {
    const f = new Inflights(3, 100);
    f.add(1, 10);
    f.add(2, 10);
    expect(f.full()).toBe(false);
    f.add(3, 10);
    expect(f.full()).toBe(true);
    f.freeLE(2);
    expect(f.count()).toBe(1);
    expect(f.full()).toBe(false);
    const b = new Inflights(10, 25);
    b.add(1, 20);
    b.add(2, 10);
    expect(b.full()).toBe(true);
    b.freeLE(1);
    expect(b.full()).toBe(false);
  });
});
