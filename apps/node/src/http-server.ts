import { ErrorCode, type Logger } from '@cohort/core';
import type { ClientSession, Expiry, KvClientWrite, KvResponse } from '@cohort/kv';
import { type FastifyInstance, type FastifyReply, fastify } from 'fastify';
import type { AdminApi, KvApi } from './kv-api.js';
import type { NodeMetrics } from './metrics.js';
import { type OpsApi, registerOpsRoutes } from './ops-routes.js';

/** Options of {@link createHttpServer}. */
export interface HttpServerOptions {
  api: KvApi;
  metrics: NodeMetrics;
  logger: Logger;
  /** The member list served at `GET /v1/members`, when membership runs. */
  members?: () => unknown[];
  /** The admin operations (`POST /v1/admin/...`), when the node runs them. */
  admin?: AdminApi;
  /** Readiness, cluster view and membership administration (see {@link registerOpsRoutes}). */
  ops?: OpsApi;
  /** Largest request body accepted, in bytes. @default 16 MiB */
  bodyLimit?: number;
}

const enc = new TextEncoder();

/** HTTP status for a failure code: 503 for "try again" conditions, 504 for timeouts. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.NotLeader]: 503,
  [ErrorCode.NoQuorum]: 503,
  [ErrorCode.ClusterDown]: 503,
  [ErrorCode.Unavailable]: 503,
  [ErrorCode.ProposalDropped]: 503,
  [ErrorCode.Timeout]: 504,
  [ErrorCode.Codec]: 400,
};

function sendFailure(reply: FastifyReply, res: Extract<KvResponse, { type: 'failure' | 'error' }>): FastifyReply {
  if (res.type === 'error') return reply.code(409).send({ error: { code: 'COMMAND', message: res.message } });
  return reply
    .code(STATUS[res.code] ?? 500)
    .send({ error: { code: res.code, message: res.message, ...(res.leaderId ? { leader: res.leaderId } : {}) } });
}

const ttlQuery = {
  type: 'object',
  properties: { ttl: { type: 'string', enum: ['true', 'false'] } },
} as const;

/** The largest `Idempotency-Key` accepted, in characters. */
const MAX_IDEMPOTENCY_KEY = 256;

/**
 * The session of a write sent with `Idempotency-Key: <key>`: the key names
 * the session and the write is its only one, so every node maps a retry to
 * the same (clientId, seq) and the write applies once. Undefined without the
 * header; a string naming the problem when the header is malformed.
 */
function idempotencySession(header: string | string[] | undefined): ClientSession | string | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header) || header.length === 0 || header.length > MAX_IDEMPOTENCY_KEY) {
    return `Idempotency-Key must be one value of 1 to ${MAX_IDEMPOTENCY_KEY} characters`;
  }
  return { clientId: `http:${header}`, seq: 1, lowWater: 0 };
}

const keyParams = {
  type: 'object',
  properties: { key: { type: 'string', minLength: 1, maxLength: 65536 } },
  required: ['key'],
} as const;

/**
 * The HTTP/JSON front end: `GET|PUT|DELETE /v1/kv/:key`, `POST
 * /v1/kv/:key/incr` (`{"by": n}` optional; answers the new value as a
 * decimal string), `GET /v1/status`,
 * `GET /metrics` (Prometheus), `GET /healthz` and
 * `POST /v1/admin/consistency-check`. Keys and values are UTF-8
 * strings; PUT takes `{"value": "...", "ttlMs": n}` (ttlMs optional) or a
 * text/plain body. A write sent with an `Idempotency-Key` header applies once
 * however often it is retried, through any node.
 */
export function createHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = fastify({ bodyLimit: opts.bodyLimit ?? 16 * 1024 * 1024 });
  const { api } = opts;
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/v1/status', async () => api.status());
  if (opts.ops) registerOpsRoutes(app, opts.ops);
  const { members } = opts;
  if (members) app.get('/v1/members', async () => ({ members: members() }));
  const { admin } = opts;
  if (admin) {
    app.post('/v1/admin/consistency-check', async (_req, reply) => {
      try {
        return await admin.checkConsistency();
      } catch (err) {
        const e = err as { code?: unknown; message?: unknown };
        const code = typeof e.code === 'string' ? e.code : ErrorCode.Internal;
        return reply
          .code(STATUS[code as ErrorCode] ?? 500)
          .send({ error: { code, message: `consistency check failed: ${String(e.message ?? err)}` } });
      }
    });
  }
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.metrics.registry.contentType);
    return opts.metrics.registry.metrics();
  });

  app.get<{ Params: { key: string }; Querystring: { ttl?: string } }>(
    '/v1/kv/:key',
    { schema: { params: keyParams, querystring: ttlQuery } },
    async (req, reply) => {
      const key = enc.encode(req.params.key);
      const res = await api.execute({ kind: 'read', op: 'get', keys: [key] });
      if (res.type === 'nil')
        return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `key '${req.params.key}' not found` } });
      if (res.type === 'failure' || res.type === 'error') return sendFailure(reply, res);
      if (res.type !== 'bulk') {
        return reply.code(500).send({ error: { code: ErrorCode.Internal, message: `unexpected reply ${res.type}` } });
      }
      const body = { key: req.params.key, value: Buffer.from(res.value).toString('utf8') };
      if (req.query.ttl !== 'true') return body;
      // A second linearizable read: the key may have changed between the two.
      const ttl = await api.execute({ kind: 'read', op: 'pttl', keys: [key] });
      if (ttl.type === 'failure' || ttl.type === 'error') return sendFailure(reply, ttl);
      return { ...body, ttlMs: ttl.type === 'int' ? Number(ttl.value) : null };
    },
  );

  app.put<{ Params: { key: string }; Body: unknown }>(
    '/v1/kv/:key',
    { schema: { params: keyParams } },
    async (req, reply) => {
      const body = req.body;
      const json = typeof body === 'object' && body !== null ? (body as { value?: unknown; ttlMs?: unknown }) : {};
      const value = typeof body === 'string' ? body : typeof json.value === 'string' ? json.value : undefined;
      if (value === undefined) {
        return reply.code(400).send({
          error: {
            code: 'BAD_REQUEST',
            message: 'send the value as {"value": "...", "ttlMs": 60000} (application/json) or as a text/plain body',
          },
        });
      }
      let expiry: Expiry = { kind: 'none' };
      if (json.ttlMs !== undefined) {
        if (typeof json.ttlMs !== 'number' || !Number.isSafeInteger(json.ttlMs) || json.ttlMs <= 0) {
          return reply.code(400).send({
            error: {
              code: 'BAD_REQUEST',
              message: `ttlMs must be a whole number of milliseconds above 0, got ${JSON.stringify(json.ttlMs)}`,
            },
          });
        }
        expiry = { kind: 'in', ms: json.ttlMs };
      }
      const write: KvClientWrite = {
        op: 'set',
        key: enc.encode(req.params.key),
        value: enc.encode(value),
        condition: 'always',
        expiry,
        returnOld: false,
      };
      const session = idempotencySession(req.headers['idempotency-key']);
      if (typeof session === 'string')
        return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: session } });
      const res = await api.execute(session ? { kind: 'write', write, session } : { kind: 'write', write });
      if (res.type === 'ok') return { ok: true };
      if (res.type === 'failure' || res.type === 'error') return sendFailure(reply, res);
      return reply.code(500).send({ error: { code: ErrorCode.Internal, message: `unexpected reply ${res.type}` } });
    },
  );

  app.post<{ Params: { key: string }; Body: unknown }>(
    '/v1/kv/:key/incr',
    { schema: { params: keyParams } },
    async (req, reply) => {
      const by = typeof req.body === 'object' && req.body !== null ? (req.body as { by?: unknown }).by : undefined;
      if (by !== undefined && (typeof by !== 'number' || !Number.isSafeInteger(by))) {
        return reply.code(400).send({
          error: { code: 'BAD_REQUEST', message: `by must be a whole number, got ${JSON.stringify(by)}` },
        });
      }
      const session = idempotencySession(req.headers['idempotency-key']);
      if (typeof session === 'string')
        return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: session } });
      const write: KvClientWrite = { op: 'incr', key: enc.encode(req.params.key), delta: BigInt(by ?? 1) };
      const res = await api.execute(session ? { kind: 'write', write, session } : { kind: 'write', write });
      if (res.type === 'int') return { key: req.params.key, value: res.value.toString() };
      if (res.type === 'failure' || res.type === 'error') return sendFailure(reply, res);
      return reply.code(500).send({ error: { code: ErrorCode.Internal, message: `unexpected reply ${res.type}` } });
    },
  );

  app.delete<{ Params: { key: string } }>('/v1/kv/:key', { schema: { params: keyParams } }, async (req, reply) => {
    const session = idempotencySession(req.headers['idempotency-key']);
    if (typeof session === 'string') return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: session } });
    const write: KvClientWrite = { op: 'del', keys: [enc.encode(req.params.key)] };
    const res = await api.execute(session ? { kind: 'write', write, session } : { kind: 'write', write });
    if (res.type === 'int') return { deleted: Number(res.value) };
    if (res.type === 'failure' || res.type === 'error') return sendFailure(reply, res);
    return reply.code(500).send({ error: { code: ErrorCode.Internal, message: `unexpected reply ${res.type}` } });
  });

  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) opts.logger.error('http request failed', { err: err.message });
    return reply
      .code(status)
      .send({ error: { code: status < 500 ? 'BAD_REQUEST' : ErrorCode.Internal, message: err.message } });
  });
  return app;
}
