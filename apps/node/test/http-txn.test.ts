import { silentLogger, systemClock } from '@cohort/core';
import {
  type KvRequest,
  type KvResponse,
  KvStateMachine,
  SlotMap,
  TxnCoordinator,
  type TxnReply,
  encodeCommand,
} from '@cohort/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Acl } from '../src/auth.js';
import type { TxnRunner } from '../src/cross-partition-txn.js';
import { createHttpServer } from '../src/http-server.js';
import { DEFAULT_WRITE_LIMITS } from '../src/limits.js';
import { NodeMetrics } from '../src/metrics.js';
import { LocalKv } from './helpers/local-kv.js';
import { keysOverPartitions } from './helpers/txn-keys.js';

const slots = new SlotMap(2);

/** One partition: a real state machine applying each step as its next log entry. */
class LocalPartition {
  readonly sm = new KvStateMachine();
  private index = 0;
  async execute(req: KvRequest): Promise<KvResponse> {
    if (req.kind !== 'write') {
      const res = this.sm.read(req.op as 'get', req.keys, req.args ?? [], req.now);
      return res;
    }
    return this.sm.apply(++this.index, encodeCommand(req.command));
  }
}

const partitions = [new LocalPartition(), new LocalPartition()];
const coordinator = new TxnCoordinator({
  slots,
  partition: (p) => partitions[p]!,
  clock: systemClock,
  random: Math.random,
  clientId: 'txn:test',
  maxKeys: 8,
});
/** Answers TRYAGAIN when a transaction names the key `hot`, as after repeated conflicts. */
const runner: TxnRunner = {
  run: (req): Promise<TxnReply> =>
    req.success.some((w) => w.op === 'set' && Buffer.from(w.key).toString() === 'hot')
      ? Promise.resolve({ type: 'error', message: 'TRYAGAIN the transaction met intents 8 times; nothing was applied' })
      : coordinator.run(req),
};
const kv = new LocalKv();
const app = createHttpServer({
  api: kv,
  metrics: new NodeMetrics(() => kv.status()),
  logger: silentLogger,
  txn: { txn: runner, limits: { ...DEFAULT_WRITE_LIMITS, maxValueBytes: 16 } },
});
const [a, b] = keysOverPartitions('acct:', 2, 2) as [string, string];

const post = async (payload: unknown, query = '') => {
  const res = await app.inject({ method: 'POST', url: `/v1/txn${query}`, payload: payload as object });
  return { status: res.statusCode, json: res.json() };
};

beforeAll(async () => {
  await app.ready();
});
afterAll(async () => {
  await app.close();
});

describe('POST /v1/txn', () => {
  it('applies the success branch when every comparison holds, the failure branch otherwise', async () => {
    const open = await post({
      compare: [
        { key: a, target: 'exists', exists: false },
        { key: b, target: 'version', version: 0 },
      ],
      success: [{ put: { key: a, value: '10' } }, { put: { key: b, value: '0' } }],
      failure: [{ get: { key: a } }],
    });
    expect(open).toEqual({ status: 200, json: { succeeded: true, results: [{ type: 'put' }, { type: 'put' }] } });
    const transfer = {
      compare: [
        { key: a, target: 'value', value: '10', op: '=' },
        { key: b, target: 'value', value: '0' },
      ],
      success: [{ put: { key: a, value: '7' } }, { put: { key: b, value: '3' } }, { delete: { key: 'gone' } }],
      failure: [{ get: { key: a } }, { get: { key: 'never' } }],
    };
    expect((await post(transfer)).json).toEqual({
      succeeded: true,
      results: [{ type: 'put' }, { type: 'put' }, { type: 'delete', deleted: 0 }],
    });
    expect((await post(transfer)).json).toEqual({
      succeeded: false,
      results: [
        { type: 'get', key: a, value: '7' },
        { type: 'get', key: 'never', value: null },
      ],
    });
    // Once the intents are resolved, each partition holds its key's new value.
    await coordinator.settled();
    const value = (k: string) => partitions[slots.partitionOfKey(Buffer.from(k))]!.sm.get(Buffer.from(k), Date.now());
    expect([a, b].map((k) => Buffer.from(value(k) ?? []).toString())).toEqual(['7', '3']);
  });

  it("compares as etcd does: '!=', '<', '>' on revisions, versions and values, createRevision, exists: true", async () => {
    const k = 'cmp-key';
    const holds = async (compare: object[]): Promise<boolean> =>
      (await post({ compare, success: [{ get: { key: k } }], failure: [{ get: { key: k } }] })).json.succeeded;
    // Absent: revisions and version are 0, and every value comparison fails.
    expect(await holds([{ key: k, target: 'exists', exists: true }])).toBe(false);
    expect(await holds([{ key: k, target: 'createRevision', createRevision: 0 }])).toBe(true);
    expect(await holds([{ key: k, target: 'version', version: 0, op: '<' }])).toBe(false);
    expect(await holds([{ key: k, target: 'value', value: 'a', op: '!=' }])).toBe(false);
    expect((await post({ success: [{ put: { key: k, value: 'm' } }] })).json.succeeded).toBe(true);
    expect((await post({ success: [{ put: { key: k, value: 'n' } }] })).json.succeeded).toBe(true);
    await coordinator.settled();
    expect(await holds([{ key: k, target: 'exists', exists: true }])).toBe(true);
    expect(await holds([{ key: k, target: 'version', version: 2 }])).toBe(true);
    expect(await holds([{ key: k, target: 'version', version: 1, op: '>' }])).toBe(true);
    expect(await holds([{ key: k, target: 'version', version: 2, op: '<' }])).toBe(false);
    expect(await holds([{ key: k, target: 'version', version: 2, op: '!=' }])).toBe(false);
    expect(await holds([{ key: k, target: 'createRevision', createRevision: 0, op: '>' }])).toBe(true);
    expect(await holds([{ key: k, target: 'modRevision', modRevision: 1_000_000, op: '<' }])).toBe(true);
    expect(await holds([{ key: k, target: 'value', value: 'm', op: '>' }])).toBe(true);
    expect(await holds([{ key: k, target: 'value', value: 'o', op: '<' }])).toBe(true);
    expect(await holds([{ key: k, target: 'value', value: 'n', op: '!=' }])).toBe(false);
  });

  it('takes keys and values in base64 with ?encoding=base64', async () => {
    const key = Buffer.from([0xff, 0x00]).toString('base64');
    const res = await post(
      { success: [{ put: { key, value: 'AAEC' } }, { get: { key } }], failure: [] },
      '?encoding=base64',
    );
    expect(res.json.results[1]).toEqual({ type: 'get', key, value: 'AAEC' });
    const bad = await post({ success: [{ put: { key: 'not base64!', value: 'AA==' } }] }, '?encoding=base64');
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/success\[0\]\.put\.key is not valid base64/);
  });

  it('refuses bad input with 400 and says why, writing nothing', async () => {
    const cases: [unknown, RegExp][] = [
      [{ compare: [{ key: a, target: 'value', version: 1 }] }, /target 'value' takes the field 'value'/],
      [{ compare: [{ key: a, target: 'exists', exists: true, op: '!=' }] }, /target 'exists' takes no op/],
      [{ compare: [{ key: a, target: 'value', value: 'x', op: '~' }] }, /op/],
      [{ success: [{ put: { key: a } }] }, /value/],
      [{ success: [{ put: { key: a, value: 'x' }, delete: { key: b } }] }, /more than 1|maxProperties/],
      [{ success: [{ incr: { key: a } }] }, /additional|incr/],
      [{ succes: [] }, /additional|succes/],
      [{ success: [] }, /touches no key/],
    ];
    for (const [payload, why] of cases) {
      const res = await post(payload);
      expect(res.status, JSON.stringify(payload)).toBeGreaterThanOrEqual(400);
      expect(res.status, JSON.stringify(payload)).toBeLessThan(500);
      expect(res.json.error.message, JSON.stringify(payload)).toMatch(why);
    }
  });

  it('refuses a transaction over the limits with 413 before anything is written', async () => {
    const many = keysOverPartitions('many:', 9, 2);
    const res = await post({ success: many.map((key) => ({ put: { key, value: '1' } })) });
    expect(res.status).toBe(413);
    expect(res.json.error).toMatchObject({
      code: 'TOO_LARGE',
      message: expect.stringMatching(/9 keys, over the limit of 8/),
    });
    const big = await post({ success: [{ put: { key: a, value: 'x'.repeat(17) } }] });
    expect(big.status).toBe(413);
    expect(big.json.error.message).toMatch(/max-value-bytes/);
    for (const p of partitions) for (const key of many) expect(p.sm.get(Buffer.from(key), Date.now())).toBeUndefined();
  });

  it('answers 503 TRYAGAIN when the transaction kept meeting others', async () => {
    const res = await post({ success: [{ put: { key: 'hot', value: '1' } }] });
    expect(res).toMatchObject({ status: 503, json: { error: { code: 'TRYAGAIN' } } });
  });

  it('is described in the OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/v1/openapi.json' })).json();
    expect(doc.paths['/v1/txn'].post.requestBody).toBeDefined();
  });
});

describe('POST /v1/txn with bearer tokens', () => {
  it("checks the user's permissions on every key the body names, reads and writes apart", async () => {
    const acl = new Acl({
      users: [
        { name: 'reader', tokens: ['read-token'], commands: ['+@read'], keys: ['pub/*'] },
        { name: 'writer', tokens: ['write-token'], commands: ['+@read', '+@write'], keys: ['pub/*'] },
      ],
    });
    const secured = createHttpServer({
      api: kv,
      metrics: new NodeMetrics(() => kv.status()),
      logger: silentLogger,
      auth: { acl },
      txn: { txn: runner, limits: DEFAULT_WRITE_LIMITS },
    });
    await secured.ready();
    const as = async (token: string | undefined, payload: object) => {
      const res = await secured.inject({
        method: 'POST',
        url: '/v1/txn',
        payload,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      return { status: res.statusCode, code: res.json().error?.code };
    };
    try {
      const write = { success: [{ put: { key: 'pub/a', value: '1' } }, { put: { key: 'pub/b', value: '2' } }] };
      expect(await as(undefined, write)).toEqual({ status: 401, code: 'UNAUTHORIZED' });
      expect(await as('read-token', write)).toEqual({ status: 403, code: 'NOPERM' });
      expect(await as('write-token', write)).toEqual({ status: 200, code: undefined });
      expect(await as('read-token', { success: [{ get: { key: 'pub/a' } }] })).toEqual({
        status: 200,
        code: undefined,
      });
      // A key outside the user's patterns, in a comparison or in the failure branch alike.
      const outside = {
        compare: [{ key: 'secret', target: 'version', version: 0 }],
        success: [{ get: { key: 'pub/a' } }],
      };
      expect(await as('read-token', outside)).toEqual({ status: 403, code: 'NOPERM' });
      const failure = { success: [{ put: { key: 'pub/a', value: '1' } }], failure: [{ delete: { key: 'secret' } }] };
      expect(await as('write-token', failure)).toEqual({ status: 403, code: 'NOPERM' });
    } finally {
      await secured.close();
    }
  });
});
