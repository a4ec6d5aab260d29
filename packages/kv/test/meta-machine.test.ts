import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Entry, emptyConfState } from '@cohort/core';
import { SqliteNodeStore } from '@cohort/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { MetaStateMachine } from '../src/meta/machine.js';
import { type MetaCommand, encodeMetaCommand } from '../src/meta/state.js';

const CONF = { ...emptyConfState(), voters: ['a'] };
const entry = (index: number, cmd: MetaCommand): Entry => ({
  index,
  term: 1,
  type: 'normal',
  data: encodeMetaCommand(cmd),
});
const boot: MetaCommand = {
  type: 'bootstrap',
  clusterId: 'c1',
  replicationFactor: 1,
  nodes: [{ id: 'a', peerAddress: '127.0.0.1:7001', tags: { zone: 'z1' }, startedAt: 5 }],
  partitions: [['a'], ['a']],
};

describe('MetaStateMachine', () => {
  const dirs: string[] = [];
  const open = (dir?: string) => {
    const d = dir ?? mkdtempSync(join(tmpdir(), 'cohort-meta-'));
    if (!dir) dirs.push(d);
    return { dir: d, store: SqliteNodeStore.open(join(d, 'cohort.db'), { quickCheck: false }) };
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('persists its state with the applied position and reloads it', () => {
    const { dir, store } = open();
    const sm = new MetaStateMachine(store);
    let changes = 0;
    sm.onChange(() => changes++);
    const out = sm.applyBatch(
      [
        entry(1, boot),
        { index: 2, term: 1, type: 'normal', data: new Uint8Array() },
        entry(3, { type: 'reconfigure', partition: 1, epoch: 7, replicas: [] }),
        { index: 4, term: 1, type: 'normal', data: new TextEncoder().encode('not json') },
      ],
      CONF,
    );
    expect(out[0]).toEqual({ ok: true, value: { ok: true } });
    expect(out[1]).toBeUndefined();
    expect(out[2]).toMatchObject({ ok: true, value: { ok: false } });
    expect(out[3]).toMatchObject({ ok: false });
    expect(changes).toBe(1);
    // A replay of applied entries is skipped.
    expect(sm.applyBatch([entry(1, boot)], CONF)).toEqual([undefined]);
    store.close();
    const again = open(dir);
    const sm2 = new MetaStateMachine(again.store);
    expect(sm2.applied().index).toBe(4);
    expect(sm2.state.clusterId).toBe('c1');
    expect(sm2.state.partitions).toHaveLength(2);
    expect(sm2.state.nodes.a?.tags).toEqual({ zone: 'z1' });
    again.store.close();
  });

  it('moves its state by snapshot to another replica', async () => {
    const a = open();
    const b = open();
    const from = new MetaStateMachine(a.store);
    from.applyBatch([entry(1, boot), entry(2, { type: 'ext', section: 'vpaxos', value: { epoch: 3 } })], CONF);
    const to = new MetaStateMachine(b.store);
    let told = 0;
    to.onChange(() => told++);
    const reader = from.openSnapshot();
    const writer = to.receiveSnapshot(reader.meta);
    let seq = 0;
    for (let c = await reader.next(1 << 20); c; c = await reader.next(1 << 20)) writer.write(seq++, c);
    reader.close();
    writer.commit();
    expect(told).toBe(1);
    expect(to.applied().index).toBe(2);
    expect(to.state).toEqual(from.state);
    a.store.close();
    b.store.close();
  });

  it('refuses a snapshot of a newer format', () => {
    const { store } = open();
    const sm = new MetaStateMachine(store);
    const w = sm.receiveSnapshot({ index: 3, term: 1, confState: CONF });
    w.write(0, new TextEncoder().encode(JSON.stringify({ format: 99 })));
    expect(() => w.commit()).toThrow(/newer/);
    expect(sm.state.clusterId).toBe('');
    store.close();
  });

  it('records each partition engine and refuses a Raft reconfiguration of a vpaxos partition', () => {
    const { store } = open();
    const sm = new MetaStateMachine(store);
    sm.applyBatch([entry(1, { ...boot, engines: ['raft', 'vpaxos'] })], CONF);
    expect(sm.state.partitions.map((p) => p.engine)).toEqual([undefined, 'vpaxos']);
    const [res] = sm.applyBatch(
      [entry(2, { type: 'reconfigure', partition: 1, epoch: 1, replicas: [{ node: 'a', role: 'voter' }] })],
      CONF,
    );
    expect(res).toMatchObject({ ok: true, value: { ok: false, reason: expect.stringContaining('Vertical Paxos') } });
    store.close();
  });

  it('hands an extCommand to the extension owning its section, and refuses one no extension owns', () => {
    const { store } = open();
    const ext = (state: { ext: Record<string, unknown> }, command: unknown) => {
      const n = (state.ext.counter as number | undefined) ?? 0;
      if (command !== 'inc') return { ok: false as const, reason: 'only inc' };
      state.ext.counter = n + 1;
      return { ok: true as const };
    };
    const sm = new MetaStateMachine(store, 'meta', new Map([['counter', ext]]));
    const out = sm.applyBatch(
      [
        entry(1, boot),
        entry(2, { type: 'extCommand', section: 'counter', command: 'inc' }),
        entry(3, { type: 'extCommand', section: 'counter', command: 'dec' }),
        entry(4, { type: 'extCommand', section: 'other', command: 'inc' }),
      ],
      CONF,
    );
    expect(sm.state.ext.counter).toBe(1);
    expect(out[2]).toMatchObject({ value: { ok: false, reason: 'only inc' } });
    expect(out[3]).toMatchObject({
      value: { ok: false, reason: expect.stringContaining('no control-plane extension') },
    });
    store.close();
  });
});
