import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@cohort/core';
import type { Replica } from '@cohort/kv';
import { afterAll, describe, expect, it } from 'vitest';
import { Acl } from '../src/auth.js';
import { ClusterEventWatch } from '../src/cluster-events.js';
import { EventLog } from '../src/event-log.js';
import { createHttpServer } from '../src/http-server.js';
import { instrumentKv } from '../src/instrumented-kv.js';
import type { MemberView } from '../src/membership-service.js';
import { MetricsHistory, quantile } from '../src/metrics-history.js';
import { NodeMetrics } from '../src/metrics.js';
import { LocalKv } from './helpers/local-kv.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A dashboard build directory: with `built`, an index.html and one bundle. */
function assetsDir(built: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-ui-'));
  dirs.push(dir);
  if (built) {
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Cohort dashboard</title>');
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
  }
  return dir;
}

function server(dir: string, acl?: Acl) {
  const kv = new LocalKv();
  const metrics = new NodeMetrics(() => kv.status());
  const history = new MetricsHistory(metrics.registry, { capacity: 3 });
  const events = new EventLog(4);
  const app = createHttpServer({
    api: instrumentKv(kv, metrics, 'http'),
    metrics,
    logger: silentLogger,
    dashboard: {
      assets: { dir, isBuilt: () => existsSync(join(dir, 'index.html')), buildCommand: 'pnpm build' },
      history,
      events,
    },
    ...(acl ? { auth: { acl } } : {}),
  });
  return { app, kv, history, events };
}

describe('the dashboard routes', () => {
  it('answer 503 with the command that builds the dashboard while it was not built, and serve it once it is', async () => {
    const dir = assetsDir(false);
    const { app } = server(dir);
    const res = await app.inject({ method: 'GET', url: '/ui/' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toContain('pnpm build');
    // Built meanwhile: the node serves it without a restart.
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Cohort dashboard</title>');
    const ok = await app.inject({ method: 'GET', url: '/ui/' });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('Cohort dashboard');
    await app.close();
  });

  it('serve the built files with their types, the page for any other path under /ui, and nothing outside the build', async () => {
    const { app } = server(assetsDir(true));
    expect((await app.inject({ method: 'GET', url: '/ui' })).headers.location).toBe('/ui/');
    const js = await app.inject({ method: 'GET', url: '/ui/assets/index-abc.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/text\/javascript/);
    expect(js.headers['cache-control']).toMatch(/immutable/);
    for (const url of ['/ui/../../package.json', '/ui/%2e%2e/%2e%2e/etc/passwd', '/ui/partitions']) {
      const res = await app.inject({ method: 'GET', url });
      if (res.statusCode === 200) expect(res.body, url).toContain('Cohort dashboard');
      else expect(res.statusCode, url).toBeGreaterThanOrEqual(400);
    }
    await app.close();
  });

  it('with tokens on: the page is open (it holds no data), its feeds need an admin token', async () => {
    const acl = new Acl({ users: [{ name: 'admin', tokens: ['admin-token'], commands: ['+@all'], keys: ['*'] }] });
    const { app } = server(assetsDir(true), acl);
    expect((await app.inject({ method: 'GET', url: '/ui/' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/admin/events' })).statusCode).toBe(401);
    const withToken = await app.inject({
      method: 'GET',
      url: '/v1/admin/metrics/history',
      headers: { authorization: 'Bearer admin-token' },
    });
    expect(withToken.statusCode).toBe(200);
    expect(withToken.json()).toMatchObject({ intervalMs: 1000, samples: [] });
    await app.close();
  });
});

describe('the metrics history', () => {
  it('keeps the rates of each interval from the registry, and the newest `capacity` samples', async () => {
    const { app, kv, history } = server(assetsDir(true));
    await history.sample(1_000);
    for (let i = 0; i < 10; i++) await app.inject({ method: 'PUT', url: `/v1/kv/k${i}`, payload: { value: 'v' } });
    await history.sample(2_000);
    const [first] = history.samples();
    expect(first).toMatchObject({ t: 2_000, requestsPerSec: 10 });
    expect(first!.p50Ms).toBeGreaterThan(0);
    expect(first!.p99Ms).toBeGreaterThanOrEqual(first!.p50Ms!);
    // No request in the next interval: the rate is 0 and the percentiles absent, not 0.
    await history.sample(3_000);
    expect(history.samples(2_000)).toEqual([
      { t: 3_000, requestsPerSec: 0, proposalsPerSec: 0, commitsPerSec: 0, fsyncsPerSec: 0 },
    ]);
    await history.sample(4_000);
    await history.sample(5_000);
    expect(history.samples().map((s) => s.t)).toEqual([3_000, 4_000, 5_000]);
    expect(kv.status().id).toBeDefined();
    await app.close();
  });

  it('reads quantiles from cumulative buckets as histogram_quantile does', () => {
    const b = new Map([
      [0.001, 50],
      [0.01, 90],
      [0.1, 100],
      [Number.POSITIVE_INFINITY, 100],
    ]);
    expect(quantile(b, 0.5)).toBe(1);
    expect(quantile(b, 0.9)).toBe(10);
    expect(quantile(b, 0.99)).toBeCloseTo(91, 5);
    expect(quantile(new Map([[Number.POSITIVE_INFINITY, 0]]), 0.5)).toBeUndefined();
  });
});

describe('the event log', () => {
  it('keeps the newest events with increasing sequence numbers, read from where a reader left', () => {
    const log = new EventLog(3, () => 42);
    for (let i = 1; i <= 5; i++) log.push({ type: 'snapshot', kind: 'taken', count: i });
    const all = log.since();
    expect(all.last).toBe(5);
    expect(all.events.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(log.since(4).events).toEqual([
      { type: 'snapshot', kind: 'taken', count: 5, seq: 5, t: 42, message: '5 snapshot(s) taken here' },
    ]);
  });

  it('records members joining, suspected, dead; a new leader once; replicas changed; snapshots', () => {
    const log = new EventLog();
    let members: MemberView[] = [{ id: 'n1', address: 'a:1', state: 'alive', incarnation: 0, tags: {} }];
    let replicas: Replica[] = [{ node: 'n1', role: 'voter' }];
    let snaps = { taken: 0, installed: 0 };
    const watch = new ClusterEventWatch(log, {
      members: () => members,
      partitions: () => [{ replicas, epoch: 1 }],
      snapshots: () => snaps,
    });
    watch.poll();
    members = [...members, { id: 'n2', address: 'a:2', state: 'suspect', incarnation: 1, tags: {} }];
    watch.poll();
    members = [members[0]!, { ...members[1]!, state: 'dead' }];
    replicas = [...replicas, { node: 'n3', role: 'learner' }];
    snaps = { taken: 1, installed: 2 };
    watch.leaderChanged('p0', 'n1', 3);
    watch.leaderChanged('p0', 'n1', 3);
    watch.leaderChanged('p0', '', 4);
    watch.poll();
    expect(log.since().events.map((e) => e.message)).toEqual([
      'n1 joined',
      'n2 joined',
      'n2 is suspect (incarnation 1)',
      'p0: n1 leads (term 3)',
      'n2 is dead (incarnation 1)',
      'p0: replicas n1 -> n1, n3 (learner) (epoch 1)',
      '1 snapshot(s) taken here',
      '2 snapshot(s) installed here',
    ]);
  });
});
