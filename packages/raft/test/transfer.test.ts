import type { ConfChange } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../src/index.js';
import { Network, bytes } from './network.js';

describe('leadership transfer', () => {
  it('hands leadership to an up-to-date follower via timeoutNow, without waiting for ticks', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    const term = net.node('a').rn.status().term;
    net.node('a').rn.transferLeadership('b');
    net.stabilize();
    expect(net.delivered.some((m) => m.type === 'timeoutNow' && m.to === 'b')).toBe(true);
    expect(net.leaders()).toEqual(['b']);
    expect(net.node('b').rn.status().term).toBe(term + 1);
  });

  it('a follower asked to transfer forwards the request to the leader', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    net.node('c').rn.transferLeadership('c');
    net.stabilize();
    expect(net.leaders()).toEqual(['c']);
  });

  it('waits until the target has caught up before sending timeoutNow', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    net.isolate('c');
    for (let i = 0; i < 5; i++) net.node('a').rn.propose(bytes(`w${i}`));
    net.stabilize();
    net.heal();
    const seen = net.delivered.length;
    net.node('a').rn.transferLeadership('c');
    net.stabilize();
    const after = net.delivered.slice(seen);
    const firstTimeout = after.findIndex((m) => m.type === 'timeoutNow');
    const lastApp = after.map((m) => m.type === 'app' && m.to === 'c' && m.entries.length > 0).lastIndexOf(true);
    expect(lastApp).toBeGreaterThanOrEqual(0);
    expect(firstTimeout).toBeGreaterThan(lastApp);
    expect(net.leaders()).toEqual(['c']);
    expect(net.node('c').rn.status().lastIndex).toBe(net.node('a').rn.status().lastIndex);
  });

  it('is refused to a learner', () => {
    const net = Network.bootstrapped(['a', 'b', 'c']);
    net.add('d', new MemoryStorage());
    net.elect('a');
    const cc: ConfChange = { transition: 'auto', changes: [{ type: 'addLearner', nodeId: 'd' }], context: bytes('') };
    net.node('a').rn.proposeConfChange(cc);
    net.stabilize();
    net.node('a').rn.transferLeadership('d');
    net.stabilize();
    expect(net.leaders()).toEqual(['a']);
    expect(net.node('a').rn.status().leadTransferee).toBe('');
    expect(net.delivered.some((m) => m.type === 'timeoutNow')).toBe(false);
  });

  it('drops proposals while a transfer is in flight and gives up after an election timeout', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    net.isolate('c');
    net.node('a').rn.propose(bytes('behind'));
    net.stabilize();
    const a = net.node('a').rn;
    a.transferLeadership('c');
    expect(a.status().leadTransferee).toBe('c');
    expect(() => a.propose(bytes('during'))).toThrow(expect.objectContaining({ name: 'ProposalDroppedError' }));
    net.tickAll(10);
    expect(a.status().leadTransferee).toBe('');
    expect(a.status().role).toBe('leader');
    a.propose(bytes('after'));
  });

  it('a transfer campaign breaks through the followers leader lease', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: true, preVote: true });
    net.elect('a');
    net.tickAll(3);
    net.node('a').rn.transferLeadership('b');
    net.stabilize();
    expect(net.leaders()).toEqual(['b']);
  });
});
