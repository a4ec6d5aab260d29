import { SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, RawNode } from '../src/index.js';
import { newMessage as msg } from '../src/message.js';
import { Network, appliedData, bytes, logOf, storageWithTerms } from './network.js';

describe('replication', () => {
  it('log matching: followers end with the leader log and conflicting suffixes are truncated', () => {
    const voters = ['a', 'b', 'c', 'd'];
    const net = Network.withStorages(
      {
        a: storageWithTerms(voters, [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]),
        b: storageWithTerms(voters, [1, 1, 1, 4, 4, 4, 4]),
        c: storageWithTerms(voters, [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
        d: storageWithTerms(voters, [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
      },
      { preVote: false, checkQuorum: false },
    );
    net.elect('d');
    expect(net.leaders()).toEqual(['d']);
    const want = logOf(net.node('d').storage);
    expect(want).toHaveLength(12);
    for (const id of voters) expect(logOf(net.node(id).storage), id).toEqual(want);
  });

  it('fast backtracking skips a whole conflicting term per round trip', () => {
    const voters = ['a', 'b', 'c'];
    const net = Network.withStorages(
      {
        a: storageWithTerms(voters, [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]),
        b: storageWithTerms(voters, [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]),
        c: storageWithTerms(voters, [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]),
      },
      { preVote: false, checkQuorum: false },
    );
    net.elect('a');
    const rejects = net.delivered.filter((m) => m.type === 'appResp' && m.reject && m.from === 'c');
    // One-by-one backtracking would need 15 rejections here.
    expect(rejects.length).toBeGreaterThan(0);
    expect(rejects.length).toBeLessThanOrEqual(3);
    expect(logOf(net.node('c').storage)).toEqual(logOf(net.node('a').storage));
  });

  it('§5.4.2: a leader commits by counting replicas only entries of its own term', () => {
    const st = storageWithTerms(['a', 'b', 'c'], [1, 2], 1);
    const rn = new RawNode(
      { id: 'a', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1), preVote: false },
      st,
    );
    rn.campaign();
    const term = rn.status().term;
    rn.step(msg({ type: 'voteResp', from: 'b', to: 'a', term }));
    expect(rn.status().role).toBe('leader');
    expect(rn.status().lastIndex).toBe(3);
    // b holds index 2 (term 2) but not the leader's own entry yet.
    rn.step(msg({ type: 'appResp', from: 'b', to: 'a', term, index: 2 }));
    expect(rn.status().commit).toBe(1);
    rn.step(msg({ type: 'appResp', from: 'b', to: 'a', term, index: 3 }));
    expect(rn.status().commit).toBe(3);
  });

  it('committed entries are handed out exactly once, in order, and commit never moves back', () => {
    const net = new Network(['a', 'b', 'c'], {}, 3);
    net.elect('a');
    let k = 0;
    let flip = 0;
    for (let round = 0; round < 30; round++) {
      // Drop a pseudo-random third of messages for a while, then heal.
      net.drop = round < 20 ? () => flip++ % 3 === 0 : () => false;
      const leader = net.leaders()[0];
      if (leader) {
        try {
          net.node(leader).rn.propose(bytes(`v${k++}`));
        } catch {
          // Dropped while leadership changes hands; fine.
        }
      }
      net.tickAll();
    }
    net.heal();
    net.tickAll(20);
    for (const n of net.nodes.values()) {
      let lastApplied = 0;
      let lastCommit = 0;
      for (const rd of n.readies) {
        for (const e of rd.committedEntries) {
          expect(e.index).toBe(lastApplied + 1);
          lastApplied = e.index;
        }
        if (rd.hardState) {
          expect(rd.hardState.commit).toBeGreaterThanOrEqual(lastCommit);
          lastCommit = rd.hardState.commit;
        }
      }
    }
    const a = appliedData(net.node('a'));
    expect(a.length).toBeGreaterThan(5);
    for (const id of ['b', 'c']) expect(appliedData(net.node(id))).toEqual(a);
  });

  it('a follower rejects an append whose previous entry does not match', () => {
    const st = storageWithTerms(['a', 'b'], [1, 1, 2]);
    const rn = new RawNode({ id: 'b', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1) }, st);
    rn.step(
      msg({
        type: 'app',
        from: 'a',
        to: 'b',
        term: 3,
        index: 3,
        logTerm: 3,
        entries: [{ term: 3, index: 4, type: 'normal', data: bytes('x') }],
      }),
    );
    const resp = rn.ready().messages.find((m) => m.type === 'appResp');
    expect(resp?.reject).toBe(true);
    expect(resp?.rejectHint).toBe(3);
    expect(resp?.rejectTerm).toBe(2);
    expect(rn.status().lastIndex).toBe(3);
  });

  it('a single-node group commits on its own', () => {
    const rn = new RawNode(
      { id: 'a', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1) },
      MemoryStorage.withVoters(['a']),
    );
    rn.campaign();
    rn.propose(bytes('solo'));
    const rd = rn.ready();
    expect(rd.committedEntries.map((e) => e.data.length)).toEqual([0, 4]);
  });

  it('a malformed message is refused with a CodecError and changes nothing', () => {
    const rn = new RawNode(
      { id: 'b', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1) },
      MemoryStorage.withVoters(['a', 'b']),
    );
    const bad = msg({
      type: 'app',
      from: 'a',
      to: 'b',
      term: 2,
      index: 0,
      entries: [{ term: 2, index: 5, type: 'normal', data: bytes('gap') }],
    });
    expect(() => rn.step(bad)).toThrow(expect.objectContaining({ name: 'CodecError' }));
    expect(() => rn.step({ ...bad, type: 'nope' as never })).toThrow(/unknown message type/);
    expect(rn.status().term).toBe(0);
  });
});
