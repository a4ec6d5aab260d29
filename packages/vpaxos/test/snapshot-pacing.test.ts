import { type Clock, type SnapshotMeta, SnapshotPacer, type TimerHandle } from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { VP_MASTER_PROTOCOL, encodeMasterMessage } from '../src/codec.js';
import type { AcceptorState } from '../src/engine.js';
import { type AcceptorStore, VPaxosHost, type VpStateMachine } from '../src/host/vpaxos-host.js';

const KIB = 1024;

/**
 * Virtual time: timers fire in order of their due time, and only once the work
 * the last one started has run (real `setImmediate` turns, which take no virtual time).
 */
class StepClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<object, { at: number; seq: number; fn: () => void }>();

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const h = {};
    this.timers.set(h, { at: this.t + Math.max(0, ms), seq: this.seq++, fn });
    return h;
  }
  clearTimeout(h: TimerHandle): void {
    this.timers.delete(h);
  }
  defer(fn: () => void): void {
    setImmediate(fn);
  }

  /** Runs the work now due, then moves time to each next timer until `ms` passed or `until` holds. */
  async run(ms: number, until: () => boolean = () => false): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      if (until()) return;
      let next: [object, { at: number; seq: number; fn: () => void }] | undefined;
      for (const e of this.timers)
        if (next === undefined || e[1].at < next[1].at || (e[1].at === next[1].at && e[1].seq < next[1].seq)) next = e;
      if (next === undefined || next[1].at > end) {
        this.t = end;
        return;
      }
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 12; i++) await new Promise((r) => setImmediate(r));
}

/** A state machine that applied `applied` slots and streams a snapshot of `bytes`; received chunks are timed. */
function machine(
  clock: Clock,
  applied: number,
  bytes: number,
  received: { at: number; bytes: number }[],
): VpStateMachine {
  let index = applied;
  const meta: SnapshotMeta = {
    index: applied,
    term: 1,
    confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
  };
  return {
    apply: (slot) => {
      index = slot;
      return slot;
    },
    applyMany: (entries) => {
      index = entries.at(-1)?.slot ?? index;
      return entries.map((e) => e.slot);
    },
    applied: () => ({ index }),
    openSnapshot: () => {
      let left = bytes;
      return {
        meta: { ...meta, index },
        next: (max) => {
          if (left <= 0) return undefined;
          const n = Math.min(max, left);
          left -= n;
          return new Uint8Array(n);
        },
        close: () => {},
      };
    },
    receiveSnapshot: (m) => ({
      write: (_seq, chunk) => received.push({ at: clock.now(), bytes: chunk.length }),
      commit: () => {
        index = m.index;
      },
      abort: () => {},
    }),
  };
}

/** An acceptor store whose every write takes `latency()` ms of virtual time (a disk). */
function store(clock: Clock, initial: AcceptorState, latency: () => number): AcceptorStore {
  return {
    loadAcceptor: () => structuredClone(initial),
    saveAcceptor: () => new Promise<void>((resolve) => clock.setTimeout(resolve, latency())),
  };
}

describe('VPaxosHost snapshot pacing', () => {
  const hosts: VPaxosHost[] = [];
  afterEach(() => {
    for (const h of hosts.splice(0)) h.stop();
  });

  it('a transfer slows to its floor while the node’s writes are slow, and speeds back once they recover', async () => {
    const clock = new StepClock();
    const hub = new MemoryHub();
    const master = hub.transport('m');
    master.handle(VP_MASTER_PROTOCOL, () => {});
    const max = 16 * KIB;
    const min = KIB;
    // One pacer for the node's replicas: the transfer of partition s yields to the writes of partition w.
    const pacer = new SnapshotPacer({ maxBytesPerSec: max, minBytesPerSec: min });
    let diskMs = 5;
    const received: { at: number; bytes: number }[] = [];
    const common = { clock, master: 'm', incarnation: 1, heartbeatMs: 100, aliveMs: 1000, requestTimeoutMs: 5000 };
    const start = async (
      id: string,
      group: string,
      state: AcceptorState,
      m: VpStateMachine,
      latency: () => number,
    ): Promise<VPaxosHost> => {
      const host = new VPaxosHost({
        ...common,
        group,
        transport: hub.transport(id),
        store: store(clock, state, latency),
        machine: m,
        snapshot: { chunkBytes: KIB },
        snapshotPacer: pacer,
      });
      hosts.push(host);
      await host.start();
      return host;
    };
    const toMaster = (to: string, group: string, msg: Parameters<typeof encodeMasterMessage>[1]) =>
      void master.send(to, VP_MASTER_PROTOCOL, encodeMasterMessage(group, msg));

    // Partition w: a lone primary whose writes take a disk write each.
    const w = await start('w', 'w', { maxBallot: 0, votes: [] }, { apply: (slot) => slot }, () => diskMs);
    toMaster('w', 'w', { type: 'newBallot', ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['w'] });
    await clock.run(1000, () => w.node.leading()?.phase === 'complete');
    toMaster('w', 'w', { type: 'activated', ballot: 1, primary: 'w', acceptors: ['w'] });
    await clock.run(1000, () => w.node.isActive());
    expect(w.node.isActive()).toBe(true);
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await w.propose(new Uint8Array([1]));
        written++;
      }
    })().catch((err: Error) => err);
    await clock.run(2000);
    expect(written).toBeGreaterThan(100);

    // Partition s: primary a compacted every slot; ballot 2 adds c, which has nothing: a streams it 160 KiB.
    const a = await start(
      'a',
      's',
      { maxBallot: 1, votes: [], compacted: 50 },
      machine(clock, 50, 160 * KIB, []),
      () => 0,
    );
    const c = await start('c', 's', { maxBallot: 0, votes: [] }, machine(clock, 0, 0, received), () => 0);
    toMaster('a', 's', { type: 'newBallot', ballot: 2, prevBallot: 1, prevAcceptors: ['a'], acceptors: ['a', 'c'] });
    await clock.run(1000, () => received.length > 0);
    const t0 = clock.now();
    const rate = (from: number, to: number): number =>
      (received.filter((r) => r.at > t0 + from && r.at <= t0 + to).reduce((n, r) => n + r.bytes, 0) * 1000) /
      (to - from);

    // Writes as fast as before the transfer: it goes at the configured rate.
    await clock.run(1500);
    // Writes ten times slower: it backs off to its floor.
    diskMs = 50;
    await clock.run(3000);
    // Writes fast again: it grows back.
    diskMs = 5;
    await clock.run(6000);
    const fast = rate(250, 1500);
    const slow = rate(3000, 4500);
    const recovered = rate(9500, 10500);
    expect(fast).toBeGreaterThan(0.75 * max);
    expect(slow).toBeLessThanOrEqual(2 * min);
    expect(recovered).toBeGreaterThan(0.5 * max);
    expect(a.snapshotCounts().paceBackoffs).toBeGreaterThanOrEqual(4);
    expect(w.snapshotCounts().paceBackoffs).toBe(0);

    await clock.run(30_000, () => c.snapshotCounts().installed === 1);
    expect(c.snapshotCounts().installed).toBe(1);
    expect(received.reduce((n, r) => n + r.bytes, 0)).toBe(160 * KIB);
    writing = false;
    await clock.run(1000);
    expect(await writer).toBeUndefined();
  });
});
