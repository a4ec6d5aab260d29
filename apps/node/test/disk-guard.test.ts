import { silentLogger } from '@cohort/core';
import type { KvClientRequest } from '@cohort/kv';
import type { WriteStall } from '@cohort/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskGuard } from '../src/disk-guard.js';
import { LocalKv } from './helpers/local-kv.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const set = (key: string, value: string): KvClientRequest => ({
  kind: 'write',
  write: { op: 'set', key: b(key), value: b(value), condition: 'always', expiry: { kind: 'none' }, returnOld: false },
});
const get = (key: string): KvClientRequest => ({ kind: 'read', op: 'get', keys: [b(key)] });

let guard: DiskGuard | undefined;
afterEach(() => guard?.stop());

describe('a full disk', () => {
  it('refuses writes with an error that says so, serves reads, and takes writes again once space is back', async () => {
    const kv = new LocalKv();
    let full = false;
    let told = 0;
    guard = new DiskGuard({ dataDir: '/data/n1', logger: silentLogger, forcedFull: () => full, onFull: () => told++ });
    const api = guard.guard(kv);
    expect(await api.execute(set('k', 'v1'))).toEqual({ type: 'ok' });

    full = true;
    await expect.poll(() => guard?.isFull, { timeout: 3000 }).toBe(true);
    expect(told).toBeGreaterThan(0);
    const refused = await api.execute(set('k', 'v2'));
    expect(refused).toMatchObject({ type: 'failure', code: 'UNAVAILABLE' });
    expect(refused.type === 'failure' && refused.message).toMatch(
      /disk full: .*\/data\/n1.*refuses writes.*reads are served/,
    );
    expect(await api.execute(get('k'))).toMatchObject({ type: 'bulk', value: b('v1') });
    // In a pipeline, the writes are refused in place and the reads answered in order.
    const answers = await api.executeAll([get('k'), set('k', 'v3'), get('k')]);
    expect(answers.map((a) => a.type)).toEqual(['bulk', 'failure', 'bulk']);
    // A transaction that writes is refused too; one that only reads passes.
    const runs: string[] = [];
    const txn = guard.guardTxn({
      run: async (req) => {
        runs.push(req.success.map((w) => w.op).join(','));
        return { type: 'txn', txn: 't', succeeded: true, results: [] };
      },
    });
    const k = [b('k')];
    expect(await txn.run({ compares: [], success: [{ op: 'del', keys: k }], failure: [] })).toMatchObject({
      type: 'failure',
      code: 'UNAVAILABLE',
    });
    expect(
      await txn.run({ compares: [], success: [{ op: 'read', read: 'mget', keys: k }], failure: [] }),
    ).toMatchObject({
      type: 'txn',
    });
    expect(runs).toEqual(['read']);

    full = false;
    await expect.poll(() => guard?.isFull, { timeout: 3000 }).toBe(false);
    expect(await api.execute(set('k', 'v4'))).toEqual({ type: 'ok' });
  });

  it('counts the disk full at once while a commit waits for space, whatever the free space', async () => {
    const kv = new LocalKv();
    let stall: WriteStall | undefined;
    guard = new DiskGuard({ dataDir: '/data/n1', logger: silentLogger, writeStall: () => stall });
    const api = guard.guard(kv);
    expect(guard.isFull).toBe(false);
    stall = { since: Date.now(), reason: 'database or disk is full' };
    // The store tells the guard when its commits start waiting: no timer in between.
    guard.check();
    expect(guard.isFull).toBe(true);
    expect(guard.reason).toMatch(/cannot grow \(database or disk is full\)/);
    const refused = await api.execute(set('k', 'v'));
    expect(refused.type === 'failure' && refused.message).toMatch(/^disk full: .*cannot grow.*refuses writes/);
    expect(await api.execute(get('k'))).toMatchObject({ type: 'nil' });
    stall = undefined;
    guard.check();
    expect(guard.isFull).toBe(false);
    expect(await api.execute(set('k', 'v'))).toEqual({ type: 'ok' });
  });
});
