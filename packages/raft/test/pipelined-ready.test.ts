import { type Entry, type Message, type NodeId, SeededRandom } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, type RaftOptions, RawNode, type Ready } from '../src/index.js';
import { Network, bytes, snapshotOf, text } from './network.js';

const PIPELINED: Partial<RaftOptions> = { asyncStorageWrites: true, maxOutstandingReadies: 4, checkQuorum: false };

/** A settled three-node network led by `a`, whose engines allow several outstanding Readies. */
function pipelined(): Network {
  const net = new Network(['a', 'b', 'c'], PIPELINED);
  net.elect('a');
  return net;
}

/** Persists a Ready into `storage` as a host's write would (the test's writes complete at once). */
function persist(storage: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
}

const indexes = (ents: Entry[]): number[] => ents.map((e) => e.index);

describe('pipelined Readies (asynchronous storage writes)', () => {
  it('a new Ready carries only the entries no outstanding Ready carried, up to the cap', () => {
    const net = pipelined();
    const a = net.node('a');
    const last = a.rn.status().lastIndex;
    const taken: Ready[] = [];
    for (let i = 0; i < 4; i++) {
      a.rn.propose(bytes(`v${i}`));
      expect(a.rn.hasReady()).toBe(true);
      taken.push(a.rn.ready());
    }
    expect(taken.map((rd) => indexes(rd.entries))).toEqual([[last + 1], [last + 2], [last + 3], [last + 4]]);
    // Four outstanding: the cap. A new entry is not handed out for writing, but its appends may
    // leave (§10.2.1) in a Ready that carries nothing else.
    a.rn.propose(bytes('v4'));
    expect(a.rn.hasReady()).toBe(true);
    const light = a.rn.ready();
    expect(light.entries).toEqual([]);
    expect(light.hardState).toBeUndefined();
    expect(light.messages.map((m) => m.type)).toEqual(['app', 'app']);
    expect(light.messages.every((m) => indexes(m.entries).includes(last + 5))).toBe(true);
    expect(a.rn.hasReady()).toBe(false);
    expect(() => a.rn.ready()).toThrow(/maxOutstandingReadies/);
    for (const rd of taken) persist(a.storage, rd);
    a.rn.advance();
    expect(a.rn.hasReady()).toBe(true);
    expect(indexes(a.rn.ready().entries)).toEqual([last + 5]);
  });

  it('acknowledgements come oldest first: the leader counts itself only through the acknowledged Ready', () => {
    const net = pipelined();
    const a = net.node('a');
    const b = net.node('b');
    const last = a.rn.status().lastIndex;
    a.rn.propose(bytes('x'));
    const r1 = a.rn.ready();
    a.rn.propose(bytes('y'));
    const r2 = a.rn.ready();
    // b persists and acknowledges both entries; c hears nothing.
    for (const m of [...r1.messages, ...r2.messages]) if (m.to === 'b') b.rn.step(m);
    const bRd = b.rn.ready();
    persist(b.storage, bRd);
    b.rn.advance();
    for (const m of bRd.messages) if (m.to === 'a') a.rn.step(m);
    // a's own writes are in flight: b alone is no majority.
    expect(a.rn.status().commit).toBe(last);
    persist(a.storage, r1);
    persist(a.storage, r2);
    a.rn.advance();
    // Only the first Ready is acknowledged: x is durable on a and b, y only on b.
    expect(a.rn.status().commit).toBe(last + 1);
    a.rn.advance();
    expect(a.rn.status().commit).toBe(last + 2);
  });

  it('committed entries are handed out once, and only once durable locally', () => {
    const net = pipelined();
    const a = net.node('a');
    const before = a.rn.status().applied;
    a.rn.propose(bytes('x'));
    const r1 = a.rn.ready();
    for (const m of r1.messages) net.node(m.to).rn.step(m);
    for (const id of ['b', 'c']) net.processReady(id);
    for (const m of net.takePending()) if (m.to === 'a') a.rn.step(m);
    // Committed by b and c; a's own write is still out, so nothing is handed out for applying.
    expect(a.rn.status().commit).toBe(before + 1);
    const r2 = a.rn.ready();
    expect(r2.committedEntries).toEqual([]);
    persist(a.storage, r1);
    a.rn.advance();
    const r3 = a.rn.ready();
    expect(indexes(r3.committedEntries)).toEqual([before + 1]);
    // r3 is outstanding: the next Ready does not hand the same entry out again.
    a.rn.propose(bytes('y'));
    const r4 = a.rn.ready();
    expect(r4.committedEntries).toEqual([]);
    persist(a.storage, r2);
    a.rn.advance();
    persist(a.storage, r3);
    a.rn.advance();
    expect(a.rn.status().applied).toBe(before + 1);
  });

  it('no Ready is taken while one carrying a snapshot awaits its acknowledgement', () => {
    const net = new Network(['a', 'b', 'c'], { ...PIPELINED, snapshotChunkBytes: 1024 });
    net.elect('a');
    net.isolate('c');
    for (let i = 0; i < 10; i++) net.node('a').rn.propose(bytes(`v${i}`));
    net.stabilize();
    snapshotOf(net.node('a'));
    net.heal();
    // Deliver to c by hand: it takes the snapshot's Ready and holds it open.
    const c = net.node('c');
    net.node('a').rn.tick();
    let snapRd: Ready | undefined;
    for (let round = 0; round < 20 && snapRd === undefined; round++) {
      for (const id of ['a', 'b']) net.processReady(id);
      for (const m of net.takePending()) {
        if (m.to !== 'c') net.node(m.to).rn.step(m);
        else c.rn.step(m);
      }
      while (c.rn.hasReady()) {
        const rd = c.rn.ready();
        if (rd.snapshot) {
          snapRd = rd;
          break;
        }
        persist(c.storage, rd);
        c.rn.advance();
        for (const m of rd.messages) net.node(m.to).rn.step(m);
      }
    }
    expect(snapRd?.snapshot).toBeDefined();
    net.node('a').rn.propose(bytes('after'));
    for (let i = 0; i < 3; i++) {
      net.node('a').rn.tick();
      net.processReady('a');
      for (const m of net.takePending()) if (m.to === 'c') c.rn.step(m);
    }
    expect(c.rn.hasReady()).toBe(false);
    expect(() => c.rn.ready()).toThrow(/snapshot/);
    persist(c.storage, snapRd as Ready);
    c.rn.advance();
    expect(c.rn.hasReady()).toBe(true);
    expect(c.rn.status().applied).toBe(snapRd?.snapshot?.meta.index);
  });

  it('more than one outstanding Ready needs asynchronous storage writes', () => {
    const opts = { id: 'a', electionTick: 10, heartbeatTick: 1, random: new SeededRandom(1), maxOutstandingReadies: 2 };
    expect(() => new RawNode(opts, MemoryStorage.withVoters(['a']))).toThrow(/asyncStorageWrites/);
  });

  it('under random interleavings every node applies the same entries, each once and in order', () => {
    for (let seed = 1; seed <= 8; seed++) randomRun(seed);
  });
});

/** A message a host may send before its Ready's write is durable (see RaftHost's sendsBeforeWrite). */
const early = (m: Message): boolean => m.type === 'app' || m.type === 'heartbeat' || m.type === 'heartbeatResp';

/**
 * Three pipelined engines driven by a host-like loop under a seeded schedule: Readies are taken
 * while earlier ones are outstanding, acknowledged oldest first at random times, messages are
 * delayed and reordered; leaders change as nodes time out.
 */
function randomRun(seed: number): void {
  const rand = new SeededRandom(seed);
  const ids: NodeId[] = ['a', 'b', 'c'];
  const net = new Network(ids, { ...PIPELINED, electionTick: 8 }, seed);
  const outstanding = new Map<NodeId, { rd: Ready; held: Message[] }[]>(ids.map((id) => [id, []]));
  const applied = new Map<NodeId, string[]>(ids.map((id) => [id, []]));
  const lastApplied = new Map<NodeId, number>(ids.map((id) => [id, net.node(id).rn.status().applied]));
  let wire: Message[] = [];
  let proposed = 0;
  for (let step = 0; step < 3000; step++) {
    const id = ids[rand.int(0, ids.length - 1)] as NodeId;
    const n = net.node(id);
    const q = outstanding.get(id) as { rd: Ready; held: Message[] }[];
    switch (rand.int(0, 5)) {
      case 0:
        n.rn.tick();
        // Now and then a node campaigns at once: leaders change while Readies are outstanding.
        if (rand.int(0, 29) === 0) n.rn.campaign();
        break;
      case 1:
        if (n.rn.status().role === 'leader') n.rn.propose(bytes(`${seed}/${proposed++}`));
        break;
      case 2: {
        if (!n.rn.hasReady()) break;
        const rd = n.rn.ready();
        persist(n.storage, rd);
        wire.push(...rd.messages.filter(early));
        for (const e of rd.committedEntries) {
          expect(e.index).toBe((lastApplied.get(id) as number) + 1);
          lastApplied.set(id, e.index);
          if (e.type === 'normal' && e.data.length > 0) applied.get(id)?.push(text(e.data));
        }
        q.push({ rd, held: rd.messages.filter((m) => !early(m)) });
        break;
      }
      case 3: {
        const f = q.shift();
        if (f === undefined) break;
        wire.push(...f.held);
        n.rn.advance();
        break;
      }
      default: {
        // Deliver a random message (reordering); drop one now and then.
        if (wire.length === 0) break;
        const i = rand.int(0, wire.length - 1);
        const m = wire[i] as Message;
        wire = wire.filter((_, j) => j !== i);
        if (rand.int(0, 19) !== 0) net.node(m.to).rn.step(m);
      }
    }
  }
  // Every node's applied sequence is a prefix of the longest one: same entries, same order.
  const seqs = ids.map((id) => applied.get(id) as string[]);
  const longest = seqs.reduce((x, y) => (y.length > x.length ? y : x));
  for (const s of seqs) expect(s).toEqual(longest.slice(0, s.length));
  expect(new Set(longest).size, `seed ${seed}: an entry was applied twice`).toBe(longest.length);
}
