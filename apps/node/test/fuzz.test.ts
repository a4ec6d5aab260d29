import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig, silentLogger } from '@cohort/core';
import { WatchHub } from '@cohort/kv';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StartFlags, loadNodeOptions } from '../src/config.js';
import { createHttpServer } from '../src/http-server.js';
import { WatchSource } from '../src/http-watch.js';
import { NodeMetrics } from '../src/metrics.js';
import { RespParser, RespProtocolError } from '../src/resp/parser.js';
import { LocalKv } from './helpers/local-kv.js';

/** `bytes` cut into pieces at the given points (any fragmentation a socket may deliver). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1))))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  out.push(bytes.subarray(prev));
  return out;
}

/** A command as a client encodes it (multibulk). */
function encode(args: Uint8Array[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) parts.push(Buffer.from(`$${a.length}\r\n`), Buffer.from(a), Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

/** Feeds pieces until the parser reports an error; the commands it completed, and that error. */
function feed(p: RespParser, pieces: Uint8Array[]): { commands: Buffer[][]; error?: RespProtocolError } {
  const commands: Buffer[][] = [];
  for (const piece of pieces) {
    const r = p.push(piece);
    commands.push(...r.commands);
    if (r.error) return { commands, error: r.error };
  }
  return { commands };
}

const limits = { maxBulkBytes: 256, maxArrayLength: 16, maxInlineBytes: 128 };
const command = fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 6 });
/** Bytes that look like RESP often enough to reach deep into the parser. */
const respish = fc
  .array(
    fc.oneof(
      fc.constantFrom('*', '$', '\r\n', '\r', '\n', '-1', '0', '3', '99999999999', '-', ' ', '"', 'PING', '*2', '$3'),
      fc.string({ maxLength: 6 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.from(parts.join('')));
const garbage = fc.oneof(fc.uint8Array({ maxLength: 300 }), respish);

describe('the RESP parser under fuzzing', () => {
  it('answers any bytes, in any fragmentation, with commands or a RespProtocolError, never another exception', () => {
    fc.assert(
      fc.property(garbage, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const p = new RespParser(limits);
        try {
          const r = feed(p, split(bytes, cuts));
          if (r.error) expect(r.error).toBeInstanceOf(RespProtocolError);
          for (const c of r.commands) expect(c.length).toBeLessThanOrEqual(limits.maxArrayLength);
        } catch (err) {
          throw new Error(`bytes ${JSON.stringify(Buffer.from(bytes).toString('latin1'))} threw ${String(err)}`);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('parses the same commands whatever the fragmentation', () => {
    fc.assert(
      fc.property(
        fc.array(command, { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (cmds, cuts) => {
          const bytes = Buffer.concat(cmds.map(encode));
          const r = feed(new RespParser(limits), split(bytes, cuts));
          expect(r.error).toBeUndefined();
          expect(r.commands.map((c) => c.map((a) => Buffer.from(a).toString('hex')))).toEqual(
            cmds.map((c) => c.map((a) => Buffer.from(a).toString('hex'))),
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('delivers every command sent before garbage intact, and holds no more than its limits while waiting', () => {
    fc.assert(
      fc.property(
        fc.array(command, { maxLength: 4 }),
        garbage,
        fc.array(fc.nat(), { maxLength: 6 }),
        (cmds, junk, cuts) => {
          const good = Buffer.concat(cmds.map(encode));
          const p = new RespParser(limits);
          const r = feed(p, split(Buffer.concat([good, junk]), cuts));
          const got = r.commands.slice(0, cmds.length).map((c) => c.map((a) => Buffer.from(a).toString('hex')));
          expect(got).toEqual(cmds.map((c) => c.map((a) => Buffer.from(a).toString('hex'))));
          if (!r.error) {
            // A partial command waits within one array of bulks at their limits, plus one header line.
            const bound = limits.maxArrayLength * (limits.maxBulkBytes + 2) + 2 * limits.maxInlineBytes;
            expect(p.buffered).toBeLessThanOrEqual(bound);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('the config loader under fuzzing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-fuzz-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Values shaped like the configuration often enough to pass the first checks. */
  const scalar = fc.oneof(
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 12 }),
    fc.boolean(),
    fc.constant(null),
    fc.constantFrom('n1', '127.0.0.1:7001', '/tmp/x', -1, 0, 2 ** 53, '1e3', ''),
  );
  const section = fc.dictionary(
    fc.constantFrom(
      'id',
      'dataDir',
      'peerAddress',
      'clientAddress',
      'httpAddress',
      'initialMembers',
      'bootstrap',
      'partitions',
      'replicationFactor',
      'heartbeatIntervalMs',
      'electionTimeoutMinMs',
      'electionTimeoutMaxMs',
      'leaseReads',
      'maxAppendBytes',
      'snapshotIntervalEntries',
      'other',
    ),
    fc.oneof(scalar, fc.array(fc.oneof(scalar, fc.record({ id: scalar, peerAddress: scalar })), { maxLength: 3 })),
    { maxKeys: 6 },
  );
  const config = fc.oneof(
    fc.record({ node: section, cluster: section, raft: section }, { requiredKeys: [] }),
    fc.jsonValue({ maxDepth: 3 }),
  );
  const flagValue = fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('0', '-5', '1e9', 'abc', '100', ''));
  const flags = fc.record(
    {
      id: flagValue,
      peers: fc.oneof(flagValue, fc.constantFrom('n1=127.0.0.1:7001', 'n1=,=x', 'n1=a:1,n1=a:2')),
      heartbeatMs: flagValue,
      electionTimeoutMs: flagValue,
      partitions: flagValue,
      replicas: flagValue,
      requestTimeoutMs: flagValue,
      logLevel: flagValue,
    },
    { requiredKeys: [] },
  );

  it('answers any config file and flags with options or a ConfigError, never another exception', () => {
    let i = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          config.map((c) => JSON.stringify(c)),
          fc.string({ maxLength: 40 }),
        ),
        flags,
        (text, f) => {
          const file = join(dir, `c${i++ % 8}.json`);
          writeFileSync(file, text);
          try {
            loadNodeOptions({ ...(f as StartFlags), config: file, dataDir: dir });
          } catch (err) {
            if (!(err instanceof ConfigError))
              throw new Error(`config ${text} with ${JSON.stringify(f)} threw ${String(err)}`);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('parseConfig answers any value with a config or a ConfigError', () => {
    fc.assert(
      fc.property(fc.oneof(config, fc.anything()), (v) => {
        try {
          parseConfig(v);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw new Error(`${JSON.stringify(v)} threw ${String(err)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('HTTP request bodies under fuzzing', () => {
  const kv = new LocalKv();
  const hub = new WatchHub({ applied: 0, capacity: 100 });
  kv.sm.setEventListener(hub);
  const app = createHttpServer({
    api: kv,
    metrics: new NodeMetrics(() => kv.status()),
    logger: silentLogger,
    reads: { stale: (req) => kv.serve(req), lease: async (req) => kv.serve(req) },
    watch: new WatchSource(hub),
  });
  beforeAll(async () => {
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  const jsonBody = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.record(
      {
        value: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.jsonValue({ maxDepth: 2 })),
        by: fc.jsonValue(),
        ttl: fc.jsonValue(),
      },
      { requiredKeys: [] },
    ),
  );
  const body = fc.oneof(
    jsonBody.map((v) => ({ payload: JSON.stringify(v), type: 'application/json' })),
    fc.string({ maxLength: 60 }).map((s) => ({ payload: s, type: 'application/json' })),
    fc.uint8Array({ maxLength: 60 }).map((b) => ({ payload: Buffer.from(b), type: 'text/plain' })),
    fc.uint8Array({ maxLength: 60 }).map((b) => ({ payload: Buffer.from(b), type: 'application/octet-stream' })),
  );
  const query = fc.oneof(
    fc.constant(''),
    fc.constantFrom('?encoding=base64', '?encoding=nope', '?ttl=-1', '?ttl=abc', '?ifVersion=x', '?ifAbsent=true'),
    fc.string({ maxLength: 12 }).map((s) => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
  );
  const route = fc.oneof(
    fc.constantFrom(
      'PUT /v1/kv/k',
      'POST /v1/kv/n/incr',
      'POST /v1/kv/k',
      'DELETE /v1/kv/k',
      'PUT /v1/kv/',
      'POST /v1/kv',
    ),
    fc.string({ maxLength: 10 }).map((s) => `PUT /v1/kv/${encodeURIComponent(s)}`),
  );

  it('answers any body with a JSON answer below 500, and keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(route, query, body, async (r, q, b) => {
        const [method, url] = r.split(' ') as ['PUT' | 'POST' | 'DELETE', string];
        const res = await app.inject({
          method,
          url: `${url}${q}`,
          payload: b.payload,
          headers: { 'content-type': b.type },
        });
        if (res.statusCode >= 500)
          throw new Error(`${method} ${url}${q} with ${String(b.payload)} answered ${res.statusCode}: ${res.body}`);
        if (res.statusCode >= 400) expect(res.json().error.message).toEqual(expect.any(String));
      }),
      { numRuns: 600 },
    );
    // The node still serves after all of it.
    const put = await app.inject({ method: 'PUT', url: '/v1/kv/after', payload: { value: 'ok' } });
    expect(put.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/kv/after' })).json().value).toBe('ok');
  });
});
