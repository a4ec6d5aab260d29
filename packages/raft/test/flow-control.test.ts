import { describe, expect, it } from 'vitest';
import { Network, appliedData, bytes } from './network.js';

describe('flow control', () => {
  it('a follower in replicate state has at most maxInflightMsgs appends in flight', () => {
    const net = new Network(['a', 'b', 'c'], { maxInflightMsgs: 3, checkQuorum: false });
    net.elect('a');
    const a = net.node('a');
    // Hold every message to b: nothing is acknowledged.
    net.drop = (m) => m.to === 'b';
    for (let i = 0; i < 10; i++) {
      a.rn.propose(bytes(`p${i}`));
      net.processReady('a');
    }
    const toB = net.takePending().filter((m) => m.to === 'b' && m.type === 'app' && m.entries.length > 0);
    expect(a.rn.status().progress.b?.state).toBe('replicate');
    expect(toB).toHaveLength(3);
    expect(a.rn.status().progress.b?.inflight).toBe(3);
  });

  it('the inflight byte bound pauses appends until acknowledgements free it', () => {
    const net = new Network(['a', 'b'], { maxInflightBytes: 10, checkQuorum: false });
    net.elect('a');
    const a = net.node('a');
    for (let i = 0; i < 6; i++) {
      a.rn.propose(bytes('12345'));
      net.processReady('a');
    }
    const apps = net.takePending().filter((m) => m.to === 'b' && m.type === 'app' && m.entries.length > 0);
    const sent = apps.reduce((s, m) => s + m.entries.reduce((t, e) => t + e.data.length, 0), 0);
    expect(sent).toBe(10);
    // Delivering the acknowledgements lets the rest through.
    for (const m of apps) net.node('b').rn.step(m);
    net.stabilize();
    expect(appliedData(net.node('b'))).toHaveLength(6);
  });

  it('maxSizePerMsg bounds the entries per append (at least one entry always fits)', () => {
    const net = new Network(['a', 'b', 'c'], { maxSizePerMsg: 8, checkQuorum: false });
    net.elect('a');
    net.isolate('c');
    for (let i = 0; i < 10; i++) net.node('a').rn.propose(bytes('abcd'));
    net.stabilize();
    net.heal();
    net.tickAll(2);
    const toC = net.delivered.filter((m) => m.to === 'c' && m.type === 'app' && m.entries.length > 0);
    expect(toC.length).toBeGreaterThan(1);
    for (const m of toC) {
      const size = m.entries.reduce((s, e) => s + e.data.length, 0);
      expect(m.entries.length === 1 || size <= 8).toBe(true);
    }
    expect(appliedData(net.node('c'))).toHaveLength(10);
  });

  it('a probing leader sends one append per round trip and batches proposals once replicating', () => {
    const net = new Network(['a', 'b'], { checkQuorum: false });
    net.elect('a');
    const a = net.node('a');
    net.drop = () => true;
    // Not acknowledged: after an unreachable report, b is probed.
    a.rn.reportUnreachable('b');
    expect(a.rn.status().progress.b?.state).toBe('probe');
    a.rn.propose(bytes('x0'));
    net.processReady('a');
    for (let i = 1; i < 5; i++) a.rn.propose(bytes(`x${i}`));
    net.processReady('a');
    // Probing: only the first proposal went out, the rest wait for its answer.
    const probes = net.takePending().filter((m) => m.type === 'app');
    expect(probes).toHaveLength(1);
    expect(probes[0]?.entries).toHaveLength(1);
    net.heal();
    net.node('b').rn.step(probes[0] as (typeof probes)[number]);
    net.processReady('b');
    for (const m of net.takePending()) a.rn.step(m);
    expect(a.rn.status().progress.b?.state).toBe('replicate');
    net.processReady('a');
    // Replicating: the four waiting entries leave as one batch.
    const batch = net.pending().filter((m) => m.type === 'app' && m.to === 'b');
    expect(batch).toHaveLength(1);
    expect(batch[0]?.entries).toHaveLength(4);
    net.stabilize();
    expect(appliedData(net.node('b'))).toHaveLength(5);
  });

  it('proposals made between two Readies leave as one append per follower', () => {
    const net = new Network(['a', 'b', 'c'], { checkQuorum: false });
    net.elect('a');
    for (let i = 0; i < 50; i++) net.node('a').rn.propose(bytes(`b${i}`));
    net.processReady('a');
    const apps = net.pending().filter((m) => m.type === 'app');
    expect(apps.map((m) => [m.to, m.entries.length])).toEqual([
      ['b', 50],
      ['c', 50],
    ]);
    net.stabilize();
    expect(appliedData(net.node('c'))).toHaveLength(50);
  });

  it('the leader drops proposals past maxUncommittedEntriesSize', () => {
    const net = new Network(['a', 'b', 'c'], { maxUncommittedEntriesSize: 10, checkQuorum: false });
    net.elect('a');
    net.drop = () => true;
    const a = net.node('a').rn;
    a.propose(bytes('123456'));
    expect(() => a.propose(bytes('123456'))).toThrow(expect.objectContaining({ name: 'ProposalDroppedError' }));
    net.heal();
    net.tickAll(2);
    // Once committed and applied, there is room again.
    a.propose(bytes('123456'));
  });
});
