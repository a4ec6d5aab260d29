import { describe, expect, it } from 'vitest';
import type { Message } from '../src/types.js';
import { Network, bytes } from './network.js';

/** Appends that carry no entries: what a leader sends only to tell a commit index. */
const commitOnly = (ms: Message[]): Message[] => ms.filter((m) => m.type === 'app' && m.entries.length === 0);

function elected(deferCommitNotice: boolean): Network {
  const net = new Network(['a', 'b', 'c'], { deferCommitNotice });
  net.elect('a');
  net.delivered.length = 0;
  return net;
}

describe('commit notices', () => {
  it('by default a leader tells a new commit index at once, in an append of its own', () => {
    const net = elected(false);
    net.node('a').rn.propose(bytes('x'));
    net.stabilize();
    const notices = commitOnly(net.delivered);
    expect(notices.map((m) => m.to).sort()).toEqual(['b', 'c']);
    expect(notices.every((m) => m.commit === 2)).toBe(true);
    for (const id of ['b', 'c']) expect(net.node(id).rn.status().commit).toBe(2);
  });

  it('deferred, the leader sends no append of its own and reports the index it owes', () => {
    const net = elected(true);
    const a = net.node('a').rn;
    a.propose(bytes('x'));
    net.stabilize();
    expect(a.status().commit).toBe(2);
    expect(commitOnly(net.delivered)).toEqual([]);
    for (const id of ['b', 'c']) expect(net.node(id).rn.status().commit).toBe(1);
    expect(a.commitNoticeOwed()).toBe(2);
  });

  it('deferred, the next append carries the commit index, and nothing is owed once it is acknowledged', () => {
    const net = elected(true);
    const a = net.node('a').rn;
    a.propose(bytes('x'));
    net.stabilize();
    a.propose(bytes('y'));
    net.stabilize();
    const withEntries = net.delivered.filter(
      (m) => m.type === 'app' && m.entries.length > 0 && m.entries[0]?.index === 3,
    );
    expect(withEntries.map((m) => m.commit)).toEqual([2, 2]);
    for (const id of ['b', 'c']) expect(net.node(id).rn.status().commit).toBe(2);
    // Entry 3 committed after that append left: owed again.
    expect(a.commitNoticeOwed()).toBe(3);
    expect(commitOnly(net.delivered)).toEqual([]);
  });

  it('flushCommitNotice tells the owed index to each follower not told it, and only up to the index asked', () => {
    const net = elected(true);
    const a = net.node('a').rn;
    a.propose(bytes('x'));
    net.stabilize();
    a.flushCommitNotice(2);
    net.stabilize();
    const notices = commitOnly(net.delivered);
    expect(notices.map((m) => [m.to, m.commit]).sort()).toEqual([
      ['b', 2],
      ['c', 2],
    ]);
    for (const id of ['b', 'c']) {
      expect(net.node(id).rn.status().commit).toBe(2);
      expect(net.node(id).rn.status().applied).toBe(2);
    }
    expect(a.commitNoticeOwed()).toBe(0);
    // Already told: a second flush sends nothing.
    net.delivered.length = 0;
    a.flushCommitNotice(2);
    net.stabilize();
    expect(commitOnly(net.delivered)).toEqual([]);
    // Entry 3's append told both followers index 2: asking for 2 sends nothing, and 3 stays owed.
    a.propose(bytes('y'));
    net.stabilize();
    net.delivered.length = 0;
    a.flushCommitNotice(2);
    net.stabilize();
    expect(commitOnly(net.delivered)).toEqual([]);
    expect(a.commitNoticeOwed()).toBe(3);
  });

  it('a follower that is not told never commits past what the leader sent it, and a heartbeat tells it', () => {
    const net = elected(true);
    const a = net.node('a').rn;
    a.propose(bytes('x'));
    net.stabilize();
    expect(net.node('b').rn.status().commit).toBe(1);
    net.tick('a');
    net.stabilize();
    for (const id of ['b', 'c']) expect(net.node(id).rn.status().commit).toBe(2);
  });
});
