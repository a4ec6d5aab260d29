import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary } from '../src/binaries.ts';
import { type HttpLoadSpec, filler, httpRequest } from '../src/http-load.ts';
import { benchmarkKey } from '../src/resp-load.ts';
import { luaString, parseWrkResult, runWrk, wrkScript, wrkSeconds } from '../src/wrk-load.ts';

describe('wrk scripts and results', () => {
  it('writes any string as a Lua literal', () => {
    expect(luaString('{"value":"x"}')).toBe('"{\\"value\\":\\"x\\"}"');
    expect(luaString('a\\b\n\u00e9')).toBe('"a\\\\b\\010\\195\\169"');
    // A byte before a digit: three digits always, or Lua would read `\105` (i).
    expect(luaString('\n5')).toBe('"\\0105"');
  });

  it("asks Cohort's puts, and only them, for the minimal answer, in autocannon's requests as in wrk's", () => {
    expect(httpRequest('cohort', 'put', 7, 'v')).toEqual({
      method: 'PUT',
      path: `/v1/kv/${benchmarkKey(7)}`,
      body: '{"value":"v"}',
      headers: { 'content-type': 'application/json', prefer: 'return=minimal' },
    });
    expect(httpRequest('cohort', 'put', 7, 'v', 'record').headers).toEqual({ 'content-type': 'application/json' });
    expect(wrkScript('cohort', 'put', 10, 100, 1)).toContain('wrk.headers["prefer"] = "return=minimal"');
    expect(wrkScript('cohort', 'put', 10, 100, 1, 'record')).not.toContain('prefer');
    expect(httpRequest('cohort', 'get', 7, 'v')).not.toHaveProperty('headers');
    expect(httpRequest('etcd', 'put', 7, 'v')).not.toHaveProperty('headers');
  });

  it('refuses a key space the keys cannot name', () => {
    expect(() => wrkScript('cohort', 'get', 0, 100, 1)).toThrow(/key space/);
    expect(() => wrkScript('etcd', 'get', 10 ** 12 + 1, 100, 1)).toThrow(/key space/);
  });

  it('reads the result line, counting answers of 400 or more as errors, not operations', () => {
    const ok = parseWrkResult('Running 1s test\nWRK-RESULT 5000 2000000 0 0 0 0 0 3250 9100\n');
    expect(ok).toEqual({ ops: 5000, errors: 0, seconds: 2, opsPerSec: 2500, p50Ms: 3.25, p99Ms: 9.1 });
    const bad = parseWrkResult('WRK-RESULT 100 1000000 1 0 0 40 2 500 900')!;
    expect(bad).toMatchObject({ ops: 60, errors: 43, opsPerSec: 60 });
    expect(bad.firstError).toMatch(/40 answers with a status of 400 or more, 1 connect errors, 2 timeout errors/);
    expect(parseWrkResult('unable to connect')).toBeUndefined();
  });

  it('runs whole seconds, at least one', () => {
    expect([wrkSeconds(0.5), wrkSeconds(2), wrkSeconds(2.1)]).toEqual([1, 2, 3]);
  });
});

const wrk = findBinary('wrk');
if (wrk === undefined) {
  const line = 'wrk is not installed (apt-get install -y wrk): the runs of wrk against a local server are skipped';
  if (process.env.CI === 'true') throw new Error(`${line}; CI=true needs it`);
  console.warn(`\n*** ${line} ***\n`);
}

interface Seen {
  method: string;
  url: string;
  type: string | undefined;
  prefer: string | string[] | undefined;
  body: string;
}

describe.skipIf(wrk === undefined)('runWrk against a local server', () => {
  let server: Server;
  let url: string;
  let seen: Seen[] = [];
  /** The status the server answers with. */
  let status = 200;
  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => {
        body += d;
      });
      req.on('end', () => {
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          type: req.headers['content-type'],
          prefer: req.headers.prefer,
          body,
        });
        res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** wrk for a second against the test server (or `url`), one connection unless told. */
  const load = (spec: Omit<HttpLoadSpec, 'url' | 'connections' | 'seconds'> & Partial<HttpLoadSpec>) =>
    runWrk(wrk!, { url, connections: 1, seconds: 1, ...spec });

  const keyOf = (i: string): number => {
    expect(i).toMatch(/^key:\d{12}$/);
    return Number(i.slice(4));
  };

  it("sends Cohort's puts and gets of random keys in the key space, and counts them", async () => {
    seen = [];
    status = 200;
    const put = await load({ api: 'cohort', op: 'put', connections: 2, keySpace: 1000, valueBytes: 100 });
    expect(put.errors).toBe(0);
    expect(put.ops).toBeGreaterThan(50);
    // wrk counts the answers it read before it stopped; the server may have taken a request or two more.
    expect(seen.length - put.ops).toBeGreaterThanOrEqual(0);
    expect(seen.length - put.ops).toBeLessThanOrEqual(2);
    expect(put.p50Ms).toBeGreaterThan(0);
    expect(put.p99Ms).toBeGreaterThanOrEqual(put.p50Ms);
    const keys = new Set<number>();
    for (const s of seen) {
      expect(s).toMatchObject({
        method: 'PUT',
        type: 'application/json',
        // Answered with the key and revision, as etcd's puts are (http-load.ts).
        prefer: 'return=minimal',
        body: JSON.stringify({ value: filler(100) }),
      });
      expect(s.url.startsWith('/v1/kv/')).toBe(true);
      keys.add(keyOf(s.url.slice('/v1/kv/'.length)));
    }
    expect(Math.max(...keys)).toBeLessThan(1000);
    expect(keys.size).toBeGreaterThan(20);

    seen = [];
    const get = await load({ api: 'cohort', op: 'get', keySpace: 1000, valueBytes: 100 });
    expect(get.ops).toBeGreaterThan(50);
    for (const s of seen) {
      expect(s).toMatchObject({ method: 'GET', prefer: undefined, body: '' });
      expect(keyOf(s.url.slice('/v1/kv/'.length))).toBeLessThan(1000);
    }
  });

  it("sends etcd's puts and ranges with base64 keys of the whole key space", async () => {
    seen = [];
    status = 200;
    // The largest key space the keys can name: every digit of a key's base64 table is used.
    const put = await load({ api: 'etcd', op: 'put', connections: 2, keySpace: 10 ** 12, valueBytes: 10 });
    expect(put.errors).toBe(0);
    const digits = new Set<string>();
    for (const s of seen) {
      expect(s.method).toBe('POST');
      expect(s.url).toBe('/v3/kv/put');
      const body = JSON.parse(s.body) as { key: string; value: string };
      const key = Buffer.from(body.key, 'base64').toString('latin1');
      expect(benchmarkKey(keyOf(key))).toBe(key);
      expect(Buffer.from(body.value, 'base64').toString()).toBe(filler(10));
      for (const [i, d] of [...key.slice(4)].entries()) digits.add(`${i}:${d}`);
    }
    // Every position took many digits: each table was reached at more than one entry.
    expect(digits.size).toBeGreaterThan(100);

    seen = [];
    const range = await load({ api: 'etcd', op: 'get', keySpace: 500, valueBytes: 10 });
    expect(range.ops).toBeGreaterThan(50);
    for (const s of seen) {
      expect(s.url).toBe('/v3/kv/range');
      const body = JSON.parse(s.body) as { key: string };
      expect(Object.keys(body)).toEqual(['key']);
      expect(keyOf(Buffer.from(body.key, 'base64').toString('latin1'))).toBeLessThan(500);
    }
  });

  it('counts error answers as errors', async () => {
    seen = [];
    status = 503;
    const r = await load({ api: 'cohort', op: 'get', keySpace: 10, valueBytes: 10 });
    expect(r.ops).toBe(0);
    expect(r.errors).toBeGreaterThan(50);
    expect(r.firstError).toMatch(/status of 400 or more/);
  });

  it('says why when wrk cannot run', async () => {
    await expect(
      load({ url: 'http://127.0.0.1:1', api: 'cohort', op: 'get', keySpace: 10, valueBytes: 10 }),
    ).rejects.toThrow(/wrk .* exited/);
  });
});
