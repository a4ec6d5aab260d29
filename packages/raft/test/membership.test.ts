import type { ConfChange, ConfChangeSingle } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, decodeConfChange, encodeConfChange } from '../src/index.js';
import { Network, appliedData, bytes } from './network.js';

const cc = (changes: ConfChangeSingle[], transition: ConfChange['transition'] = 'auto'): ConfChange => ({
  transition,
  changes,
  context: new Uint8Array(0),
});

/** Proposes on the leader and settles; returns the leader's resulting voters. */
function change(net: Network, leader: string, c: ConfChange): void {
  net.node(leader).rn.proposeConfChange(c);
  net.stabilize();
}

function committedAfterProposal(net: Network, leader: string, data: string): boolean {
  const before = net.node(leader).rn.status().commit;
  net.node(leader).rn.propose(bytes(data));
  net.stabilize();
  return net.node(leader).rn.status().commit > before;
}

describe('membership', () => {
  it("a status's membership is the caller's own copy: changing it changes nothing in the engine", () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    const cs = net.node('a').rn.status().confState;
    cs.voters.push('z');
    cs.learners.push('y');
    expect(net.node('a').rn.status().confState).toMatchObject({ voters: ['a', 'b', 'c'], learners: [] });
    change(net, 'a', cc([{ type: 'addLearner', nodeId: 'd' }]));
    expect(net.node('a').rn.status().confState).toMatchObject({ voters: ['a', 'b', 'c'], learners: ['d'] });
  });

  it('adds a voter that catches up and then counts toward the quorum', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    net.node('a').rn.propose(bytes('before'));
    net.stabilize();
    net.add('d', new MemoryStorage());
    change(net, 'a', cc([{ type: 'addVoter', nodeId: 'd' }]));
    expect(net.node('a').rn.status().confState.voters).toEqual(['a', 'b', 'c', 'd']);
    net.node('a').rn.propose(bytes('after'));
    net.stabilize();
    expect(appliedData(net.node('d'))).toEqual(['before', 'after']);
    expect(net.node('d').rn.status().confState.voters).toEqual(['a', 'b', 'c', 'd']);
    // Four voters: a and b alone are no longer a majority.
    net.drop = (m) => m.to === 'c' || m.to === 'd';
    expect(committedAfterProposal(net, 'a', 'needs-3')).toBe(false);
    net.heal();
    net.tickAll(2);
    expect(appliedData(net.node('d'))).toContain('needs-3');
  });

  it('removes a voter: the rest commit without it', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    change(net, 'a', cc([{ type: 'removeNode', nodeId: 'c' }]));
    expect(net.node('a').rn.status().confState.voters).toEqual(['a', 'b']);
    const seen = net.delivered.length;
    net.isolate('c');
    expect(committedAfterProposal(net, 'a', 'two')).toBe(true);
    net.heal();
    net.tickAll(3);
    // The leader no longer replicates to the removed node.
    expect(net.delivered.slice(seen).filter((m) => m.to === 'c' && m.type === 'app')).toEqual([]);
  });

  it('a removed node never campaigns, however long it ticks', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    change(net, 'a', cc([{ type: 'removeNode', nodeId: 'c' }]));
    const term = net.node('c').rn.status().term;
    net.isolate('a');
    for (let i = 0; i < 100; i++) net.tick('c');
    net.stabilize();
    expect(net.node('c').rn.status().role).toBe('follower');
    expect(net.node('c').rn.status().term).toBe(term);
  });

  it('a removed leader steps down and another voter takes over', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: true });
    net.elect('a');
    change(net, 'a', cc([{ type: 'removeNode', nodeId: 'a' }]));
    expect(net.node('a').rn.status().role).toBe('follower');
    net.tickAll(30);
    const leaders = net.leaders();
    expect(leaders).toHaveLength(1);
    expect(['b', 'c']).toContain(leaders[0]);
    expect(committedAfterProposal(net, leaders[0] as string, 'new-reign')).toBe(true);
  });

  it('several changes at once go through a joint configuration that is left automatically', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.add('d', new MemoryStorage());
    net.add('e', new MemoryStorage());
    net.elect('a');
    const c = cc([
      { type: 'removeNode', nodeId: 'b' },
      { type: 'removeNode', nodeId: 'c' },
      { type: 'addVoter', nodeId: 'd' },
      { type: 'addVoter', nodeId: 'e' },
    ]);
    net.node('a').rn.proposeConfChange(c);
    net.stabilize();
    const confEntries = net
      .node('a')
      .applied.filter((e) => e.type === 'confChange')
      .map((e) => decodeConfChange(e.data));
    // The last two: entering the joint config, then the automatic leave (an empty change).
    expect(confEntries.slice(-2).map((x) => x.changes.length)).toEqual([4, 0]);
    const cs = net.node('a').rn.status().confState;
    expect(cs.voters).toEqual(['a', 'd', 'e']);
    expect(cs.votersOutgoing).toEqual([]);
    expect(appliedData(net.node('d'))).toEqual([]);
    expect(committedAfterProposal(net, 'a', 'new-config')).toBe(true);
  });

  it('in an explicit joint configuration a majority of the old voters alone cannot commit', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.add('d', new MemoryStorage());
    net.add('e', new MemoryStorage());
    net.elect('a');
    change(
      net,
      'a',
      cc(
        [
          { type: 'removeNode', nodeId: 'b' },
          { type: 'removeNode', nodeId: 'c' },
          { type: 'addVoter', nodeId: 'd' },
          { type: 'addVoter', nodeId: 'e' },
        ],
        'explicit',
      ),
    );
    const cs = net.node('a').rn.status().confState;
    expect(cs.voters).toEqual(['a', 'd', 'e']);
    expect(cs.votersOutgoing).toEqual(['a', 'b', 'c']);
    // A second change is refused while joint (other than leaving).
    expect(() => net.node('a').rn.proposeConfChange(cc([{ type: 'addVoter', nodeId: 'f' }]))).toThrow(
      expect.objectContaining({ name: 'ProposalDroppedError' }),
    );
    net.drop = (m) => m.to === 'd' || m.to === 'e';
    expect(committedAfterProposal(net, 'a', 'old-only')).toBe(false);
    net.drop = (m) => m.to === 'b' || m.to === 'c';
    net.tickAll(2);
    expect(net.node('a').rn.status().commit).toBe(net.node('a').rn.status().lastIndex);
    net.heal();
    change(net, 'a', cc([]));
    const left = net.node('a').rn.status().confState;
    expect(left.voters).toEqual(['a', 'd', 'e']);
    expect(left.votersOutgoing).toEqual([]);
    net.isolate('b');
    net.drop = (m) => ['b', 'c'].includes(m.to);
    expect(committedAfterProposal(net, 'a', 'new-only')).toBe(true);
  });

  it('a learner receives the log but never votes, campaigns or counts toward commit', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.add('d', new MemoryStorage());
    net.elect('a');
    change(net, 'a', cc([{ type: 'addLearner', nodeId: 'd' }]));
    expect(net.node('a').rn.status().confState.learners).toEqual(['d']);
    net.node('a').rn.propose(bytes('to-learner'));
    net.stabilize();
    expect(appliedData(net.node('d'))).toEqual(['to-learner']);
    net.drop = (m) => m.to === 'b' || m.to === 'c';
    expect(committedAfterProposal(net, 'a', 'learner-ack-only')).toBe(false);
    net.heal();
    net.isolate('a');
    for (let i = 0; i < 50; i++) net.tick('d');
    expect(net.node('d').rn.status().role).toBe('follower');
    net.heal();
    // Promotion makes it a voter.
    net.tickAll(2);
    change(net, net.leaders()[0] as string, cc([{ type: 'addVoter', nodeId: 'd' }]));
    expect(net.node('d').rn.status().confState.voters).toEqual(['a', 'b', 'c', 'd']);
    expect(net.node('d').rn.status().confState.learners).toEqual([]);
  });

  it('a voter demoted through a joint config becomes a learner when the joint config is left', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    net.drop = (m) => m.type === 'app' && m.entries.some((e) => e.type === 'confChange' && e.index > 5);
    change(net, 'a', cc([{ type: 'addLearner', nodeId: 'c' }], 'joint'));
    // Entering: c leaves the incoming voters but stays an outgoing voter until the leave.
    const joint = net.node('a').rn.status().confState;
    expect(joint.voters).toEqual(['a', 'b']);
    expect(joint.votersOutgoing).toEqual(['a', 'b', 'c']);
    expect(joint.learnersNext).toEqual(['c']);
    net.heal();
    net.tickAll(3);
    const left = net.node('c').rn.status().confState;
    expect(left).toEqual({
      voters: ['a', 'b'],
      votersOutgoing: [],
      learners: ['c'],
      learnersNext: [],
      autoLeave: false,
    });
  });

  it('at most one conf change is pending at a time', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    net.drop = () => true;
    net.node('a').rn.proposeConfChange(cc([{ type: 'addLearner', nodeId: 'x' }]));
    expect(() => net.node('a').rn.proposeConfChange(cc([{ type: 'addLearner', nodeId: 'y' }]))).toThrow(
      expect.objectContaining({ name: 'ProposalDroppedError' }),
    );
    net.heal();
    net.tickAll(2);
    net.node('a').rn.proposeConfChange(cc([{ type: 'addLearner', nodeId: 'y' }]));
    net.stabilize();
    expect(net.node('a').rn.status().confState.learners).toEqual(['x', 'y']);
  });

  it('applying an invalid conf change throws a ConfigError and leaves the membership unchanged', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    const a = net.node('a').rn;
    expect(() =>
      a.applyConfChange(
        cc([
          { type: 'removeNode', nodeId: 'a' },
          { type: 'removeNode', nodeId: 'b' },
          { type: 'removeNode', nodeId: 'c' },
        ]),
      ),
    ).toThrow(expect.objectContaining({ name: 'ConfigError' }));
    expect(() => a.applyConfChange(cc([]))).toThrow(/not joint/);
    expect(a.status().confState.voters).toEqual(['a', 'b', 'c']);
  });

  it('conf changes round-trip through their byte encoding and garbage is a CodecError', () => {
    const c: ConfChange = {
      transition: 'explicit',
      changes: [
        { type: 'addVoter', nodeId: 'n1' },
        { type: 'addLearner', nodeId: 'nœud-2' },
        { type: 'removeNode', nodeId: 'n3' },
      ],
      context: bytes('ctx'),
    };
    expect(decodeConfChange(encodeConfChange(c))).toEqual(c);
    const enc = encodeConfChange(c);
    expect(() => decodeConfChange(enc.subarray(0, enc.length - 1))).toThrow(
      expect.objectContaining({ name: 'CodecError' }),
    );
    expect(() => decodeConfChange(new Uint8Array([9, 0, 0, 0]))).toThrow(/version/);
    expect(() => decodeConfChange(new Uint8Array([]))).toThrow(/truncated/);
  });
});
