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

  it('a Ready must be synced for new entries or a new term or vote, not for a commit index alone', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    net.node('a').rn.propose(bytes('s'));
    net.stabilize();
    const b = net.node('b').readies;
    const withEntries = b.filter((rd) => rd.entries.length > 0);
    expect(withEntries.length).toBeGreaterThan(0);
    for (const rd of withEntries) expect(rd.mustSync).toBe(true);
    const commitOnly = b.filter((rd) => rd.entries.length === 0 && rd.hardState && !rd.snapshot);
    const termOrVoteSame = commitOnly.filter(
      (rd, i) => i > 0 && rd.hardState?.term === commitOnly[i - 1]?.hardState?.term,
    );
    expect(termOrVoteSame.length).toBeGreaterThan(0);
    for (const rd of termOrVoteSame) expect(rd.mustSync).toBe(false);
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
