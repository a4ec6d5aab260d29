import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@cohort/core';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Acl, type AclUser, digest, mayRun, runsEverything } from '../src/auth.js';
import { warnIfExposed } from '../src/cohort-node.js';
import { createHttpServer } from '../src/http-server.js';
import { limitKv, writeTooLarge } from '../src/limits.js';
import { NodeMetrics } from '../src/metrics.js';
import { RespServer, type RespServerOptions } from '../src/resp/server.js';
import { LocalKv } from './helpers/local-kv.js';
import { encodeCommand } from './helpers/raw-resp.js';

const OPENSSL_INSTALL = 'apt-get install -y openssl';
const HAVE_OPENSSL = spawnSync('openssl', ['version']).status === 0;
if (!HAVE_OPENSSL && process.env.CI !== 'true') {
  console.warn(
    `\n!!!!! security: the TLS test is SKIPPED — no openssl on PATH. Install it: \`${OPENSSL_INSTALL}\` !!!!!\n`,
  );
}

const servers: RespServer[] = [];
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(servers.map((s) => s.close(200)));
});

async function serve(
  opts: Partial<RespServerOptions> = {},
): Promise<{ port: number; kv: LocalKv; server: RespServer }> {
  const kv = new LocalKv();
  const server = new RespServer({
    api: limitKv(kv, { maxKeyBytes: 64, maxValueBytes: 1024, maxCommandBytes: 4096 }),
    logger: silentLogger,
    ...opts,
  });
  servers.push(server);
  return { port: await server.listen(0, '127.0.0.1'), kv, server };
}

function client(port: number, extra: Record<string, unknown> = {}): Redis {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    lazyConnect: true,
    enableReadyCheck: false,
    ...extra,
  });
  clients.push(r);
  return r;
}

const err = (p: Promise<unknown>): Promise<string> =>
  p.then(
    (v) => `no error: ${String(v)}`,
    (e: Error) => e.message,
  );

describe('write limits', () => {
  it('answers a key, value or command over its limit with an error and runs the rest of the pipeline', async () => {
    const { port } = await serve();
    const redis = client(port);
    await redis.connect();
    expect(await err(redis.set('k'.repeat(65), 'v'))).toBe(
      'ERR key of 65 bytes exceeds the limit of 64 bytes (max-key-bytes)',
    );
    expect(await err(redis.set('k', 'v'.repeat(1025)))).toMatch(/^ERR value of 1025 bytes exceeds .*max-value-bytes/);
    const big = 'v'.repeat(1000);
    expect(await err(redis.mset('a', big, 'b', big, 'c', big, 'd', big, 'e', big))).toMatch(
      /^ERR command of 5005 bytes exceeds the limit of 4096 bytes \(max-command-bytes\)/,
    );
    expect(await err(redis.setrange('k', 1000, 'abcdefghijklmnopqrstuvwxyz'))).toBe(
      'ERR string exceeds maximum allowed size (proto-max-bulk-len)',
    );
    const res = await redis.pipeline().set('x', '1').set('y', 'v'.repeat(2000)).set('z', '3').exec();
    expect(res?.map(([e, v]) => (e ? 'error' : v))).toEqual(['OK', 'error', 'OK']);
    expect(await redis.mget('x', 'y', 'z')).toEqual(['1', null, '3']);
    // Inside a transaction the whole EXEC is one entry: its total counts.
    const tx = await redis
      .multi()
      .set('t1', big)
      .set('t2', big)
      .set('t3', big)
      .set('t4', big)
      .set('t5', big)
      .exec()
      .catch((e: Error) => e.message);
    expect(String(tx)).toMatch(/max-command-bytes/);
    expect(await redis.exists('t1')).toBe(0);
  });

  it('checks hash fields and list elements as values', () => {
    const limits = { maxKeyBytes: 8, maxValueBytes: 4, maxCommandBytes: 64 };
    const b = (s: string) => Buffer.from(s);
    expect(
      writeTooLarge({ op: 'collection', name: 'hset', keys: [b('h')], args: [b('f'), b('12345')] }, limits),
    ).toMatch(/max-value-bytes/);
    expect(writeTooLarge({ op: 'rename', key: b('a'), dest: b('123456789'), nx: false }, limits)).toMatch(
      /max-key-bytes/,
    );
    expect(writeTooLarge({ op: 'del', keys: [b('a'), b('b')] }, limits)).toBeUndefined();
  });

  it('closes a connection whose one command goes over the query buffer limit, and serves the others', async () => {
    const { port } = await serve({ limits: { maxBulkBytes: 1024 * 1024, maxCommandBytes: 2 * 1024 * 1024 } });
    const other = client(port);
    await other.connect();
    const text = await new Promise<{ text: string; closed: boolean }>((resolve) => {
      const s: Socket = connect(port, '127.0.0.1');
      let text = '';
      s.on('data', (d) => {
        text += d.toString();
      });
      s.on('close', () => resolve({ text, closed: true }));
      s.on('error', () => {});
      // Argument after argument of 1 MiB: the server must refuse before buffering them all.
      const arg = Buffer.alloc(1024 * 1024, 120);
      s.write('*1000\r\n$3\r\nset\r\n');
      for (let i = 0; i < 8 && !s.destroyed; i++)
        s.write(Buffer.concat([Buffer.from(`$${arg.length}\r\n`), arg, Buffer.from('\r\n')]));
    });
    expect(text.text).toContain('ERR Protocol error: command of more than 2097152 bytes (client-query-buffer-limit)');
    expect(await other.ping()).toBe('PONG');
  });
});

describe('connection limits', () => {
  it('refuses a connection over maxclients with Redis` error', async () => {
    const { port, server } = await serve({ maxClients: 2 });
    const a = client(port);
    const b = client(port);
    await a.connect();
    await b.connect();
    const third = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let text = '';
      s.on('data', (d) => {
        text += d.toString();
      });
      s.on('close', () => resolve(text));
      s.on('error', () => {});
    });
    expect(third).toBe('-ERR max number of clients reached\r\n');
    expect(server.refused.maxClients).toBe(1);
    expect(await a.ping()).toBe('PONG');
    b.disconnect();
    // A slot freed is a slot to take.
    await expect
      .poll(async () => {
        const c = client(port);
        try {
          await c.connect();
          return await c.ping();
        } catch {
          return 'refused';
        } finally {
          c.disconnect();
        }
      })
      .toBe('PONG');
  });

  it('disconnects a client that never reads its replies while it serves the others', async () => {
    const { port, kv, server } = await serve({
      outputBuffer: { hardBytes: 4 * 1024 * 1024, softBytes: 1024 * 1024, softSeconds: 1 },
    });
    const reader = client(port);
    await reader.connect();
    const value = Buffer.alloc(1000, 97);
    for (let i = 0; i < 8; i++) await reader.set(`v${i}`, value);
    // A raw socket that pipelines 50 000 GETs (50 MB of replies) and never reads.
    const stalled: Socket = connect(port, '127.0.0.1');
    stalled.on('error', () => {});
    stalled.pause();
    const batch = Buffer.concat(Array.from({ length: 1000 }, (_, i) => encodeCommand(['GET', `v${i % 8}`])));
    for (let i = 0; i < 50; i++) stalled.write(batch);
    // Served meanwhile.
    expect(await reader.get('v1')).toBe(value.toString());
    // The paused socket cannot see its end: the server's count tells it was closed.
    await expect.poll(() => server.refused.outputBuffer, { timeout: 10_000 }).toBe(1);
    stalled.destroy();
    expect(await reader.get('v2')).toBe(value.toString());
    expect(kv.status().role).toBeDefined();
  });
});

describe('AUTH and ACL', () => {
  it('requires AUTH with requirepass and answers Redis 7 errors', async () => {
    const acl = new Acl({ requirepass: 's3cret' });
    const { port } = await serve({ acl });
    const redis = client(port);
    await redis.connect();
    expect(await err(redis.get('a'))).toBe('NOAUTH Authentication required.');
    expect(await err(redis.call('HELLO', '3'))).toMatch(
      /^NOAUTH HELLO must be called with the client already authenticated/,
    );
    expect(await err(redis.call('HELLO', '2', 'AUTH', 'default', 'nope'))).toMatch(/^WRONGPASS/);
    expect(await err(redis.auth('wrong'))).toBe('WRONGPASS invalid username-password pair or user is disabled.');
    expect(await redis.auth('s3cret')).toBe('OK');
    expect(await redis.set('a', '1')).toBe('OK');
    expect(await redis.call('ACL', 'WHOAMI')).toBe('default');
    const good = client(port, { password: 's3cret' });
    await good.connect();
    expect(await good.get('a')).toBe('1');
  });

  it('lets a user of +@all alone run every command, and one of +@all and a removal every command but that', () => {
    const acl = new Acl({
      users: [
        { name: 'all', passwords: [], commands: ['+@all'] },
        { name: 'most', passwords: [], commands: ['+@all', '-del'] },
      ],
    });
    const [all, most] = [acl.users.get('all'), acl.users.get('most')] as [AclUser, AclUser];
    expect(runsEverything(all)).toBe(true);
    expect(runsEverything(most)).toBe(false);
    for (const name of ['get', 'set', 'del', 'flushall', 'acl']) {
      expect(mayRun(all, { name, flags: [] })).toBe(true);
      expect(mayRun(most, { name, flags: [] })).toBe(name !== 'del');
    }
    // ACL SETUSER on the user makes a new one: the old object keeps its rules.
    expect(acl.setUser('all', ['-set'])).toBeUndefined();
    expect(runsEverything(acl.users.get('all') as AclUser)).toBe(false);
    expect(runsEverything(all)).toBe(true);
  });

  it('runs users with hashed passwords and per-user command and key permissions', async () => {
    const acl = new Acl({
      users: [
        { name: 'app', passwords: ['apppass'], commands: ['+@read', '+set'], keys: ['app:*'] },
        { name: 'ops', passwords: [`#${digest('opspass')}`], commands: ['+@all'] },
      ],
    });
    const { port } = await serve({ acl });
    const app = client(port, { username: 'app', password: 'apppass' });
    await app.connect();
    expect(await app.set('app:1', 'x')).toBe('OK');
    expect(await app.get('app:1')).toBe('x');
    expect(await err(app.get('other'))).toBe('NOPERM No permissions to access a key');
    expect(await err(app.del('app:1'))).toBe("NOPERM User app has no permissions to run the 'del' command");
    expect(await err(app.call('ACL', 'LIST'))).toBe("NOPERM User app has no permissions to run the 'acl' command");
    // The default user (no requirepass) still needs nothing.
    const anon = client(port);
    await anon.connect();
    expect(await anon.call('ACL', 'WHOAMI')).toBe('default');
    expect(await err(anon.call('AUTH', 'app', 'nope'))).toBe(
      'WRONGPASS invalid username-password pair or user is disabled.',
    );
    const ops = client(port, { username: 'ops', password: 'opspass' });
    await ops.connect();
    expect(await ops.call('ACL', 'WHOAMI')).toBe('ops');
    const list = (await ops.call('ACL', 'LIST')) as string[];
    expect(list).toContain(`user app on #${digest('apppass')} ~app:* resetchannels -@all +@read +set`);
    expect(list.join('\n')).not.toContain('apppass');
    expect(await ops.call('ACL', 'SETUSER', 'late', 'on', '>latepass', '~late:*', '+get')).toBe('OK');
    expect(await err(ops.call('ACL', 'SETUSER', 'bad', 'bogus'))).toBe(
      "ERR Error in ACL SETUSER modifier 'bogus': Syntax error",
    );
    expect(await ops.call('ACL', 'USERS')).toEqual(['app', 'default', 'late', 'ops']);
    const late = client(port);
    await late.connect();
    expect(await late.call('AUTH', 'late', 'latepass')).toBe('OK');
    expect(await late.get('late:x')).toBeNull();
    expect(await err(late.set('late:x', '1'))).toMatch(/^NOPERM User late has no permissions to run the 'set' command/);
    expect(await ops.call('ACL', 'SETUSER', 'late', 'off')).toBe('OK');
    const again = client(port);
    await again.connect();
    expect(await err(again.call('AUTH', 'late', 'latepass'))).toMatch(/^WRONGPASS/);
    // HELLO authenticates too.
    const hello = client(port);
    await hello.connect();
    expect(await err(hello.call('HELLO', '3', 'AUTH', 'app', 'bad'))).toMatch(/^WRONGPASS/);
  });
});

describe('HTTP bearer tokens and TLS', () => {
  const acl = new Acl({
    users: [
      { name: 'reader', tokens: ['read-token'], commands: ['+@read'], keys: ['pub/*'] },
      { name: 'admin', tokens: [`#${digest('admin-token')}`], commands: ['+@all'] },
    ],
  });
  const kv = new LocalKv();
  const metrics = new NodeMetrics(() => kv.status());

  it('requires a user token on the API, the metrics token on /metrics, and checks permissions', async () => {
    const app = createHttpServer({
      api: limitKv(kv, { maxKeyBytes: 64, maxValueBytes: 16, maxCommandBytes: 64 }),
      metrics,
      logger: silentLogger,
      auth: { acl, metricsToken: 'm-token' },
    });
    await app.ready();
    const call = (method: 'GET' | 'PUT', url: string, token?: string, payload?: unknown) =>
      app.inject({
        method,
        url,
        ...(payload ? { payload } : {}),
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    try {
      const none = await call('GET', '/v1/kv/pub/a');
      expect(none.statusCode).toBe(401);
      expect(none.json().error.code).toBe('UNAUTHORIZED');
      expect((await call('GET', '/v1/kv/pub/a', 'wrong')).statusCode).toBe(401);
      expect((await call('PUT', '/v1/kv/pub/a', 'admin-token', { value: 'x' })).statusCode).toBe(200);
      const got = await call('GET', '/v1/kv/pub/a', 'read-token');
      expect(got.statusCode).toBe(200);
      expect(got.json().value).toBe('x');
      const denied = await call('PUT', '/v1/kv/pub/a', 'read-token', { value: 'y' });
      expect(denied.statusCode).toBe(403);
      expect(denied.json().error.code).toBe('NOPERM');
      expect((await call('GET', '/v1/kv/secret', 'read-token')).statusCode).toBe(403);
      const large = await call('PUT', '/v1/kv/pub/b', 'admin-token', { value: 'v'.repeat(17) });
      expect(large.statusCode).toBe(413);
      expect(large.json().error).toMatchObject({ code: 'TOO_LARGE' });
      expect((await call('GET', '/metrics')).statusCode).toBe(401);
      expect((await call('GET', '/metrics', 'm-token')).statusCode).toBe(200);
      expect((await call('GET', '/healthz')).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('answers 503 BUSY past its in-flight bound and serves again once a request is done', async () => {
    let release: (() => void) | undefined;
    const slow = {
      ...kv,
      status: () => kv.status(),
      executeAll: (reqs: Parameters<LocalKv['executeAll']>[0]) => kv.executeAll(reqs),
      execute: async (req: Parameters<LocalKv['execute']>[0]) => {
        await new Promise<void>((r) => {
          release = r;
        });
        return kv.execute(req);
      },
    };
    const app = createHttpServer({ api: slow, metrics, logger: silentLogger, maxInFlight: 1 });
    await app.ready();
    try {
      const first = app.inject({ method: 'PUT', url: '/v1/kv/k', payload: { value: 'v' } });
      await expect.poll(() => release !== undefined).toBe(true);
      const busy = await app.inject({ method: 'GET', url: '/v1/status' });
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      expect(busy.statusCode).toBe(503);
      expect(busy.json().error.code).toBe('BUSY');
      expect(busy.headers['retry-after']).toBe('1');
      release!();
      expect((await first).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/v1/status' })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  // The certificate is made by openssl (a Debian package, installed by .ci/run): under CI a missing one fails.
  it.runIf(HAVE_OPENSSL || process.env.CI === 'true')(
    'serves RESP and HTTP over TLS from certificate files',
    async () => {
      expect(HAVE_OPENSSL, `openssl is required under CI: ${OPENSSL_INSTALL}`).toBe(true);
      const dir = mkdtempSync(join(tmpdir(), 'cohort-tls-'));
      try {
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:prime256v1',
            '-nodes',
            '-days',
            '1',
            '-subj',
            '/CN=localhost',
            '-addext',
            'subjectAltName=IP:127.0.0.1',
            '-keyout',
            join(dir, 'key.pem'),
            '-out',
            join(dir, 'cert.pem'),
          ],
          { stdio: 'ignore' },
        );
        const tls = { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
        const { port } = await serve({ tls });
        const redis = client(port, { tls: { ca: tls.cert, servername: 'localhost' } });
        await redis.connect();
        expect(await redis.set('t', 'ls')).toBe('OK');
        expect(await redis.get('t')).toBe('ls');
        const app = createHttpServer({ api: kv, metrics, logger: silentLogger, tls });
        await app.listen({ port: 0, host: '127.0.0.1' });
        try {
          const addr = app.server.address() as { port: number };
          const { request } = await import('node:https');
          const body = await new Promise<string>((resolve, reject) => {
            request(
              { host: '127.0.0.1', port: addr.port, path: '/healthz', ca: tls.cert, servername: 'localhost' },
              (res) => {
                let b = '';
                res.on('data', (d) => {
                  b += d;
                });
                res.on('end', () => resolve(b));
              },
            )
              .on('error', reject)
              .end();
          });
          expect(JSON.parse(body)).toEqual({ ok: true });
        } finally {
          await app.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('exposed ports', () => {
  it('warns about a port other machines reach with nothing guarding it, and only then', () => {
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (msg: string) => warnings.push(msg), child: () => log };
    const base = {
      resp: '127.0.0.1',
      http: '127.0.0.1',
      peer: '127.0.0.1',
      respAuth: false,
      httpAuth: false,
      secret: false,
    };
    warnIfExposed(log, base);
    expect(warnings).toEqual([]);
    warnIfExposed(log, { ...base, resp: '0.0.0.0', http: '10.0.0.5', peer: '0.0.0.0' });
    expect(warnings.map((w) => w.split(':')[0])).toEqual([
      'the RESP port is reachable from other machines and needs no AUTH',
      'the HTTP port is reachable from other machines and needs no token',
      'the peer port is reachable from other machines without a cluster secret',
    ]);
    warnings.length = 0;
    warnIfExposed(log, {
      ...base,
      resp: '0.0.0.0',
      http: '0.0.0.0',
      peer: '0.0.0.0',
      respAuth: true,
      httpAuth: true,
      secret: true,
    });
    expect(warnings).toEqual([]);
  });
});
