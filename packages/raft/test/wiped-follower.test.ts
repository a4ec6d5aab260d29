import { type Message, SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, RawNode, type Status } from '../src/index.js';
import { newMessage as msg } from '../src/message.js';
import { Network, appliedData, bytes, snapshotOf, storageWithTerms } from './network.js';

const ids = ['a', 'b', 'c'];

/** A bootstrapped group led by `a`, with `writes` entries applied everywhere and `a`'s log compacted. */
function group(writes: number): Network {
  const net = Network.bootstrapped(ids, { checkQuorum: false });
  net.elect('a');
  for (let i = 0; i < writes; i++) net.node('a').rn.propose(bytes(`v${i}`));
  net.stabilize();
  return net;
}

/** Replaces `id` by a node whose storage was wiped: it bootstraps afresh (entries 1..3, the founders). */
function wipe(net: Network, id: string): void {
  const storage = new MemoryStorage();
  net.nodes.set(id, {
    id,
    rn: RawNode.bootstrap(net.opts(id), storage, ids),
    storage,
    applied: [],
    fromSnapshot: [],
    readies: [],
  });
  net.processReady(id);
}

function progressOf(net: Network, leader: string, id: string): Status['progress'][string] {
  const pr = net.node(leader).rn.status().progress[id];
  if (!pr) throw new Error(`no progress for ${id}`);
  return pr;
}

/** The messages `leader` queued, taken off the network. */
function sent(net: Network, leader: string): Message[] {
  net.processReady(leader);
  return net.takePending();
}

const reject = (index: number, hint: number, term: number): Message =>
  msg({ type: 'appResp', from: 'b', to: 'a', term, index, reject: true, rejectHint: hint, rejectTerm: 1 });

describe('a follower whose storage was wiped', () => {
  it('a follower told by a heartbeat to commit past its last index takes no commit from it and answers, flagging it', () => {
    // b holds 1..5, commit 3; the leader believes b acknowledged far more than b now holds.
    const rn = new RawNode(
      { id: 'b', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1) },
      storageWithTerms(ids, [1, 1, 1, 1, 1], 3),
    );
    rn.step(msg({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 310, index: 7 }));
    expect(rn.status().commit).toBe(3);
    expect(rn.status().lead).toBe('a');
    const resp = rn.ready().messages.find((m) => m.type === 'heartbeatResp');
    expect(resp).toMatchObject({ to: 'a', term: 2, index: 7, reject: true, rejectHint: 5 });
  });

  it('a candidate told by a heartbeat to commit past its last index follows the leader without committing', () => {
    const rn = new RawNode(
      { id: 'b', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1), preVote: false },
      storageWithTerms(ids, [1, 1], 1),
    );
    rn.campaign();
    expect(rn.status().role).toBe('candidate');
    const term = rn.status().term;
    rn.step(msg({ type: 'heartbeat', from: 'a', to: 'b', term, commit: 310 }));
    expect(rn.status().role).toBe('follower');
    expect(rn.status().commit).toBe(1);
    expect(rn.ready().messages.some((m) => m.type === 'heartbeatResp')).toBe(true);
  });

  it('a heartbeat commit within the log still commits', () => {
    const rn = new RawNode(
      { id: 'b', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1) },
      storageWithTerms(ids, [1, 1, 1, 1, 1], 3),
    );
    rn.step(msg({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 5 }));
    expect(rn.status().commit).toBe(5);
    expect(rn.ready().messages.find((m) => m.type === 'heartbeatResp')?.reject).toBe(false);
  });

  it('a leader learns a follower lost acknowledged entries from a rejection of its probe below match, and probes from the hint', () => {
    const net = group(10);
    const a = net.node('a').rn;
    const term = a.status().term;
    const match = progressOf(net, 'a', 'b').match;
    expect(match).toBe(a.status().lastIndex);
    // b was unreachable (restarting after the wipe): the leader probes it from match + 1.
    a.reportUnreachable('b');
    a.step(msg({ type: 'heartbeatResp', from: 'b', to: 'a', term }));
    const probe = sent(net, 'a').find((m) => m.type === 'app' && m.to === 'b');
    expect(probe?.index).toBe(match);

    a.step(reject(match, 3, term));
    expect(a.status().lostEntries).toBe(1);
    expect(a.status().lastLostEntries).toEqual({ id: 'b', match, hint: 3 });
    // Nothing is known to be on b any more; the next probe starts right after its hint.
    expect(progressOf(net, 'a', 'b')).toMatchObject({ match: 0, state: 'probe' });
    const again = sent(net, 'a').find((m) => m.type === 'app' && m.to === 'b');
    expect(again?.index).toBe(3);
    expect(again?.entries[0]?.index).toBe(4);
  });

  it('a stale rejection below match is still ignored, as in etcd', () => {
    const net = group(10);
    const a = net.node('a').rn;
    const term = a.status().term;
    const match = progressOf(net, 'a', 'b').match;
    // In replicate state: a reordered rejection of an old append at or below match.
    a.step(reject(match - 2, 3, term));
    a.step(reject(match, 3, term));
    expect(progressOf(net, 'a', 'b')).toMatchObject({ match, state: 'replicate' });
    // In probe state: a rejection of anything but the probe in flight.
    a.reportUnreachable('b');
    a.step(reject(match - 1, 3, term));
    expect(progressOf(net, 'a', 'b')).toMatchObject({ match, next: match + 1, state: 'probe' });
    // An answer to the probe in flight whose hint reaches match is an ordinary rejection.
    a.step(reject(match, match, term));
    expect(progressOf(net, 'a', 'b').match).toBe(match);
    expect(a.status().lostEntries).toBe(0);
    expect(sent(net, 'a').filter((m) => m.type === 'app' && m.to === 'b' && m.index < match)).toEqual([]);
  });

  it('a wiped follower catches up by snapshot while writes continue, and the leader reports it once', () => {
    const net = group(20);
    snapshotOf(net.node('a'));
    const match = progressOf(net, 'a', 'c').match;
    wipe(net, 'c');
    expect(net.node('c').rn.status().lastIndex).toBe(3);
    // Heartbeats (commit = old match) and new writes reach the wiped follower; nothing throws.
    for (let i = 0; i < 5; i++) {
      net.node('a').rn.propose(bytes(`after-${i}`));
      net.tickAll();
    }
    const a = net.node('a');
    const c = net.node('c');
    expect(c.readies.some((rd) => rd.snapshot !== undefined)).toBe(true);
    expect(appliedData(c)).toEqual(appliedData(a));
    expect(appliedData(a)).toHaveLength(25);
    expect(progressOf(net, 'a', 'c').match).toBe(a.rn.status().lastIndex);
    expect(a.rn.status().lostEntries).toBe(1);
    expect(a.rn.status().lastLostEntries).toEqual({ id: 'c', match, hint: 3 });
  });

  it('an idle leader probes a follower that refuses a heartbeat commit, so a wiped follower catches up without writes', () => {
    const net = group(20);
    snapshotOf(net.node('a'));
    const match = progressOf(net, 'a', 'c').match;
    wipe(net, 'c');
    net.tickAll(3);
    const c = net.node('c');
    expect(c.readies.some((rd) => rd.snapshot !== undefined)).toBe(true);
    expect(appliedData(c)).toEqual(appliedData(net.node('a')));
    expect(net.node('a').rn.status().lastLostEntries).toEqual({ id: 'c', match, hint: 3 });
    // A refused heartbeat alone changes nothing but the progress state: the probe's answer decides.
    const b = progressOf(net, 'a', 'b');
    const a = net.node('a').rn;
    a.step(msg({ type: 'heartbeatResp', from: 'b', to: 'a', term: a.status().term, reject: true, rejectHint: 3 }));
    expect(progressOf(net, 'a', 'b')).toMatchObject({ match: b.match, state: 'probe' });
    net.stabilize();
    expect(progressOf(net, 'a', 'b')).toMatchObject({ match: b.match, state: 'replicate' });
    expect(a.status().lostEntries).toBe(1);
  });

  it('a wiped follower catches up from the log when the leader still holds the entries it lost', () => {
    const net = group(5);
    wipe(net, 'c');
    for (let i = 0; i < 3; i++) {
      net.node('a').rn.propose(bytes(`after-${i}`));
      net.tickAll();
    }
    const c = net.node('c');
    expect(c.readies.some((rd) => rd.snapshot !== undefined)).toBe(false);
    expect(appliedData(c)).toEqual(appliedData(net.node('a')));
    expect(appliedData(c)).toHaveLength(8);
  });
});
