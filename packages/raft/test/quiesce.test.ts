import { describe, expect, it } from 'vitest';
import { newMessage } from '../src/message.js';
import { Network, bytes, text } from './network.js';

const ELECTION = 10;

function leaseNet(ids: string[]): Network {
  return new Network(ids, { checkQuorum: true, readOnlyOption: 'leaseBased', electionTick: ELECTION });
}

function readStates(net: Network, id: string): string[] {
  return net.node(id).readies.flatMap((rd) => rd.readStates.map((rs) => text(rs.context)));
}

/** Elects `a`, commits a write, lets a heartbeat round be answered, then quiesces `a` and its followers. */
function quiesced(net: Network): void {
  net.elect('a');
  net.node('a').rn.propose(bytes('w1'));
  net.stabilize();
  net.tickAll(1);
  const hb = net.node('a').rn.quiesce();
  expect(hb).toBeDefined();
  for (const id of hb?.peers ?? []) {
    expect(net.node(id).rn.quiesceFollower('a', hb?.term ?? 0, hb?.commit ?? 0)).toBe(true);
    expect(net.node(id).rn.isQuiescent()).toBe(true);
  }
}

describe('quiescence', () => {
  it('an idle, fully replicated leader quiesces; one with a follower behind does not, unless that follower is down', () => {
    const net = leaseNet(['a', 'b', 'c']);
    net.elect('a');
    net.node('a').rn.propose(bytes('w1'));
    net.isolate('c');
    net.stabilize();
    expect(net.node('a').rn.quiesce()).toBeUndefined();
    expect(net.node('a').rn.isQuiescent()).toBe(false);
    const hb = net.node('a').rn.quiesce((id) => id === 'c');
    // c is behind: it gets no quiesce heartbeat (its commit would run past what it holds).
    expect(hb?.peers).toEqual(['b']);
    expect(net.node('a').rn.isQuiescent()).toBe(true);
    // c does not hold the commit: it refuses to quiesce (the host steps the heartbeat instead).
    expect(net.node('c').rn.quiesceFollower('a', hb?.term ?? 0, hb?.commit ?? 0)).toBe(false);
  });

  it('a leader with a quorum reported down stays awake, so check-quorum can step it down', () => {
    const net = leaseNet(['a', 'b', 'c']);
    net.elect('a');
    net.stabilize();
    expect(net.node('a').rn.quiesce((id) => id !== 'a')).toBeUndefined();
  });

  it('a quiescent leader serves no lease read: it wakes and confirms with a quorum first', () => {
    const net = leaseNet(['a', 'b', 'c']);
    quiesced(net);
    const a = net.node('a');
    // Far behind on the followers' clocks, they could have elected someone else meanwhile.
    net.isolate('a');
    a.rn.readIndex(bytes('r1'));
    net.stabilize();
    expect(a.rn.isQuiescent()).toBe(false);
    expect(readStates(net, 'a')).toEqual([]);
    net.heal();
    net.tickAll(1);
    expect(readStates(net, 'a')).toEqual(['r1']);
  });

  it('acknowledgements of heartbeats sent before the leader woke never back its lease', () => {
    const net = leaseNet(['a', 'b', 'c']);
    quiesced(net);
    const a = net.node('a');
    // The engine's tick count (internal): the tick it wakes at.
    const tick = (a.rn as unknown as { raft: { ticks: number } }).raft.ticks;
    a.rn.wake();
    // A delayed answer to a heartbeat of the tick the leader woke at (or earlier) arrives now.
    for (const from of ['b', 'c']) {
      a.rn.step(newMessage({ type: 'heartbeatResp', from, to: 'a', term: a.rn.status().term, index: tick }));
    }
    net.takePending();
    net.isolate('a');
    a.rn.readIndex(bytes('stale'));
    net.stabilize();
    expect(readStates(net, 'a')).toEqual([]);
    // Heartbeats sent after waking do: one answered round and the lease serves at once.
    net.heal();
    net.tickAll(2);
    expect(readStates(net, 'a')).toEqual(['stale']);
    a.rn.readIndex(bytes('lease'));
    net.drop = () => true;
    net.stabilize();
    expect(readStates(net, 'a')).toEqual(['stale', 'lease']);
  });

  it('a quiescent follower keeps refusing votes: the candidate wakes it, but it heard its leader', () => {
    const net = leaseNet(['a', 'b', 'c']);
    quiesced(net);
    const b = net.node('b');
    const term = b.rn.status().term;
    b.rn.step(newMessage({ type: 'vote', from: 'c', to: 'b', term: term + 1, index: 100, logTerm: term }));
    expect(b.rn.isQuiescent()).toBe(false);
    // Ignored inside the lease: no vote, no term change.
    expect(b.rn.status().term).toBe(term);
    expect(b.rn.status().vote).not.toBe('c');
  });

  it('a woken leader cut off from its quorum steps down within an election timeout (check-quorum)', () => {
    const net = leaseNet(['a', 'b', 'c']);
    quiesced(net);
    net.isolate('a');
    net.node('a').rn.wake();
    net.tick('a', ELECTION);
    net.stabilize();
    expect(net.node('a').rn.status().role).toBe('follower');
  });

  it('any message, tick or proposal wakes a quiescent engine', () => {
    const net = leaseNet(['a', 'b', 'c']);
    quiesced(net);
    net.node('a').rn.propose(bytes('w2'));
    expect(net.node('a').rn.isQuiescent()).toBe(false);
    net.stabilize();
    for (const id of ['b', 'c']) expect(net.node(id).rn.isQuiescent()).toBe(false);
    quiesced(net);
    net.node('b').rn.tick();
    expect(net.node('b').rn.isQuiescent()).toBe(false);
  });
});
