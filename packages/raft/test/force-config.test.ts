import type { ConfChange, ConfChangeSingle } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, type RawNode, decodeConfChange } from '../src/index.js';
import { newMessage } from '../src/message.js';
import { Network, appliedData, bytes } from './network.js';

const cc = (changes: ConfChangeSingle[], transition: ConfChange['transition'] = 'auto'): ConfChange => ({
  transition,
  changes,
  context: new Uint8Array(0),
});

/** A 3-voter group led by a, with `n` entries committed, whose b and c are then gone for good. */
function lostQuorum(n = 3): Network {
  const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
  net.elect('a');
  for (let i = 0; i < n; i++) net.node('a').rn.propose(bytes(`w${i}`));
  net.stabilize();
  net.nodes.delete('b');
  net.nodes.delete('c');
  return net;
}

describe('forced configuration (unsafe recovery of a group that lost its quorum)', () => {
  it('the survivor becomes the only voter, leads it and commits alone; its uncommitted tail is committed too', () => {
    const net = lostQuorum();
    const a = net.node('a');
    // Proposed after b and c died: appended, never committed by the old group.
    a.rn.propose(bytes('tail'));
    net.stabilize();
    expect(a.rn.status().commit).toBeLessThan(a.rn.status().lastIndex);
    expect(appliedData(a)).not.toContain('tail');
    const before = a.rn.status();

    const f = a.rn.forceConfiguration(['a']);
    expect(f.forced).toBe(true);
    expect(f.before.voters).toEqual(['a', 'b', 'c']);
    expect(f.after).toMatchObject({ voters: ['a'], learners: [], votersOutgoing: [] });
    expect(f.previousLastIndex).toBe(before.lastIndex);
    expect(f.previousCommit).toBe(before.commit);
    // Two removals, one entry each, in a new term.
    expect(f.lastIndex).toBe(before.lastIndex + 2);
    expect(f.term).toBe(before.term + 1);
    net.stabilize();
    expect(appliedData(a)).toContain('tail');
    expect(a.rn.status().confState.voters).toEqual(['a']);
    net.elect('a');
    expect(a.rn.status().role).toBe('leader');
    a.rn.propose(bytes('after'));
    net.stabilize();
    expect(appliedData(a)).toEqual(['w0', 'w1', 'w2', 'tail', 'after']);
  });

  it('the forced entries and hard state are in the persisted Ready, before the node may campaign', () => {
    const net = lostQuorum();
    const a = net.node('a');
    const f = a.rn.forceConfiguration(['a']);
    // Not applied yet: a committed membership change waits, so no campaign.
    a.rn.campaign();
    expect(a.rn.status().role).toBe('follower');
    expect(a.rn.hasReady()).toBe(true);
    const rd = a.rn.ready();
    expect(rd.mustSync).toBe(true);
    expect(rd.hardState).toMatchObject({ term: f.term, vote: '', commit: f.lastIndex });
    expect(rd.entries.map((e) => [e.index, e.term, e.type])).toEqual([
      [f.lastIndex - 1, f.term, 'confChange'],
      [f.lastIndex, f.term, 'confChange'],
    ]);
    a.rn.advance();
  });

  it('a restart keeps the forced configuration: the log replays it', () => {
    const net = lostQuorum();
    const a = net.node('a');
    const f = a.rn.forceConfiguration(['a']);
    net.stabilize();
    // Restart from the store alone, replaying from index 0.
    net.nodes.delete('a');
    const again = net.add('a', a.storage);
    expect(again.rn.status().term).toBe(f.term);
    expect(again.rn.status().commit).toBe(f.lastIndex);
    net.stabilize();
    expect(again.rn.status().confState.voters).toEqual(['a']);
    net.elect('a');
    expect(again.rn.status().role).toBe('leader');
  });

  it('an old replica that comes back cannot win a vote from the survivor: its log is a term behind', () => {
    const net = lostQuorum();
    const a = net.node('a');
    const oldTerm = a.rn.status().term;
    const oldLast = a.rn.status().lastIndex;
    a.rn.forceConfiguration(['a']);
    net.stabilize();
    net.elect('a');
    // c kept the old log (even one entry longer) and campaigns in a later term.
    a.rn.step(
      newMessage({
        type: 'vote',
        from: 'c',
        to: 'a',
        term: a.rn.status().term + 5,
        index: oldLast + 1,
        logTerm: oldTerm,
      }),
    );
    const resp = a.rn.ready().messages.find((m) => m.type === 'voteResp');
    a.rn.advance();
    expect(resp?.reject).toBe(true);
  });

  it("the log's uncommitted membership change and a joint configuration are taken into account", () => {
    const net = Network.bootstrapped(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    net.add('d', new MemoryStorage());
    net.node('a').rn.proposeConfChange(cc([{ type: 'addLearner', nodeId: 'd' }]));
    net.stabilize();
    // An explicit joint configuration, left open: d becomes a voter, c an outgoing one.
    net.node('a').rn.proposeConfChange(
      cc(
        [
          { type: 'addVoter', nodeId: 'd' },
          { type: 'removeNode', nodeId: 'c' },
        ],
        'explicit',
      ),
    );
    net.stabilize();
    expect(net.node('a').rn.status().confState.votersOutgoing).toEqual(['a', 'b', 'c']);
    for (const id of ['b', 'c', 'd']) net.nodes.delete(id);
    // Appended after the others died: not committed, not applied, yet part of the log the survivor adopts.
    net.node('a').rn.proposeConfChange(cc([], 'auto'));
    net.stabilize();
    const f = net.node('a').rn.forceConfiguration(['a']);
    // The tail's leave-joint applies first, so the forced steps start from a plain configuration.
    expect(f.before).toMatchObject({ voters: ['a', 'b', 'd'], votersOutgoing: [] });
    expect(f.after).toMatchObject({ voters: ['a'], votersOutgoing: [], learners: [] });
    net.stabilize();
    expect(net.node('a').rn.status().confState).toMatchObject({ voters: ['a'], votersOutgoing: [], learners: [] });
    net.elect('a');
    expect(net.node('a').rn.status().role).toBe('leader');
  });

  it('forcing the membership the group already has adds nothing to the log', () => {
    const net = Network.bootstrapped(['a'], { checkQuorum: false });
    net.elect('a');
    const s = net.node('a').rn.status();
    const f = net.node('a').rn.forceConfiguration(['a']);
    expect(f.forced).toBe(false);
    expect(f.lastIndex).toBe(s.lastIndex);
    expect(net.node('a').rn.status().term).toBe(s.term);
    expect(net.node('a').rn.status().role).toBe('leader');
  });

  it('a voter list without this node, with a non-member or a duplicate is a ConfigError and changes nothing', () => {
    const net = lostQuorum();
    const rn: RawNode = net.node('a').rn;
    const s = rn.status();
    const configError = expect.objectContaining({ name: 'ConfigError' });
    expect(() => rn.forceConfiguration(['b'])).toThrow(configError);
    expect(() => rn.forceConfiguration(['a', 'z'])).toThrow(/z is not a member/);
    expect(() => rn.forceConfiguration(['a', 'a'])).toThrow(configError);
    expect(() => rn.forceConfiguration([])).toThrow(configError);
    expect(rn.status()).toMatchObject({ term: s.term, lastIndex: s.lastIndex, commit: s.commit });
    expect(rn.hasReady()).toBe(false);
  });

  it('may be forced while a Ready awaits advance() once its committed entries are applied: the forced ones come next', () => {
    const net = lostQuorum();
    const a = net.node('a');
    a.rn.propose(bytes('x'));
    // In flight: x to persist. The host persists it, and only then advances.
    const rd = a.rn.ready();
    const f = a.rn.forceConfiguration(['a']);
    expect(f.previousLastIndex).toBe(rd.entries[0]!.index);
    a.storage.append(rd.entries);
    if (rd.hardState) a.storage.setHardState(rd.hardState);
    a.rn.advance();
    const next = a.rn.ready();
    expect(next.entries.map((e) => e.index)).toEqual([f.lastIndex - 1, f.lastIndex]);
    expect(next.hardState).toMatchObject({ term: f.term, commit: f.lastIndex });
    a.storage.append(next.entries);
    if (next.hardState) a.storage.setHardState(next.hardState);
    for (const e of next.committedEntries) {
      a.applied.push(e);
      if (e.type === 'confChange') a.rn.applyConfChange(decodeConfChange(e.data));
    }
    a.rn.advance();
    net.stabilize();
    expect(a.rn.status().confState.voters).toEqual(['a']);
    net.elect('a');
    expect(a.rn.status().role).toBe('leader');
    expect(appliedData(a)).toContain('x');
  });
});
