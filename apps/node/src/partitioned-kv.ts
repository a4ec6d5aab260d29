import {
  CROSSSLOT_MESSAGE,
  type KvClientRequest,
  type KvClientWrite,
  type KvResponse,
  type SlotMap,
  routeKeys,
} from '@cohort/kv';
import { atomicRead } from './cross-partition-read.js';
import { type TxnRunner, readAsTxn, txnOfWrite } from './cross-partition-txn.js';
import type { KvReadRequest, ReadApi } from './kv-api.js';

type KvRecord = Extract<KvResponse, { type: 'range' }>['records'][number];

/** What the router needs of one partition: the KV service of its group on this node. */
export interface PartitionService {
  executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]>;
  /** `executeAll` of one request (a lone request's path, with less to allocate); absent: through `executeAll`. */
  execute?(req: KvClientRequest): Promise<KvResponse>;
  readLocal(req: KvReadRequest): KvResponse;
  leaseRead(req: KvReadRequest): Promise<KvResponse>;
}

/** The keys a write touches (its `key`, `dest` and `keys`; an EXEC's queued writes and watched keys). */
export function writeKeys(w: KvClientWrite): Uint8Array[] {
  if (w.op === 'exec') return [...w.writes.flatMap(writeKeys), ...w.watch.map((x) => x.key)];
  const out: Uint8Array[] = [];
  const fields = w as unknown as Record<string, unknown>;
  if (fields.key instanceof Uint8Array) out.push(fields.key);
  if (fields.dest instanceof Uint8Array) out.push(fields.dest);
  if (Array.isArray(fields.keys)) for (const k of fields.keys) if (k instanceof Uint8Array) out.push(k);
  return out;
}

/** One part of a request: the partition it goes to and the request it sends there. */
interface Part {
  partition: number;
  req: KvClientRequest;
}

/**
 * Where a request goes: whole to one partition, in parts to several (merged
 * by `merge`), answered at once, or `run` on its own (a transaction across
 * partitions, an atomic read of several), after the requests before it.
 */
type Plan =
  | { partition: number }
  | { parts: Part[]; merge: (answers: KvResponse[]) => KvResponse }
  | { answer: KvResponse }
  | { run: () => Promise<KvResponse> };

const compare = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b);

/** The first failure among `answers`, if any. */
function failed(answers: KvResponse[]): KvResponse | undefined {
  return answers.find((a) => a.type === 'failure' || a.type === 'error');
}

/**
 * Range reads of several partitions merged in key order: the first `limit`
 * keys of the union. Each partition answered its own first `limit` keys
 * from the same start, so no key of the union's first `limit` is missing;
 * `more` when any partition had more or the union is longer. The revision
 * is the highest of the partitions' (revisions are per partition).
 */
export function mergeRanges(answers: KvResponse[], limit: number): KvResponse {
  const bad = failed(answers);
  if (bad) return bad;
  const records: KvRecord[] = [];
  let more = false;
  let revision = 0;
  const revisions: number[] = [];
  for (const a of answers) {
    if (a.type !== 'range') return a;
    records.push(...a.records);
    more ||= a.more;
    revision = Math.max(revision, a.revision);
    revisions.push(a.revision);
  }
  records.sort((x, y) => compare(x.key, y.key));
  if (limit > 0 && records.length > limit) {
    records.length = limit;
    more = true;
  }
  return { type: 'range', records, more, revision, revisions };
}

/**
 * SCAN pages of several partitions merged: each partition examined its rows
 * after the same cursor key up to its own `next`; the merged page ends at the
 * smallest `next` (every partition is covered up to it), with the keys found
 * up to it, in key order; none when no partition has more.
 */
export function mergeScans(answers: KvResponse[]): KvResponse {
  const bad = failed(answers);
  if (bad) return bad;
  let next: Uint8Array | null = null;
  const keys: Uint8Array[] = [];
  for (const a of answers) {
    if (a.type !== 'array') return a;
    const [n, ...found] = a.values;
    if (n !== null && n !== undefined && (next === null || compare(n, next) < 0)) next = n;
    for (const k of found) if (k !== null) keys.push(k);
  }
  keys.sort(compare);
  const page = next === null ? keys : keys.filter((k) => compare(k, next!) <= 0);
  return { type: 'array', values: [next, ...page] };
}

/** Whether the range `[keys[0], keys[1])` holds one key at most: the end is the start followed by a zero byte. */
function oneKey(keys: Uint8Array[]): boolean {
  const [start, end] = keys;
  if (start === undefined || end === undefined || end.length !== start.length + 1 || end[start.length] !== 0) {
    return false;
  }
  return Buffer.compare(start, end.subarray(0, start.length)) === 0;
}

/** Integer answers summed (EXISTS, DBSIZE). */
function sumInts(answers: KvResponse[]): KvResponse {
  const bad = failed(answers);
  if (bad) return bad;
  let n = 0n;
  for (const a of answers) {
    if (a.type !== 'int') return a;
    n += a.value;
  }
  return { type: 'int', value: n };
}

/** Arrays of values placed back at the positions of the keys each partition served (MGET, WATCH's revisions). */
function placeValues(splits: number[][], total: number): (answers: KvResponse[]) => KvResponse {
  return (answers) => {
    const bad = failed(answers);
    if (bad) return bad;
    const values: (Uint8Array | null)[] = new Array(total).fill(null);
    for (let s = 0; s < splits.length; s++) {
      const a = answers[s]!;
      if (a.type !== 'array') return a;
      splits[s]!.forEach((at, i) => {
        values[at] = a.values[i] ?? null;
      });
    }
    return { type: 'array', values };
  };
}

/** Arrays concatenated (KEYS, in key order). */
function concatValues(answers: KvResponse[]): KvResponse {
  const bad = failed(answers);
  if (bad) return bad;
  const values: Uint8Array[] = [];
  for (const a of answers) {
    if (a.type !== 'array') return a;
    for (const v of a.values) if (v !== null) values.push(v);
  }
  values.sort(compare);
  return { type: 'array', values };
}

/** The answer of a partition that had a key (RANDOMKEY), else nil. */
function firstKey(answers: KvResponse[]): KvResponse {
  const bad = failed(answers);
  if (bad) return bad;
  const found = answers.filter((a) => a.type === 'bulk');
  return found.length === 0 ? { type: 'nil' } : found[Math.floor(Math.random() * found.length)]!;
}

/** OK, once every partition answered without failing (FLUSHDB on every partition). */
function allOk(answers: KvResponse[]): KvResponse {
  return failed(answers) ?? answers[0] ?? { type: 'ok' };
}

/**
 * Serves requests over the partitions of the key space: each request goes to
 * the partition of its keys (its group's KV service, which serves it on this
 * node when it leads the group and forwards it to the leader otherwise).
 * Reads of keys in several partitions (MGET, EXISTS, WATCH) are split and
 * their answers merged in key order, as one atomic cut (see `atomicRead`);
 * reads of the whole key space (ranges, SCAN, KEYS, DBSIZE, RANDOMKEY) and
 * FLUSHDB go to every partition. A write whose keys span partitions (MSET,
 * MSETNX, DEL, EXEC) runs as one transaction across them through `txn`, or
 * is refused with CROSSSLOT without it.
 *
 * A pipeline keeps its order within each partition (a read sees the writes
 * before it to its keys); the partitions' parts run side by side, as a
 * cluster-aware client's pipeline runs on several nodes at once. A request
 * that runs on its own (a transaction, an atomic read) waits for the
 * requests before it, and the requests after it wait for it.
 */
export class PartitionedKv {
  /**
   * @param leads whether this node leads a partition now: a keyspace-wide
   *   command with `scope: 'node'` (a cluster-aware client's) covers those alone
   * @param txn runs writes whose keys span partitions as transactions; without it they answer CROSSSLOT
   */
  constructor(
    readonly slots: SlotMap,
    private readonly parts: readonly PartitionService[],
    private readonly leads: (partition: number) => boolean = () => true,
    private readonly txn?: TxnRunner,
  ) {
    if (parts.length !== slots.partitions) {
      throw new Error(`${parts.length} partition services for ${slots.partitions} partitions`);
    }
  }

  execute(req: KvClientRequest): Promise<KvResponse> {
    const one = this.parts.length === 1 && req.scope !== 'node' ? this.parts[0]! : undefined;
    if (one?.execute) return one.execute(req);
    return this.executeAll([req]).then((r) => r[0]!);
  }

  async executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]> {
    if (this.parts.length === 1 && !reqs.some((r) => r.scope === 'node')) return this.parts[0]!.executeAll(reqs);
    const plans = reqs.map((r) => this.plan(r, true));
    const out: KvResponse[] = new Array(reqs.length);
    let from = 0;
    for (let i = 0; i <= plans.length; i++) {
      const p = plans[i];
      if (p !== undefined && !('run' in p)) continue;
      // A request that runs on its own follows the ones before it and precedes the ones after it.
      if (i > from) await this.runSideBySide(reqs, plans, from, i, out);
      if (p !== undefined && 'run' in p) out[i] = await p.run();
      from = i + 1;
    }
    return out;
  }

  /** Requests `[from, to)` of a pipeline, none of which runs on its own: each partition's part as one pipeline, side by side. */
  private async runSideBySide(
    reqs: KvClientRequest[],
    plans: Plan[],
    from: number,
    to: number,
    out: KvResponse[],
  ): Promise<void> {
    // Each partition's sub-pipeline, in request order; `slot` says where each of its answers goes.
    const queues = this.parts.map(() => ({ reqs: [] as KvClientRequest[], slot: [] as [number, number][] }));
    for (let i = from; i < to; i++) {
      const p = plans[i]!;
      if ('answer' in p || 'run' in p) continue;
      const parts: Part[] = 'partition' in p ? [{ partition: p.partition, req: reqs[i]! }] : p.parts;
      parts.forEach((part, k) => {
        const q = queues[part.partition]!;
        q.reqs.push(part.req);
        q.slot.push([i, k]);
      });
    }
    const collected: KvResponse[][] = plans.map(() => []);
    await Promise.all(
      queues.map(async (q, partition) => {
        if (q.reqs.length === 0) return;
        const answers = await this.parts[partition]!.executeAll(q.reqs);
        answers.forEach((a, j) => {
          const [i, k] = q.slot[j]!;
          collected[i]![k] = a;
        });
      }),
    );
    for (let i = from; i < to; i++) {
      const p = plans[i]!;
      if ('answer' in p) out[i] = p.answer;
      else if ('partition' in p) out[i] = collected[i]![0]!;
      else if ('parts' in p) out[i] = p.merge(collected[i]!);
    }
  }

  /** Reads served by this node's replicas as they stand (stale), merged across partitions like linearizable ones. */
  readonly stale = (req: KvReadRequest): KvResponse => {
    const p = this.plan(req, false);
    if ('answer' in p) return p.answer;
    if ('run' in p) throw new Error('a read planned to run on its own outside the linearizable path');
    if ('partition' in p) return this.parts[p.partition]!.readLocal(req);
    return p.merge(p.parts.map((part) => this.parts[part.partition]!.readLocal(part.req as KvReadRequest)));
  };

  /** Lease reads on the leaders of the partitions; a partition this node does not lead answers NOT_LEADER. */
  readonly lease = async (req: KvReadRequest): Promise<KvResponse> => {
    const p = this.plan(req, false);
    if ('answer' in p) return p.answer;
    if ('run' in p) return p.run();
    if ('partition' in p) return this.parts[p.partition]!.leaseRead(req);
    const answers = await Promise.all(
      p.parts.map((part) => this.parts[part.partition]!.leaseRead(part.req as KvReadRequest)),
    );
    return p.merge(answers);
  };

  /** The reads that skip the linearizable path, for the HTTP API. */
  reads(): ReadApi {
    return { stale: this.stale, lease: this.lease };
  }

  /** `req` on every partition, or with `scope: 'node'` on those this node leads (none: `merge` of no answers). */
  private everyPartition(req: KvClientRequest, merge: (answers: KvResponse[]) => KvResponse): Plan {
    const parts: Part[] = [];
    for (let partition = 0; partition < this.parts.length; partition++) {
      if (req.scope === 'node' && !this.leads(partition)) continue;
      parts.push({ partition, req });
    }
    return parts.length === 0 ? { answer: merge([]) } : { parts, merge };
  }

  /** Where `req` goes; `atomic`: a read of keys in several partitions is one atomic cut (linearizable reads only). */
  private plan(req: KvClientRequest, atomic: boolean): Plan {
    if (req.kind === 'write') {
      const keys = writeKeys(req.write);
      if (keys.length === 0) return this.everyPartition(req, allOk);
      if (req.write.op === 'exec' && req.write.writes.some((w) => writeKeys(w).length === 0)) {
        // FLUSHDB beside keyed commands in one transaction would flush the keys' partition alone.
        return {
          answer: {
            type: 'error',
            message:
              'ERR a transaction with FLUSHDB and keyed commands spans every partition of this cluster; run FLUSHDB outside it',
          },
        };
      }
      const partition = this.slots.partitionOfKey(keys[0]!);
      if (keys.every((k) => this.slots.partitionOfKey(k) === partition)) return { partition };
      const txn = this.txn === undefined ? undefined : txnOfWrite(req.write);
      if (txn === undefined) return { answer: { type: 'error', message: CROSSSLOT_MESSAGE } };
      const runner = this.txn!;
      return { run: () => runner.run(txn.request).then(txn.answer) };
    }
    switch (req.op) {
      case 'range':
        // A range of one key (`[key, key + 0x00)`, as the HTTP API reads a key) is that key's partition's.
        if (oneKey(req.keys)) return { partition: this.slots.partitionOfKey(req.keys[0]!) };
        return this.everyPartition(req, (answers) => mergeRanges(answers, req.limit ?? 0));
      case 'scan':
        return this.everyPartition(req, mergeScans);
      case 'keys':
        return this.everyPartition(req, concatValues);
      case 'dbsize':
        return this.everyPartition(req, sumInts);
      case 'randomkey':
        return this.everyPartition(req, firstKey);
      default:
        break;
    }
    const route = routeKeys(req.keys, this.slots);
    if (!('crossSlot' in route)) return { partition: route.group };
    if (route.splits.length === 1) return { partition: route.splits[0]!.group };
    const parts = route.splits.map(
      (s): Part => ({ partition: s.group, req: { ...req, keys: s.indexes.map((i) => req.keys[i]!) } }),
    );
    const merge =
      req.op === 'exists'
        ? sumInts
        : placeValues(
            route.splits.map((s) => s.indexes),
            req.keys.length,
          );
    if (atomic && (req.op === 'mget' || req.op === 'exists')) {
      const splits = route.splits;
      const read = () => atomicRead(req, splits, (p, reqs) => this.parts[p]!.executeAll(reqs), merge);
      const txn = this.txn === undefined ? undefined : readAsTxn(req);
      if (txn === undefined) return { run: read };
      const runner = this.txn!;
      // Keys always moving under the double reads: the read becomes a transaction, whose intents hold writers off.
      return {
        run: async () => {
          const res = await read();
          return res.type === 'error' && res.message.startsWith('TRYAGAIN')
            ? txn.answer(await runner.run(txn.request))
            : res;
        },
      };
    }
    return { parts, merge };
  }
}
