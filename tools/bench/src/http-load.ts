// HTTP load with autocannon, the same way against Cohort and etcd: a random
// key of the key space per request, 100-byte values, keep-alive connections,
// one request in flight per connection. Latencies are taken from autocannon's
// per-response event (hrtime, fractions of a millisecond) rather than its
// histogram, which keeps whole milliseconds.
import autocannon from 'autocannon';
import { benchmarkKey } from './resp-load.ts';
import { type RunResult, latencySummary } from './stats.ts';

/** The HTTP API a system serves. */
export type HttpApi = 'cohort' | 'etcd';

/** One HTTP run: `op` on random keys below `keySpace` against `url` for `seconds` at `connections`. */
export interface HttpLoadSpec {
  url: string;
  api: HttpApi;
  op: 'put' | 'get';
  connections: number;
  seconds: number;
  keySpace: number;
  /** The size of each put's value. */
  valueBytes: number;
  /** What Cohort's puts ask to be answered with (default `minimal`). */
  putAnswer?: PutAnswer;
}

/**
 * What Cohort's HTTP puts are answered with: `minimal` ({@link COHORT_PUT_HEADERS}: the key and revision, as
 * etcd's put answers its revision) or `record` (no `Prefer`: the key's whole record, Cohort's default answer).
 */
export type PutAnswer = 'minimal' | 'record';
export const PUT_ANSWERS: readonly PutAnswer[] = ['minimal', 'record'];

/** What one HTTP run measured. */
export type HttpRun = Omit<RunResult, 'stage' | 'workload' | 'system' | 'round'>;

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/**
 * The headers of Cohort's puts besides the content type: `Prefer: return=minimal`, so a put is answered
 * with its key and revision, as etcd's put answers with its revision alone (its response header), not
 * with the key's whole record, whose create revision and version take a read of the row the put replaced.
 */
export const COHORT_PUT_HEADERS: Readonly<Record<string, string>> = { prefer: 'return=minimal' };

/**
 * The request of a put or a linearizable get of key `i`: Cohort's `PUT|GET
 * /v1/kv/:key` (JSON body `{"value": ...}`, {@link COHORT_PUT_HEADERS}), or etcd's
 * v3 JSON gateway `POST /v3/kv/put|range` (base64 key and value; a range is
 * linearizable unless it asks for `serializable`).
 */
export function httpRequest(
  api: HttpApi,
  op: 'put' | 'get',
  i: number,
  value: string,
  putAnswer: PutAnswer = 'minimal',
): { method: 'GET' | 'PUT' | 'POST'; path: string; body?: string; headers?: Record<string, string> } {
  const key = benchmarkKey(i);
  if (api === 'cohort') {
    return op === 'put'
      ? {
          method: 'PUT',
          path: `/v1/kv/${key}`,
          body: JSON.stringify({ value }),
          headers: { 'content-type': 'application/json', ...(putAnswer === 'minimal' ? COHORT_PUT_HEADERS : {}) },
        }
      : { method: 'GET', path: `/v1/kv/${key}` };
  }
  return op === 'put'
    ? { method: 'POST', path: '/v3/kv/put', body: JSON.stringify({ key: b64(key), value: b64(value) }) }
    : { method: 'POST', path: '/v3/kv/range', body: JSON.stringify({ key: b64(key) }) };
}

/** A value of `bytes` bytes. */
export function filler(bytes: number): string {
  return 'x'.repeat(bytes);
}

/** Runs `spec` with autocannon in this process. */
export async function runHttp(spec: HttpLoadSpec): Promise<HttpRun> {
  const { url, api, op, connections, seconds, keySpace, valueBytes, putAnswer } = spec;
  const value = filler(valueBytes);
  let firstError: string | undefined;
  let settle: (r: autocannon.Result) => void = () => {};
  let fail: (e: unknown) => void = () => {};
  const done = new Promise<autocannon.Result>((res, rej) => {
    settle = res;
    fail = rej;
  });
  const opts: autocannon.Options = {
    url,
    connections,
    duration: seconds,
    timeout: 10,
    headers: { 'content-type': 'application/json' },
    requests: [
      {
        setupRequest: (req) => ({
          ...req,
          ...httpRequest(api, op, Math.floor(Math.random() * keySpace), value, putAnswer),
        }),
        onResponse: (status, body) => {
          if ((status < 200 || status > 299) && firstError === undefined) firstError = `HTTP ${status}: ${body}`;
        },
      },
    ],
  };
  const instance = autocannon(opts, (err, result) => (err ? fail(err) : settle(result)));
  const latencies: number[] = [];
  let failed = 0;
  instance.on('response', (_client, statusCode, _bytes, ms) => {
    if (statusCode >= 200 && statusCode <= 299) latencies.push(ms);
    else failed++;
  });
  instance.on('reqError', (err) => {
    firstError ??= String((err as Error)?.message ?? err);
  });
  const result = await done;
  const run: HttpRun = {
    ops: latencies.length,
    errors: failed + result.errors,
    seconds: result.duration,
    opsPerSec: Math.round(latencies.length / result.duration),
    ...latencySummary(latencies),
  };
  if (firstError !== undefined) run.firstError = firstError.slice(0, 300);
  return run;
}
