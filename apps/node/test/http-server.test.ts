import { silentLogger } from '@cohort/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer } from '../src/http-server.js';
import { instrumentKv } from '../src/instrumented-kv.js';
import { NodeMetrics } from '../src/metrics.js';
import { LocalKv } from './helpers/local-kv.js';

const kv = new LocalKv();
const metrics = new NodeMetrics(() => kv.status());
const app = createHttpServer({ api: instrumentKv(kv, metrics, 'http'), metrics, logger: silentLogger });

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
    const got = await app.inject({ method: 'GET', url: '/v1/kv/greeting' });
    expect(got.json()).toEqual({ key: 'greeting', value: 'héllo' });
    const del = await app.inject({ method: 'DELETE', url: '/v1/kv/greeting' });
    expect(del.json()).toEqual({ deleted: 1 });
    expect((await app.inject({ method: 'GET', url: '/v1/kv/greeting' })).statusCode).toBe(404);
  });

  it('accepts a text/plain body', async () => {
    await app.inject({ method: 'PUT', url: '/v1/kv/t', payload: 'plain', headers: { 'content-type': 'text/plain' } });
    expect((await app.inject({ method: 'GET', url: '/v1/kv/t' })).json().value).toBe('plain');
  });

  it('refuses a body without a value with 400 and a message saying what to send', async () => {
    const res = await app.inject({ method: 'PUT', url: '/v1/kv/x', payload: { nope: 1 } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/"value"/);
  });

  it('reports status, health and Prometheus metrics', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/status' })).json()).toMatchObject({ id: 'n1', role: 'leader' });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/cohort_requests_total\{frontend="http",command="set",outcome="ok"\} [1-9]/);
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

  it('maps an Idempotency-Key to one session and write, and takes a ttlMs on PUT', async () => {
    const before = kv.requests.length;
    const headers = { 'idempotency-key': 'order-42' };
    const put = await app.inject({ method: 'PUT', url: '/v1/kv/o', headers, payload: { value: 'v', ttlMs: 60000 } });
    expect(put.statusCode).toBe(200);
    expect(kv.requests[before]).toMatchObject({
      kind: 'write',
      write: { op: 'set', expiry: { kind: 'in', ms: 60000 } },
      session: { clientId: 'http:order-42', seq: 1, lowWater: 0 },
    });
    const got = (await app.inject({ method: 'GET', url: '/v1/kv/o?ttl=true' })).json();
    expect(got.value).toBe('v');
    expect(got.ttlMs).toBeGreaterThan(59_000);
    expect((await app.inject({ method: 'GET', url: '/v1/kv/o' })).json()).toEqual({ key: 'o', value: 'v' });
    const del = await app.inject({ method: 'DELETE', url: '/v1/kv/o' });
    expect(del.statusCode).toBe(200);
    expect(kv.requests.at(-1)).not.toHaveProperty('session');
  });

  it('refuses a bad ttlMs or Idempotency-Key with 400 and what to send', async () => {
    const ttl = await app.inject({ method: 'PUT', url: '/v1/kv/x', payload: { value: 'v', ttlMs: -5 } });
    expect(ttl.statusCode).toBe(400);
    expect(ttl.json().error.message).toMatch(/ttlMs must be a whole number of milliseconds above 0, got -5/);
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
    expect(bad.json().error.message).toMatch(/by must be a whole number/);
  });
});
