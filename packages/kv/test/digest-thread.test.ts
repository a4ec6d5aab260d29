import type { Entry } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { KvStateMachine } from '../src/index.js';
import { CONF, type MachineHarness, entry, setCmd, sqliteMachine, sqliteThreadMachine } from './harness.js';

/** Polls `cond` every 10 ms until it holds or `ms` passed. */
async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

const rows = (n: number): Entry[] =>
  Array.from({ length: n }, (_, i) => entry(i + 1, setCmd(`k${String(i + 1).padStart(5, '0')}`, `v${i}`, 1000 + i)));

describe('KvStateMachine with digests on a thread of their own', () => {
  let h: MachineHarness | undefined;
  afterEach(() => h?.cleanup());

  it('digests a checksum entry off the event loop, of exactly its index, while later entries apply', async () => {
    h = sqliteThreadMachine({ digestThread: { cpuShare: 1 } });
    const entries = [...rows(3000), entry(3001, { op: 'checksum', now: 20_000 })];
    h.sm.applyBatch(entries, CONF);
    expect(h.sm.digestPending(3001)).toBe(true);
    expect(h.sm.digestAt(3001)).toBeUndefined();
    // Applied while the thread waits for, then reads, its view: not in the digest.
    h.sm.applyBatch([entry(3002, setCmd('k00001', 'changed', 20_001)), entry(3003, setCmd('new', 'x', 20_002))], CONF);
    await until(() => !h?.sm.digestPending(3001));
    expect(h.sm.digestPending(3001)).toBe(false);
    expect(h.sm.digestFailure(3001)).toBeUndefined();
    const digest = h.sm.digestAt(3001);
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    // The same as a replica that hashed in full as the entry applied (its own store, in memory).
    const reference = new KvStateMachine(undefined, 'p1');
    reference.applyBatch(entries, CONF);
    expect(digest).toBe(reference.digestAt(3001));
    // And not the state now.
    expect(h.sm.digest()).not.toBe(digest);
  });

  it('gives every replica the same digest at the same index, however their batches fell', async () => {
    h = sqliteThreadMachine({ digestThread: { cpuShare: 0.5 } });
    const entries = [...rows(1200), entry(1201, { op: 'checksum', now: 9_000 }), ...rows(1300).slice(1201)];
    h.sm.applyBatch(entries, CONF);
    const peer = h.peer();
    for (let i = 0; i < entries.length; i += 97) peer.applyBatch(entries.slice(i, i + 97), CONF);
    await until(() => !h?.sm.digestPending(1201) && !peer.digestPending(1201));
    expect(h.sm.digestAt(1201)).toMatch(/^[0-9a-f]{64}$/);
    expect(peer.digestAt(1201)).toBe(h.sm.digestAt(1201));
  });

  it('digests two partitions at once, each of exactly its index (a mark never waits for the other digest)', async () => {
    h = sqliteThreadMachine({ digestThread: { cpuShare: 0.5 } });
    const other = new KvStateMachine(h.store, 'p2', { digestThread: { cpuShare: 0.5 } });
    const first = [...rows(4000), entry(4001, { op: 'checksum', now: 30_000 })];
    const second = [...rows(2000), entry(2001, { op: 'checksum', now: 40_000 })];
    h.sm.applyBatch(first, CONF);
    other.applyBatch(second, CONF);
    h.sm.applyBatch([entry(4002, setCmd('k00002', 'later', 30_001))], CONF);
    other.applyBatch([entry(2002, setCmd('k00002', 'later', 40_001))], CONF);
    await until(() => !h?.sm.digestPending(4001) && !other.digestPending(2001));
    expect(h.sm.digestFailure(4001)).toBeUndefined();
    expect(other.digestFailure(2001)).toBeUndefined();
    const ref1 = new KvStateMachine(undefined, 'p1');
    ref1.applyBatch(first, CONF);
    const ref2 = new KvStateMachine(undefined, 'p2');
    ref2.applyBatch(second, CONF);
    expect(h.sm.digestAt(4001)).toBe(ref1.digestAt(4001));
    expect(other.digestAt(2001)).toBe(ref2.digestAt(2001));
  });

  it('hashes as the entry applies where the store writes on the caller thread (no mark to pin a view at)', () => {
    h = sqliteMachine({ digestThread: {} });
    h.sm.applyBatch([...rows(10), entry(11, { op: 'checksum', now: 5_000 })], CONF);
    expect(h.sm.digestPending(11)).toBe(false);
    expect(h.sm.digestAt(11)).toMatch(/^[0-9a-f]{64}$/);
  });
});
