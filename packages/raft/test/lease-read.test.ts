import { type Message, SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, RawNode } from '../src/index.js';
import { newMessage } from '../src/message.js';
import { Network, bytes, storageWithTerms, text } from './network.js';

const ELECTION = 10;
/** With `electionTick` 10 the lease outlives its newest quorum-acknowledged heartbeat by 10 - 2 ticks. */
const LEASE_TICKS = ELECTION - 2;

function leaseNet(ids: string[]): Network {
  return new Network(ids, { checkQuorum: true, readOnlyOption: 'leaseBased', electionTick: ELECTION });
}

function readStates(net: Network, id: string): { index: number; ctx: string }[] {
  return net.node(id).readies.flatMap((rd) => rd.readStates.map((rs) => ({ index: rs.index, ctx: text(rs.context) })));
}

/** Elects `id`, commits one write and lets one heartbeat round be acknowledged, so the lease is fresh. */
function freshLeader(net: Network, id: string): number {
  net.elect(id);
  net.node(id).rn.propose(bytes('w1'));
  net.stabilize();
  net.tickAll(1);
  return net.node(id).rn.status().commit;
}

describe('lease-based reads', () => {
  it('are answered at once when a quorum acknowledged a recent heartbeat', () => {
    const net = leaseNet(['a', 'b', 'c']);
    const commit = freshLeader(net, 'a');
    net.drop = () => true;
    net.node('a').rn.readIndex(bytes('lease'));
    net.stabilize();
    expect(readStates(net, 'a')).toEqual([{ index: commit, ctx: 'lease' }]);
    // No ReadIndex round: no heartbeat carried the read's context.
    expect(net.delivered.filter((m) => text(m.context) === 'lease')).toEqual([]);
  });

  it('expire electionTick - 2 ticks after the newest acknowledged heartbeat was sent, then fall back to ReadIndex', () => {
    const net = leaseNet(['a', 'b', 'c']);
    const commit = freshLeader(net, 'a');
    const a = net.node('a');
    net.isolate('a');
    net.tick('a', LEASE_TICKS - 1);
    a.rn.readIndex(bytes('inside'));
    net.stabilize();
    expect(readStates(net, 'a')).toEqual([{ index: commit, ctx: 'inside' }]);

    net.tick('a', 1);
    a.rn.readIndex(bytes('outside'));
    let sent: Message[] = [];
    while (a.rn.hasReady()) {
      const rd = a.rn.ready();
      a.readies.push(rd);
      sent = sent.concat(rd.messages);
      a.rn.advance();
    }
    expect(readStates(net, 'a').map((r) => r.ctx)).toEqual(['inside']);
    // The fallback is a ReadIndex round: heartbeats carrying the read's context.
    expect(sent.filter((m) => m.type === 'heartbeat' && text(m.context) === 'outside').map((m) => m.to)).toEqual([
      'b',
      'c',
    ]);

    net.heal();
    net.tickAll(1);
    expect(readStates(net, 'a')).toEqual([
      { index: commit, ctx: 'inside' },
      { index: commit, ctx: 'outside' },
    ]);
  });

  it('a cut-off leader never answers a read that misses a newer leader’s commits', () => {
    const net = leaseNet(['a', 'b', 'c', 'd', 'e']);
    net.elect('a');
    net.node('a').rn.propose(bytes('w1'));
    net.stabilize();
    // Right before a's check-quorum round, with every follower active: the round passes, so a stays
    // leader for another election timeout after it is cut off.
    net.tickAll(ELECTION - 1);
    net.isolate('a');
    net.tickAll(ELECTION);
    if (net.leaders().every((id) => id === 'a')) {
      // Every follower last heard from a an election timeout ago, so b may campaign and win now.
      net.node('b').rn.campaign();
      net.stabilize();
    }
    const next = net.leaders().find((id) => id !== 'a');
    if (next === undefined) throw new Error('no new leader elected');
    net.node(next).rn.propose(bytes('w2'));
    net.stabilize();
    const newCommit = net.node(next).rn.status().commit;
    // a has not noticed yet: this is the window in which a lease read could be stale.
    expect(net.node('a').rn.status().role).toBe('leader');
    expect(net.node('a').rn.status().commit).toBeLessThan(newCommit);

    net.node('a').rn.readIndex(bytes('stale?'));
    net.stabilize();
    // Until a steps down it must not answer (no quorum confirms it any more).
    for (let i = 0; i < 2 * ELECTION && net.node('a').rn.status().role === 'leader'; i++) net.tickAll(1);
    expect(net.node('a').rn.status().role).toBe('follower');
    expect(readStates(net, 'a')).toEqual([]);
  });

  it('are refused after the leader sent timeoutNow, even if the transfer never completes', () => {
    const net = leaseNet(['a', 'b', 'c']);
    const commit = freshLeader(net, 'a');
    net.drop = (m) => m.type === 'timeoutNow';
    net.node('a').rn.transferLeadership('b');
    net.stabilize();
    expect(net.delivered.filter((m) => m.type === 'timeoutNow')).toEqual([]);
    // The transfer times out, yet the lost timeoutNow could still arrive and start an election past every lease.
    net.tickAll(ELECTION);
    expect(net.leaders()).toEqual(['a']);
    net.node('a').rn.readIndex(bytes('after-transfer'));
    net.drop = () => true;
    net.stabilize();
    expect(readStates(net, 'a')).toEqual([]);
    net.heal();
    net.tickAll(1);
    expect(readStates(net, 'a')).toEqual([{ index: commit, ctx: 'after-transfer' }]);
  });
});

describe('lease-based reads in a joint configuration', () => {
  it('need fresh acknowledgements from a majority of both halves', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: true, readOnlyOption: 'leaseBased' });
    net.add('d', new MemoryStorage());
    net.add('e', new MemoryStorage());
    net.elect('a');
    net.node('a').rn.proposeConfChange({
      transition: 'explicit',
      changes: [
        { type: 'removeNode', nodeId: 'b' },
        { type: 'removeNode', nodeId: 'c' },
        { type: 'addVoter', nodeId: 'd' },
        { type: 'addVoter', nodeId: 'e' },
      ],
      context: new Uint8Array(0),
    });
    net.stabilize();
    expect(net.node('a').rn.status().confState.votersOutgoing).toEqual(['a', 'b', 'c']);
    net.tickAll(1);
    // The outgoing half (a, b, c) keeps acknowledging; the incoming one (a, d, e) hears nothing.
    net.drop = (m) => ['d', 'e'].includes(m.to) || ['d', 'e'].includes(m.from);
    net.tickAll(LEASE_TICKS);
    expect(net.leaders()).toEqual(['a']);
    net.node('a').rn.readIndex(bytes('joint'));
    net.stabilize();
    expect(readStates(net, 'a')).toEqual([]);
    net.heal();
    net.tickAll(1);
    expect(readStates(net, 'a').map((r) => r.ctx)).toEqual(['joint']);
    // Both halves acknowledged just now: the next read needs no round.
    net.drop = () => true;
    net.node('a').rn.readIndex(bytes('joint-lease'));
    net.stabilize();
    expect(readStates(net, 'a').map((r) => r.ctx)).toEqual(['joint', 'joint-lease']);
  });
});

describe('vote refusal backing the lease', () => {
  function voteRequest(term: number): Message {
    return newMessage({ type: 'vote', from: 'c', to: 'b', term, logTerm: 5, index: 10 });
  }

  function restarted(readOnlyOption: 'safe' | 'leaseBased'): RawNode {
    const st = storageWithTerms(['a', 'b', 'c'], [1, 2, 3]);
    return new RawNode(
      { id: 'b', electionTick: ELECTION, heartbeatTick: 1, random: new SeededRandom(3), readOnlyOption },
      st,
    );
  }

  function granted(rn: RawNode): boolean {
    const msgs = rn.hasReady() ? rn.ready().messages : [];
    if (msgs.length > 0) rn.advance();
    return msgs.some((m) => m.type === 'voteResp' && !m.reject);
  }

  it('a restarted voter with lease reads waits an election timeout before granting a vote', () => {
    const rn = restarted('leaseBased');
    for (let i = 0; i < ELECTION - 1; i++) rn.tick();
    rn.step(voteRequest(4));
    expect(granted(rn)).toBe(false);
    rn.tick();
    rn.step(voteRequest(4));
    expect(granted(rn)).toBe(true);
  });

  it('without lease reads a restarted voter grants at once', () => {
    const rn = restarted('safe');
    rn.step(voteRequest(4));
    expect(granted(rn)).toBe(true);
  });

  it('a voter that answered a heartbeat refuses votes for an election timeout even after campaigning itself', () => {
    const net = leaseNet(['a', 'b', 'c']);
    freshLeader(net, 'a');
    net.drop = () => true;
    const b = net.node('b');
    // The host makes b campaign at once: b forgets its leader, but its answer still backs a's lease.
    b.rn.campaign();
    net.stabilize();
    const ask = (): boolean => {
      const term = b.rn.status().term + 1;
      b.rn.step(newMessage({ type: 'vote', from: 'c', to: 'b', term, logTerm: 100, index: 100 }));
      return granted(b.rn);
    };
    net.tick('b', ELECTION - 2);
    expect(ask()).toBe(false);
    net.tick('b', 2);
    expect(ask()).toBe(true);
  });

  it('a voter backing a lease refuses a vote at a term it reached through another message', () => {
    const net = leaseNet(['a', 'b', 'c']);
    freshLeader(net, 'a');
    net.drop = () => true;
    const b = net.node('b');
    const term = b.rn.status().term + 1;
    // A late answer from c, already at the next term, moves b to that term without a leader.
    b.rn.step(newMessage({ type: 'appResp', from: 'c', to: 'b', term }));
    expect(b.rn.status()).toMatchObject({ term, lead: '' });
    const ask = (): boolean => {
      b.rn.step(newMessage({ type: 'vote', from: 'c', to: 'b', term, logTerm: 100, index: 100 }));
      return granted(b.rn);
    };
    expect(ask()).toBe(false);
    net.tick('b', ELECTION);
    expect(ask()).toBe(true);
  });
});

describe('lease reads on request', () => {
  const onRequest = (ids: string[]): Network =>
    new Network(ids, { checkQuorum: true, readOnlyOption: 'leaseOnRequest', electionTick: ELECTION });

  it('report the lease to the host while ReadIndex stays quorum-confirmed', () => {
    const net = onRequest(['a', 'b', 'c']);
    const commit = freshLeader(net, 'a');
    const a = net.node('a').rn;
    const lease = a.leaseRead();
    expect(lease).toMatchObject({ index: commit, span: LEASE_TICKS });
    expect(lease!.ticks - lease!.base).toBeLessThan(LEASE_TICKS);
    // A ReadIndex read is not answered under the lease: it takes a round of heartbeats.
    net.drop = () => true;
    a.readIndex(bytes('safe'));
    net.stabilize();
    expect(readStates(net, 'a')).toEqual([]);
    expect(net.node('b').rn.leaseRead()).toBeUndefined();
  });

  it('lapse electionTick - 2 ticks after the newest acknowledged heartbeat', () => {
    const net = onRequest(['a', 'b', 'c']);
    freshLeader(net, 'a');
    net.isolate('a');
    net.tick('a', LEASE_TICKS - 1);
    expect(net.node('a').rn.leaseRead()).toBeDefined();
    net.tick('a', 1);
    expect(net.node('a').rn.leaseRead()).toBeUndefined();
  });

  it('are refused by a node in safe mode', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: true, electionTick: ELECTION });
    freshLeader(net, 'a');
    expect(net.node('a').rn.leaseRead()).toBeUndefined();
  });
});
