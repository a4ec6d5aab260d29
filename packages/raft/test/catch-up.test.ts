import type { Entry } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { Network, appliedData, bytes } from './network.js';

const size = (ents: readonly Entry[]): number => ents.reduce((n, e) => n + e.data.length, 0);

/** Twenty 10-byte proposals committed by a and b while c is cut off. */
function lagging(options: ConstructorParameters<typeof Network>[1]): Network {
  const net = new Network(['a', 'b', 'c'], { checkQuorum: false, ...options });
  net.elect('a');
  net.isolate('c');
  for (let i = 0; i < 20; i++) net.node('a').rn.propose(bytes(`entry-${String(i).padStart(4, '0')}`));
  net.stabilize();
  expect(net.node('a').rn.status().commit).toBeGreaterThanOrEqual(21);
  return net;
}

describe('a follower catching up', () => {
  it('is handed at most maxCommittedSizePerReady bytes of committed entries per Ready (at least one), each once and in order', () => {
    const net = lagging({ maxCommittedSizePerReady: 25 });
    const c = net.node('c');
    const before = c.readies.length;
    net.heal();
    net.tickAll(3);
    const handed = c.readies.slice(before).map((rd) => rd.committedEntries);
    // The whole backlog reached c in one append, yet it was applied over several Readies.
    expect(handed.filter((ents) => ents.length > 0).length).toBeGreaterThan(5);
    for (const ents of handed) expect(ents.length <= 1 || size(ents) <= 25).toBe(true);
    expect(appliedData(c)).toEqual(appliedData(net.node('a')));
    expect(appliedData(c)).toHaveLength(20);
    const indexes = c.applied.map((e) => e.index);
    expect(indexes).toEqual([...indexes].sort((x, y) => x - y));
    expect(new Set(indexes).size).toBe(indexes.length);
  });

  it('while applying is paused, it still appends, acknowledges and learns the commit, and applies everything once resumed', () => {
    const net = lagging({ maxCommittedSizePerReady: 25 });
    const a = net.node('a');
    const c = net.node('c');
    c.rn.pauseApplying(true);
    net.heal();
    net.tickAll(3);
    // c holds the backlog and knows it committed (the leader counts c's acknowledgements), yet applied none of it.
    expect(c.rn.status().commit).toBe(a.rn.status().commit);
    expect(a.rn.status().progress.c?.match).toBe(a.rn.status().lastIndex);
    expect(appliedData(c)).toHaveLength(0);
    expect(c.rn.hasReady()).toBe(false);
    c.rn.pauseApplying(false);
    expect(c.rn.hasReady()).toBe(true);
    net.tickAll(3);
    expect(appliedData(c)).toEqual(appliedData(a));
    expect(appliedData(c)).toHaveLength(20);
  });

  it('with pipelined Readies, each outstanding Ready carries its own bounded slice of the committed entries', () => {
    const net = lagging({ maxCommittedSizePerReady: 25, asyncStorageWrites: true, maxOutstandingReadies: 3 });
    const a = net.node('a');
    const c = net.node('c');
    net.heal();
    // Drive a and c by hand (b holds everything already) until c holds its backlog durably and is handed
    // committed entries; from then on c takes Readies without acknowledging them.
    const taken: Entry[][] = [];
    for (let round = 0; round < 100 && taken.length < 3; round++) {
      net.tick('a');
      while (net.processReady('a')) {
        /* persist, queue the messages */
      }
      for (const m of net.takePending()) if (m.to === 'c') c.rn.step(m);
      while (taken.length < 3 && c.rn.hasReady()) {
        const rd = c.rn.ready();
        c.storage.append(rd.entries);
        if (rd.hardState) c.storage.setHardState(rd.hardState);
        if (rd.committedEntries.length > 0 || taken.length > 0) {
          taken.push(rd.committedEntries);
          continue;
        }
        for (const m of rd.messages) a.rn.step(m);
        c.rn.advance();
      }
    }
    // Three Readies out at once: consecutive, disjoint, each within the bound.
    expect(taken).toHaveLength(3);
    const first = taken.flat().map((e) => e.index);
    expect(first).toEqual(Array.from({ length: first.length }, (_, i) => (first[0] as number) + i));
    for (const ents of taken) {
      expect(ents.length).toBeGreaterThan(0);
      expect(ents.length <= 1 || size(ents) <= 25).toBe(true);
    }
    for (let i = 0; i < 3; i++) c.rn.advance();
    // The rest follows, once each.
    const rest: Entry[] = [];
    while (c.rn.hasReady()) {
      const rd = c.rn.ready();
      rest.push(...rd.committedEntries);
      c.rn.advance();
    }
    const all = [...first, ...rest.map((e) => e.index)];
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => (first[0] as number) + i));
    expect(all.at(-1)).toBe(a.rn.status().commit);
  });

  it('gets at most maxCatchUpInflightBytes of the backlog in flight (at least one append), and everything in the end', () => {
    const net = lagging({ maxSizePerMsg: 10, maxInflightBytes: 1000, maxCatchUpInflightBytes: 30 });
    const a = net.node('a');
    const c = net.node('c');
    const before = a.readies.length;
    net.heal();
    net.tickAll(5);
    // In the synchronous network every append of a Ready is in flight together: the backlog leaves in
    // Readies of about three 10-byte appends (without the catch-up window: all of it in one Ready).
    const perReady = a.readies
      .slice(before)
      .map((rd) => rd.messages.filter((m) => m.to === 'c' && m.type === 'app' && m.entries.length > 0));
    // (A heartbeat answer may let one more through: see the next test.)
    expect(Math.max(...perReady.map((ms) => ms.length))).toBeLessThanOrEqual(4);
    expect(perReady.filter((ms) => ms.length > 0).length).toBeGreaterThan(5);
    expect(appliedData(c)).toEqual(appliedData(a));
    expect(appliedData(c)).toHaveLength(20);
  });

  it('appends lost from a full catch-up window do not stall it: a heartbeat answer lets one through, whose rejection restarts', () => {
    const net = lagging({ maxSizePerMsg: 10, maxInflightBytes: 1000, maxCatchUpInflightBytes: 30 });
    const a = net.node('a');
    const c = net.node('c');
    // c is back, but the first appends of its backlog sent in replicate state are lost: they fill its window.
    let lost = 0;
    net.drop = (m) => {
      const replicating = a.rn.status().progress.c?.state === 'replicate';
      if (m.to === 'c' && m.type === 'app' && m.entries.length > 0 && replicating && lost < 3) {
        lost++;
        return true;
      }
      return false;
    };
    net.tickAll(10);
    expect(lost).toBe(3);
    expect(appliedData(c)).toEqual(appliedData(a));
    expect(appliedData(c)).toHaveLength(20);
  });

  it('a follower that keeps up is not held to the catch-up window', () => {
    const net = new Network(['a', 'b', 'c'], {
      checkQuorum: false,
      maxSizePerMsg: 10,
      maxInflightBytes: 1000,
      maxCatchUpInflightBytes: 30,
    });
    net.elect('a');
    const a = net.node('a');
    // Nothing is acknowledged: nothing new commits, and b is sent each entry as it is appended.
    net.drop = () => true;
    for (let i = 0; i < 10; i++) {
      a.rn.propose(bytes(`entry-${String(i).padStart(4, '0')}`));
      net.processReady('a');
    }
    const toB = net.takePending().filter((m) => m.to === 'b' && m.type === 'app' && m.entries.length > 0);
    expect(toB).toHaveLength(10);
    expect(a.rn.status().progress.b?.state).toBe('replicate');
  });
});
