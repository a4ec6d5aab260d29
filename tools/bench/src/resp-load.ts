// RESP load with redis-benchmark (Debian `redis-tools`), the same way against
// Cohort and Redis: `-t set|get`, random keys `key:<12 digits>` below the key
// space (`-r`), 100-byte values (`-d`), `-P` commands in flight per connection.
import { spawn } from 'node:child_process';

/** What redis-benchmark measured of one run. */
export interface RespRun {
  requests: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  seconds: number;
  /** Set when the run failed: redis-benchmark stops at the first error reply. */
  error?: string;
}

/** One run's settings. */
export interface RespRunSpec {
  port: number;
  op: 'set' | 'get';
  connections: number;
  pipeline: number;
  requests: number;
  keySpace: number;
  valueBytes: number;
  /** The run is killed (and counted as failed) after this many seconds. */
  timeoutSeconds: number;
}

/** The key redis-benchmark's `key:__rand_int__` names for `i`. */
export function benchmarkKey(i: number): string {
  return `key:${String(i).padStart(12, '0')}`;
}

/** The command line of one run. */
export function redisBenchmarkArgs(s: RespRunSpec): string[] {
  return [
    '-h',
    '127.0.0.1',
    '-p',
    String(s.port),
    '-c',
    String(s.connections),
    '-n',
    String(s.requests),
    '-r',
    String(s.keySpace),
    '-d',
    String(s.valueBytes),
    '-P',
    String(s.pipeline),
    '-t',
    s.op,
    '--csv',
  ];
}

/**
 * Reads redis-benchmark's `--csv` output: a header line naming the columns
 * (`"test","rps",...,"p50_latency_ms",...,"p99_latency_ms",...`) and a line
 * per test. Returns the first test's figures; undefined when there is none.
 */
export function parseRedisBenchmarkCsv(
  out: string,
): { test: string; rps: number; p50Ms: number; p99Ms: number } | undefined {
  const rows = out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('"'))
    .map((l) => l.split(',').map((c) => c.replace(/^"|"$/g, '')));
  const header = rows.find((r) => r[0] === 'test');
  const data = rows.find((r) => r[0] !== 'test');
  if (!header || !data) return undefined;
  const col = (name: string): number => Number(data[header.indexOf(name)]);
  const rps = col('rps');
  const p50Ms = col('p50_latency_ms');
  const p99Ms = col('p99_latency_ms');
  if (![rps, p50Ms, p99Ms].every(Number.isFinite)) return undefined;
  return { test: data[0]!, rps, p50Ms, p99Ms };
}

/** Runs redis-benchmark once. */
export function runRedisBenchmark(spec: RespRunSpec): Promise<RespRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('redis-benchmark', redisBenchmarkArgs(spec), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), spec.timeoutSeconds * 1000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      const text = `${out}\n${err}`;
      const parsed = parseRedisBenchmarkCsv(out);
      const serverError = /Error from server: ?(.*)/.exec(text)?.[1];
      if (parsed && code === 0 && serverError === undefined) {
        resolve({
          requests: spec.requests,
          opsPerSec: parsed.rps,
          p50Ms: parsed.p50Ms,
          p99Ms: parsed.p99Ms,
          seconds: spec.requests / parsed.rps,
        });
        return;
      }
      const why =
        serverError ??
        (signal === 'SIGKILL'
          ? `no result after ${spec.timeoutSeconds} s`
          : (text.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${code ?? signal}`));
      resolve({ requests: 0, opsPerSec: 0, p50Ms: Number.NaN, p99Ms: Number.NaN, seconds, error: why });
    });
  });
}

/**
 * Finds how many requests make a run of about `seconds`: runs of growing size
 * until one lasts at least half a second (these runs are the warm-up), then
 * scales to the measured rate.
 */
export async function sizeRedisBenchmark(
  spec: Omit<RespRunSpec, 'requests'>,
  seconds: number,
  warmupSeconds: number,
): Promise<{ requests: number; error?: string }> {
  let requests = Math.max(1000, spec.connections * spec.pipeline * 4);
  let spent = 0;
  for (let i = 0; i < 6; i++) {
    const run = await runRedisBenchmark({ ...spec, requests });
    if (run.error !== undefined) return { requests, error: run.error };
    spent += run.seconds;
    if (run.seconds >= 0.5 && spent >= warmupSeconds)
      return { requests: Math.max(1000, Math.round(run.opsPerSec * seconds)) };
    requests = Math.round(run.opsPerSec * Math.max(0.6, Math.min(warmupSeconds - spent, seconds)));
  }
  return { requests };
}
