import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { SqliteNodeStore } from '@cohort/storage';
import { VP_MASTER_PROTOCOL, VPaxosHost, encodeMasterMessage } from '@cohort/vpaxos';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeCommand } from '../src/command.js';
import { KvStateMachine } from '../src/state-machine.js';
import { vpStateMachine } from '../src/vpaxos/vp-state-machine.js';

const G = 'vp1';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A plain `set` of `k` to `v`. */
const setCommand = (k: string, v: string): Uint8Array =>
  encodeCommand({ op: 'set', key: enc(k), value: enc(v), condition: 'always', expiresAt: 0, returnOld: false, now: 0 });

async function waitFor(cond: () => boolean, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('a Vertical Paxos replica over the KV state machine', () => {
  let dir: string;
  let hub: MemoryHub;
  let master: ReturnType<MemoryHub['transport']>;
  const hosts: VPaxosHost[] = [];
  const stores: SqliteNodeStore[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vpaxos-kv-'));
    hub = new MemoryHub();
    master = hub.transport('m');
    master.handle(VP_MASTER_PROTOCOL, () => {});
  });
  afterEach(() => {
    for (const h of hosts.splice(0)) h.stop();
    for (const s of stores.splice(0)) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Store transactions the KV state machine of each replica opened. */
  const txns = new Map<string, number>();

  async function start(
    id: string,
    compaction: { compactSlots?: number; compactMarginSlots?: number; compactBytes?: number } = {},
  ): Promise<{ host: VPaxosHost; store: SqliteNodeStore; kv: KvStateMachine }> {
    const store = SqliteNodeStore.open(join(dir, `${id}.db`));
    stores.push(store);
    txns.set(id, 0);
    // The machine's view of the store counts its transactions.
    const counted = new Proxy(store, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (prop === 'transaction' && typeof v === 'function') {
          return (...args: unknown[]) => {
            txns.set(id, (txns.get(id) ?? 0) + 1);
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const kv = new KvStateMachine(counted, 'vp');
    const host = new VPaxosHost({
      group: G,
      transport: hub.transport(id),
      clock: systemClock,
      store: { loadAcceptor: (g) => store.loadAcceptor(g), saveAcceptor: (...a) => store.saveAcceptor(...a) },
      machine: vpStateMachine(kv),
      master: 'm',
      incarnation: 1,
      ...compaction,
      // Small chunks: the snapshot below streams in several acknowledged requests.
      snapshot: { chunkBytes: 64 },
    });
    hosts.push(host);
    await host.start();
    return { host, store, kv };
  }

  const toMaster = (to: string, m: Parameters<typeof encodeMasterMessage>[1]): Promise<void> =>
    master.send(to, VP_MASTER_PROTOCOL, encodeMasterMessage(G, m));

  /** Ballot 2 over {a, c}, led by `a`, in place of ballot 1's {a, b}: started and completed, not activated. */
  async function ballotReplacingB(a: { host: VPaxosHost }): Promise<void> {
    await toMaster('a', {
      type: 'newBallot',
      ballot: 2,
      prevBallot: 1,
      prevAcceptors: ['a', 'b'],
      acceptors: ['a', 'c'],
    });
    await waitFor(() => a.host.node.leading()?.phase === 'complete', 'ballot 2 complete');
  }

  /** Ballot 1 over {a, b}, led by `a`: started, completed and activated. */
  async function firstBallot(a: { host: VPaxosHost }): Promise<void> {
    await toMaster('a', { type: 'newBallot', ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['a', 'b'] });
    await waitFor(() => a.host.node.leading()?.phase === 'complete', 'complete');
    await toMaster('a', { type: 'activated', ballot: 1, primary: 'a', acceptors: ['a', 'b'] });
    await waitFor(() => a.host.node.isActive(), 'activation');
  }

  it('applies chosen commands through the KV state machine, which resumes from its applied slot after a restart', async () => {
    const a = await start('a');
    const b = await start('b');
    await firstBallot(a);
    expect(await a.host.propose(setCommand('k1', 'v1'))).toEqual({ type: 'ok' });
    expect(await a.host.propose(setCommand('k2', 'v2'))).toEqual({ type: 'ok' });
    await waitFor(() => b.host.status().applied === 2, 'the backup applying both');
    expect(b.kv.applied().index).toBe(2);
    b.host.stop();
    b.store.close();
    stores.splice(stores.indexOf(b.store), 1);
    hub.nodes.delete('b');
    const b2 = await start('b');
    expect(b2.host.status().applied).toBe(2);
    expect(b2.host.status().commit).toBe(2);
    expect(await a.host.propose(setCommand('k3', 'v3'))).toEqual({ type: 'ok' });
    await waitFor(() => b2.kv.applied().index === 3, 'the restarted backup applying slot 3 only');
  });

  it('compacts acceptor votes behind the applied slot; a replacement acceptor installs the KV snapshot, then applies after it', async () => {
    const small = { compactSlots: 4, compactMarginSlots: 0 };
    const a = await start('a', small);
    await start('b', small);
    await firstBallot(a);
    for (let i = 1; i <= 12; i++) await a.host.propose(setCommand(`k${i}`, `v${i}`));
    await waitFor(() => a.store.loadAcceptor(G).compacted >= 8, 'the primary compacting its votes');
    expect(a.store.loadAcceptor(G).votes.length).toBeLessThan(8);
    // b fails; ballot 2 replaces it by c, which has nothing: the primary's votes for slots 1.. are gone.
    const c = await start('c', small);
    await ballotReplacingB(a);
    expect(c.host.snapshotCounts().installed).toBe(1);
    expect(a.host.snapshotCounts().sent).toBe(1);
    expect(c.kv.applied().index).toBe(12);
    expect(new TextDecoder().decode(c.kv.get(enc('k1'), 0))).toBe('v1');
    expect(c.store.loadAcceptor(G).compacted).toBe(12);
    await toMaster('a', { type: 'activated', ballot: 2, primary: 'a', acceptors: ['a', 'c'] });
    await waitFor(() => a.host.node.isActive(), 'activation of ballot 2');
    expect(await a.host.propose(setCommand('k13', 'v13'))).toEqual({ type: 'ok' });
    await waitFor(() => c.kv.applied().index === 13, 'the replacement applying slot 13');
    expect(new TextDecoder().decode(c.kv.get(enc('k13'), 0))).toBe('v13');
  });

  it('compacts once the votes it holds reach compactBytes, whatever the slots, keeping a quarter of it behind the point', async () => {
    const value = 'x'.repeat(1000);
    const set = (k: string): Uint8Array => setCommand(k, value);
    // 10,000 slots would never be reached here: the bytes trigger alone compacts.
    const bounded = { compactSlots: 10_000, compactBytes: 8_000 };
    const a = await start('a', bounded);
    const b = await start('b', bounded);
    await firstBallot(a);
    const slotBytes = set('k0').length;
    let most = 0;
    for (let i = 1; i <= 40; i++) {
      await a.host.propose(set(`k${i}`));
      most = Math.max(most, a.host.node.heldVoteBytes(), b.host.node.heldVoteBytes());
    }
    await waitFor(() => b.host.status().applied >= a.host.status().applied, 'the backup applying every write');
    // Each replica compacted, durably, and never held much more than compactBytes (one slot over, at most).
    for (const r of [a, b]) {
      expect(r.host.node.compactedThrough()).toBeGreaterThan(20);
      expect(r.store.loadAcceptor(G).compacted).toBeGreaterThan(20);
    }
    expect(most).toBeLessThan(8_000 + 2 * slotBytes);
    // After its last compaction a replica keeps at most a quarter of compactBytes (two slots) behind the point.
    expect(a.host.node.heldVotes()).toBeLessThanOrEqual(8_000 / slotBytes + 1);
    // 0 turns the bytes trigger off: slots alone, and 40 are far from 10,000.
    const c = await start('c', { compactSlots: 10_000, compactBytes: 0 });
    await ballotReplacingB(a);
    await toMaster('a', { type: 'activated', ballot: 2, primary: 'a', acceptors: ['a', 'c'] });
    await waitFor(() => a.host.node.isActive(), 'activation of ballot 2');
    for (let i = 41; i <= 60; i++) await a.host.propose(set(`k${i}`));
    await waitFor(() => c.kv.applied().index >= 60, 'the replacement applying every write');
    expect(c.host.node.heldVotes()).toBeGreaterThanOrEqual(20);
  });

  it('applies consecutive chosen slots in one store transaction, each write answered with its own result', async () => {
    const a = await start('a');
    const b = await start('b');
    await firstBallot(a);
    const before = { a: txns.get('a') ?? 0, b: txns.get('b') ?? 0 };
    // 30 proposals of one turn go out in one Phase 2 round and are chosen together.
    const n = 30;
    const results = await Promise.all(
      Array.from({ length: n }, () =>
        a.host.propose(encodeCommand({ op: 'incr', key: enc('counter'), delta: 1n, now: 0 })),
      ),
    );
    expect(results.map((r) => (r as { type: string; value?: unknown }).value)).toEqual(
      Array.from({ length: n }, (_, i) => BigInt(i + 1)),
    );
    await waitFor(() => b.kv.applied().index === a.kv.applied().index, 'the backup applying them');
    const usedA = (txns.get('a') ?? 0) - before.a;
    const usedB = (txns.get('b') ?? 0) - before.b;
    expect(usedA).toBeGreaterThan(0);
    expect(usedA).toBeLessThan(n / 3);
    expect(usedB).toBeLessThan(n / 3);
  });
});
