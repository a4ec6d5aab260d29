import type { KvClientWrite, KvCompare, KvResult, TxnKeyCompare, TxnReply, TxnRequest } from '@cohort/kv';
import type { FastifyInstance } from 'fastify';
import type { TxnRunner } from './cross-partition-txn.js';
import { authorizeKeys } from './http-auth.js';
import { ApiError, type Encoding, badRequest, fromText, toText } from './http-codec.js';
import { type SizeLimits, writeTooLarge } from './limits.js';
import { writeKeys } from './partitioned-kv.js';

/** The most comparisons plus operations one `POST /v1/txn` may hold (the key limit of transactions applies too). */
const MAX_TXN_ITEMS = 10_000;

interface CompareBody {
  key: string;
  target: 'value' | 'version' | 'modRevision' | 'createRevision' | 'exists';
  op?: '=' | '!=' | '<' | '>';
  value?: string;
  version?: number;
  modRevision?: number;
  createRevision?: number;
  exists?: boolean;
}

type OpBody =
  | { put: { key: string; value: string; ttlMs?: number } }
  | { delete: { key: string } }
  | { get: { key: string } };

interface TxnBody {
  compare?: CompareBody[];
  success?: OpBody[];
  failure?: OpBody[];
}

const keyField = { type: 'string', description: 'the key (in the request encoding)' } as const;

const compareSchema = {
  type: 'object',
  description:
    "holds when the key's field relates to the given one by op ('=' by default): its value (bytes; an absent key has none, so every value comparison fails), version, modRevision or createRevision (0 for an absent key); or exists: true / false",
  properties: {
    key: keyField,
    target: { type: 'string', enum: ['value', 'version', 'modRevision', 'createRevision', 'exists'] },
    op: {
      type: 'string',
      enum: ['=', '!=', '<', '>'],
      description: "how the key's field relates to the given one: '=' (the default), '!=', '<' or '>'",
    },
    value: { type: 'string', description: 'target value: the value (in the request encoding)' },
    version: { type: 'integer', minimum: 0 },
    modRevision: { type: 'integer', minimum: 0 },
    createRevision: { type: 'integer', minimum: 0 },
    exists: { type: 'boolean', description: 'target exists: true (the key is present) or false (absent)' },
  },
  required: ['key', 'target'],
  additionalProperties: false,
} as const;

const opSchema = {
  type: 'object',
  description: 'one of put, delete, get',
  properties: {
    put: {
      type: 'object',
      properties: {
        key: keyField,
        value: { type: 'string', description: 'the value (in the request encoding)' },
        ttlMs: { type: 'integer', minimum: 1 },
      },
      required: ['key', 'value'],
      additionalProperties: false,
    },
    delete: { type: 'object', properties: { key: keyField }, required: ['key'], additionalProperties: false },
    get: { type: 'object', properties: { key: keyField }, required: ['key'], additionalProperties: false },
  },
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: false,
} as const;

const txnBodySchema = {
  type: 'object',
  properties: {
    compare: { type: 'array', items: compareSchema },
    success: { type: 'array', items: opSchema },
    failure: { type: 'array', items: opSchema },
  },
  additionalProperties: false,
} as const;

function compareOf(c: CompareBody, encoding: Encoding, at: number): TxnKeyCompare {
  const key = fromText(c.key, encoding, `compare[${at}].key`);
  const given = ['value', 'version', 'modRevision', 'createRevision', 'exists'].filter(
    (f) => c[f as keyof CompareBody] !== undefined,
  );
  if (given.length !== 1 || given[0] !== c.target) {
    throw badRequest(`compare[${at}] with target '${c.target}' takes the field '${c.target}' and no other value field`);
  }
  // '=' stays implicit: the same comparison as a client that never names an operator.
  const how = c.op === undefined || c.op === '=' ? {} : { op: c.op };
  if (c.target === 'exists' && c.op !== undefined && c.op !== '=') {
    throw badRequest(`compare[${at}]: target 'exists' takes no op other than '=' (exists: true or false)`);
  }
  let compare: KvCompare;
  switch (c.target) {
    case 'value':
      compare = { kind: 'value', value: fromText(c.value as string, encoding, `compare[${at}].value`), ...how };
      break;
    case 'version':
      compare = { kind: 'version', value: c.version as number, ...how };
      break;
    case 'modRevision':
      compare = { kind: 'modRevision', value: c.modRevision as number, ...how };
      break;
    case 'createRevision':
      compare = { kind: 'createRevision', value: c.createRevision as number, ...how };
      break;
    case 'exists':
      compare = { kind: c.exists ? 'present' : 'absent' };
      break;
    default: {
      const never: never = c.target;
      throw badRequest(`compare[${at}] has unknown target ${String(never)}`);
    }
  }
  return { key, compare };
}

function writeOf(o: OpBody, encoding: Encoding, where: string): KvClientWrite {
  if ('put' in o) {
    const p = o.put;
    return {
      op: 'set',
      key: fromText(p.key, encoding, `${where}.put.key`),
      value: fromText(p.value, encoding, `${where}.put.value`),
      condition: 'always',
      expiry: p.ttlMs === undefined ? { kind: 'none' } : { kind: 'in', ms: p.ttlMs },
      returnOld: false,
    };
  }
  if ('delete' in o) return { op: 'del', keys: [fromText(o.delete.key, encoding, `${where}.delete.key`)] };
  return { op: 'read', read: 'mget', keys: [fromText(o.get.key, encoding, `${where}.get.key`)] };
}

/** The answer of one operation, as JSON: `put`, `delete` (how many keys it deleted), `get` (the value, or null). */
function resultJson(write: KvClientWrite, r: KvResult, encoding: Encoding): Record<string, unknown> {
  if (r.type === 'error') return { type: 'error', message: r.message };
  switch (write.op) {
    case 'set':
      return { type: 'put' };
    case 'del':
      return { type: 'delete', deleted: r.type === 'int' ? Number(r.value) : 0 };
    case 'read': {
      const item = r.type === 'list' ? r.items?.[0] : undefined;
      const value = item?.type === 'bulk' ? toText(item.value, encoding) : null;
      return { type: 'get', key: toText(write.keys[0]!, encoding), value };
    }
    default:
      return { type: write.op };
  }
}

/** A transaction's failure as an API error: TRYAGAIN after repeated conflicts (503), refusals (400/413), unreachable partitions. */
function txnError(reply: Exclude<TxnReply, { type: 'txn' }>): ApiError {
  if (reply.type === 'failure') {
    const status = reply.code === 'TIMEOUT' ? 504 : 503;
    return new ApiError(status, reply.code, reply.message);
  }
  const m = /^([A-Z]+) (.*)$/s.exec(reply.message);
  const code = m?.[1] ?? 'ERR';
  const message = m?.[2] ?? reply.message;
  if (code === 'TRYAGAIN') return new ApiError(503, 'TRYAGAIN', message);
  if (/limit|too many|too large/i.test(message)) return new ApiError(413, 'TOO_LARGE', message);
  return new ApiError(409, 'COMMAND', message);
}

/** Options of {@link registerTxnRoutes}. */
export interface TxnRoutesOptions {
  txn: TxnRunner;
  /** The size limits every client write meets; a transaction's operations count as one write. */
  limits: SizeLimits;
}

/**
 * `POST /v1/txn`, etcd's Txn on any keys: when every comparison holds the
 * `success` operations apply, else the `failure` ones, atomically across
 * the partitions (see the README's Transactions).
 */
export function registerTxnRoutes(app: FastifyInstance, opts: TxnRoutesOptions): void {
  app.post<{ Querystring: { encoding?: Encoding }; Body: TxnBody }>(
    '/v1/txn',
    {
      schema: {
        summary:
          'A transaction on any keys, etcd style: compare, then the success or the failure operations, atomically across partitions',
        querystring: {
          type: 'object',
          properties: {
            encoding: { type: 'string', enum: ['utf8', 'base64'], description: 'how keys and values are written' },
          },
          additionalProperties: false,
        },
        body: txnBodySchema,
      },
    },
    async (req) => {
      const encoding = req.query.encoding ?? 'utf8';
      const body = req.body ?? {};
      const compare = body.compare ?? [];
      const success = body.success ?? [];
      const failure = body.failure ?? [];
      const items = compare.length + success.length + failure.length;
      if (items > MAX_TXN_ITEMS) {
        throw new ApiError(
          413,
          'TOO_LARGE',
          `a transaction of ${items} comparisons and operations exceeds ${MAX_TXN_ITEMS}`,
        );
      }
      const request: TxnRequest = {
        compares: compare.map((c, i) => compareOf(c, encoding, i)),
        success: success.map((o, i) => writeOf(o, encoding, `success[${i}]`)),
        failure: failure.map((o, i) => writeOf(o, encoding, `failure[${i}]`)),
      };
      // The user's permissions: reads of every key, writes when a branch writes.
      const ops = [...request.success, ...request.failure];
      authorizeKeys(
        req,
        [...request.compares.map((c) => c.key), ...ops.flatMap(writeKeys)],
        ops.some((w) => w.op !== 'read'),
      );
      // Checked as one write, as an EXEC's commands are, before anything is proposed.
      const tooLarge = writeTooLarge(
        { op: 'exec', writes: [...request.success, ...request.failure], watch: [] },
        opts.limits,
      );
      if (tooLarge !== undefined) throw new ApiError(413, 'TOO_LARGE', tooLarge.replace(/^ERR /, ''));
      const reply = await opts.txn.run(request);
      if (reply.type !== 'txn') throw txnError(reply);
      const ran = reply.succeeded ? request.success : request.failure;
      return {
        succeeded: reply.succeeded,
        results: reply.results.map((r, i) => resultJson(ran[i]!, r, encoding)),
      };
    },
  );
}
