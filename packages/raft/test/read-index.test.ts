import { type Message, SeededRandom } from '@cohort/core';
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

describe("ReadIndex rounds that ask a quorum (readIndexFanout: 'quorum')", () => {
  /** Heartbeats of the read `ctx` delivered or queued so far, by recipient. */
  const askedFor = (net: Network, ctx: string): string[] =>
    [...net.delivered, ...net.pending()]
      .filter((m) => m.type === 'heartbeat' && text(m.context) === ctx)
      .map((m) => m.to)
      .sort();

  let warm = 0;
  /**
   * Runs a round that only `ids` can answer (their heartbeats alone get through, after a hedge if the round
   * asked others first): their answers are then the ones that last counted toward a round.
   */
  function answeredBy(net: Network, ids: string[]): void {
    net.drop = (m) => m.type === 'heartbeat' && m.context.length > 0 && !ids.includes(m.to);
    const ctx = `warm${++warm}`;
    net.node('a').rn.readIndex(bytes(ctx));
    net.stabilize();
    net.node('a').rn.hedgeReadIndex();
    net.stabilize();
    net.heal();
    expect(readStates(net, 'a').map((r) => r.ctx)).toContain(ctx);
  }

  /** A leader `a` whose rounds were last answered by the followers of `order`, one round each (or per group). */
  function answeredInOrder(ids: string[], order: string[][], options = {}): Network {
    const net = new Network(ids, { readIndexFanout: 'quorum', ...options });
    net.elect('a');
    net.node('a').rn.propose(bytes('w'));
    net.stabilize();
    for (const group of order) answeredBy(net, group);
    return net;
  }

  /** The read states of `a` other than the warm-up rounds'. */
  const served = (net: Network): string[] =>
    readStates(net, 'a')
      .map((r) => r.ctx)
      .filter((c) => !c.startsWith('warm'));

  it('asks only the follower whose answer last counted toward a round, and serves the read on its answer', () => {
    const net = answeredInOrder(['a', 'b', 'c'], [['c'], ['b']]);
    const commit = net.node('a').rn.status().commit;
    net.node('a').rn.readIndex(bytes('r1'));
    net.stabilize();
    expect(askedFor(net, 'r1')).toEqual(['b']);
    expect(readStates(net, 'a')).toContainEqual({ index: commit, ctx: 'r1' });

    // Heartbeats without a round change nothing, whoever answers them last.
    net.drop = (m) => m.type === 'heartbeat' && m.to !== 'c';
    net.tick('a');
    net.stabilize();
    net.heal();
    net.node('a').rn.readIndex(bytes('r2'));
    net.stabilize();
    expect(askedFor(net, 'r2')).toEqual(['b']);

    // c answers a round: the next one asks c.
    answeredBy(net, ['c']);
    net.node('a').rn.readIndex(bytes('r3'));
    net.stabilize();
    expect(askedFor(net, 'r3')).toEqual(['c']);
    expect(served(net)).toEqual(['r1', 'r2', 'r3']);
  });

  it('a follower slower than the hedge is not asked first again: its late answer to an ended round does not count', () => {
    const net = answeredInOrder(['a', 'b', 'c'], [['b']]);
    // b is slow: its answers are held back until the round they answer has ended.
    const held: Message[] = [];
    net.drop = (m) => {
      if (m.from !== 'b' || m.type !== 'heartbeatResp') return false;
      held.push(m);
      return true;
    };
    net.node('a').rn.readIndex(bytes('r1'));
    net.stabilize();
    expect(askedFor(net, 'r1')).toEqual(['b']);
    expect(served(net)).toEqual([]);
    net.node('a').rn.hedgeReadIndex();
    net.stabilize();
    expect(askedFor(net, 'r1')).toEqual(['b', 'b', 'c']);
    expect(served(net)).toEqual(['r1']);
    net.heal();
    expect(held.length).toBeGreaterThan(0);
    for (const m of held) net.node('a').rn.step(m);
    net.stabilize();
    net.node('a').rn.readIndex(bytes('r2'));
    net.stabilize();
    expect(askedFor(net, 'r2')).toEqual(['c']);
    expect(served(net)).toEqual(['r1', 'r2']);
  });

  it('asks as many followers as make a quorum with the leader: two of four', () => {
    const net = answeredInOrder(
      ['a', 'b', 'c', 'd', 'e'],
      [
        ['b', 'e'],
        ['c', 'd'],
      ],
    );
    net.node('a').rn.readIndex(bytes('r'));
    net.stabilize();
    expect(askedFor(net, 'r')).toEqual(['c', 'd']);
    expect(served(net)).toEqual(['r']);
  });

  it('a follower asked that does not answer: no read until the hedge asks the others, which serve it', () => {
    const net = answeredInOrder(['a', 'b', 'c'], [['c'], ['b']]);
    expect(net.node('a').rn.hedgeReadIndex()).toBe(false);
    const lost: string[] = [];
    net.drop = (m) => {
      const cut = m.to === 'b' || m.from === 'b';
      if (cut && m.type === 'heartbeat' && text(m.context) === 'r') lost.push(m.to);
      return cut;
    };
    net.node('a').rn.readIndex(bytes('r'));
    net.stabilize();
    expect(lost).toEqual(['b']);
    expect(askedFor(net, 'r')).toEqual([]);
    expect(served(net)).toEqual([]);
    expect(net.node('a').rn.hedgeReadIndex()).toBe(true);
    net.stabilize();
    // b was asked again (it never answered); c's answer completes the quorum.
    expect(lost).toEqual(['b', 'b']);
    expect(askedFor(net, 'r')).toEqual(['c']);
    expect(served(net)).toEqual(['r']);
    expect(net.node('a').rn.hedgeReadIndex()).toBe(false);
    // A follower never asks: only a leader hedges.
    expect(net.node('c').rn.hedgeReadIndex()).toBe(false);
  });

  it('without a hedge, the next heartbeat carries the round to every follower', () => {
    const net = answeredInOrder(['a', 'b', 'c'], [['c'], ['b']]);
    net.drop = (m) => m.to === 'b' || m.from === 'b';
    net.node('a').rn.readIndex(bytes('r'));
    net.stabilize();
    expect(served(net)).toEqual([]);
    net.tick('a');
    net.stabilize();
    expect(served(net)).toEqual(['r']);
  });

  it('never asks a learner, however recently it answered', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { readIndexFanout: 'quorum' });
    net.add('l', new MemoryStorage());
    net.elect('a');
    net.node('a').rn.proposeConfChange({
      transition: 'auto',
      changes: [{ type: 'addLearner', nodeId: 'l' }],
      context: new Uint8Array(0),
    });
    net.stabilize();
    expect(net.node('a').rn.status().confState.learners).toEqual(['l']);
    answeredBy(net, ['b']);
    // A round only the learner hears: its answer is the last one received, but cannot end the round.
    net.drop = (m) => m.type === 'heartbeat' && m.context.length > 0 && m.to !== 'l';
    net.node('a').rn.readIndex(bytes('r0'));
    net.stabilize();
    net.node('a').rn.hedgeReadIndex();
    net.stabilize();
    expect(askedFor(net, 'r0')).toEqual(['l']);
    expect(served(net)).toEqual([]);
    net.heal();
    net.node('a').rn.readIndex(bytes('r'));
    net.stabilize();
    expect(askedFor(net, 'r')).toEqual(['b']);
    // b's answer to the newer round ends the older one too.
    expect(served(net)).toEqual(['r0', 'r']);
  });

  it('a joint configuration asks every follower (a quorum of both majorities is needed)', () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { readIndexFanout: 'quorum', checkQuorum: false });
    net.add('d', new MemoryStorage());
    net.elect('a');
    net.node('a').rn.proposeConfChange({
      transition: 'explicit',
      changes: [
        { type: 'removeNode', nodeId: 'b' },
        { type: 'addVoter', nodeId: 'd' },
      ],
      context: new Uint8Array(0),
    });
    net.stabilize();
    expect(net.node('a').rn.status().confState.votersOutgoing).toEqual(['a', 'b', 'c']);
    net.node('a').rn.readIndex(bytes('r'));
    net.stabilize();
    expect(askedFor(net, 'r')).toEqual(['b', 'c', 'd']);
    expect(served(net)).toEqual(['r']);
  });

  it("by default ('all') every follower is asked at once; another value is refused", () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    net.node('a').rn.propose(bytes('w'));
    net.stabilize();
    net.node('a').rn.readIndex(bytes('r'));
    net.stabilize();
    expect(askedFor(net, 'r')).toEqual(['b', 'c']);
    expect(
      () =>
        new RawNode(
          // biome-ignore lint/suspicious/noExplicitAny: an invalid value on purpose
          { id: 'a', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1), readIndexFanout: 'some' as any },
          MemoryStorage.withVoters(['a']),
        ),
    ).toThrow(/readIndexFanout must be 'all' or 'quorum', got some/);
  });
});
