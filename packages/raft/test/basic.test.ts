import { describe, expect, it } from 'vitest';
import { Network, appliedData, bytes } from './network.js';

describe('basic engine', () => {
  it('elects a leader that replicates, commits and applies proposals on every node', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    expect(net.leaders()).toEqual(['a']);
    net.node('a').rn.propose(bytes('x=1'));
    net.node('a').rn.propose(bytes('y=2'));
    net.stabilize();
    for (const id of ['a', 'b', 'c']) {
      expect(appliedData(net.node(id))).toEqual(['x=1', 'y=2']);
      expect(net.node(id).rn.status().commit).toBe(3);
    }
  });

  it('elects a leader by ticking alone', () => {
    const net = new Network(['a', 'b', 'c']);
    for (let i = 0; i < 40 && net.leaders().length === 0; i++) net.tickAll();
    expect(net.leaders()).toHaveLength(1);
  });

  it('a follower forwards proposals to the leader', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    net.node('b').rn.propose(bytes('via-b'));
    net.stabilize();
    expect(appliedData(net.node('c'))).toEqual(['via-b']);
  });
});
