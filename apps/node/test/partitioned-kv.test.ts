import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KvClientRequest, type KvResponse, SlotMap, type TxnReply, type TxnRequest, slotOfKey } from '@cohort/kv';
import { afterEach, describe, expect, it } from 'vitest';
import { ATOMIC_READ_ATTEMPTS } from '../src/cross-partition-read.js';
import type { KvReadRequest } from '../src/kv-api.js';
import { LAYOUT_FILE, loadLayout, placePartitions } from '../src/partition-layout.js';
import { type PartitionService, PartitionedKv, mergeRanges, mergeScans, writeKeys } from '../src/partitioned-kv.js';
import { parseResumeToken } from '../src/partitioned-watch.js';

const enc = new TextEncoder();
const b = (s: string) => Buffer.from(s);
const map = new SlotMap(4);
const partitionOf = (k: string) => map.partitionOfKey(enc.encode(k));

/**
 * A partition's service over an in-memory map, answering the reads and writes the router sends,
 * and recording every request it was sent, in order.
 */
class FakePartition implements PartitionService {
  readonly seen: KvClientRequest[] = [];
  readonly rows = new Map<string, string>();
  /** Each key's mod revision: this partition's count of writes when it was last written. */
  readonly revs = new Map<string, number>();
  private writes = 0;
  /** Called before each read is served (a test changes rows between the reads of one request). */
  beforeRead: (req: KvClientRequest) => void = () => {};

  constructor(readonly index: number) {}

  async executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]> {
    this.seen.push(...reqs);
    return reqs.map((r) => this.serve(r));
  }

  readLocal(req: KvReadRequest): KvResponse {
    return this.serve(req);
  }

  async leaseRead(req: KvReadRequest): Promise<KvResponse> {
    return this.serve(req);
  }

  put(key: string, value: string): void {
    this.rows.set(key, value);
    this.revs.set(key, ++this.writes);
  }

  private serve(req: KvClientRequest): KvResponse {
    if (req.kind === 'write') {
      const w = req.write;
      if (w.op === 'set') {
        this.put(Buffer.from(w.key).toString(), Buffer.from(w.value).toString());
        return { type: 'ok' };
      }
      if (w.op === 'flush') {
        this.rows.clear();
        return { type: 'ok' };
      }
      return { type: 'error', message: `unexpected ${w.op}` };
    }
    this.beforeRead(req);
    const keys = req.keys.map((k) => Buffer.from(k).toString());
    if (req.op !== 'range')
      for (const k of keys) expect(partitionOf(k), `${k} sent to p${this.index}`).toBe(this.index);
    const sorted = [...this.rows.keys()].sort();
    switch (req.op) {
      case 'mget':
        return { type: 'array', values: keys.map((k) => (this.rows.has(k) ? b(this.rows.get(k)!) : null)) };
      case 'exists':
        return { type: 'int', value: BigInt(keys.filter((k) => this.rows.has(k)).length) };
      case 'revisions':
        return { type: 'array', values: keys.map((k) => b(String(this.revs.get(k) ?? 0))) };
      case 'dbsize':
        return { type: 'int', value: BigInt(this.rows.size) };
      case 'range': {
        const from = sorted.filter((k) => k >= (keys[0] ?? ''));
        const page = req.limit ? from.slice(0, req.limit) : from;
        return {
          type: 'range',
          records: page.map((k) => ({ key: b(k), value: b(this.rows.get(k)!) })) as never,
          more: page.length < from.length,
          revision: this.index + 10,
        };
      }
      default:
        return { type: 'error', message: `unexpected ${req.op}` };
    }
  }
}

function router(): { kv: PartitionedKv; parts: FakePartition[] } {
  const parts = [0, 1, 2, 3].map((i) => new FakePartition(i));
  return { kv: new PartitionedKv(map, parts), parts };
}

const set = (k: string, v: string): KvClientRequest => ({
  kind: 'write',
  write: { op: 'set', key: b(k), value: b(v), condition: 'always', expiry: { kind: 'none' }, returnOld: false },
});

// foo: slot 12182 (p2), bar: 5061 (p1), hello: 866 (p0), 123456789: 12739 (p3).
const KEYS = ['foo', 'bar', 'hello', '123456789'];

describe('PartitionedKv', () => {
  it('sends each request to its key partition and keeps each partition order', async () => {
    const { kv, parts } = router();
    expect(KEYS.map(partitionOf)).toEqual([2, 1, 0, 3]);
    const answers = await kv.executeAll([
      set('foo', '1'),
      set('bar', '2'),
      { kind: 'read', op: 'mget', keys: [b('foo')] },
      set('foo', '3'),
      { kind: 'read', op: 'mget', keys: [b('foo')] },
    ]);
    expect(answers).toEqual([
      { type: 'ok' },
      { type: 'ok' },
      { type: 'array', values: [b('1')] },
      { type: 'ok' },
      { type: 'array', values: [b('3')] },
    ]);
    expect(parts[2]!.seen).toHaveLength(4);
    expect(parts[1]!.seen).toHaveLength(1);
    expect(parts[0]!.seen).toHaveLength(0);
  });

  it('splits MGET and EXISTS over the partitions and merges their answers in key order', async () => {
    const { kv } = router();
    await kv.executeAll(KEYS.map((k, i) => set(k, `v${i}`)));
    const [mget, exists] = await kv.executeAll([
      { kind: 'read', op: 'mget', keys: [b('hello'), b('nope'), b('foo'), b('123456789'), b('bar')] },
      { kind: 'read', op: 'exists', keys: [b('hello'), b('nope'), b('foo'), b('foo')] },
    ]);
    expect(mget).toEqual({ type: 'array', values: [b('v2'), null, b('v0'), b('v3'), b('v1')] });
    expect(exists).toEqual({ type: 'int', value: 3n });
  });

  it('sends keyless reads and FLUSHDB to every partition', async () => {
    const { kv, parts } = router();
    await kv.executeAll(KEYS.map((k, i) => set(k, `v${i}`)));
    expect(await kv.execute({ kind: 'read', op: 'dbsize', keys: [] })).toEqual({ type: 'int', value: 4n });
    expect(await kv.execute({ kind: 'write', write: { op: 'flush' } })).toEqual({ type: 'ok' });
    for (const p of parts) expect(p.rows.size).toBe(0);
  });

  it('keeps keyspace-wide commands of node scope to the partitions this node leads', async () => {
    const parts = [0, 1, 2, 3].map((i) => new FakePartition(i));
    const leads = new Set([1, 3]);
    const kv = new PartitionedKv(map, parts, (p) => leads.has(p));
    await kv.executeAll(KEYS.map((k, i) => set(k, `v${i}`)));
    expect(await kv.execute({ kind: 'read', op: 'dbsize', keys: [], scope: 'node' })).toEqual({
      type: 'int',
      value: 2n,
    });
    expect(await kv.execute({ kind: 'read', op: 'dbsize', keys: [] })).toEqual({ type: 'int', value: 4n });
    expect(await kv.execute({ kind: 'write', write: { op: 'flush' }, scope: 'node' })).toEqual({ type: 'ok' });
    expect(parts.map((p) => p.rows.size)).toEqual([1, 0, 1, 0]);
    // Leading nothing: the answers of an empty node.
    leads.clear();
    expect(await kv.execute({ kind: 'read', op: 'dbsize', keys: [], scope: 'node' })).toEqual({
      type: 'int',
      value: 0n,
    });
    expect(await kv.execute({ kind: 'read', op: 'randomkey', keys: [], scope: 'node' })).toEqual({ type: 'nil' });
    expect(await kv.execute({ kind: 'write', write: { op: 'flush' }, scope: 'node' })).toEqual({ type: 'ok' });
    expect(parts.map((p) => p.rows.size)).toEqual([1, 0, 1, 0]);
  });

  it('refuses a transaction mixing FLUSHDB with keyed commands', async () => {
    const { kv, parts } = router();
    const res = await kv.execute({
      kind: 'write',
      write: { op: 'exec', writes: [{ op: 'del', keys: [b('foo')] }, { op: 'flush' }], watch: [] },
    });
    expect(res).toMatchObject({ type: 'error', message: expect.stringMatching(/FLUSHDB .* every partition/) });
    for (const p of parts) expect(p.seen).toHaveLength(0);
  });

  it('refuses a write whose keys span partitions without a transaction runner', async () => {
    const { kv, parts } = router();
    const res = await kv.execute({
      kind: 'write',
      write: { op: 'mset', keys: [b('foo'), b('bar')], values: [b('1'), b('2')] },
    });
    expect(res).toEqual({ type: 'error', message: "CROSSSLOT Keys in request don't hash to the same slot" });
    for (const p of parts) expect(p.seen).toHaveLength(0);
  });

  it('reads keys of several partitions again when a revision moved between its two rounds', async () => {
    const { kv, parts } = router();
    await kv.executeAll(KEYS.map((k, i) => set(k, `v${i}`)));
    // A transaction lands on foo's and bar's partitions between the first read of p2 and the second.
    let landed = false;
    let rounds = 0;
    parts[2]!.beforeRead = (req) => {
      if (landed || req.kind !== 'read' || req.op !== 'revisions' || ++rounds < 2) return;
      landed = true;
      parts[2]!.put('foo', 'new');
      parts[1]!.put('bar', 'new');
    };
    const res = await kv.execute({ kind: 'read', op: 'mget', keys: [b('foo'), b('bar')] });
    expect(landed).toBe(true);
    expect(res).toEqual({ type: 'array', values: [b('new'), b('new')] });
    // Moving at every round, it gives up with TRYAGAIN rather than answer a mix.
    let n = 0;
    parts[1]!.beforeRead = (req) => {
      if (req.kind === 'read' && req.op === 'revisions') parts[1]!.put('bar', `v${n++}`);
    };
    const busy = await kv.execute({ kind: 'read', op: 'exists', keys: [b('foo'), b('bar')] });
    expect(busy).toMatchObject({ type: 'error', message: expect.stringMatching(/^TRYAGAIN /) });
    expect(n).toBe(ATOMIC_READ_ATTEMPTS + 1);
  });

  it('runs a read of several partitions whose keys keep moving as a transaction of that read', async () => {
    const parts = [0, 1, 2, 3].map((i) => new FakePartition(i));
    const sent: TxnRequest[] = [];
    const txn = {
      run: async (req: TxnRequest): Promise<TxnReply> => {
        sent.push(req);
        const values = [{ type: 'bulk' as const, value: b('t1') }, { type: 'nil' as const }];
        return { type: 'txn', txn: 't', succeeded: true, results: [{ type: 'list', items: values }] };
      },
    };
    const kv = new PartitionedKv(map, parts, () => true, txn);
    let n = 0;
    parts[1]!.beforeRead = (req) => {
      if (req.kind === 'read' && req.op === 'revisions') parts[1]!.put('bar', `v${n++}`);
    };
    const res = await kv.execute({ kind: 'read', op: 'mget', keys: [b('foo'), b('bar')] });
    expect(n).toBe(ATOMIC_READ_ATTEMPTS + 1);
    expect(sent).toEqual([
      { compares: [], success: [{ op: 'read', read: 'mget', keys: [b('foo'), b('bar')] }], failure: [] },
    ]);
    expect(res).toEqual({ type: 'array', values: [b('t1'), null] });
  });

  it('runs a write whose keys span partitions as a transaction, in its place in the pipeline', async () => {
    const parts = [0, 1, 2, 3].map((i) => new FakePartition(i));
    const sent: TxnRequest[] = [];
    let reply: TxnReply = { type: 'txn', txn: 't1', succeeded: true, results: [{ type: 'ok' }] };
    const txn = {
      run: async (req: TxnRequest): Promise<TxnReply> => {
        sent.push(req);
        // Runs after the write before it in the pipeline, before the read after it.
        if (sent.length === 1) expect(parts[2]!.rows.get('foo')).toBe('1');
        parts[2]!.put('foo', 'txn');
        return reply;
      },
    };
    const kv = new PartitionedKv(map, parts, () => true, txn);
    const mset: KvClientRequest = {
      kind: 'write',
      write: { op: 'mset', keys: [b('foo'), b('bar')], values: [b('1'), b('2')] },
    };
    const answers = await kv.executeAll([set('foo', '1'), mset, { kind: 'read', op: 'mget', keys: [b('foo')] }]);
    expect(answers).toEqual([{ type: 'ok' }, { type: 'ok' }, { type: 'array', values: [b('txn')] }]);
    expect(sent[0]).toEqual({ compares: [], success: [mset.write], failure: [] });
    // MSETNX compares absence on every key; EXEC compares the WATCHed revisions and answers nil when one moved.
    reply = { type: 'txn', txn: 't2', succeeded: false, results: [] };
    const nx = await kv.execute({
      kind: 'write',
      write: { op: 'mset', keys: [b('foo'), b('bar')], values: [b('1'), b('2')], nx: true },
    });
    expect(nx).toEqual({ type: 'int', value: 0n });
    expect(sent[1]!.compares.map((c) => c.compare)).toEqual([{ kind: 'absent' }, { kind: 'absent' }]);
    const exec = await kv.execute({
      kind: 'write',
      write: { op: 'exec', writes: [{ op: 'del', keys: [b('hello')] }], watch: [{ key: b('bar'), revision: 7 }] },
    });
    expect(exec).toEqual({ type: 'list', items: null });
    expect(sent[2]!.compares).toEqual([{ key: b('bar'), compare: { kind: 'modRevision', value: 7 } }]);
    // A write no transaction can split keeps CROSSSLOT.
    const rename = await kv.execute({
      kind: 'write',
      write: { op: 'rename', key: b('foo'), dest: b('bar'), nx: false },
    });
    expect(rename).toEqual({ type: 'error', message: "CROSSSLOT Keys in request don't hash to the same slot" });
    expect(sent).toHaveLength(3);
  });

  it('pages a range over every partition in key order', async () => {
    const { kv } = router();
    const all = Array.from({ length: 40 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    await kv.executeAll(all.map((k) => set(k, k)));
    const got: string[] = [];
    let start = '';
    for (;;) {
      const res = await kv.execute({ kind: 'read', op: 'range', keys: [b(start)], limit: 7 });
      if (res.type !== 'range') throw new Error(res.type);
      got.push(...res.records.map((r) => Buffer.from(r.key).toString()));
      expect(res.revision).toBe(13);
      if (!res.more) break;
      start = `${got.at(-1)}\0`;
    }
    expect(got).toEqual(all);
    // A range of one key goes to its partition alone.
    const one = await kv.execute({ kind: 'read', op: 'range', keys: [b('k07'), b('k07\0')], limit: 1 });
    expect(one.type === 'range' && one.revision).toBe(10 + partitionOf('k07'));
    // Stale reads merge the same way.
    const stale = kv.stale({ kind: 'read', op: 'range', keys: [b('')], limit: 3 });
    expect(stale.type === 'range' && stale.records.map((r) => Buffer.from(r.key).toString())).toEqual(all.slice(0, 3));
  });
});

describe('merges', () => {
  it('ends a merged SCAN page at the smallest cursor of the partitions', () => {
    const page = mergeScans([
      { type: 'array', values: [b('c'), b('a'), b('c')] },
      { type: 'array', values: [null, b('b'), b('d')] },
      { type: 'array', values: [b('e'), b('e')] },
    ]);
    expect(page).toEqual({ type: 'array', values: [b('c'), b('a'), b('b'), b('c')] });
    expect(
      mergeScans([
        { type: 'array', values: [null, b('x')] },
        { type: 'array', values: [null] },
      ]),
    ).toEqual({
      type: 'array',
      values: [null, b('x')],
    });
  });

  it('answers the first failure of any partition', () => {
    const down: KvResponse = { type: 'failure', code: 'NOT_LEADER' as never, message: 'no leader' };
    expect(mergeRanges([{ type: 'range', records: [], more: false, revision: 1 }, down], 10)).toBe(down);
  });
});

describe('writeKeys', () => {
  it('finds the keys of a write, an EXEC and its watched keys', () => {
    expect(writeKeys({ op: 'rename', key: b('a'), dest: b('b'), nx: false })).toEqual([b('a'), b('b')]);
    expect(
      writeKeys({
        op: 'exec',
        writes: [{ op: 'del', keys: [b('x'), b('y')] }],
        watch: [{ key: b('w'), revision: 0 }],
      }),
    ).toEqual([b('x'), b('y'), b('w')]);
    expect(writeKeys({ op: 'flush' })).toEqual([]);
  });
});

describe('partition layout', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'cohort-layout-'));
    dirs.push(d);
    return d;
  };

  it('places replicas round-robin over the sorted members, preferred leaders spread', () => {
    expect(placePartitions(['n3', 'n1', 'n2'], 4, 3)).toEqual([
      ['n1', 'n2', 'n3'],
      ['n2', 'n3', 'n1'],
      ['n3', 'n1', 'n2'],
      ['n1', 'n2', 'n3'],
    ]);
    expect(placePartitions(['a', 'b', 'c', 'd', 'e'], 3, 3)).toEqual([
      ['a', 'b', 'c'],
      ['b', 'c', 'd'],
      ['c', 'd', 'e'],
    ]);
    // One partition is replicated by every founding member, as before partitions.
    expect(placePartitions(['b', 'a', 'c', 'd', 'e'], 1, 3)).toEqual([['a', 'b', 'c', 'd', 'e']]);
  });

  it('records the layout and refuses another partition count on the same data', () => {
    const d = dir();
    const layout = loadLayout(d, ['n1', 'n2', 'n3'], 4, 3, false);
    expect(layout.partitions).toBe(4);
    expect(loadLayout(d, ['n1', 'n2', 'n3'], 4, 3, false)).toEqual(layout);
    expect(() => loadLayout(d, ['n1', 'n2', 'n3'], 2, 3, false)).toThrow(
      /created with 4 partition\(s\), not 2: .*--partitions 4/,
    );
  });

  it('takes data from before layouts were recorded as one partition', () => {
    const d = dir();
    expect(() => loadLayout(d, ['n1'], 4, 1, true)).toThrow(/created with 1 partition\(s\), not 4/);
    expect(loadLayout(d, ['n1'], 1, 1, true).partitions).toBe(1);
  });

  it('refuses a layout file that is not one', () => {
    const d = dir();
    writeFileSync(join(d, LAYOUT_FILE), '{"nope": 1}');
    expect(() => loadLayout(d, ['n1'], 1, 1, false)).toThrow(/does not hold a partition layout/);
  });
});

it('routes keys with hash tags together', () => {
  expect(slotOfKey(enc.encode('{foo}bar'))).toBe(slotOfKey(enc.encode('foo')));
});

it('reads a resume token of every partition, and refuses one of another partition count', () => {
  expect(parseResumeToken('12.0.40.7', 4)).toEqual([12, 0, 40, 7]);
  expect(() => parseResumeToken('12.0.40', 4)).toThrow(/not a resume token of this cluster's 4 partitions/);
  expect(() => parseResumeToken('12.a.40.7', 4)).toThrow(/not a resume token/);
});
