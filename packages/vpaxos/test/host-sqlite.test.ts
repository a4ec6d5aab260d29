import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, NoQuorumError, UnavailableError, silentLogger, systemClock } from '@cohort/core';
import { MemoryHub, type MemoryTransport } from '@cohort/core/testing';
import { SqliteNodeStore } from '@cohort/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VP_MASTER_PROTOCOL, VP_PROTOCOL, decodeMessage, encodeMasterMessage, encodeMessage } from '../src/codec.js';
import { NotPrimaryError } from '../src/errors.js';
import { VPaxosHost } from '../src/host/vpaxos-host.js';
import type { Message } from '../src/types.js';

const G = 'vp1';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

async function waitFor(cond: () => boolean, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Applies `set` commands, returning the slot. */
const machine = { apply: (slot: number) => slot };

describe('VPaxosHost over SQLite', () => {
  let dir: string;
  let hub: MemoryHub;
  let master: MemoryTransport;
  let peer: MemoryTransport;
  const received: { from: string; msg: Message }[] = [];
  const hosts: VPaxosHost[] = [];
  const stores: SqliteNodeStore[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vpaxos-host-'));
    hub = new MemoryHub();
    master = hub.transport('m');
    peer = hub.transport('z');
    received.length = 0;
    peer.handle(VP_PROTOCOL, (from, frame) => received.push({ from, msg: decodeMessage(frame).msg }));
    master.handle(VP_MASTER_PROTOCOL, () => {});
  });
  afterEach(() => {
    for (const h of hosts.splice(0)) h.stop();
    for (const s of stores.splice(0)) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(
    id: string,
    onSave?: () => void,
    extra: { minReplicasToWrite?: number; leaseMs?: number; logger?: Logger } = {},
  ): Promise<{ host: VPaxosHost<unknown>; store: SqliteNodeStore }> {
    const store = SqliteNodeStore.open(join(dir, `${id}.db`));
    stores.push(store);
    const acceptorStore = {
      loadAcceptor: (g: string) => store.loadAcceptor(g),
      saveAcceptor: async (...args: Parameters<SqliteNodeStore['saveAcceptor']>) => {
        await store.saveAcceptor(...args);
        onSave?.();
      },
    };
    const host = new VPaxosHost<unknown>({
      group: G,
      transport: hub.transport(id),
      clock: systemClock,
      store: acceptorStore,
      machine,
      master: 'm',
      incarnation: 1,
      addressOf: (n) => `${n}.test:7000`,
      ...extra,
    });
    hosts.push(host);
    await host.start();
    return { host, store };
  }

  const toMaster = (to: string, m: Parameters<typeof encodeMasterMessage>[1]): Promise<void> =>
    master.send(to, VP_MASTER_PROTOCOL, encodeMasterMessage(G, m));

  it('a primary serves only after activation; writes apply once every acceptor stored them; a backup names the primary', async () => {
    const a = await start('a');
    const b = await start('b');
    await expect(a.host.propose(enc('x'))).rejects.toBeInstanceOf(NotPrimaryError);
    await toMaster('a', { type: 'newBallot', ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['a', 'b'] });
    await waitFor(() => a.host.node.leading()?.phase === 'complete', 'complete');
    await expect(a.host.propose(enc('x'))).rejects.toBeInstanceOf(NotPrimaryError);
    await toMaster('a', { type: 'activated', ballot: 1, primary: 'a', acceptors: ['a', 'b'] });
    await waitFor(() => a.host.node.isActive(), 'activation');
    expect(await a.host.propose(enc('x'))).toBe(1);
    expect(b.store.loadAcceptor(G).votes.map((v) => v.slot)).toEqual([1]);
    await a.host.read();
    const err = await b.host.propose(enc('y')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotPrimaryError);
    expect((err as NotPrimaryError).primaryAddress).toBe('a.test:7000');
  });

  it('keeps its own copy of a proposed value that views a larger buffer, not the buffer', async () => {
    const a = await start('a');
    await start('b');
    await toMaster('a', { type: 'newBallot', ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['a', 'b'] });
    await waitFor(() => a.host.node.leading()?.phase === 'complete', 'complete');
    await toMaster('a', { type: 'activated', ballot: 1, primary: 'a', acceptors: ['a', 'b'] });
    await waitFor(() => a.host.node.isActive(), 'activation');
    // The votes the engine hands its store are the ones it keeps in memory.
    const kept: { slot: number; value: Uint8Array }[] = [];
    const save = a.store.saveAcceptor.bind(a.store);
    a.store.saveAcceptor = (group, maxBallot, votes, compactTo) => {
      kept.push(...votes);
      return save(group, maxBallot, votes, compactTo);
    };
    const pool = new Uint8Array(64 * 1024).fill(7);
    const view = pool.subarray(100, 110);
    const slot = await a.host.propose(view);
    const vote = kept.find((v) => v.slot === slot);
    expect(vote?.value).toEqual(new Uint8Array(10).fill(7));
    expect(vote?.value.buffer.byteLength).toBe(10);
    // A value that is its whole buffer is kept as it is.
    const whole = new Uint8Array(10).fill(8);
    const next = await a.host.propose(whole);
    expect(kept.find((v) => v.slot === next)?.value).toBe(whole);
  });

  it('min-replicas-to-write: a primary with fewer copies refuses writes with NO_QUORUM and the reason, and still serves reads', async () => {
    const a = await start('a', undefined, { minReplicasToWrite: 2 });
    await toMaster('a', { type: 'newBallot', ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['a'] });
    await waitFor(() => a.host.node.leading()?.phase === 'complete', 'complete');
    await toMaster('a', { type: 'activated', ballot: 1, primary: 'a', acceptors: ['a'] });
    await waitFor(() => a.host.node.isActive(), 'activation');
    const err = await a.host.propose(enc('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoQuorumError);
    expect((err as Error).message).toContain('min-replicas-to-write is 2');
    expect(a.host.node.committed()).toBe(0);
    await a.host.read();
  });

  it('lease reads: served under the lease the master granted, refused once renewals stop and the lease ran out on the monotonic clock', async () => {
    const a = await start('a', undefined, { leaseMs: 300 });
    const b = await start('b');
    await toMaster('a', { type: 'newBallot', ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['a', 'b'] });
    await waitFor(() => a.host.node.leading()?.phase === 'complete', 'complete');
    // Activated without a grant (the master runs without leases): linearizable reads only.
    await toMaster('a', { type: 'activated', ballot: 1, primary: 'a', acceptors: ['a', 'b'] });
    await waitFor(() => a.host.node.isActive(), 'activation');
    expect(await a.host.propose(enc('x'))).toBe(1);
    await new Promise((r) => setTimeout(r, 120)); // two heartbeat rounds confirmed by both acceptors
    const ungranted = await a.host.leaseRead().catch((e: unknown) => e);
    expect(ungranted).toBeInstanceOf(UnavailableError);
    expect((ungranted as Error).message).toContain('granted this primary no read lease');
    // A later ballot keeping a as primary, activated with a grant of 10 s: a's own 300 ms is the cap.
    await toMaster('a', {
      type: 'newBallot',
      ballot: 2,
      prevBallot: 1,
      prevAcceptors: ['a', 'b'],
      acceptors: ['a', 'b'],
    });
    await waitFor(() => a.host.node.leading()?.phase === 'complete', 'complete of ballot 2');
    await toMaster('a', { type: 'activated', ballot: 2, primary: 'a', acceptors: ['a', 'b'], leaseMs: 10_000 });
    await waitFor(() => a.host.node.leading()?.ballot === 2 && a.host.node.isActive(), 'activation of ballot 2');
    let served = false;
    await waitFor(() => {
      void a.host.leaseRead().then(
        () => {
          served = true;
        },
        () => {},
      );
      return served;
    }, 'a lease read served once a renewal was confirmed');
    // b stops answering: no renewal is confirmed, and within the 300 ms lease (not the 10 s grant) reads are refused.
    b.host.stop();
    const stoppedAt = Date.now();
    let refused: unknown;
    await waitFor(
      () => {
        void a.host.leaseRead().catch((e: unknown) => {
          refused = e;
        });
        return refused !== undefined;
      },
      'the lease running out',
      2_000,
    );
    expect(refused).toBeInstanceOf(UnavailableError);
    expect((refused as Error).message).toContain('lease does not hold');
    expect(Date.now() - stoppedAt).toBeLessThan(1_000);
  });

  it('a 1b leaves only once the promise is durable, and a restarted acceptor keeps its promise', async () => {
    let saved = 0;
    let sentBeforeSave = false;
    const b = await start('b', () => saved++);
    const t = hub.nodes.get('b') as MemoryTransport;
    t.onSend = (to, frame) => {
      if (to === 'z' && decodeMessage(frame).msg.type === 'p1b' && saved === 0) sentBeforeSave = true;
    };
    await peer.send('b', VP_PROTOCOL, encodeMessage(G, { type: 'p1a', ballot: 5, prevBallot: 1, from: 1 }));
    await waitFor(() => received.some((r) => r.msg.type === 'p1b'), 'the 1b');
    expect(sentBeforeSave).toBe(false);
    b.host.stop();
    b.store.close();
    stores.splice(stores.indexOf(b.store), 1);
    hub.nodes.delete('b');

    const b2 = await start('b');
    expect(b2.host.node.promised()).toBe(5);
    await peer.send(
      'b',
      VP_PROTOCOL,
      encodeMessage(G, { type: 'p2a', ballot: 1, entries: [{ slot: 1, value: enc('late') }], commit: 0, round: 1 }),
    );
    await waitFor(() => received.some((r) => r.msg.type === 'reject'), 'the reject');
    expect(received.find((r) => r.msg.type === 'reject')?.msg).toEqual({ type: 'reject', ballot: 1, maxBallot: 5 });
    expect(b2.store.loadAcceptor(G).votes).toEqual([]);
    expect(b2.host.stats.staleIgnored.p2a).toBe(1);
  });

  it('the lone acceptor of a ballot restarted leads the next one on its votes; wiped, it refuses and says so', async () => {
    const errors: string[] = [];
    const logger: Logger = {
      ...silentLogger,
      error: (msg, fields) => errors.push(`${msg}: ${String(fields?.reason)}`),
      child: () => logger,
    };
    const restart = async (wipe: boolean) => {
      const [old] = hosts.splice(0);
      old!.stop();
      for (const st of stores.splice(0)) st.close();
      hub.nodes.delete('a');
      if (wipe) for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
      return start('a', undefined, { logger });
    };
    // Ballot 1 on a alone, a value chosen.
    const a = await start('a', undefined, { logger });
    await toMaster('a', { type: 'newBallot', ballot: 1, prevBallot: 0, prevAcceptors: [], acceptors: ['a'] });
    await waitFor(() => a.host.node.leading()?.phase === 'complete', 'complete');
    await toMaster('a', { type: 'activated', ballot: 1, primary: 'a', acceptors: ['a'] });
    await waitFor(() => a.host.node.isActive(), 'activation');
    expect(await a.host.propose(enc('x'))).toBe(1);
    // Restarted: ballot 2 reads its own votes and completes holding the value.
    const a2 = await restart(false);
    await toMaster('a', { type: 'newBallot', ballot: 2, prevBallot: 1, prevAcceptors: ['a'], acceptors: ['a'] });
    await waitFor(() => a2.host.node.leading()?.phase === 'complete', 'complete of ballot 2');
    expect(a2.store.loadAcceptor(G).votes.map((v) => v.slot)).toEqual([1]);
    // Its data directory wiped: ballot 3 would read nothing of what was chosen; refused, loudly, and nothing crashes.
    const a3 = await restart(true);
    await toMaster('a', { type: 'newBallot', ballot: 3, prevBallot: 2, prevAcceptors: ['a'], acceptors: ['a'] });
    await waitFor(() => errors.length > 0, 'the refusal');
    expect(errors[0]).toContain('its acceptor state was lost');
    expect(a3.host.node.leading()).toBeUndefined();
    expect(a3.store.loadAcceptor(G).maxBallot).toBe(0);
  });
});
