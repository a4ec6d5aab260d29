import { SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, RawNode } from '../src/index.js';
import { Network, bytes, text } from './network.js';

function readStates(net: Network, id: string): { index: number; ctx: string }[] {
  return net.node(id).readies.flatMap((rd) => rd.readStates.map((rs) => ({ index: rs.index, ctx: text(rs.context) })));
}

describe('linearizable reads', () => {
  it('ReadIndex is served only after a quorum confirms leadership via heartbeat context', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    net.node('a').rn.propose(bytes('w'));
    net.stabilize();
    const commit = net.node('a').rn.status().commit;
    net.drop = (m) => m.from !== 'a';
    net.node('a').rn.readIndex(bytes('r1'));
    net.stabilize();
    expect(readStates(net, 'a')).toEqual([]);
    const hb = net.delivered.filter((m) => m.type === 'heartbeat' && text(m.context) === 'r1');
    expect(hb).toHaveLength(2);
    net.heal();
    net.tickAll(1);
    expect(readStates(net, 'a')).toEqual([{ index: commit, ctx: 'r1' }]);
  });

  it('followers forward readIndex to the leader and receive the read index back', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    net.node('a').rn.propose(bytes('w'));
    net.stabilize();
    net.node('c').rn.readIndex(bytes('from-c'));
    net.stabilize();
    expect(readStates(net, 'c')).toEqual([{ index: net.node('a').rn.status().commit, ctx: 'from-c' }]);
    expect(readStates(net, 'a')).toEqual([]);
  });

  it('a new leader defers reads until it has committed an entry of its term', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: false });
    net.drop = (m) => m.type === 'app' || m.type === 'appResp';
    net.elect('a');
    expect(net.leaders()).toEqual(['a']);
    net.node('a').rn.readIndex(bytes('early'));
    net.stabilize();
    expect(readStates(net, 'a')).toEqual([]);
    net.heal();
    net.tickAll(2);
    const rs = readStates(net, 'a');
    expect(rs).toHaveLength(1);
    expect(rs[0]?.index).toBe(1);
  });

  it('lease-based reads are refused without check-quorum', () => {
    expect(
      () =>
        new RawNode(
          {
            id: 'a',
            electionTick: 10,
            heartbeatTick: 1,
            random: new SeededRandom(1),
            checkQuorum: false,
            readOnlyOption: 'leaseBased',
          },
          MemoryStorage.withVoters(['a']),
        ),
    ).toThrow(expect.objectContaining({ name: 'ConfigError' }));
  });

  it('a read with no known leader is refused', () => {
    const net = new Network(['a', 'b', 'c']);
    expect(() => net.node('a').rn.readIndex(bytes('x'))).toThrow(
      expect.objectContaining({ name: 'ProposalDroppedError' }),
    );
  });
});
