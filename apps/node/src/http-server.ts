import { ErrorCode, type Logger } from '@cohort/core';
import type { ClientSession, KvClientRequest, KvClientWrite, KvCompare, KvResponse } from '@cohort/kv';
import type { KvRecord } from '@cohort/storage';
import swagger from '@fastify/swagger';
import { type FastifyInstance, type FastifyReply, type FastifyRequest, fastify } from 'fastify';
import { type DashboardRoutesOptions, registerDashboardRoutes } from './dashboard-routes.js';
import { type HttpAuth, registerHttpAuth } from './http-auth.js';
import {
  ApiError,
  type Encoding,
  badRequest,
  compareKeys,
  fromText,
  keyFromPath,
  prefixEnd,
  recordJson,
  returnPreference,
  successor,
  toText,
} from './http-codec.js';
import { WatchSource, serveWatch } from './http-watch.js';
import type { AdminApi, KvApi, ReadApi } from './kv-api.js';
import { isTooLarge } from './limits.js';
import { type MetaApi, registerMetaRoutes } from './meta-routes.js';
import type { NodeMetrics } from './metrics.js';
import { CLUSTER_SUMMARY, type OpsApi, registerOpsRoutes } from './ops-routes.js';
import type { WatchRequest } from './partitioned-watch.js';
import { type TxnRoutesOptions, registerTxnRoutes } from './txn-routes.js';

/** Options of {@link createHttpServer}. */
export interface HttpServerOptions {
  api: KvApi;
  metrics: NodeMetrics;
  logger: Logger;
  /** The member list served at `GET /v1/members`, when membership runs. */
  members?: () => unknown[];
  /** The admin operations (`POST /v1/admin/...`), when the node runs them. */
  admin?: AdminApi;
  /** Reads that skip the linearizable path (`?consistency=lease|stale`); without it they answer 501. */
  reads?: ReadApi;
  /**
   * The changes this replica applies, for `GET /v1/watch`: one source, or a
   * router naming each watch's source (it throws an ApiError for a watch it
   * cannot serve); without it the route answers 501.
   */
  watch?: WatchSource | WatchRouter;
  /** Per partition: slots, replicas, leader, term and watermarks, for `GET /v1/partitions`. */
  partitions?: () => unknown[];
  /**
   * Per partition as its leader reports it (`GET /v1/partitions?from=leaders`), asking the leaders
   * with the request's `Authorization` header.
   */
  partitionsFromLeaders?: (authorization: string | undefined) => Promise<unknown[]>;
  /** The web dashboard at `/ui/` and its feeds (metrics history, events). */
  dashboard?: DashboardRoutesOptions;
  /** Readiness, cluster view and membership administration (see {@link registerOpsRoutes}); without it `GET /v1/cluster` answers from `api.status()`. */
  ops?: OpsApi;
  /** The meta group's registry, partition map, join and leave (`/v1/meta`, `/v1/cluster/join`, `/v1/cluster/leave`). */
  meta?: MetaApi;
  /** Transactions on any keys (`POST /v1/txn`); without it the route does not exist. */
  txn?: TxnRoutesOptions;
  /** Largest request body accepted, in bytes. @default 16 MiB */
  bodyLimit?: number;
  /** Bearer tokens of users and of `/metrics`; without it the API is open (bind it to loopback). */
  auth?: HttpAuth;
  /** Serve HTTPS with this certificate chain and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * Requests served at once; one more answers `503 BUSY` with `Retry-After: 1`
   * at once rather than queueing (watches count while they stream). @default 4096
   */
  maxInFlight?: number;
}

/** The watches of a node with several partitions (see `PartitionedWatch`). */
export interface WatchRouter {
  serve(reply: FastifyReply, req: WatchRequest): Promise<void>;
  closeAll(): void;
}

/** The API's error codes for HTTP statuses the framework answers itself. */
const STATUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  410: 'COMPACTED',
  411: 'LENGTH_REQUIRED',
  412: 'PRECONDITION_FAILED',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  431: 'HEADERS_TOO_LARGE',
};

/** HTTP status for a failure code: 503 for "try again" conditions, 504 for timeouts. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.NotLeader]: 503,
  [ErrorCode.NoQuorum]: 503,
  [ErrorCode.ClusterDown]: 503,
  [ErrorCode.CircuitOpen]: 503,
  [ErrorCode.Unavailable]: 503,
  [ErrorCode.ProposalDropped]: 503,
  [ErrorCode.Timeout]: 504,
  [ErrorCode.Codec]: 400,
};

function sendError(
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  details: Record<string, unknown> = {},
): FastifyReply {
  return reply.code(status).send({ error: { code, message, ...details } });
}

/** A failure or a command error from the KV service as an API error. */
function failureError(res: KvResponse): ApiError {
  if (res.type === 'error' && isTooLarge(res)) return new ApiError(413, 'TOO_LARGE', res.message.replace(/^ERR /, ''));
  if (res.type === 'error') return new ApiError(409, 'COMMAND', res.message);
  if (res.type === 'failure') {
    return new ApiError(STATUS[res.code] ?? 500, res.code, res.message, res.leaderId ? { leader: res.leaderId } : {});
  }
  return new ApiError(500, ErrorCode.Internal, `unexpected reply ${res.type}`);
}

/** The largest `Idempotency-Key` accepted, in characters. */
const MAX_IDEMPOTENCY_KEY = 256;

/**
 * The session of a write sent with `Idempotency-Key: <key>`: the key names
 * the session and the write is its only one, so every node maps a retry to
 * the same (clientId, seq) and the write applies once. Undefined without the header.
 */
function idempotencySession(header: string | string[] | undefined): ClientSession | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header) || header.length === 0 || header.length > MAX_IDEMPOTENCY_KEY) {
    throw badRequest(`Idempotency-Key must be one value of 1 to ${MAX_IDEMPOTENCY_KEY} characters`);
  }
  return { clientId: `http:${header}`, seq: 1, lowWater: 0 };
}

type Consistency = 'linearizable' | 'lease' | 'stale';

const ERROR_SCHEMA = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
      additionalProperties: true,
    },
  },
  required: ['error'],
} as const;

const encodingQuery = {
  type: 'string',
  enum: ['utf8', 'base64'],
  description: 'How keys and values are written in JSON: UTF-8 text (default) or base64',
} as const;
const consistencyQuery = {
  type: 'string',
  enum: ['linearizable', 'lease', 'stale'],
  description:
    'linearizable (default): a ReadIndex round with the leader; lease: served by the leader under its lease; stale: served by this replica as of its applied index',
} as const;
const conditionQuery = {
  ifModRevision: {
    type: 'integer',
    minimum: 0,
    description: 'only if the key was last written at this revision (0: absent)',
  },
  ifVersion: { type: 'integer', minimum: 0, description: 'only if the key has this version (0: absent)' },
  ifValue: { type: 'string', description: 'only if the key holds this value (in the request encoding)' },
  ifAbsent: { type: 'boolean', description: 'only if the key does not exist' },
} as const;

const keyPath = {
  type: 'object',
  properties: { '*': { type: 'string', description: 'the key, percent-encoded; / allowed, encoded or not' } },
} as const;

interface KvQuery {
  encoding?: Encoding;
  consistency?: Consistency;
  ifModRevision?: number;
  ifVersion?: number;
  ifValue?: string;
  ifAbsent?: boolean;
}

interface PutBody {
  value: string;
  ttlMs?: number;
  ifModRevision?: number;
  ifVersion?: number;
  ifValue?: string;
  ifAbsent?: boolean;
}

/** The comparison of a conditional write from its `if*` fields (at most one). */
function compareOf(c: KvQuery | PutBody, encoding: Encoding): KvCompare {
  const given: KvCompare[] = [];
  if (c.ifModRevision !== undefined) given.push({ kind: 'modRevision', value: c.ifModRevision });
  if (c.ifVersion !== undefined) given.push({ kind: 'version', value: c.ifVersion });
  if (c.ifValue !== undefined) given.push({ kind: 'value', value: fromText(c.ifValue, encoding, 'ifValue') });
  if (c.ifAbsent === true) given.push({ kind: 'absent' });
  if (given.length > 1) throw badRequest('give at most one of ifModRevision, ifVersion, ifValue and ifAbsent');
  return given[0] ?? { kind: 'always' };
}

/** The routes as registered, for 405 answers: a method and a matcher of the path. */
interface Registered {
  method: string;
  matches: (path: string) => boolean;
}

function routeMatcher(url: string): (path: string) => boolean {
  const pattern = url
    .split('/')
    .map((seg) => (seg === '*' ? '.*' : seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  const re = new RegExp(`^${pattern.replace(/\/\.\*$/, '(?:/.*)?')}$`);
  return (path) => re.test(path);
}

/** Path prefix of the key routes: the rest of the path is the key. */
const KV_PREFIX = '/v1/kv/';
/** The path the router sees for every key route: the key itself never goes through the router, which refuses bytes that are not UTF-8. */
const KV_ROUTE = '/v1/kv/*';

/** The most keys one range read answers. */
const MAX_LIMIT = 10_000;
const DEFAULT_LIMIT = 1000;

/**
 * The HTTP/JSON API v1 (see the README's HTTP API section and
 * `GET /v1/openapi.json`): keys of any bytes under `/v1/kv/*` with etcd-style
 * revisions, compare-and-swap and conditional delete, range reads with a
 * cursor, watches as server-sent events, read modes, the cluster's state,
 * status, health and Prometheus metrics. Every error answers
 * `{"error": {"code", "message"}}`, the router's 404 and 405 included.
 */
export function createHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = fastify({
    ...(opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    bodyLimit: opts.bodyLimit ?? 16 * 1024 * 1024,
    // An unknown field is refused, not dropped: a misspelt condition must never turn a CAS into a plain write.
    ajv: { customOptions: { removeAdditional: false } },
    // Errors the router meets before any route (a malformed URL) answer in the API's shape too.
    frameworkErrors: (err, _req, reply) => {
      void sendError(reply, 400, 'BAD_REQUEST', `${err.message}: percent-escape the path as %XX`);
    },
    // Keys may be any bytes, which the router refuses as URLs: key routes are routed by their prefix alone.
    rewriteUrl: (req) => {
      const url = req.url ?? '/';
      if (!url.startsWith(KV_PREFIX)) return url;
      const q = url.indexOf('?');
      const query = q < 0 ? '' : url.slice(q);
      const rest = (q < 0 ? url : url.slice(0, q)).slice(KV_PREFIX.length);
      return `${KV_PREFIX}${rest.endsWith('/incr') ? 'key/incr' : 'key'}${query}`;
    },
  });
  const { api } = opts;
  const registered: Registered[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) registered.push({ method, matches: routeMatcher(route.url) });
  });
  // A bound on the work clients can queue here: past it, a request is refused at once, not buffered.
  const maxInFlight = opts.maxInFlight ?? 4096;
  let inFlight = 0;
  const counted = new WeakSet<FastifyRequest>();
  app.addHook('onRequest', async (req, reply) => {
    // Probes are answered whatever the load: a busy node is alive.
    if (req.url === '/healthz' || req.url === '/readyz') return;
    if (inFlight >= maxInFlight) {
      reply.header('retry-after', '1');
      throw new ApiError(503, 'BUSY', `this node serves ${maxInFlight} HTTP requests at once; retry shortly`);
    }
    inFlight++;
    counted.add(req);
  });
  const release = async (req: FastifyRequest): Promise<void> => {
    if (counted.delete(req)) inFlight--;
  };
  app.addHook('onResponse', release);
  app.addHook('onRequestAbort', release);
  if (opts.auth) registerHttpAuth(app, opts.auth);
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Cohort HTTP API',
        version: '1',
        description:
          'A distributed, strongly consistent key-value store. Keys and values are bytes: UTF-8 text in JSON by default, base64 with ?encoding=base64. Errors answer {"error": {"code", "message"}}.',
      },
    },
  });

  app.setNotFoundHandler((req, reply) => {
    // The router saw a key route's rewritten path; the answer names the path the client sent.
    const routed = req.url.split('?')[0] ?? '/';
    const path = req.originalUrl.split('?')[0] ?? '/';
    const allowed = [...new Set(registered.filter((r) => r.matches(routed)).map((r) => r.method))].filter(
      (m) => m !== 'HEAD',
    );
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      return sendError(
        reply,
        405,
        'METHOD_NOT_ALLOWED',
        `${req.method} is not allowed on ${path}; use ${allowed.join(', ')}`,
      );
    }
    return sendError(reply, 404, 'NOT_FOUND', `no route ${req.method} ${path}; see GET /v1/openapi.json`);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown; code?: string }, _req, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.status, err.code, err.message, err.details);
    const status = err.statusCode ?? 500;
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return sendError(
        reply,
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        `${err.message}: send application/json, or text/plain for a value as text`,
      );
    }
    if (status >= 500) {
      opts.logger.error('http request failed', { err: err.message });
      return sendError(reply, status, ErrorCode.Internal, err.message);
    }
    return sendError(reply, status, STATUS_CODES[status] ?? 'BAD_REQUEST', err.message);
  });

  const consistencyOf = (q: KvQuery): Consistency => q.consistency ?? 'linearizable';

  /** Serves a read in the asked mode; sets `X-Cohort-Applied-Index` to the applied index it was served at. */
  const read = async (
    req: Extract<KvClientRequest, { kind: 'read' }>,
    mode: Consistency,
    reply: FastifyReply,
  ): Promise<Extract<KvResponse, { type: 'range' }>> => {
    let res: KvResponse;
    if (mode === 'linearizable') res = await api.execute(req);
    else if (!opts.reads) throw new ApiError(501, 'NOT_IMPLEMENTED', `consistency=${mode} is not served by this node`);
    else res = mode === 'stale' ? opts.reads.stale(req) : await opts.reads.lease(req);
    if (res.type !== 'range') throw failureError(res);
    reply.header('x-cohort-applied-index', String(res.revision));
    return res;
  };

  // Routes load after the OpenAPI plugin, so it sees every one of them.
  void app.register(async (app) => {
    app.get('/healthz', { schema: { summary: 'Liveness: the process serves HTTP' } }, async () => ({ ok: true }));
    app.get(
      '/v1/status',
      { schema: { summary: "This node's role, term, leader, commit and applied indexes" } },
      async () => api.status(),
    );
    if (opts.ops) registerOpsRoutes(app, opts.ops);
    else {
      app.get('/v1/cluster', { schema: { summary: CLUSTER_SUMMARY } }, async () => {
        const s = api.status();
        return { ...s, members: [] };
      });
    }
    if (opts.meta) registerMetaRoutes(app, opts.meta);
    if (opts.txn) registerTxnRoutes(app, opts.txn);
    if (opts.dashboard) registerDashboardRoutes(app, opts.dashboard);
    const { partitions } = opts;
    if (partitions) {
      const fromLeaders = opts.partitionsFromLeaders;
      app.get<{ Querystring: { from?: 'here' | 'leaders' } }>(
        '/v1/partitions',
        {
          schema: {
            summary:
              "Per partition: its slots, replicas, leader, term, commit and applied indexes, as this node's replicas see them; with ?from=leaders as each partition's leader reports it (with each replica's lag)",
            querystring: {
              type: 'object',
              properties: { from: { type: 'string', enum: ['here', 'leaders'] } },
              additionalProperties: false,
            },
          },
        },
        async (req) => {
          if (req.query.from === 'leaders' && fromLeaders) {
            const auth = req.headers.authorization;
            return { partitions: await fromLeaders(typeof auth === 'string' ? auth : undefined) };
          }
          return { partitions: partitions() };
        },
      );
    }
    const { members } = opts;
    if (members) {
      app.get<{ Querystring: { tag?: string } }>(
        '/v1/members',
        {
          schema: {
            summary: 'The members this node knows by gossip; ?tag=key:value keeps those with that tag (e.g. zone:a)',
            querystring: {
              type: 'object',
              properties: { tag: { type: 'string', pattern: '^[^:]+:.*$' } },
              additionalProperties: false,
            },
          },
        },
        async (req) => {
          const all = members() as { tags?: Record<string, string> }[];
          const tag = req.query.tag;
          if (tag === undefined) return { members: all };
          const at = tag.indexOf(':');
          const key = tag.slice(0, at);
          const value = tag.slice(at + 1);
          return { members: all.filter((m) => m.tags?.[key] === value) };
        },
      );
    }
    const { admin } = opts;
    if (admin) {
      app.post(
        '/v1/admin/consistency-check',
        { schema: { summary: "Runs a consistency check of the group's replicas now" } },
        async () => {
          try {
            return await admin.checkConsistency();
          } catch (err) {
            const e = err as { code?: unknown; message?: unknown };
            const code = typeof e.code === 'string' ? e.code : ErrorCode.Internal;
            throw new ApiError(
              STATUS[code as ErrorCode] ?? 500,
              code,
              `consistency check failed: ${String(e.message ?? err)}`,
            );
          }
        },
      );
    }
    app.get('/metrics', { schema: { summary: 'Prometheus metrics' } }, async (_req, reply) => {
      reply.header('content-type', opts.metrics.registry.contentType);
      return opts.metrics.registry.metrics();
    });
    app.get('/v1/openapi.json', { schema: { summary: 'This document', hide: false } }, async () => app.swagger());

    const keyOf = (req: FastifyRequest): Uint8Array => keyFromPath(req.originalUrl, KV_PREFIX);

    app.get<{ Querystring: KvQuery & { ttl?: string } }>(
      KV_ROUTE,
      {
        schema: {
          summary: "Reads one key's record",
          params: keyPath,
          querystring: {
            type: 'object',
            properties: {
              encoding: encodingQuery,
              consistency: consistencyQuery,
              ttl: {
                type: 'string',
                enum: ['true', 'false'],
                description: 'ignored: ttlMs is always answered for a key that expires',
              },
            },
            additionalProperties: false,
          },
          response: { 404: ERROR_SCHEMA },
        },
      },
      async (req, reply) => {
        const key = keyOf(req);
        const encoding = req.query.encoding ?? 'utf8';
        const res = await read(
          { kind: 'read', op: 'range', keys: [key, successor(key)], limit: 1 },
          consistencyOf(req.query),
          reply,
        );
        const rec = res.records[0];
        if (!rec)
          throw new ApiError(404, 'NOT_FOUND', `key '${toText(key, encoding)}' not found`, { revision: res.revision });
        const body = recordJson(rec, encoding, Date.now());
        return req.query.consistency === 'stale' ? { ...body, appliedIndex: res.revision } : body;
      },
    );

    const putBody = {
      type: 'object',
      properties: {
        value: { type: 'string', description: 'the value (in the request encoding)' },
        ttlMs: { type: 'integer', minimum: 1, description: 'time to live in milliseconds' },
        ...conditionQuery,
      },
      required: ['value'],
      additionalProperties: false,
    } as const;

    /** Runs a conditional write and answers it: 200 with the outcome, or 412 with the key's current record. */
    const condWrite = async (
      req: FastifyRequest,
      reply: FastifyReply,
      write: Extract<KvClientWrite, { op: 'cond' }>,
      encoding: Encoding,
      answer?: 'revision',
    ): Promise<{ succeeded: true; revision: number; record?: KvRecord }> => {
      const session = idempotencySession(req.headers['idempotency-key']);
      const res = await api.execute({
        kind: 'write',
        write,
        ...(session ? { session } : {}),
        ...(answer !== undefined ? { answer } : {}),
      });
      if (res.type !== 'cond') throw failureError(res);
      if (!res.succeeded) {
        throw new ApiError(
          412,
          'PRECONDITION_FAILED',
          `the condition on key '${toText(write.key, encoding)}' does not hold`,
          {
            revision: res.revision,
            current: res.record ? recordJson(res.record, encoding, Date.now()) : null,
          },
        );
      }
      reply.header('x-cohort-revision', String(res.revision));
      return res.record
        ? { succeeded: true, revision: res.revision, record: res.record }
        : { succeeded: true, revision: res.revision };
    };

    app.put<{ Querystring: KvQuery; Body: PutBody | string }>(
      KV_ROUTE,
      {
        schema: {
          summary:
            'Writes a key; with an if* condition, a compare-and-swap (412 with the current record when it fails)',
          params: keyPath,
          querystring: {
            type: 'object',
            properties: { encoding: encodingQuery, ...conditionQuery },
            additionalProperties: false,
          },
          headers: {
            type: 'object',
            properties: {
              prefer: {
                type: 'string',
                description:
                  'return=minimal: the answer is {key, modRevision, revision}, without the record (RFC 7240; ' +
                  'Preference-Applied says so), so the node need not read the row the put replaced',
              },
            },
          },
          body: {
            content: {
              'application/json': { schema: putBody },
              'text/plain': { schema: { type: 'string', description: 'the value as text' } },
            },
          },
          response: { 412: ERROR_SCHEMA },
        },
      },
      async (req, reply) => {
        const encoding = req.query.encoding ?? 'utf8';
        const key = keyOf(req);
        const body: PutBody = typeof req.body === 'string' ? { value: req.body } : req.body;
        if (body === undefined || body === null) {
          throw badRequest(
            'send the value as {"value": "...", "ttlMs": 60000} (application/json) or as a text/plain body',
          );
        }
        const fromBody = compareOf(body, encoding);
        const fromQuery = compareOf(req.query, encoding);
        if (fromBody.kind !== 'always' && fromQuery.kind !== 'always') {
          throw badRequest('give the condition in the body or in the query, not both');
        }
        const value =
          typeof req.body === 'string' ? new TextEncoder().encode(req.body) : fromText(body.value, encoding, 'value');
        const write: KvClientWrite = {
          op: 'cond',
          key,
          compare: fromBody.kind !== 'always' ? fromBody : fromQuery,
          action: {
            kind: 'put',
            value,
            expiry: body.ttlMs === undefined ? { kind: 'none' } : { kind: 'in', ms: body.ttlMs },
          },
        };
        // What the write itself tells: the key's create revision and version would take the row it replaced,
        // a read of the file on the leader's event loop for a key no cache holds (every put, over a million keys).
        const minimal = returnPreference(req.headers.prefer) === 'minimal';
        const out = await condWrite(req, reply, write, encoding, minimal ? 'revision' : undefined);
        if (minimal) {
          reply.header('preference-applied', 'return=minimal');
          return { key: toText(key, encoding), modRevision: out.revision, revision: out.revision };
        }
        return {
          ...(out.record ? recordJson(out.record, encoding, Date.now()) : { key: toText(key, encoding) }),
          revision: out.revision,
        };
      },
    );

    app.delete<{ Querystring: KvQuery }>(
      KV_ROUTE,
      {
        schema: {
          summary: 'Deletes a key; with an if* condition, only if it holds (412 with the current record when it fails)',
          params: keyPath,
          querystring: {
            type: 'object',
            properties: { encoding: encodingQuery, ...conditionQuery },
            additionalProperties: false,
          },
        },
      },
      async (req, reply) => {
        const encoding = req.query.encoding ?? 'utf8';
        const write: KvClientWrite = {
          op: 'cond',
          key: keyOf(req),
          compare: compareOf(req.query, encoding),
          action: { kind: 'del' },
        };
        const out = await condWrite(req, reply, write, encoding);
        return out.record
          ? { deleted: 1, revision: out.revision, prev: recordJson(out.record, encoding, Date.now()) }
          : { deleted: 0, revision: out.revision };
      },
    );

    app.post<{ Querystring: { encoding?: Encoding }; Body: { by?: number } | undefined }>(
      KV_ROUTE,
      {
        schema: {
          summary:
            'POST /v1/kv/<key>/incr: adds `by` (default 1) to an integer value; answers the new value as a decimal string',
          params: keyPath,
          querystring: { type: 'object', properties: { encoding: encodingQuery }, additionalProperties: false },
          body: {
            type: 'object',
            properties: { by: { type: 'integer', description: 'the increment, default 1' } },
            additionalProperties: false,
          },
        },
        // No body at all increments by 1.
        preValidation: async (req) => {
          if (req.body === undefined || req.body === null) req.body = {};
        },
      },
      async (req) => {
        const encoding = req.query.encoding ?? 'utf8';
        const path = req.originalUrl.split('?')[0] as string;
        if (!path.endsWith('/incr')) {
          throw new ApiError(
            405,
            'METHOD_NOT_ALLOWED',
            `POST is allowed on ${KV_PREFIX}<key>/incr only; use GET, PUT or DELETE on a key`,
          );
        }
        const key = keyFromPath(path.slice(0, -'/incr'.length), KV_PREFIX);
        const by = req.body?.by ?? 1;
        if (!Number.isSafeInteger(by)) throw badRequest(`by must be a whole number, got ${JSON.stringify(by)}`);
        const session = idempotencySession(req.headers['idempotency-key']);
        const write: KvClientWrite = { op: 'incr', key, delta: BigInt(by) };
        const res = await api.execute(session ? { kind: 'write', write, session } : { kind: 'write', write });
        if (res.type !== 'int') throw failureError(res);
        return { key: toText(key, encoding), value: res.value.toString() };
      },
    );

    interface RangeQuery {
      prefix?: string;
      start?: string;
      end?: string;
      after?: string;
      limit?: number;
      encoding?: Encoding;
      consistency?: Consistency;
    }
    app.get<{ Querystring: RangeQuery }>(
      '/v1/kv',
      {
        schema: {
          summary: 'Reads the keys of a prefix or of a range [start, end), in byte order, a page at a time',
          querystring: {
            type: 'object',
            properties: {
              prefix: { type: 'string', description: 'every key starting with it (in the request encoding)' },
              start: { type: 'string', description: 'the first key (inclusive)' },
              end: { type: 'string', description: 'the end of the range (exclusive); the last key when absent' },
              after: { type: 'string', description: 'the cursor: the `next` of the previous page' },
              limit: {
                type: 'integer',
                minimum: 1,
                maximum: MAX_LIMIT,
                description: `keys per page, default ${DEFAULT_LIMIT}`,
              },
              encoding: encodingQuery,
              consistency: consistencyQuery,
            },
            additionalProperties: false,
          },
        },
      },
      async (req, reply) => {
        const q = req.query;
        const encoding = q.encoding ?? 'utf8';
        if (q.prefix !== undefined && (q.start !== undefined || q.end !== undefined)) {
          throw badRequest('give either prefix, or start and end, not both');
        }
        let start: Uint8Array;
        let end: Uint8Array | undefined;
        if (q.prefix !== undefined) {
          start = fromText(q.prefix, encoding, 'prefix');
          end = prefixEnd(start);
        } else {
          start = q.start === undefined ? new Uint8Array() : fromText(q.start, encoding, 'start');
          end = q.end === undefined ? undefined : fromText(q.end, encoding, 'end');
        }
        if (q.after !== undefined) {
          const next = successor(fromText(q.after, encoding, 'after'));
          if (compareKeys(next, start) > 0) start = next;
        }
        const limit = q.limit ?? DEFAULT_LIMIT;
        const keys = end === undefined ? [start] : [start, end];
        const empty = end !== undefined && compareKeys(start, end) >= 0;
        const res = empty
          ? { records: [], more: false, revision: 0 }
          : await read({ kind: 'read', op: 'range', keys, limit }, q.consistency ?? 'linearizable', reply);
        const now = Date.now();
        const last = res.records.at(-1);
        const body: Record<string, unknown> = {
          kvs: res.records.map((r) => recordJson(r, encoding, now)),
          more: res.more,
          revision: res.revision,
        };
        if (res.more && last) body.next = toText(last.key, encoding);
        // Revisions are per partition: a watch of the same prefix resumes from each partition's own.
        if ('revisions' in res && res.revisions) body.resume = res.revisions.join('.');
        if (q.consistency === 'stale') body.appliedIndex = res.revision;
        return body;
      },
    );

    app.get<{
      Querystring: {
        key?: string;
        prefix?: string;
        fromRevision?: number;
        resume?: string;
        partition?: number;
        encoding?: Encoding;
      };
    }>(
      '/v1/watch',
      {
        schema: {
          summary:
            "Watches a key or a prefix as server-sent events (event put or delete, id = the revision, on the last event of each revision only); resume with fromRevision = last id + 1 or Last-Event-ID; 410 when the revision is no longer held. With several partitions a prefix watch spans them all: each event names its partition and its id is a resume token (every partition's last revision, joined by dots), given back as resume or Last-Event-ID",
          querystring: {
            type: 'object',
            properties: {
              key: { type: 'string' },
              prefix: { type: 'string' },
              fromRevision: {
                type: 'integer',
                minimum: 1,
                description: 'the first revision to send; live changes only when absent',
              },
              resume: {
                type: 'string',
                pattern: '^[0-9]+(\\.[0-9]+)*$',
                description:
                  'resume after this id (the last event id received, or the resume token of a range read): a revision, or one per partition joined by dots',
              },
              partition: {
                type: 'integer',
                minimum: 0,
                description:
                  'watch the prefix in this partition only (a node relays the partitions it does not replicate so)',
              },
              encoding: encodingQuery,
            },
            additionalProperties: false,
          },
          response: { 410: ERROR_SCHEMA },
        },
      },
      async (req, reply) => {
        const q = req.query;
        const encoding = q.encoding ?? 'utf8';
        if ((q.key === undefined) === (q.prefix === undefined)) throw badRequest('give exactly one of key and prefix');
        if (!opts.watch) throw new ApiError(501, 'NOT_IMPLEMENTED', 'watches are not served by this node');
        const filter =
          q.key !== undefined
            ? { key: fromText(q.key, encoding, 'key') }
            : { prefix: fromText(q.prefix as string, encoding, 'prefix') };
        const last = req.headers['last-event-id'];
        const resume = q.resume ?? (typeof last === 'string' && last !== '' ? last : undefined);
        if (opts.watch instanceof WatchSource) {
          let from = q.fromRevision;
          if (resume !== undefined && /^[0-9]+$/.test(resume)) from = Math.max(from ?? 0, Number(resume) + 1);
          serveWatch(opts.watch, reply, { filter, from, encoding, logger: opts.logger });
          return reply;
        }
        await opts.watch.serve(reply, {
          filter,
          encoding,
          text: q.key !== undefined ? { key: q.key } : { prefix: q.prefix as string },
          ...(q.fromRevision !== undefined ? { fromRevision: q.fromRevision } : {}),
          ...(resume !== undefined ? { resume } : {}),
          ...(q.partition !== undefined ? { partition: q.partition } : {}),
        });
        return reply;
      },
    );
  });

  // Watch streams end when the server closes, so a node stops without waiting for its watchers.
  app.addHook('preClose', (done) => {
    opts.watch?.closeAll();
    done();
  });
  return app;
}
