import { ConfigError, SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, RawNode } from '../src/index.js';
import { newMessage as msg } from '../src/message.js';
import { Network } from './network.js';

function lone(id: string, voters: string[], extra: Record<string, unknown> = {}): RawNode {
  return new RawNode(
    { id, electionTick: 10, heartbeatTick: 1, random: new SeededRandom(7), preVote: false, ...extra },
    MemoryStorage.withVoters(voters),
  );
}

describe('terms and votes', () => {
  it('a node grants at most one vote per term', () => {
    const rn = lone('a', ['a', 'b', 'c']);
    rn.step(msg({ type: 'vote', from: 'b', to: 'a', term: 2 }));
    rn.step(msg({ type: 'vote', from: 'c', to: 'a', term: 2 }));
    const rd = rn.ready();
    const resps = rd.messages.filter((m) => m.type === 'voteResp');
    expect(resps.map((m) => [m.to, m.reject])).toEqual([
      ['b', false],
      ['c', true],
    ]);
    // Repeating the vote to the same candidate (a retransmission) is allowed.
    rn.advance();
    rn.step(msg({ type: 'vote', from: 'b', to: 'a', term: 2 }));
    expect(rn.ready().messages.map((m) => m.reject)).toEqual([false]);
  });

  it('the vote is in the hardState of the Ready that carries the vote response', () => {
    const rn = lone('a', ['a', 'b', 'c']);
    rn.step(msg({ type: 'vote', from: 'b', to: 'a', term: 5 }));
    const rd = rn.ready();
    expect(rd.messages.some((m) => m.type === 'voteResp' && !m.reject)).toBe(true);
    expect(rd.hardState).toEqual({ term: 5, vote: 'b', commit: 0 });
    expect(rd.mustSync).toBe(true);
  });

  it('a node does not vote for a candidate whose log is behind its own (§5.4.1)', () => {
    const net = new Network(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    net.elect('a');
    net.node('a').rn.propose(new Uint8Array([1]));
    net.stabilize();
    const b = net.node('b').rn;
    const last = b.status().lastIndex;
    const term = b.status().term;
    b.step(msg({ type: 'vote', from: 'c', to: 'b', term: term + 1, index: last - 1, logTerm: term }));
    const resp = b.ready().messages.find((m) => m.type === 'voteResp');
    expect(resp?.reject).toBe(true);
  });

  it('term never decreases and any higher-term message makes a leader a follower', () => {
    const net = new Network(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    net.elect('a');
    const a = net.node('a').rn;
    const t = a.status().term;
    a.step(msg({ type: 'appResp', from: 'b', to: 'a', term: t + 3 }));
    expect(a.status().role).toBe('follower');
    expect(a.status().term).toBe(t + 3);
    a.step(msg({ type: 'heartbeat', from: 'c', to: 'a', term: t + 1 }));
    expect(a.status().term).toBe(t + 3);
  });

  it('a candidate steps down when it sees a leader of its term', () => {
    const net = new Network(['a', 'b', 'c'], { preVote: false });
    const a = net.node('a').rn;
    a.campaign();
    expect(a.status().role).toBe('candidate');
    const term = a.status().term;
    a.step(msg({ type: 'app', from: 'b', to: 'a', term }));
    expect(a.status().role).toBe('follower');
    expect(a.status().lead).toBe('b');
  });

  it('election timeouts are randomized within [electionTick, 2*electionTick)', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) {
      const rn = new RawNode(
        { id: 'a', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(seed), preVote: false },
        MemoryStorage.withVoters(['a', 'b', 'c']),
      );
      let ticks = 0;
      while (rn.status().role === 'follower') {
        rn.tick();
        ticks++;
        expect(ticks).toBeLessThan(20);
      }
      expect(ticks).toBeGreaterThanOrEqual(10);
      seen.add(ticks);
    }
    expect(seen.size).toBeGreaterThan(3);
  });

  it('election timeouts stay within a configured [electionTick, electionTickMax] and cover it', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 60; seed++) {
      const rn = new RawNode(
        {
          id: 'a',
          electionTick: 4,
          electionTickMax: 30,
          heartbeatTick: 1,
          random: new SeededRandom(seed),
          preVote: false,
        },
        MemoryStorage.withVoters(['a', 'b', 'c']),
      );
      let ticks = 0;
      while (rn.status().role === 'follower') {
        rn.tick();
        ticks++;
        expect(ticks).toBeLessThanOrEqual(30);
      }
      expect(ticks).toBeGreaterThanOrEqual(4);
      seen.add(ticks);
    }
    // Timeouts beyond the old [n, 2n) range occur: the configured maximum is honoured.
    expect([...seen].some((t) => t >= 8)).toBe(true);
  });

  it('an electionTickMax below electionTick is refused with a ConfigError', () => {
    expect(() => lone('a', ['a'], { electionTick: 10, electionTickMax: 5 })).toThrow(ConfigError);
  });

  it('at most one leader is elected per term', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const net = new Network(['a', 'b', 'c', 'd', 'e'], { preVote: false }, seed);
      const leadersByTerm = new Map<number, Set<string>>();
      for (let i = 0; i < 60; i++) {
        net.tickAll();
        for (const n of net.nodes.values()) {
          const s = n.rn.status();
          if (s.role !== 'leader') continue;
          const set = leadersByTerm.get(s.term) ?? new Set();
          set.add(s.id);
          leadersByTerm.set(s.term, set);
        }
      }
      for (const [term, set] of leadersByTerm) expect(set.size, `seed ${seed} term ${term}`).toBe(1);
      expect(leadersByTerm.size, `seed ${seed}`).toBeGreaterThan(0);
    }
  });
});

describe('pre-vote and check-quorum', () => {
  it('a partitioned node with pre-vote does not inflate its term', () => {
    const net = new Network(['a', 'b', 'c'], { preVote: true });
    net.elect('a');
    const term = net.node('a').rn.status().term;
    net.isolate('c');
    net.tickAll(50);
    expect(net.node('c').rn.status().term).toBe(term);
    net.heal();
    net.tickAll(5);
    expect(net.node('a').rn.status().role).toBe('leader');
    expect(net.node('a').rn.status().term).toBe(term);
  });

  it('without pre-vote a rejoining node disrupts the leader', () => {
    const net = new Network(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    net.elect('a');
    const term = net.node('a').rn.status().term;
    net.isolate('c');
    net.tickAll(50);
    expect(net.node('c').rn.status().term).toBeGreaterThan(term);
  });

  it('a leader steps down when it has not heard from a quorum within an election timeout', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: true });
    net.elect('a');
    net.isolate('a');
    net.tickAll(25);
    expect(net.node('a').rn.status().role).toBe('follower');
  });

  it('a follower in a leader lease ignores a higher-term vote request', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: true, preVote: false });
    net.elect('a');
    const b = net.node('b').rn;
    const term = b.status().term;
    b.step(msg({ type: 'vote', from: 'c', to: 'b', term: term + 1, index: 100, logTerm: term }));
    expect(b.status().term).toBe(term);
    expect(b.status().lead).toBe('a');
  });

  it('a stale leader learns the newer term from the answer to its heartbeat and steps down', () => {
    const net = new Network(['a', 'b', 'c'], { preVote: true, checkQuorum: false });
    net.elect('a');
    net.isolate('a');
    net.elect('b');
    expect(net.node('b').rn.status().role).toBe('leader');
    expect(net.node('a').rn.status().role).toBe('leader');
    net.heal();
    // a's heartbeat carries the old term: the answer carries the new one.
    net.tick('a');
    net.stabilize();
    expect(net.node('a').rn.status().role).toBe('follower');
    expect(net.node('a').rn.status().term).toBe(net.node('b').rn.status().term);
    expect(net.leaders()).toEqual(['b']);
  });

  it('a pre-candidate that wins becomes a candidate and then leader', () => {
    const net = new Network(['a', 'b', 'c'], { preVote: true });
    net.elect('a');
    expect(net.leaders()).toEqual(['a']);
    expect(net.node('a').rn.status().term).toBe(1);
  });
});
