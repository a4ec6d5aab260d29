import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Acl, type AclUser, type CommandClass, digest, mayAccess, mayRun } from './auth.js';
import { ApiError, keyFromPath } from './http-codec.js';

/** Who may use the HTTP API: users' bearer tokens (`security.users[].tokens`) and the `/metrics` token. */
export interface HttpAuth {
  acl?: Acl;
  /** When set, `GET /metrics` needs `Authorization: Bearer <metricsToken>`. */
  metricsToken?: string;
}

/** Paths anyone may ask: liveness and readiness probes. */
const OPEN = new Set(['/healthz', '/readyz']);
const KV_PREFIX = '/v1/kv/';

/**
 * The dashboard's static files are open: they hold no data, and a browser
 * cannot send a bearer token when it opens a page. Every request the page
 * makes for data carries the token it was given.
 */
function isDashboardFile(path: string): boolean {
  return path === '/ui' || path.startsWith('/ui/');
}
const READ: CommandClass = { name: 'get', flags: ['readonly'] };
const WRITE: CommandClass = { name: 'set', flags: ['write'] };
const ADMIN: CommandClass = { name: 'cluster', flags: [] };

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

function unauthorized(reply: FastifyReply, message: string): ApiError {
  reply.header('www-authenticate', 'Bearer realm="cohort"');
  return new ApiError(401, 'UNAUTHORIZED', message);
}

/** The user each request authenticated as, for checks its route makes once the body is parsed. */
const requestUsers = new WeakMap<FastifyRequest, AclUser>();

/** The path whose keys are in the body: its route checks them with {@link authorizeKeys}. */
const TXN_PATH = '/v1/txn';

/**
 * Throws 403 `NOPERM` unless the user `req` authenticated as may make a
 * read (`write` false) or a write of every one of `keys`; nothing when the
 * API is open. For routes whose keys are in the body (`POST /v1/txn`).
 */
export function authorizeKeys(req: FastifyRequest, keys: readonly Uint8Array[], write: boolean): void {
  const user = requestUsers.get(req);
  if (user === undefined) return;
  if (!mayRun(user, write ? WRITE : READ)) {
    throw new ApiError(403, 'NOPERM', `user ${user.name} has no permissions to ${write ? 'write' : 'read'} keys`);
  }
  if (!mayAccess(user, keys))
    throw new ApiError(403, 'NOPERM', `user ${user.name} has no permissions to access this key`);
}

/** What a request does, for the ACL: a read or a write of the key it names, or an admin operation. */
function classify(req: FastifyRequest): { command: CommandClass; keys?: Uint8Array[]; allKeys?: boolean } {
  const url = req.originalUrl;
  const path = url.split('?')[0] ?? '/';
  const read = req.method === 'GET' || req.method === 'HEAD';
  // Its route checks the reads and writes its body names (authorizeKeys).
  if (path === TXN_PATH && req.method === 'POST') return { command: READ, keys: [] };
  if (path.startsWith(KV_PREFIX)) {
    const key = keyFromPath(path.endsWith('/incr') ? path.slice(0, -'/incr'.length) : path, KV_PREFIX);
    return { command: read ? READ : WRITE, keys: [key] };
  }
  if (path === '/v1/kv' || path === '/v1/watch') {
    const key = new URLSearchParams(url.slice(path.length + 1)).get('key');
    // A range or a prefix watch may reach any key: only a user with every key may ask it.
    return key === null ? { command: READ, allKeys: true } : { command: READ, keys: [Buffer.from(key)] };
  }
  if (path.startsWith('/v1/admin/') || !read) return { command: ADMIN };
  return { command: READ };
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(digest(a), 'hex');
  const y = Buffer.from(digest(b), 'hex');
  return timingSafeEqual(x, y);
}

/**
 * Requires a bearer token on every HTTP request but the probes, once a user
 * has a token, and the metrics token on `/metrics` when one is set. A
 * request without a valid token answers 401 `UNAUTHORIZED`; one its user may
 * not make (its commands, its key patterns) 403 `NOPERM`.
 */
export function registerHttpAuth(app: FastifyInstance, auth: HttpAuth): void {
  const acl = auth.acl;
  const tokens = acl?.tokensRequired === true;
  if (!tokens && auth.metricsToken === undefined) return;
  app.addHook('onRequest', async (req, reply) => {
    const path = req.originalUrl.split('?')[0] ?? '/';
    if (OPEN.has(path) || isDashboardFile(path)) return;
    const token = bearer(req);
    if (path === '/metrics') {
      if (auth.metricsToken === undefined) return;
      if (token === undefined || !sameSecret(token, auth.metricsToken)) {
        throw unauthorized(reply, 'GET /metrics needs the metrics token: send Authorization: Bearer <token>');
      }
      return;
    }
    if (!tokens || acl === undefined) return;
    if (token === undefined) {
      throw unauthorized(reply, 'this API needs a bearer token: send Authorization: Bearer <token> of a user');
    }
    const user: AclUser | undefined = acl.byToken(token);
    if (user === undefined) throw unauthorized(reply, 'the bearer token is not valid, or its user is disabled');
    requestUsers.set(req, user);
    const what = classify(req);
    if (!mayRun(user, what.command)) {
      throw new ApiError(403, 'NOPERM', `user ${user.name} has no permissions to ${req.method} ${path}`);
    }
    const keysOk = what.allKeys ? user.keys.includes('*') : what.keys === undefined || mayAccess(user, what.keys);
    if (!keysOk) throw new ApiError(403, 'NOPERM', `user ${user.name} has no permissions to access this key`);
  });
}
