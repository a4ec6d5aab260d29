import { type Message, SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, type RaftOptions, RawNode } from '../src/index.js';
import { newMessage } from '../src/message.js';
import { Network, appliedData, bytes, snapshotOf } from './network.js';

const opts = (id: string, extra: Partial<RaftOptions> = {}): RaftOptions => ({
  id,
  electionTick: 10,
  heartbeatTick: 1,
  random: new SeededRandom(5),
  preVote: false,
  checkQuorum: false,
  ...extra,
});

const vote = (from: string, term: number): Message => newMessage({ type: 'vote', from, to: 'a', term });

describe('restart', () => {
  it('a restarted node recovers its term and vote and does not vote twice in that term', () => {
    const storage = MemoryStorage.withVoters(['a', 'b', 'c']);
    const rn = new RawNode(opts('a'), storage);
    rn.step(vote('b', 4));
    const rd = rn.ready();
    if (rd.hardState) storage.setHardState(rd.hardState);
    rn.advance();

    const again = new RawNode(opts('a'), storage);
    expect(again.status().term).toBe(4);
    expect(again.status().vote).toBe('b');
    again.step(vote('c', 4));
    const resp = again.ready().messages.find((m) => m.type === 'voteResp');
    expect(resp?.reject).toBe(true);
  });

  it('a restarted node replays committed entries after `applied` and rejoins the group', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    for (let i = 0; i < 5; i++) net.node('a').rn.propose(bytes(`e${i}`));
    net.stabilize();
    const c = net.node('c');
    const applied = c.rn.status().applied;
    // Restart c: state machine rebuilt from the log, skipping the first two applied entries.
    net.nodes.delete('c');
    const fresh = net.add('c', c.storage, { applied: 2 });
    net.processReady('c');
    expect(fresh.applied[0]?.index).toBe(3);
    expect(fresh.rn.status().applied).toBe(applied);
    net.node('a').rn.propose(bytes('after-restart'));
    net.stabilize();
    expect(appliedData(fresh)).toContain('after-restart');
  });

  it('a stored commit index older than the snapshot is raised to the snapshot index', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    for (let i = 0; i < 4; i++) net.node('a').rn.propose(bytes(`e${i}`));
    net.stabilize();
    const b = net.node('b');
    snapshotOf(b);
    const snapIndex = b.storage.snapshot().meta.index;
    b.storage.setHardState({ ...b.storage.initialState().hardState, commit: 1 });
    const again = new RawNode(opts('b', { applied: snapIndex }), b.storage);
    expect(again.status().commit).toBe(snapIndex);
  });

  it('a stored commit index past the log is a ConfigError', () => {
    const storage = MemoryStorage.withVoters(['a']);
    storage.setHardState({ term: 1, vote: 'a', commit: 7 });
    expect(() => new RawNode(opts('a'), storage)).toThrow(expect.objectContaining({ name: 'ConfigError' }));
  });

  it('invalid options are ConfigErrors naming the field', () => {
    const storage = MemoryStorage.withVoters(['a']);
    expect(() => new RawNode(opts('a', { electionTick: 1, heartbeatTick: 1 }), storage)).toThrow(/electionTick/);
    expect(() => new RawNode(opts(''), storage)).toThrow(/id must be/);
    expect(() => new RawNode(opts('a', { maxInflightMsgs: 0 }), storage)).toThrow(/maxInflightMsgs/);
    expect(() => RawNode.bootstrap(opts('a'), storage, [])).toThrow(expect.objectContaining({ name: 'ConfigError' }));
  });
});
