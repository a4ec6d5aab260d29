import { describe, expect, it } from 'vitest';
import { newMessage } from '../src/message.js';
import { Network, appliedData, bytes, snapshotOf } from './network.js';

function laggingFollower(chunk: number): Network {
  const net = new Network(['a', 'b', 'c'], { snapshotChunkBytes: chunk, checkQuorum: false });
  net.elect('a');
  net.isolate('c');
  for (let i = 0; i < 20; i++) net.node('a').rn.propose(bytes(`value-${i}`));
  net.stabilize();
  snapshotOf(net.node('a'));
  return net;
}

/** Leader `a` asked for a snapshot to the lagging `c` and its host streams it: the engine's chunks never arrive. */
function hostStreamingToC(): Network {
  const net = laggingFollower(16);
  net.heal();
  net.drop = (m) => m.type === 'snap';
  net.tick('a');
  net.stabilize();
  return net;
}

describe('snapshots', () => {
  it('a follower far behind catches up via a chunked snapshot, then the log', () => {
    const net = laggingFollower(16);
    net.heal();
    net.tickAll(3);
    const snaps = net.delivered.filter((m) => m.type === 'snap' && m.to === 'c');
    expect(snaps.length).toBeGreaterThan(3);
    expect(snaps.map((m) => m.snapOffset)).toEqual(snaps.map((_, i) => i * 16));
    expect(snaps.filter((m) => m.snapDone)).toHaveLength(1);
    net.node('a').rn.propose(bytes('after'));
    net.stabilize();
    const want = appliedData(net.node('a'));
    expect(want).toHaveLength(21);
    expect(appliedData(net.node('c'))).toEqual(want);
    expect(net.node('c').storage.snapshot().meta.index).toBe(net.node('a').storage.snapshot().meta.index);
  });

  it('a snapshot the host streamed at a later index than the engine asked for resumes probing after that index', () => {
    const net = hostStreamingToC();
    const a = net.node('a').rn;
    expect(a.status().progress.c?.state).toBe('snapshot');
    const asked = net.node('a').storage.snapshot().meta.index;
    // Writes go on meanwhile: the host's view of the state is at a later index.
    for (let i = 0; i < 5; i++) a.propose(bytes(`during-${i}`));
    net.stabilize();
    const later = a.status().commit;
    expect(later).toBeGreaterThan(asked);
    a.reportSnapshot('c', true, later);
    expect(a.status().progress.c).toMatchObject({ state: 'probe', next: later + 1 });
  });

  it('a rejection that arrives after the snapshot, before any probe, is stale: it does not send the leader back', () => {
    const net = hostStreamingToC();
    const a = net.node('a').rn;
    const at = a.status().commit;
    a.reportSnapshot('c', true, at);
    // The follower's answer to a probe made before its install, at exactly the index probing now resumes from
    // (the leader's log had not moved), delayed past the install on the network.
    const stale = newMessage({ type: 'appResp', from: 'c', to: 'a', term: a.status().term, index: at, reject: true });
    stale.rejectHint = 1;
    a.step(stale);
    expect(a.status().progress.c).toMatchObject({ state: 'probe', next: at + 1 });
    expect(a.hasReady() && a.ready().messages.some((m) => m.type === 'snap')).toBe(false);
    // Once a probe went out (a heartbeat answer unpauses it), a rejection answers it: a follower that lost the
    // snapshot again gets another.
    a.step(newMessage({ type: 'heartbeatResp', from: 'c', to: 'a', term: a.status().term }));
    const probe = a.ready().messages.find((m) => m.type === 'app' && m.to === 'c');
    expect(probe?.index).toBe(at);
    a.advance();
    const fresh = newMessage({ type: 'appResp', from: 'c', to: 'a', term: a.status().term, index: at, reject: true });
    fresh.rejectHint = 1;
    a.step(fresh);
    expect(a.status().progress.c?.state).toBe('snapshot');
  });

  it('a follower applies a snapshot only once its last chunk arrives', () => {
    const net = laggingFollower(10);
    net.heal();
    net.tick('a');
    net.stabilize();
    // Hold the chunks the leader sends on the next round.
    const held = net.delivered.filter((m) => m.type === 'snap');
    expect(held.length).toBeGreaterThan(0);
    const c = net.node('c');
    expect(c.readies.some((rd) => rd.snapshot)).toBe(true);

    const net2 = laggingFollower(10);
    net2.heal();
    net2.drop = (m) => m.type === 'snap';
    net2.tick('a');
    net2.stabilize();
    const chunks = held.map((m) => ({ ...m }));
    const c2 = net2.node('c');
    for (const m of chunks.slice(0, -1)) {
      c2.rn.step(m);
      const rd = c2.rn.hasReady() ? c2.rn.ready() : undefined;
      expect(rd?.snapshot).toBeUndefined();
      c2.rn.advance();
    }
    c2.rn.step(chunks[chunks.length - 1] as (typeof chunks)[number]);
    const rd = c2.rn.ready();
    expect(rd.snapshot?.data).toEqual(net2.node('a').storage.snapshot().data);
    expect(rd.messages.find((m) => m.type === 'appResp')?.index).toBe(rd.snapshot?.meta.index);
  });

  it('lost chunks never install a partial snapshot and the leader retries', () => {
    const net = laggingFollower(8);
    net.heal();
    let dropped = 0;
    // Lose the second chunk of the first attempt and the last chunk of the second.
    net.drop = (m) => {
      if (m.type !== 'snap') return false;
      if (dropped === 0 && m.snapOffset === 8) return ++dropped > 0;
      if (dropped === 1 && m.snapDone) return ++dropped > 0;
      return false;
    };
    net.tickAll(40);
    expect(dropped).toBe(2);
    const c = net.node('c');
    const installed = c.readies.filter((rd) => rd.snapshot);
    expect(installed.length).toBeGreaterThan(0);
    for (const rd of installed) expect(rd.snapshot?.data).toEqual(net.node('a').storage.snapshot().data);
    expect(appliedData(c)).toEqual(appliedData(net.node('a')));
  });

  it('MemoryStorage refuses to compact past its last index or to go back', () => {
    const net = laggingFollower(1024);
    const st = net.node('a').storage;
    expect(() => st.compact(st.lastIndex() + 5)).toThrow(expect.objectContaining({ name: 'UnavailableError' }));
    expect(() => st.compact(1)).toThrow(expect.objectContaining({ name: 'CompactedError' }));
    expect(() => st.entries(1, 3, 100)).toThrow(expect.objectContaining({ name: 'CompactedError' }));
  });
});
