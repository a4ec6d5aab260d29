import { silentLogger } from '@cohort/core';
import { CircuitBreakers, type KvResponse, WatchHub } from '@cohort/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer } from '../src/http-server.js';
import { WatchSource } from '../src/http-watch.js';
import { instrumentKv } from '../src/instrumented-kv.js';
import type { KvApi } from '../src/kv-api.js';
import { NodeMetrics } from '../src/metrics.js';
import { LocalKv } from './helpers/local-kv.js';

const kv = new LocalKv();
const hub = new WatchHub({ applied: 0, capacity: 1000 });
kv.sm.setEventListener(hub);
const metrics = new NodeMetrics(() => kv.status());
const app = createHttpServer({
  api: instrumentKv(kv, metrics, 'http'),
  metrics,
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

describe('HTTP API', () => {
  it('PUT then GET then DELETE a key', async () => {
    const put = await app.inject({ method: 'PUT', url: '/v1/kv/greeting', payload: { value: 'héllo' } });
    expect(put.statusCode).toBe(200);
    const rev = put.json().revision;
    expect(put.json()).toEqual({
      key: 'greeting',
      value: 'héllo',
      createRevision: rev,
      modRevision: rev,
      version: 1,
      revision: rev,
    });
    const got = await app.inject({ method: 'GET', url: '/v1/kv/greeting' });
    expect(got.json()).toEqual({ key: 'greeting', value: 'héllo', createRevision: rev, modRevision: rev, version: 1 });
    const del = await app.inject({ method: 'DELETE', url: '/v1/kv/greeting' });
    expect(del.json()).toMatchObject({ deleted: 1, prev: { key: 'greeting', version: 1 } });
    expect((await app.inject({ method: 'GET', url: '/v1/kv/greeting' })).statusCode).toBe(404);
  });

  it('accepts a text/plain body', async () => {
    await app.inject({ method: 'PUT', url: '/v1/kv/t', payload: 'plain', headers: { 'content-type': 'text/plain' } });
    expect((await app.inject({ method: 'GET', url: '/v1/kv/t' })).json().value).toBe('plain');
  });

  it('refuses a body without a value with 400 and a message saying what to send', async () => {
    const res = await app.inject({ method: 'PUT', url: '/v1/kv/x', payload: { nope: 1 } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'BAD_REQUEST' });
    expect(res.json().error.message).toMatch(/value/);
  });

  it('reports status, health and Prometheus metrics', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/status' })).json()).toMatchObject({ id: 'n1', role: 'leader' });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/cohort_requests_total\{frontend="http",command="cond",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/cohort_raft_is_leader 1/);
  });

  it('exports the phases of the proposals made as leader as histograms: persisted, committed, applied, replied', async () => {
    const m = new NodeMetrics(() => kv.status());
    const api = instrumentKv(kv, m, 'http', () => true);
    m.observeProposal({ proposed: 10, persisted: 12, committed: 11, applied: 13 });
    const bytes = (t: string) => new TextEncoder().encode(t);
    await api.execute({
      kind: 'write',
      write: {
        op: 'set',
        key: bytes('ph'),
        value: bytes('v'),
        condition: 'always',
        expiry: { kind: 'none' },
        returnOld: false,
      },
    });
    const text = await m.registry.metrics();
    const count = (phase: string) =>
      Number(new RegExp(`cohort_raft_proposal_phase_seconds_count\\{phase="${phase}"\\} (\\S+)`).exec(text)?.[1]);
    for (const phase of ['persisted', 'committed', 'applied', 'replied']) expect(count(phase)).toBe(1);
    // 2 ms from the proposal to its local write: in the 0.002 bucket, not the 0.001 one.
    expect(text).toContain('cohort_raft_proposal_phase_seconds_bucket{le="0.001",phase="persisted"} 0');
    expect(text).toContain('cohort_raft_proposal_phase_seconds_bucket{le="0.002",phase="persisted"} 1');
  });

  it('answers a PUT with Prefer: return=minimal without reading the record it wrote', async () => {
    // The record's create revision and version would read the row the put replaced: a minimal answer
    // must not ask for them (nor for anything else of the record).
    let touched: string | symbol | undefined;
    const api: KvApi = {
      execute: async (req) => {
        const res = await kv.execute(req);
        if (res.type !== 'cond' || res.record === undefined) return res;
        const record = new Proxy(res.record, {
          get: (t, p, r) => {
            touched ??= p;
            return Reflect.get(t, p, r);
          },
        });
        return { ...res, record };
      },
      executeAll: (reqs) => kv.executeAll(reqs),
      status: () => kv.status(),
    };
    const minimal = createHttpServer({ api, metrics: new NodeMetrics(() => kv.status()), logger: silentLogger });
    try {
      await minimal.inject({ method: 'PUT', url: '/v1/kv/min', payload: { value: 'a' } });
      expect(touched).toBeDefined();
      touched = undefined;
      const put = await minimal.inject({
        method: 'PUT',
        url: '/v1/kv/min',
        payload: { value: 'b' },
        headers: { prefer: 'return=minimal' },
      });
      expect(put.statusCode).toBe(200);
      expect(put.headers['preference-applied']).toBe('return=minimal');
      const rev = put.json().revision;
      expect(put.json()).toEqual({ key: 'min', modRevision: rev, revision: rev });
      expect(touched).toBeUndefined();
      const got = (await minimal.inject({ method: 'GET', url: '/v1/kv/min' })).json();
      expect(got).toMatchObject({ value: 'b', modRevision: rev, version: 2 });
      // The full answer (the default, or return=representation) is the record.
      const full = await minimal.inject({
        method: 'PUT',
        url: '/v1/kv/min',
        payload: { value: 'c' },
        headers: { prefer: 'return=representation' },
      });
      expect(full.headers['preference-applied']).toBeUndefined();
      expect(full.json()).toMatchObject({ key: 'min', value: 'c', version: 3 });
      expect(touched).toBeDefined();
      // A failed condition answers 412 with the current record, whatever the preference.
      const cas = await minimal.inject({
        method: 'PUT',
        url: '/v1/kv/min',
        payload: { value: 'd', ifVersion: 1 },
        headers: { prefer: 'return=minimal' },
      });
      expect(cas.statusCode).toBe(412);
      expect(cas.json().error.current).toMatchObject({ value: 'c', version: 3 });
    } finally {
      await minimal.close();
    }
  });

  it('maps an Idempotency-Key to one session and write, and takes a ttlMs on PUT', async () => {
    const before = kv.requests.length;
    const headers = { 'idempotency-key': 'order-42' };
    const put = await app.inject({ method: 'PUT', url: '/v1/kv/o', headers, payload: { value: 'v', ttlMs: 60000 } });
    expect(put.statusCode).toBe(200);
    expect(kv.requests[before]).toMatchObject({
      kind: 'write',
      write: { op: 'cond', action: { kind: 'put', expiry: { kind: 'in', ms: 60000 } } },
      session: { clientId: 'http:order-42', seq: 1, lowWater: 0 },
    });
    const got = (await app.inject({ method: 'GET', url: '/v1/kv/o' })).json();
    expect(got.value).toBe('v');
    expect(got.ttlMs).toBeGreaterThan(59_000);
    const del = await app.inject({ method: 'DELETE', url: '/v1/kv/o' });
    expect(del.statusCode).toBe(200);
    expect(kv.requests.at(-1)).not.toHaveProperty('session');
  });

  it('refuses a bad ttlMs or Idempotency-Key with 400 and what to send', async () => {
    const ttl = await app.inject({ method: 'PUT', url: '/v1/kv/x', payload: { value: 'v', ttlMs: -5 } });
    expect(ttl.statusCode).toBe(400);
    expect(ttl.json().error).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/ttlMs must be >= 1/),
    });
    const key = await app.inject({
      method: 'PUT',
      url: '/v1/kv/x',
      headers: { 'idempotency-key': 'k'.repeat(300) },
      payload: { value: 'v' },
    });
    expect(key.statusCode).toBe(400);
    expect(key.json().error.message).toMatch(/Idempotency-Key must be one value of 1 to 256 characters/);
  });

  it('increments a key by POST /v1/kv/:key/incr, answering the value as a decimal string', async () => {
    expect((await app.inject({ method: 'POST', url: '/v1/kv/n/incr' })).json()).toEqual({ key: 'n', value: '1' });
    const by = await app.inject({ method: 'POST', url: '/v1/kv/n/incr', payload: { by: -3 } });
    expect(by.json()).toEqual({ key: 'n', value: '-2' });
    const bad = await app.inject({ method: 'POST', url: '/v1/kv/n/incr', payload: { by: 'two' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/by must be integer/);
  });

  it('addresses keys of any bytes: a / in the path, percent-escapes of any byte, base64 in JSON', async () => {
    await app.inject({ method: 'PUT', url: '/v1/kv/a/b', payload: { value: 'slash' } });
    expect((await app.inject({ method: 'GET', url: '/v1/kv/a%2Fb' })).json()).toMatchObject({
      key: 'a/b',
      value: 'slash',
    });
    const bin = await app.inject({
      method: 'PUT',
      url: '/v1/kv/%FF%00k?encoding=base64',
      payload: { value: Buffer.from([0, 1, 254]).toString('base64') },
    });
    expect(bin.statusCode).toBe(200);
    const got = (await app.inject({ method: 'GET', url: '/v1/kv/%ff%00k?encoding=base64' })).json();
    expect(got.key).toBe(Buffer.from([0xff, 0, 0x6b]).toString('base64'));
    expect(got.value).toBe('AAH+');
    const badB64 = await app.inject({ method: 'PUT', url: '/v1/kv/x?encoding=base64', payload: { value: '!!' } });
    expect(badB64.json().error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/base64/) });
    const badEscape = await app.inject({ method: 'GET', url: '/v1/kv/a%zz' });
    expect(badEscape.statusCode).toBe(400);
    expect(badEscape.json().error.message).toMatch(/'%zz'/);
    expect((await app.inject({ method: 'GET', url: '/v1/kv/' })).json().error.message).toMatch(/key is empty/);
  });

  it('answers every error in one shape: the router 404 and 405, schema failures, unknown query fields', async () => {
    const missing = await app.inject({ method: 'GET', url: '/v2/nothing' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({
      error: { code: 'NOT_FOUND', message: expect.stringMatching(/no route GET \/v2\/nothing/) },
    });
    const badUrl = await app.inject({ method: 'GET', url: '/v1/%zz' });
    expect(badUrl.statusCode).toBe(400);
    expect(badUrl.json().error).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/not a valid url/),
    });
    const media = await app.inject({
      method: 'PUT',
      url: '/v1/kv/a',
      payload: '<v/>',
      headers: { 'content-type': 'application/xml' },
    });
    expect(media.statusCode).toBe(415);
    expect(media.json().error).toMatchObject({
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: expect.stringMatching(/text\/plain/),
    });
    const method = await app.inject({ method: 'PATCH', url: '/v1/kv/a/b' });
    expect(method.statusCode).toBe(405);
    expect(method.headers.allow).toMatch(/GET/);
    expect(method.json().error.code).toBe('METHOD_NOT_ALLOWED');
    const post = await app.inject({ method: 'POST', url: '/v1/status' });
    expect(post.statusCode).toBe(405);
    const schema = await app.inject({ method: 'PUT', url: '/v1/kv/x', payload: { value: { a: 1 } } });
    expect(schema.json().error).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/value must be string/),
    });
    const extra = await app.inject({ method: 'GET', url: '/v1/kv/x?consistency=sometimes' });
    expect(extra.statusCode).toBe(400);
    const json = await app.inject({
      method: 'PUT',
      url: '/v1/kv/x',
      headers: { 'content-type': 'application/json' },
      payload: '{"value": ',
    });
    expect(json.statusCode).toBe(400);
    expect(json.json().error.code).toBe('BAD_REQUEST');
  });

  it('swaps and deletes on mod revision, version, value or absence; 412 with the current record when it fails', async () => {
    const created = (
      await app.inject({ method: 'PUT', url: '/v1/kv/cas', payload: { value: 'a', ifAbsent: true } })
    ).json();
    expect(created).toMatchObject({ value: 'a', version: 1 });
    const again = await app.inject({ method: 'PUT', url: '/v1/kv/cas', payload: { value: 'b', ifAbsent: true } });
    expect(again.statusCode).toBe(412);
    expect(again.json().error).toMatchObject({ code: 'PRECONDITION_FAILED', current: { value: 'a', version: 1 } });
    const stale = await app.inject({
      method: 'PUT',
      url: '/v1/kv/cas',
      payload: { value: 'b', ifModRevision: created.modRevision - 1 },
    });
    expect(stale.statusCode).toBe(412);
    const swapped = await app.inject({
      method: 'PUT',
      url: '/v1/kv/cas',
      payload: { value: 'b', ifModRevision: created.modRevision },
    });
    expect(swapped.json()).toMatchObject({ value: 'b', version: 2, createRevision: created.createRevision });
    expect(
      (
        await app.inject({
          method: 'PUT',
          url: '/v1/kv/cas?ifVersion=2',
          payload: 'c',
          headers: { 'content-type': 'text/plain' },
        })
      ).json(),
    ).toMatchObject({ value: 'c', version: 3 });
    expect(
      (await app.inject({ method: 'PUT', url: '/v1/kv/cas', payload: { value: 'd', ifValue: 'x' } })).statusCode,
    ).toBe(412);
    expect((await app.inject({ method: 'DELETE', url: '/v1/kv/cas?ifValue=x' })).statusCode).toBe(412);
    expect((await app.inject({ method: 'DELETE', url: '/v1/kv/cas?ifVersion=3' })).json()).toMatchObject({
      deleted: 1,
      prev: { value: 'c' },
    });
    expect((await app.inject({ method: 'DELETE', url: '/v1/kv/cas' })).json()).toMatchObject({ deleted: 0 });
    // A misspelt condition is refused, never dropped (which would make the write unconditional).
    const typo = await app.inject({ method: 'PUT', url: '/v1/kv/cas', payload: { value: 'x', ifModRevison: 1 } });
    expect(typo.statusCode).toBe(400);
    expect(typo.json().error.message).toMatch(/additional properties/);
    expect((await app.inject({ method: 'DELETE', url: '/v1/kv/cas?ifVersoin=9' })).statusCode).toBe(400);
    const two = await app.inject({
      method: 'PUT',
      url: '/v1/kv/cas',
      payload: { value: 'e', ifAbsent: true, ifVersion: 0 },
    });
    expect(two.json().error.message).toMatch(/at most one of/);
  });

  it('reads a prefix or a range a page at a time with a cursor, in every read mode', async () => {
    for (const k of ['r/1', 'r/2', 'r/3', 'r0', 's'])
      await app.inject({ method: 'PUT', url: `/v1/kv/${k}`, payload: { value: k } });
    const first = await app.inject({ method: 'GET', url: '/v1/kv?prefix=r/&limit=2' });
    expect(first.json()).toMatchObject({ more: true, next: 'r/2' });
    expect(first.json().kvs.map((r: { key: string }) => r.key)).toEqual(['r/1', 'r/2']);
    const rest = (await app.inject({ method: 'GET', url: '/v1/kv?prefix=r/&limit=2&after=r/2' })).json();
    expect(rest.kvs.map((r: { key: string }) => r.key)).toEqual(['r/3']);
    expect(rest.more).toBe(false);
    expect(rest).not.toHaveProperty('next');
    const range = (await app.inject({ method: 'GET', url: '/v1/kv?start=r/2&end=s' })).json();
    expect(range.kvs.map((r: { key: string }) => r.key)).toEqual(['r/2', 'r/3', 'r0']);
    const stale = await app.inject({ method: 'GET', url: '/v1/kv?prefix=r/&consistency=stale' });
    expect(stale.headers['x-cohort-applied-index']).toBe(String(kv.sm.appliedIndex));
    expect(stale.json().appliedIndex).toBe(kv.sm.appliedIndex);
    expect((await app.inject({ method: 'GET', url: '/v1/kv/s?consistency=lease' })).json().value).toBe('s');
    const both = await app.inject({ method: 'GET', url: '/v1/kv?prefix=r&start=a' });
    expect(both.json().error.message).toMatch(/either prefix, or start and end/);
  });

  it('describes every route in an OpenAPI 3 document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/v1/openapi.json' })).json();
    expect(doc.openapi).toMatch(/^3\./);
    const kvPath = Object.keys(doc.paths).find((p: string) => p.startsWith('/v1/kv/')) as string;
    expect(kvPath).toBeDefined();
    for (const path of [
      '/v1/kv',
      '/v1/watch',
      '/v1/cluster',
      '/v1/status',
      '/v1/openapi.json',
      '/healthz',
      '/metrics',
    ]) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    expect(Object.keys(doc.paths[kvPath])).toEqual(expect.arrayContaining(['get', 'put', 'delete', 'post']));
  });

  it('streams a watch as server-sent events: base64 keys, Last-Event-ID resumes after the last id', async () => {
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const key = Buffer.from([0xfe, 0x00, 0x77]).toString('base64');
    const first = (
      await app.inject({ method: 'PUT', url: '/v1/kv/%FE%00w?encoding=base64', payload: { value: 'AQ==' } })
    ).json();
    const second = (
      await app.inject({ method: 'PUT', url: '/v1/kv/%FE%00w?encoding=base64', payload: { value: 'Ag==' } })
    ).json();
    const abort = new AbortController();
    const res = await fetch(`${address}/v1/watch?key=${encodeURIComponent(key)}&encoding=base64`, {
      headers: { 'last-event-id': String(first.modRevision) },
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('\n\nid: ') && !/id: \d+\nevent: put\ndata: .*\n\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    abort.abort();
    const [, id, data] = /id: (\d+)\nevent: put\ndata: (.*)\n/.exec(text) ?? [];
    // Resumed after the first write: the second is the first event sent.
    expect(Number(id)).toBe(second.modRevision);
    expect(JSON.parse(data as string)).toMatchObject({ type: 'put', key, value: 'Ag==', version: 2 });
    const both = await fetch(`${address}/v1/watch?key=a&prefix=b`);
    expect(both.status).toBe(400);
    expect(((await both.json()) as { error: { message: string } }).error.message).toMatch(
      /exactly one of key and prefix/,
    );
  });

  it('gives an MSET the id of its revision on its last event: a client cut off inside it gets all of it again', async () => {
    // The test before may have started it.
    const address = app.server.listening
      ? `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
      : await app.listen({ port: 0, host: '127.0.0.1' });
    const bytes = (s: string) => new TextEncoder().encode(s);
    const mset = kv.serve({
      kind: 'write',
      write: { op: 'mset', keys: [bytes('ms:a'), bytes('ms:b')], values: [bytes('1'), bytes('2')] },
    });
    expect(mset.type).not.toBe('error');
    const rev = hub.appliedIndex;
    kv.serve({ kind: 'write', write: { op: 'mset', keys: [bytes('ms:c')], values: [bytes('3')] } });
    /** The frames of a prefix watch of `ms:` resumed after `last`, once three arrived: [id, key]. */
    const watch = async (last: number): Promise<[string | undefined, string][]> => {
      const abort = new AbortController();
      const res = await fetch(`${address}/v1/watch?prefix=ms:`, {
        headers: { 'last-event-id': String(last) },
        signal: abort.signal,
      });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      while ((text.match(/\ndata: /g) ?? []).length < 3 || !text.endsWith('\n\n')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      abort.abort();
      return text
        .split('\n\n')
        .filter((b) => b.includes('data: '))
        .map((b) => [/^id: (\d+)$/m.exec(b)?.[1], (JSON.parse(/^data: (.*)$/m.exec(b)![1]!) as { key: string }).key]);
    };
    const expected: [string | undefined, string][] = [
      [undefined, 'ms:a'],
      [String(rev), 'ms:b'],
      [String(rev + 1), 'ms:c'],
    ];
    expect(await watch(rev - 1)).toEqual(expected);
    // A client that read ms:a and was cut off holds the id before the MSET: it resumes with the whole MSET.
    expect(await watch(rev - 1)).toEqual(expected);
  });
});

describe('Forwarding circuit breakers', () => {
  it('answers CIRCUIT_OPEN with 503 and the message naming the peer and its next probe', async () => {
    const message =
      'forwarding to n3 is suspended (circuit open): 5 of its last 6 forwards failed (unreachable or timed out); it is probed again in 1840 ms: try again then';
    class OpenKv extends LocalKv {
      override async execute(): Promise<KvResponse> {
        return { type: 'failure', code: 'CIRCUIT_OPEN', message };
      }
    }
    const open = new OpenKv();
    const m = new NodeMetrics(() => open.status());
    const server = createHttpServer({ api: open, metrics: m, logger: silentLogger });
    try {
      const res = await server.inject({ method: 'GET', url: '/v1/kv/k' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: { code: 'CIRCUIT_OPEN', message } });
    } finally {
      await server.close();
    }
  });

  it('exports each peer breaker state (0 closed, 1 half-open, 2 open), opens and rejections', async () => {
    const breakers = new CircuitBreakers({ minFailures: 2, cooldownMs: 1000 });
    const m = new NodeMetrics(() => kv.status());
    let now = 0;
    m.circuitBreakers(() => breakers.stats(now));
    breakers.of('n2').success(0);
    for (const t of [0, 1]) {
      breakers.of('n3').admit(t);
      breakers.of('n3').failure(t);
    }
    breakers.of('n3').admit(2);
    breakers.of('n3').admit(3);
    let text = await m.registry.metrics();
    expect(text).toContain('cohort_forward_circuit_state{peer="n2"} 0');
    expect(text).toContain('cohort_forward_circuit_state{peer="n3"} 2');
    expect(text).toContain('cohort_forward_circuit_opens_total{peer="n3"} 1');
    expect(text).toContain('cohort_forward_circuit_rejections_total{peer="n3"} 2');
    expect(text).toContain('cohort_forward_circuit_rejections_total{peer="n2"} 0');
    now = 1001;
    text = await m.registry.metrics();
    expect(text).toContain('cohort_forward_circuit_state{peer="n3"} 1');
  });
});
