import { describe, expect, it } from 'vitest';
import { NOOP, VPaxosEngine } from '../src/engine.js';
import { AcceptorStateLostError, NotPrimaryError, StaleBallotError } from '../src/errors.js';
import { Harness, dec, enc } from './harness.js';

/** A group {a, b} whose ballot 1 (led by a) is active and chose `values`. */
function running(values: string[] = []): Harness {
  const h = new Harness(['a', 'b', 'c']);
  h.elect('a', 1, 0, [], ['a', 'b']);
  for (const v of values) h.e('a').propose(enc(v));
  h.pump();
  return h;
}

describe('acceptor', () => {
  it('phase 1b: promises the ballot durably before the reply, reporting votes at prevBallot or later', () => {
    const h = running(['x', 'y']);
    const c = new Harness(['z']);
    void c;
    h.e('b').step('c', { type: 'p1a', ballot: 5, prevBallot: 1, from: 1 });
    const rd = h.e('b').ready();
    expect(rd.persist.maxBallot).toBe(5);
    const reply = rd.messages.find((m) => m.msg.type === 'p1b');
    expect(reply?.msg).toMatchObject({ type: 'p1b', ballot: 5 });
    const votes = reply?.msg.type === 'p1b' ? reply.msg.votes : [];
    expect(votes.map((v) => dec(v.value))).toEqual(['x', 'y']);
  });

  it('phase 1a below maxBallot: refused with the promised ballot, and counted', () => {
    const h = running();
    h.e('b').step('c', { type: 'p1a', ballot: 5, prevBallot: 1, from: 1 });
    h.e('b').ready();
    h.e('b').step('c', { type: 'p1a', ballot: 3, prevBallot: 1, from: 1 });
    const rd = h.e('b').ready();
    expect(rd.messages).toEqual([{ to: 'c', msg: { type: 'reject', ballot: 3, maxBallot: 5 } }]);
    expect(h.e('b').stats.staleIgnored.p1a).toBe(1);
  });

  it('never votes below maxBallot: a 2a of an older ballot is refused and leaves no vote', () => {
    const h = running();
    h.e('b').step('c', { type: 'p1a', ballot: 5, prevBallot: 1, from: 1 });
    h.e('b').ready();
    h.e('b').step('a', { type: 'p2a', ballot: 1, entries: [{ slot: 1, value: enc('late') }], commit: 0, round: 0 });
    const rd = h.e('b').ready();
    expect(rd.persist.votes).toEqual([]);
    expect(h.e('b').vote(1)).toBeUndefined();
    expect(rd.messages[0]?.msg.type).toBe('reject');
    expect(h.e('b').stats.staleIgnored.p2a).toBe(1);
  });

  it('a chosen value is never overwritten by a later 2a', () => {
    const h = running(['x']);
    expect(h.e('b').vote(1)?.chosen).toBe(true);
    h.e('b').step('c', { type: 'p2a', ballot: 9, entries: [{ slot: 1, value: enc('other') }], commit: 0, round: 0 });
    expect(dec(h.e('b').vote(1)?.value as Uint8Array)).toBe('x');
  });

  it('a restarted acceptor keeps its promise and its votes', () => {
    const h = running(['x']);
    h.e('b').step('c', { type: 'p1a', ballot: 7, prevBallot: 1, from: 1 });
    h.pump();
    const b = h.restart('b');
    expect(b.promised()).toBe(7);
    expect(dec(b.vote(1)?.value as Uint8Array)).toBe('x');
    b.step('a', { type: 'p2a', ballot: 1, entries: [{ slot: 2, value: enc('late') }], commit: 1, round: 0 });
    expect(b.vote(2)).toBeUndefined();
  });
});

describe('primary', () => {
  it('serves only after activated: a proposal before activation is refused with NotPrimaryError', () => {
    const h = new Harness(['a', 'b']);
    h.elect('a', 1, 0, [], ['a', 'b'], false);
    expect(h.completes).toEqual([{ node: 'a', ballot: 1 }]);
    expect(() => h.e('a').propose(enc('x'))).toThrow(NotPrimaryError);
    h.e('a').activate(1);
    expect(h.e('a').propose(enc('x'))).toBe(1);
  });

  it('an inactive ballot has no effect: activate of another ballot or before complete is ignored', () => {
    const h = new Harness(['a', 'b']);
    h.down.add('b');
    h.e('a').startBallot({ ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['a', 'b'] });
    h.pump();
    expect(h.completes).toEqual([]);
    h.e('a').activate(1);
    expect(h.e('a').isActive()).toBe(false);
    h.e('a').activate(2);
    expect(h.e('a').isActive()).toBe(false);
  });

  it('write quorum is every acceptor: nothing is chosen while one acceptor does not vote', () => {
    const h = running();
    h.down.add('b');
    h.e('a').propose(enc('x'));
    h.pump();
    expect(h.values('a')).toEqual([]);
    expect(h.e('a').lagging(1)).toEqual(['b']);
    h.down.delete('b');
    h.e('a').tick();
    h.pump();
    expect(h.values('a')).toEqual(['x']);
    expect(h.values('b')).toEqual(['x']);
  });

  it('several slots in flight go out in one 2a per acceptor and apply in slot order', () => {
    const h = running();
    h.sent.length = 0;
    for (const v of ['1', '2', '3']) h.e('a').propose(enc(v));
    h.pump();
    const toB = h.sent.filter((s) => s.to === 'b' && s.msg.type === 'p2a' && s.msg.entries.length > 0);
    expect(toB).toHaveLength(1);
    expect(h.values('a')).toEqual(['1', '2', '3']);
    expect(h.values('b')).toEqual(['1', '2', '3']);
    expect(h.applied.get('a')?.map((p) => p.slot)).toEqual([1, 2, 3]);
  });

  it('VFindSafe: a value voted at the previous ballot is re-proposed first, in the new ballot', () => {
    const h = running(['x']);
    // Slot 2 reaches b only: not chosen in ballot 1, but b's vote makes it the only safe value.
    h.filter = (_f, to, m) => to === 'a' && m.type === 'p2a';
    h.e('a').propose(enc('y'));
    h.pump();
    expect(h.values('b')).toEqual(['x']);
    h.down.add('a');
    h.filter = () => false;
    h.elect('b', 2, 1, ['a', 'b'], ['b', 'c']);
    expect(h.e('b').isActive()).toBe(true);
    expect(h.values('b')).toEqual(['x', 'y']);
    expect(h.values('c')).toEqual(['x', 'y']);
  });

  it('VFindSafe: all values are safe where the previous read quorum voted nothing (a gap becomes a no-op)', () => {
    const h = running(['x']);
    // Slot 2 reaches no backup; slot 3 reaches b only.
    h.filter = (_f, _to, m) => m.type === 'p2a' && m.entries.some((e) => e.slot === 2);
    h.e('a').propose(enc('lost'));
    h.pump();
    h.filter = (_f, to, m) => to === 'a' && m.type === 'p2a';
    h.e('a').propose(enc('z'));
    h.pump();
    h.down.add('a');
    h.filter = () => false;
    h.elect('b', 2, 1, ['a', 'b'], ['b', 'c']);
    const slots = h.applied.get('b') ?? [];
    expect(slots.map((p) => p.slot)).toEqual([1, 2, 3]);
    expect(slots[1]?.value).toEqual(NOOP);
    expect(dec(slots[2]?.value as Uint8Array)).toBe('z');
  });

  it('VFindSafe ignores votes older than prevBallot: a leftover vote is not resurrected over a gap', () => {
    const e = new VPaxosEngine({
      id: 'b',
      state: { maxBallot: 3, votes: [{ slot: 1, ballot: 1, value: enc('old'), chosen: false }] },
    });
    e.step('c', { type: 'p1a', ballot: 4, prevBallot: 3, from: 1 });
    const reply = e.ready().messages[0]?.msg;
    expect(reply).toEqual({ type: 'p1b', ballot: 4, votes: [], compacted: 0 });
  });

  it('a primary deposed by a higher ballot fails its pending work with StaleBallotError', () => {
    const h = running();
    h.e('a').step('c', { type: 'p2a', ballot: 4, entries: [], commit: 0, round: 0 });
    h.pump();
    expect(h.e('a').isActive()).toBe(false);
    expect(h.deposed[0]?.error).toBeInstanceOf(StaleBallotError);
  });

  it('a reject with a higher ballot makes the primary step down', () => {
    const h = running();
    h.e('b').step('c', { type: 'p1a', ballot: 6, prevBallot: 1, from: 1 });
    h.e('a').propose(enc('x'));
    h.pump();
    expect(h.e('a').isActive()).toBe(false);
    expect((h.deposed[0]?.error as StaleBallotError).newerBallot).toBe(6);
    expect(h.values('a')).toEqual([]);
  });

  it('a primary not among its own acceptors, or a ballot below the promise, is refused', () => {
    const e = new VPaxosEngine({ id: 'a', state: { maxBallot: 5, votes: [] } });
    expect(() => e.startBallot({ ballot: 4, prevBallot: 0, prevAcceptors: [], acceptors: ['a'] })).toThrow(
      StaleBallotError,
    );
    expect(() => e.startBallot({ ballot: 6, prevBallot: 0, prevAcceptors: [], acceptors: ['b'] })).toThrow(RangeError);
    // Phase 1 is skipped only when no ballot was ever active.
    expect(() => e.startBallot({ ballot: 6, prevBallot: 2, prevAcceptors: [], acceptors: ['a'] })).toThrow(RangeError);
  });

  it('the lone acceptor of the previous ballot without its promise of it lost its state, and leads nothing', () => {
    // Its store says it promised nothing above 1, though it led ballot 2 alone (a wiped data directory).
    const wiped = new VPaxosEngine({ id: 'a', state: { maxBallot: 1, votes: [] } });
    expect(() => wiped.startBallot({ ballot: 3, prevBallot: 2, prevAcceptors: ['a'], acceptors: ['a'] })).toThrow(
      AcceptorStateLostError,
    );
    expect(wiped.leading()).toBeUndefined();
    // With its promise (a plain restart), it leads the next ballot: Phase 1 reads its own votes.
    const restarted = new VPaxosEngine({ id: 'a', state: { maxBallot: 2, votes: [] } });
    restarted.startBallot({ ballot: 3, prevBallot: 2, prevAcceptors: ['a'], acceptors: ['a', 'b'] });
    expect(restarted.leading()?.ballot).toBe(3);
    // One of several acceptors is not judged: another's state may hold what it lacks.
    const other = new VPaxosEngine({ id: 'a', state: { maxBallot: 0, votes: [] } });
    other.startBallot({ ballot: 3, prevBallot: 2, prevAcceptors: ['a', 'b'], acceptors: ['a'] });
    expect(other.leading()?.ballot).toBe(3);
  });

  it('messages of an unknown ballot are ignored and counted', () => {
    const h = running();
    h.e('a').step('b', { type: 'p2b', ballot: 9, match: 100, round: 1 });
    h.e('a').step('b', { type: 'p1b', ballot: 9, votes: [], compacted: 0 });
    expect(h.e('a').stats.unknownIgnored).toBe(2);
    expect(h.e('a').committed()).toBe(0);
  });
});

describe('catch-up', () => {
  it('a lagging backup fetches the missing chosen slots from the primary', () => {
    const h = running(['1', '2']);
    h.e('a').propose(enc('3'));
    h.pump();
    // c joins ballot 2 with nothing: a re-proposes nothing, c must catch up 1..3 before complete.
    h.elect('a', 2, 1, ['a', 'b'], ['a', 'c']);
    expect(h.sent.some((s) => s.from === 'c' && s.msg.type === 'catchUpReq')).toBe(true);
    expect(h.e('a').isActive()).toBe(true);
    expect(h.values('c')).toEqual(['1', '2', '3']);
    expect(h.e('c').committed()).toBe(3);
  });

  it('a backup that missed chosen values (lost 2a) catches up from the commit it sees', () => {
    const h = running(['1']);
    h.e('a').propose(enc('2'));
    h.filter = (_f, to, m) => to === 'b' && m.type === 'p2a';
    h.pump();
    h.filter = () => false;
    h.e('a').tick();
    h.pump();
    expect(h.values('b')).toEqual(['1', '2']);
  });
});

describe('catch-up requests', () => {
  it('are sent once per gap on p2a, and again on each heartbeat round while the gap lasts', () => {
    const e = new VPaxosEngine({ id: 'b' });
    const asks = (): number => e.ready().messages.filter((m) => m.msg.type === 'catchUpReq').length;
    e.step('a', { type: 'p2a', ballot: 1, entries: [], commit: 5, round: 0 });
    expect(asks()).toBe(1);
    e.step('a', { type: 'p2a', ballot: 1, entries: [{ slot: 9, value: enc('x') }], commit: 5, round: 0 });
    expect(asks()).toBe(0);
    e.step('a', { type: 'p2a', ballot: 1, entries: [], commit: 5, round: 3 });
    expect(asks()).toBe(1);
  });
});

describe('reads', () => {
  it('a linearizable read is confirmed only after every acceptor answered its round', () => {
    const h = running(['x']);
    h.down.add('b');
    h.e('a').read(1);
    h.pump();
    expect(h.reads).toEqual([]);
    h.down.delete('b');
    h.e('a').read(2);
    h.pump();
    expect(h.reads.map((r) => r.id)).toEqual([1, 2]);
    expect(h.reads[0]?.index).toBe(1);
  });

  it('reads of one batch share a round, each served at its own index; a read after the batch left starts another', () => {
    const h = running(['x']);
    const a = h.e('a');
    /** The heartbeat rounds of the p2a the primary sent since `from` (an index of `h.sent`). */
    const rounds = (from: number): number[] => [
      ...new Set(
        h.sent
          .slice(from)
          .flatMap((s) => (s.from === 'a' && s.msg.type === 'p2a' && s.msg.round > 0 ? [s.msg.round] : [])),
      ),
    ];
    let from = h.sent.length;
    a.read(1);
    a.propose(enc('y'));
    a.read(2);
    a.read(3);
    h.pump();
    expect(rounds(from)).toHaveLength(1);
    expect(h.reads.map((r) => [r.id, r.index])).toEqual([
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
    // That round's p2a left before this read arrived: it needs a round of its own.
    from = h.sent.length;
    a.read(4);
    h.pump();
    expect(rounds(from)).toHaveLength(1);
    expect(rounds(from)[0]).toBeGreaterThan(rounds(0)[0] ?? 0);
    expect(h.reads.at(-1)).toMatchObject({ id: 4, index: 2 });
  });

  it('a read on a backup is refused with NotPrimaryError naming the primary', () => {
    const h = running(['x']);
    try {
      h.e('b').read(1);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(NotPrimaryError);
      expect((e as NotPrimaryError).primaryId).toBe('a');
    }
  });

  it('heartbeat rounds confirm the lease only while the ballot is active', () => {
    const h = new Harness(['a', 'b']);
    h.e('a').startBallot({ ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['a', 'b'] });
    h.pump();
    h.e('a').activate(1);
    h.e('a').tick();
    const rd = h.e('a').ready();
    expect(rd.rounds).toEqual([2]);
  });
});

describe('ballots', () => {
  it('a primary promises its own ballot durably before anything of it leaves', () => {
    const e = new VPaxosEngine({ id: 'a' });
    e.startBallot({ ballot: 3, prevBallot: 2, prevAcceptors: ['b'], acceptors: ['a', 'b'] });
    const rd = e.ready();
    expect(rd.persist.maxBallot).toBe(3);
    expect(rd.messages.map((m) => m.msg.type)).toEqual(['p1a']);
  });

  it('a restarted primary cannot lead the same ballot again (it would not know what it proposed in it)', () => {
    const h = running(['x']);
    h.e('b').startBallot({ ballot: 2, prevBallot: 1, prevAcceptors: ['a', 'b'], acceptors: ['b', 'c'] });
    h.pump();
    const b = h.restart('b');
    expect(() => b.startBallot({ ballot: 2, prevBallot: 1, prevAcceptors: ['a', 'b'], acceptors: ['b', 'c'] })).toThrow(
      StaleBallotError,
    );
  });
});
