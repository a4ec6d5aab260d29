import { CompactedError, type Entry, type RaftLogReader, emptyConfState } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { RaftLog } from '../src/log/raft-log.js';
import { MemoryStorage } from '../src/memory-storage.js';
import type { RawNode } from '../src/raw-node.js';
import { Network, appliedData, bytes, snapshotOf } from './network.js';

const ent = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: bytes(`${index}`) });

/** A log whose storage holds a snapshot at 5 (term 2) and entries 6..8, with 9 (term 3) unstable. */
function compactedLog(): RaftLog {
  const st = new MemoryStorage();
  st.append([ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 2), ent(6, 2), ent(7, 3), ent(8, 3)]);
  st.createSnapshot(5, emptyConfState(), bytes('s'));
  st.compact(5);
  const log = new RaftLog(st);
  log.append([ent(9, 3)]);
  return log;
}

describe('RaftLog term lookups', () => {
  it('a compacted index has no term: undefined, 0 or false by lookup, CompactedError only from term()', () => {
    const log = compactedLog();
    expect(log.firstIndex()).toBe(6);
    for (const i of [1, 4]) {
      expect(log.termOrUndefined(i)).toBeUndefined();
      expect(log.termOrZero(i)).toBe(0);
      expect(log.matchTerm(i, 2)).toBe(false);
      expect(() => log.term(i)).toThrow(CompactedError);
    }
    // The snapshot's own index keeps its term, stored and unstable entries theirs, and past the end is 0.
    expect(log.term(5)).toBe(2);
    expect(log.matchTerm(5, 2)).toBe(true);
    expect(log.term(7)).toBe(3);
    expect(log.termOrUndefined(9)).toBe(3);
    expect(log.termOrUndefined(10)).toBe(0);
    expect(log.matchTerm(10, 0)).toBe(false);
  });

  it("a follower's conflict hint stops at the compaction point with term 0", () => {
    const log = compactedLog();
    expect(log.findConflictByTerm(9, 2)).toEqual({ index: 6, term: 2 });
    expect(log.findConflictByTerm(9, 1)).toEqual({ index: 4, term: 0 });
    expect(log.findConflictByTerm(3, 5)).toEqual({ index: 3, term: 0 });
  });

  it("a storage's own CompactedError reads as compacted; its other errors propagate", () => {
    const st = new MemoryStorage();
    st.append([ent(1, 1), ent(2, 1)]);
    const failing = (err: Error): RaftLogReader =>
      Object.assign(Object.create(st) as RaftLogReader, {
        term: () => {
          throw err;
        },
      });
    const compacted = new RaftLog(failing(new CompactedError('gone')));
    expect(compacted.termOrUndefined(1)).toBeUndefined();
    expect(compacted.matchTerm(1, 1)).toBe(false);
    expect(() => compacted.term(1)).toThrow(CompactedError);
    const broken = new RaftLog(failing(new Error('disk on fire')));
    expect(() => broken.termOrZero(1)).toThrow(/disk on fire/);
    expect(() => broken.matchTerm(1, 1)).toThrow(/disk on fire/);
  });

  it('a leader whose log is compacted past a follower sends it a snapshot, and resumes appends after it', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    net.isolate('c');
    for (let i = 0; i < 5; i++) net.node('a').rn.propose(bytes(`v${i}`));
    net.stabilize();
    const a = net.node('a');
    snapshotOf(a);
    expect(a.storage.firstIndex()).toBeGreaterThan(net.node('c').rn.status().lastIndex + 1);
    net.heal();
    net.node('a').rn.propose(bytes('after'));
    net.stabilize();
    expect(net.delivered.some((m) => m.type === 'snap' && m.to === 'c')).toBe(true);
    expect(net.node('c').rn.status().commit).toBe(a.rn.status().commit);
    expect(appliedData(net.node('c'))).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'after']);
  });
});

describe('RawNode.hasReady', () => {
  it('reports a new commit index, role or leader and nothing once the Ready that carried them is advanced', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    const b: RawNode = net.node('b').rn;
    expect(b.hasReady()).toBe(false);
    net.node('a').rn.propose(bytes('x'));
    net.stabilize();
    const rds = net.node('b').readies;
    // The commit index reached b alone (no entries) in some Ready, as a hard state change.
    expect(rds.some((rd) => rd.entries.length === 0 && rd.hardState !== undefined)).toBe(true);
    expect(b.hasReady()).toBe(false);
    // Pre-vote changes the role and forgets the leader, not the term or vote: soft state only.
    b.campaign();
    expect(b.hasReady()).toBe(true);
    const rd = b.ready();
    expect(rd.softState).toEqual({ lead: '', role: 'preCandidate' });
    expect(rd.hardState).toBeUndefined();
    expect(rd.mustSync).toBe(false);
    expect(b.hasReady()).toBe(false);
    b.advance();
    expect(b.hasReady()).toBe(false);
  });
});
