import type { Clock, NodeId, TimerHandle, Transport } from '@cohort/core';
import { silentLogger } from '@cohort/core';
import { type MasterMessage, type VpTransportMux, decodeMasterMessage } from '@cohort/vpaxos';
import { describe, expect, it } from 'vitest';
import type { MetaService } from '../src/meta/meta-service.js';
import { type MetaCommand, applyMeta } from '../src/meta/state.js';
import type { Liveness } from '../src/placement/controller.js';
import { masterSection } from '../src/vpaxos/master-extension.js';
import { VpMasterService } from '../src/vpaxos/master-service.js';
import { EXT, activeOn, founded } from './vp-meta.js';

/** A clock that moves only when the test advances it; due timers run in time order. */
class ManualClock implements Clock {
  private t = 0;
  private timers: { at: number; fn: () => void; id: object }[] = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = {};
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: TimerHandle): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  defer(fn: () => void): void {
    this.setTimeout(fn, 0);
  }
  /** Moves time on by `ms`, running each timer due on the way and letting its promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }
}

/**
 * The master's decision loop on a meta leader `m`, over a meta state applied
 * in place (every proposal commits at once), a SWIM view the test sets, and
 * a transport that records what the master sends to each replica.
 */
function harness() {
  const clock = new ManualClock();
  const state = founded();
  const meta = {
    state,
    propose: async (cmd: MetaCommand) => applyMeta(state, cmd, EXT),
    unreachable: () => [],
  } as unknown as MetaService;
  const swim = new Map<NodeId, Liveness>([
    ['a', 'alive'],
    ['b', 'alive'],
    ['c', 'alive'],
  ]);
  const sent: { to: NodeId; msg: MasterMessage }[] = [];
  let inbox: ((from: NodeId, group: string, msg: MasterMessage) => void) | undefined;
  const record = (to: NodeId, frame: Uint8Array): void => {
    sent.push({ to, msg: decodeMasterMessage(frame).msg });
  };
  const mux = {
    onMasterMessage: (fn: typeof inbox) => {
      inbox = fn;
    },
    deliver: async (to: NodeId, _p: string, frame: Uint8Array) => record(to, frame),
  } as unknown as VpTransportMux;
  const transport = {
    send: async (to: NodeId, _p: string, frame: Uint8Array) => record(to, frame),
  } as unknown as Transport;
  const service = new VpMasterService({
    self: 'm',
    meta,
    leading: () => true,
    mux,
    transport,
    membership: () => ({ members: () => [...swim].map(([id, s]) => ({ id, state: s })) }),
    log: silentLogger,
    clock,
    intervalMs: 100,
    failAfterMs: 1_000,
  });
  return {
    clock,
    state,
    swim,
    sent,
    service,
    group: () => masterSection(state).groups.p1!,
    /** A replica's message to the master. */
    from: (node: NodeId, msg: MasterMessage) => inbox!(node, 'p1', msg),
  };
}

describe('the configuration master decision loop', () => {
  it('resumes a partition whose only acceptor restarted: a new ballot of it (its votes are durable), not unavailable for ever', async () => {
    const h = harness();
    // Ballot 1 on {a, b}; b failed, so ballot 2 runs degraded on a alone.
    activeOn(h.state, 1, 'a', ['a', 'b'], 0);
    activeOn(h.state, 2, 'a', ['a'], 1, true);
    // b and c are down: no replacement to add.
    h.swim.set('b', 'dead');
    h.swim.set('c', 'dead');
    h.service.start();
    // a serves ballot 2 for a while: nothing changes.
    for (let i = 0; i < 15; i++) {
      h.from('a', { type: 'alive', incarnation: 1, activeBallot: 2 });
      await h.clock.advance(100);
    }
    expect(h.group().active?.ballot).toBe(2);
    expect(h.group().next).toBeUndefined();
    // a dies: the partition has no surviving replica and waits.
    h.swim.set('a', 'dead');
    await h.clock.advance(3_000);
    expect(h.group().active?.ballot).toBe(2);
    expect(h.group().next).toBeUndefined();
    // a comes back, restarted (its activation is gone): it leads a new ballot of itself.
    h.swim.set('a', 'alive');
    h.sent.length = 0;
    for (let i = 0; i < 5; i++) {
      h.from('a', { type: 'alive', incarnation: 2, activeBallot: 0 });
      await h.clock.advance(100);
    }
    expect(h.group().next).toMatchObject({ ballot: 3, prevBallot: 2, primary: 'a', acceptors: ['a'] });
    expect(masterSection(h.state).health.p1?.failures.map((f) => f.node)).toEqual(['a']);
    expect(h.sent).toContainEqual({
      to: 'a',
      msg: { type: 'newBallot', ballot: 3, prevBallot: 2, prevAcceptors: ['a'], acceptors: ['a'] },
    });
    // Its Phase 1 read its own durable votes; it completes and is activated.
    h.from('a', { type: 'complete', ballot: 3 });
    await h.clock.advance(100);
    expect(h.group().active).toMatchObject({ ballot: 3, primary: 'a', acceptors: ['a'] });
    expect(h.sent.some((s) => s.to === 'a' && s.msg.type === 'activated' && s.msg.ballot === 3)).toBe(true);
    expect(h.state.partitions[1]).toMatchObject({ leader: 'a', replicas: [{ node: 'a', role: 'voter' }] });
    h.service.stop();
  });

  it('a restarted primary with a live backup is replaced by the backup, as before', async () => {
    const h = harness();
    activeOn(h.state, 1, 'a', ['a', 'b'], 0);
    h.service.start();
    for (let i = 0; i < 5; i++) {
      h.from('a', { type: 'alive', incarnation: 1, activeBallot: 1 });
      h.from('b', { type: 'alive', incarnation: 1, activeBallot: 0 });
      await h.clock.advance(100);
    }
    expect(h.group().next).toBeUndefined();
    for (let i = 0; i < 3; i++) {
      h.from('a', { type: 'alive', incarnation: 2, activeBallot: 0 });
      h.from('b', { type: 'alive', incarnation: 1, activeBallot: 0 });
      await h.clock.advance(100);
    }
    expect(h.group().next).toMatchObject({ ballot: 2, primary: 'b', acceptors: ['b'] });
    h.service.stop();
  });
});
