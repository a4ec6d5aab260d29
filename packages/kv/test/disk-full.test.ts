import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type GroupWrite, type NodeId, SeededRandom, decodeRaftFrame, systemClock } from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { RaftHost } from '@cohort/raft';
import { SqliteNodeStore } from '@cohort/storage';
import { afterEach, expect, it } from 'vitest';
import { type KvClientRequest, KvService, KvStateMachine } from '../src/index.js';
import { CONF, entry, setCmd } from './harness.js';

const IDS = ['a', 'b', 'c'];
const enc = new TextEncoder();

interface Node {
  host: RaftHost;
  service: KvService;
  store: SqliteNodeStore;
  /** The last log index a completed store write made durable. */
  durable: number;
  fatal: Error | undefined;
}

let dir = '';
const nodes = new Map<NodeId, Node>();

afterEach(() => {
  for (const n of nodes.values()) {
    n.service.close();
    n.host.stop();
  }
  for (const n of nodes.values()) n.store.close();
  nodes.clear();
  rmSync(dir, { recursive: true, force: true });
});

const gateOf = (id: NodeId): string => join(dir, `${id}.full`);

function start(): MemoryHub {
  dir = mkdtempSync(join(tmpdir(), 'cohort-kv-full-'));
  const hub = new MemoryHub();
  IDS.forEach((id, i) => {
    const store = SqliteNodeStore.open(join(dir, `${id}.db`), {
      writer: 'thread',
      quickCheck: false,
      diskFullGate: gateOf(id),
    });
    const transport = hub.transport(id);
    const host = new RaftHost({
      id,
      store,
      transport,
      clock: systemClock,
      random: new SeededRandom(11 + i),
      tickMs: 10,
      electionTicks: 10,
    });
    const machine = new KvStateMachine(store, 'p0');
    host.addGroup('p0', machine, IDS);
    const service = new KvService({ group: host.replicated('p0'), machine, transport, clock: systemClock });
    const node: Node = { host, service, store, durable: 0, fatal: undefined };
    host.onFatal = (err) => {
      node.fatal = err;
    };
    // Writes complete in order: the last one completed tells what is durable.
    const write = store.write.bind(store);
    store.write = (batch: GroupWrite[]) =>
      write(batch).then(() => {
        for (const w of batch) node.durable = Math.max(node.durable, w.entries?.at(-1)?.index ?? 0);
      });
    host.start();
    service.start();
    nodes.set(id, node);
  });
  return hub;
}

async function until<T>(what: string, cond: () => T | undefined | false, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const set = (k: string, v: string): KvClientRequest => ({
  kind: 'write',
  write: {
    op: 'set',
    key: enc.encode(k),
    value: enc.encode(v),
    condition: 'always',
    expiry: { kind: 'none' },
    returnOld: false,
  },
});

it('a follower whose disk is full acknowledges nothing it could not persist, stays up, and catches up once space is freed', async () => {
  const hub = start();
  const leader = await until('a leader', () => IDS.find((id) => nodes.get(id)?.host.isLeader('p0')));
  const full = IDS.find((id) => id !== leader) as NodeId;
  const f = nodes.get(full) as Node;
  const violations: string[] = [];
  (hub.nodes.get(full) as NonNullable<ReturnType<typeof hub.nodes.get>>).onSend = (_to, frame) => {
    let decoded: ReturnType<typeof decodeRaftFrame>;
    try {
      decoded = decodeRaftFrame(frame);
    } catch {
      return; // not a Raft frame
    }
    if (decoded.kind !== 'batch') return;
    for (const { message: m } of decoded.messages) {
      if (m.type === 'appResp' && !m.reject && m.index > f.durable)
        violations.push(`${full} acknowledged ${m.index} holding ${f.durable} durably`);
    }
  };
  const service = (nodes.get(leader) as Node).service;
  const value = 'x'.repeat(16 * 1024);
  const acked: string[] = [];
  const write = async (key: string): Promise<void> => {
    const r = await service.execute(set(key, value));
    expect(r.type, JSON.stringify(r)).not.toBe('failure');
    acked.push(key);
  };
  await write('before');

  writeFileSync(gateOf(full), '');
  for (let i = 0; f.store.writeStall() === undefined; i++) {
    if (i > 300) throw new Error(`${full}'s database never filled up`);
    await write(`k${i}`);
  }
  const stalledAt = f.durable;
  // The cluster keeps committing through the two others; the full follower stays up and holds back its acks.
  for (let i = 0; i < 10; i++) await write(`more${i}`);
  const commit = (nodes.get(leader) as Node).host.status('p0').commit;
  expect(f.fatal).toBeUndefined();
  expect(f.store.writeStall()).toBeDefined();
  expect(f.durable).toBe(stalledAt);
  expect(f.host.status('p0').leader).toBe(leader);
  expect(violations).toEqual([]);

  rmSync(gateOf(full));
  await until(`${full} to catch up`, () => f.durable >= commit && f.host.status('p0').applied >= commit);
  expect(f.store.writeStall()).toBeUndefined();
  expect(f.fatal).toBeUndefined();
  expect(violations).toEqual([]);
  const kv = f.store.kv('p0');
  for (const k of acked) expect(kv.get(enc.encode(k))?.value.length, k).toBe(value.length);
}, 30_000);

it('a checksum entry applied while the disk fills records no digest there, and the entries apply regardless', async () => {
  dir = mkdtempSync(join(tmpdir(), 'cohort-kv-full-'));
  const gate = join(dir, 'full');
  const store = SqliteNodeStore.open(join(dir, 'node.db'), { writer: 'thread', quickCheck: false, diskFullGate: gate });
  try {
    const sm = new KvStateMachine(store, 'p0');
    sm.applyBatch([entry(1, setCmd('a', 'x'))], CONF);
    store.flush();
    writeFileSync(gate, '');
    // One batch too large for the pages left, with a checksum entry at its end: its digest needs a view.
    const value = 'v'.repeat(16 * 1024);
    const batch = Array.from({ length: 200 }, (_, i) => entry(i + 2, setCmd(`k${i}`, value)));
    batch.push(entry(202, { op: 'checksum', now: 2000 }));
    sm.applyBatch(batch, CONF);
    expect(store.writeStall()).toBeDefined();
    expect(sm.digestAt(202)).toBeUndefined();
    expect(sm.appliedIndex).toBe(202);
    rmSync(gate);
    await until('the applied batch to commit', () => store.writeStall() === undefined);
    store.flush();
    expect(store.kv('p0').get(enc.encode('k199'))?.value.length).toBe(value.length);
  } finally {
    store.close();
  }
});
