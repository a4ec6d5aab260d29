import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runBank } from './helpers/bank.js';
import { ProcCluster, poll } from './helpers/processes.js';
import { type TxnAnswer, keysOverPartitions, partitionOf } from './helpers/txn-keys.js';

const PARTITIONS = 4;
const MAX_TXN_KEYS = 64;
const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

function connect(port: number): Redis {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, commandTimeout: 10_000 });
  r.on('error', () => {});
  clients.push(r);
  return r;
}

async function txn(http: number, body: unknown, query = ''): Promise<{ status: number; json: TxnAnswer }> {
  const res = await fetch(`http://127.0.0.1:${http}/v1/txn${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, json: (await res.json()) as TxnAnswer };
}

async function leaders(http: number): Promise<string[] | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${http}/v1/partitions`, { signal: AbortSignal.timeout(1000) });
    const ps = ((await res.json()) as { partitions: { leader: string }[] }).partitions;
    return ps.every((p) => p.leader !== '') ? ps.map((p) => p.leader) : undefined;
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  cluster = await ProcCluster.create(3, [
    '--partitions',
    String(PARTITIONS),
    '--heartbeat-ms',
    '50',
    '--election-timeout-ms',
    '300',
    '--max-txn-keys',
    String(MAX_TXN_KEYS),
  ]);
  cluster.startAll();
  const c = cluster;
  await poll('every partition led, as every node sees it', 45_000, async () => {
    const views = await Promise.all(c.nodes.map((n) => leaders(n.http)));
    return views.every((v) => v !== undefined) ? true : undefined;
  });
}, 60_000);

afterEach((ctx) => {
  // A failure here has so far been one of timing in the cluster's first seconds: say what the nodes went through.
  if (ctx.task.result?.state === 'fail')
    console.log(`nodes' warnings and leadership changes:\n${cluster?.notableLog()}`);
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

describe('transactions across partitions on a cluster of 3 nodes with 4 partitions', () => {
  it('runs MSET, MSETNX, DEL and UNLINK of keys in every partition atomically for a plain client', async () => {
    const r = connect(cluster!.nodes[0]!.resp);
    const keys = keysOverPartitions('ms:', 8, PARTITIONS);
    expect(new Set(keys.map((k) => partitionOf(k, PARTITIONS))).size).toBe(PARTITIONS);
    expect(await r.mset(...keys.flatMap((k, i) => [k, `v${i}`]))).toBe('OK');
    expect(await r.mget(...keys)).toEqual(keys.map((_, i) => `v${i}`));
    // MSETNX sets nothing when one key exists, and everything when none does.
    const fresh = keysOverPartitions('nx:', 4, PARTITIONS);
    expect(await r.msetnx(fresh[0]!, 'a', fresh[1]!, 'b', keys[2]!, 'c')).toBe(0);
    expect(await r.mget(fresh[0]!, fresh[1]!, keys[2]!)).toEqual([null, null, 'v2']);
    expect(await r.msetnx(...fresh.flatMap((k) => [k, 'x']))).toBe(1);
    expect(await r.exists(...fresh)).toBe(4);
    expect(await r.del(keys[0]!, keys[1]!, keys[2]!, 'ms:never-set')).toBe(3);
    expect(await r.unlink(keys[3]!, ...fresh)).toBe(5);
    expect(await r.mget(...keys.slice(0, 4), ...fresh)).toEqual(Array(8).fill(null));
    expect(await r.mget(...keys.slice(4))).toEqual(['v4', 'v5', 'v6', 'v7']);
  });

  it('runs MULTI/EXEC across partitions, answers nil when a WATCHed key changed, and refuses an MSETNX whose own keys span partitions', async () => {
    const c = cluster!;
    const r = connect(c.nodes[1]!.resp);
    const other = connect(c.nodes[2]!.resp);
    const [a, b, d] = keysOverPartitions('tx:', 3, PARTITIONS) as [string, string, string];
    await r.set(a, '10');
    expect(await r.multi().incrby(a, 5).set(b, 'x').get(a).mget(a, b).exec()).toEqual([
      [null, 15],
      [null, 'OK'],
      [null, '15'],
      [null, ['15', 'x']],
    ]);
    // WATCH across partitions: another client's write to one of them makes EXEC answer nil and apply nothing.
    await r.watch(a, b);
    await other.set(b, 'changed');
    expect(await r.multi().set(a, 'lost').set(d, 'lost').exec()).toBeNull();
    expect(await r.mget(a, b, d)).toEqual(['15', 'changed', null]);
    // Unchanged watched keys: EXEC applies.
    await r.watch(a, b);
    expect(await r.multi().set(a, 'won').set(d, 'won').exec()).toEqual([
      [null, 'OK'],
      [null, 'OK'],
    ]);
    expect(await r.mget(a, d)).toEqual(['won', 'won']);
    // Inside MULTI, MSET and DEL of keys in several partitions are split over them ...
    expect(await r.multi().mset(a, '1', b, '2').del(a, d).exec()).toEqual([
      [null, 'OK'],
      [null, 2],
    ]);
    expect(await r.mget(a, b, d)).toEqual([null, '2', null]);
    // ... while MSETNX's keys must share a partition; the error aborts EXEC, as Redis does.
    await r.call('MULTI');
    const refused = await r.call('MSETNX', a, '1', b, '2').catch((e: Error) => e);
    expect(String(refused)).toMatch(/MSETNX inside MULTI has keys in 2 partitions/);
    await expect(r.call('EXEC')).rejects.toThrow(/EXECABORT/);
  });

  it('keeps CROSSSLOT for a cluster-aware connection unless it opts in with CLIENT CROSSSLOT ALLOW', async () => {
    const r = connect(cluster!.nodes[0]!.resp);
    const [a, b] = keysOverPartitions('cs:', 2, PARTITIONS) as [string, string];
    expect(await r.call('CLIENT', 'CROSSSLOT')).toBe('allow');
    await r.call('CLUSTER', 'SLOTS');
    expect(await r.call('CLIENT', 'CROSSSLOT')).toBe('refuse');
    await expect(r.mset(a, '1', b, '2')).rejects.toThrow(/CROSSSLOT/);
    expect(await r.call('CLIENT', 'CROSSSLOT', 'ALLOW')).toBe('OK');
    expect(await r.mset(a, '1', b, '2')).toBe('OK');
    expect(await r.mget(a, b)).toEqual(['1', '2']);
    await expect(r.call('CLIENT', 'CROSSSLOT', 'MAYBE')).rejects.toThrow(/ALLOW, REFUSE or DEFAULT/);
  });

  it('refuses a transaction over the key limit before writing anything', async () => {
    const r = connect(cluster!.nodes[0]!.resp);
    const keys = keysOverPartitions('big:', MAX_TXN_KEYS + 4, PARTITIONS);
    await expect(r.mset(...keys.flatMap((k) => [k, '1']))).rejects.toThrow(/keys|limit/);
    expect(await r.exists(...keys)).toBe(0);
    const { status, json } = await txn(cluster!.nodes[1]!.http, {
      success: keys.map((key) => ({ put: { key, value: '1' } })),
    });
    expect(status).toBe(413);
    expect(json.error?.code).toBe('TOO_LARGE');
    expect(await r.exists(...keys)).toBe(0);
  });

  it('serves POST /v1/txn on any keys: compares, then the success or the failure branch', async () => {
    const c = cluster!;
    const http = c.nodes[2]!.http;
    const [a, b, m] = keysOverPartitions('ht:', 3, PARTITIONS) as [string, string, string];
    const first = await txn(http, {
      compare: [{ key: a, target: 'version', version: 0 }],
      success: [{ put: { key: a, value: '100' } }, { put: { key: b, value: '0' } }, { get: { key: a } }],
      failure: [{ get: { key: a } }],
    });
    expect(first).toEqual({
      status: 200,
      json: {
        succeeded: true,
        // A get sees the operations before it in its branch, as in etcd and EXEC.
        results: [{ type: 'put' }, { type: 'put' }, { type: 'get', key: a, value: '100' }],
      },
    });
    // A transfer guarded by the values read; replayed, the comparison fails and the failure branch runs.
    const transfer = {
      compare: [
        { key: a, target: 'value', value: '100' },
        { key: b, target: 'value', value: '0' },
      ],
      success: [{ put: { key: a, value: '70' } }, { put: { key: b, value: '30' } }, { delete: { key: m } }],
      failure: [{ get: { key: a } }, { get: { key: b } }],
    };
    expect((await txn(http, transfer)).json).toEqual({
      succeeded: true,
      results: [{ type: 'put' }, { type: 'put' }, { type: 'delete', deleted: 0 }],
    });
    expect((await txn(http, transfer)).json).toEqual({
      succeeded: false,
      results: [
        { type: 'get', key: a, value: '70' },
        { type: 'get', key: b, value: '30' },
      ],
    });
    const rec = await fetch(`http://127.0.0.1:${http}/v1/kv/${encodeURIComponent(a)}`).then((x) => x.json());
    const byRevision = await txn(http, {
      compare: [{ key: a, target: 'modRevision', modRevision: (rec as { modRevision: number }).modRevision }],
      success: [{ delete: { key: a } }, { delete: { key: b } }],
    });
    expect(byRevision.json).toEqual({
      succeeded: true,
      results: [
        { type: 'delete', deleted: 1 },
        { type: 'delete', deleted: 1 },
      ],
    });
    // Keys and values in base64, as the rest of the API takes them.
    const k64 = Buffer.from([0xff, 0x00, 0x01]).toString('base64');
    const ok64 = await txn(
      http,
      { success: [{ put: { key: k64, value: 'AAE=' } }, { get: { key: k64 } }] },
      '?encoding=base64',
    );
    expect(ok64.json.results[1]).toEqual({ type: 'get', key: k64, value: 'AAE=' });
    // Bad input: a clear 400, nothing applied.
    const bad = await txn(http, {
      compare: [{ key: a, target: 'value', version: 3 }],
      success: [{ put: { key: a, value: 'x' } }],
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error?.message).toMatch(/target 'value' takes the field 'value'/);
    const unknown = await txn(http, { success: [{ increment: { key: a } }] });
    expect(unknown.status).toBe(400);
    const doc = (await fetch(`http://127.0.0.1:${http}/v1/openapi.json`).then((x) => x.json())) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths)).toContain('/v1/txn');
  });

  it('keeps every read of all balances at the total while transfers run and nodes are SIGKILLed, and applies each acknowledged transfer once', async () => {
    const outcome = await runBank(cluster!, { partitions: PARTITIONS, accounts: 8, durationMs: 8000 });
    expect(outcome.badReads, outcome.describe()).toEqual([]);
    // Progress, with margin for a loaded machine (a quiet one does hundreds).
    expect(outcome.reads, outcome.describe()).toBeGreaterThanOrEqual(3);
    expect(outcome.acknowledged, outcome.describe()).toBeGreaterThanOrEqual(5);
    expect(outcome.finalMismatches, outcome.describe()).toEqual([]);
    expect(outcome.linearizable, outcome.describe()).toBe('ok');
    console.info(outcome.summary());
  }, 120_000);
});
