import { describe, expect, it } from 'vitest';
import { VPaxosEngine } from '../src/engine.js';
import { Harness, dec, enc } from './harness.js';

const tenValues = Array.from({ length: 10 }, (_, i) => `v${i + 1}`);

/** A group {a, b} whose ballot 1 (led by a) is active and chose `values`; c is a spare replica. */
function running(values: string[]): Harness {
  const h = new Harness(['a', 'b', 'c']);
  h.elect('a', 1, 0, [], ['a', 'b']);
  for (const v of values) h.e('a').propose(enc(v));
  h.pump();
  return h;
}

describe('compaction point', () => {
  it('drops the votes up to the point durably, never past what was handed to the state machine', () => {
    const h = running(tenValues);
    const b = h.e('b');
    expect(b.committed()).toBe(10);
    expect(b.compact(6)).toBe(6);
    const rd = b.ready();
    expect(rd.persist.compactTo).toBe(6);
    expect(b.vote(6)).toBeUndefined();
    expect(dec(b.vote(7)?.value as Uint8Array)).toBe('v7');
    expect(b.heldVotes()).toBe(4);
    // v7..v10: the bytes of the values it still holds.
    expect(b.heldVoteBytes()).toBe(2 + 2 + 2 + 3);
    // Slots not yet applied stay: the point is clamped to the applied (emitted) prefix.
    expect(b.compact(99)).toBe(10);
    // A point is never lowered.
    expect(b.compact(3)).toBe(10);
  });

  it('a restart resumes from the compaction point; a state machine behind it is refused loudly', () => {
    const h = running(tenValues);
    h.e('b').compact(8);
    h.pump();
    expect(h.durable.get('b')?.compacted).toBe(8);
    expect(h.durable.get('b')?.votes.map((v) => v.slot)).toEqual([9, 10]);
    const again = h.restart('b');
    expect(again.committed()).toBe(10);
    expect(again.compactedThrough()).toBe(8);
    const state = structuredClone(h.durable.get('b'));
    expect(() => new VPaxosEngine({ id: 'b', applied: 5, ...(state ? { state } : {}) })).toThrow(
      /compacted its votes through 8/,
    );
  });

  it('Phase 1 after compaction: the 1b reports its compaction point and the votes above it', () => {
    const h = running(tenValues);
    h.e('b').compact(8);
    h.pump();
    h.e('b').step('c', { type: 'p1a', ballot: 5, prevBallot: 1, from: 11 });
    const rd = h.e('b').ready();
    const reply = rd.messages.find((m) => m.msg.type === 'p1b')?.msg;
    expect(reply).toMatchObject({ type: 'p1b', ballot: 5, compacted: 8, votes: [] });
    // The asker's commit (10) is above the point: no snapshot.
    expect(rd.snapshots).toEqual([]);
  });

  it('a new primary behind a compacted acceptor receives its snapshot, then finds the right safe value above it', () => {
    const h = running(tenValues);
    // Slot 11 is voted at b only (a's own vote is lost): not chosen, but it may have been, so it is the only safe value.
    h.filter = (_from, to, msg) => to === 'a' && msg.type === 'p2a' && msg.entries.some((e) => e.slot === 11);
    h.e('a').propose(enc('v11'));
    h.pump();
    h.filter = () => false;
    expect(h.e('b').vote(11)).toMatchObject({ ballot: 1, chosen: false });
    h.e('b').compact(10);
    h.pump();
    h.down.add('a');
    // c knows nothing: its Phase 1 over {a, b} is answered by b, which compacted through 10.
    h.elect('c', 2, 1, ['a', 'b'], ['c', 'b']);
    expect(h.snapshots).toEqual([{ from: 'b', to: 'c', index: 10 }]);
    expect(h.completes).toContainEqual({ node: 'c', ballot: 2 });
    expect(h.e('c').isActive()).toBe(true);
    expect(h.values('c')).toEqual([...tenValues, 'v11']);
    expect(h.values('b')).toEqual([...tenValues, 'v11']);
    h.e('c').propose(enc('v12'));
    h.pump();
    expect(h.values('b').at(-1)).toBe('v12');
  });

  it('a new acceptor lacking slots below the primary\u2019s compaction point is sent a snapshot, then the slots after it', () => {
    const h = running(tenValues);
    h.e('a').compact(7);
    h.pump();
    // Ballot 2 replaces b by c, a new replica with nothing.
    h.elect('a', 2, 1, ['a', 'b'], ['a', 'c']);
    expect(h.snapshots).toEqual([{ from: 'a', to: 'c', index: 10 }]);
    expect(h.e('c').compactedThrough()).toBe(10);
    expect(h.durable.get('c')?.compacted).toBe(10);
    expect(h.e('a').isActive()).toBe(true);
    h.e('a').propose(enc('v11'));
    h.pump();
    expect(h.values('c')).toEqual([...tenValues, 'v11']);
  });

  it('a backup whose catch-up starts above the primary\u2019s compaction point gets the votes, not a snapshot', () => {
    const h = running(tenValues);
    h.e('a').compact(4);
    h.pump();
    h.elect('a', 2, 1, ['a', 'b'], ['a', 'c']);
    // c asks from slot 1, below the point: a snapshot. Then a later gap above the point is filled slot by slot.
    expect(h.snapshots.length).toBe(1);
    h.down.add('c');
    for (const v of ['w1', 'w2']) h.e('a').propose(enc(v));
    h.pump();
    h.down.delete('c');
    // c missed w1 and w2 (writes stalled: c is an acceptor); a heartbeat resends them.
    h.e('a').tick();
    h.pump();
    expect(h.snapshots.length).toBe(1);
    expect(h.values('c').slice(-2)).toEqual(['w1', 'w2']);
  });
});
