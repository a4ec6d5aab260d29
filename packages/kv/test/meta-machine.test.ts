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

  it('moves its state by snapshot to another replica', () => {
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
    for (let c = reader.next(1 << 20); c; c = reader.next(1 << 20)) writer.write(seq++, c);
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
});
