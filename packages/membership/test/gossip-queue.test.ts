import { describe, expect, it } from 'vitest';
import { encodeSwim } from '../src/codec.js';
import { GossipQueue, Priority, retransmitLimit } from '../src/gossip-queue.js';
import type { MemberUpdate } from '../src/types.js';

const u = (id: string, incarnation = 1, state: MemberUpdate['state'] = 'alive'): MemberUpdate => ({
  id,
  address: `${id}:1`,
  incarnation,
  state,
  tags: {},
});

describe('gossip queue', () => {
  it('sends Critical before High before Medium before Low', () => {
    const q = new GossipQueue();
    q.enqueue(u('low'), Priority.Low);
    q.enqueue(u('medium'), Priority.Medium);
    q.enqueue(u('critical'), Priority.Critical);
    q.enqueue(u('high'), Priority.High);
    expect(q.select(10).map((x) => x.id)).toEqual(['critical', 'high', 'medium', 'low']);
  });

  it('puts at most 20 updates in one message', () => {
    const q = new GossipQueue();
    for (let i = 0; i < 50; i++) q.enqueue(u(`n${i}`), Priority.Medium);
    expect(q.select(10)).toHaveLength(20);
  });

  it('keeps the piggybacked updates within 4 KB', () => {
    const q = new GossipQueue();
    const big = 'x'.repeat(300);
    for (let i = 0; i < 20; i++) q.enqueue({ ...u(`n${i}`), tags: { blob: big } }, Priority.Medium);
    const picked = q.select(10);
    const bytes = encodeSwim({ type: 'gossip', gossip: picked }).length;
    expect(picked.length).toBeGreaterThan(5);
    expect(picked.length).toBeLessThan(20);
    expect(bytes).toBeLessThanOrEqual(4096 + 8);
  });

  it('retransmits each update RetransmitMult x ceil(log10(N + 1)) times', () => {
    expect(retransmitLimit(4, 9)).toBe(4);
    expect(retransmitLimit(4, 10)).toBe(8);
    expect(retransmitLimit(4, 500)).toBe(12);
    const q = new GossipQueue({ retransmitMult: 4 });
    q.enqueue(u('a'), Priority.Medium);
    let sent = 0;
    while (q.select(50).length > 0) sent++;
    expect(sent).toBe(8);
    expect(q.size).toBe(0);
  });

  it('replaces an older update about the same member with the newer one', () => {
    const q = new GossipQueue();
    q.enqueue(u('a', 1, 'alive'), Priority.Medium);
    q.enqueue(u('a', 1, 'suspect'), Priority.Critical);
    expect(q.size).toBe(1);
    const [only] = q.select(10);
    expect(only?.state).toBe('suspect');
  });

  it('prefers less-sent updates at equal priority', () => {
    const q = new GossipQueue({ maxPerMessage: 1 });
    q.enqueue(u('a'), Priority.Medium);
    q.enqueue(u('b'), Priority.Medium);
    const first = q.select(100)[0]?.id;
    const second = q.select(100)[0]?.id;
    expect(new Set([first, second])).toEqual(new Set(['a', 'b']));
  });

  it('is bounded: beyond capacity the least urgent update goes', () => {
    const q = new GossipQueue({ capacity: 3 });
    q.enqueue(u('c1'), Priority.Critical);
    q.enqueue(u('l1'), Priority.Low);
    q.enqueue(u('c2'), Priority.Critical);
    q.enqueue(u('c3'), Priority.Critical);
    expect(q.size).toBe(3);
    expect(q.peek('l1')).toBeUndefined();
  });
  it('sends refutations before accusations, and the pinned update before anything else', () => {
    const q = new GossipQueue({ maxPerMessage: 3 });
    for (let i = 0; i < 10; i++) q.enqueue(u(`s${i}`, 0, 'suspect'), Priority.Critical);
    q.enqueue(u('self', 1), Priority.Refutation);
    q.enqueue(u('r', 2), Priority.Refutation);
    expect(q.select(100).map((x) => x.id)).toEqual(['self', 'r', 's0']);
    // With a backlog of less-sent refutations, the pinned one still goes first.
    for (let i = 0; i < 5; i++) q.enqueue(u(`r${i}`, 1), Priority.Refutation);
    const picked = q.select(100, 0, undefined, 'self').map((x) => x.id);
    expect(picked).toEqual(['self', 'r0', 'r1']);
    expect(q.transmitsOf('self')).toBe(2);
  });
});
