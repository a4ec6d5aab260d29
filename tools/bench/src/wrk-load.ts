// HTTP load with wrk (Debian's `wrk`, C, one epoll loop a thread), the same way against Cohort
// and etcd as http-load.ts does with autocannon: a random key of the key space per request,
// 100-byte values, keep-alive connections, one request in flight per connection. A Lua script
// builds each request; wrk's own histogram (µs) gives the latencies. It costs the machine ~17 µs
// of CPU a request where autocannon, in this process, costs 40-65 (see the README).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  COHORT_PUT_HEADERS,
  type HttpApi,
  type HttpLoadSpec,
  type HttpRun,
  type PutAnswer,
  filler,
} from './http-load.ts';
import { benchmarkKey } from './resp-load.ts';

/** Digits after `key:` in {@link benchmarkKey}. */
const KEY_DIGITS = 12;

/**
 * `s` as a Lua string literal: printable ASCII as is, every other byte as a three-digit decimal escape (Lua
 * reads up to three digits, so a shorter one before a digit would take that digit too).
 */
export function luaString(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${String(b).padStart(3, '0')}`;
  }
  return `${out}"`;
}

const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64');
const digits = (n: number, width: number): string => String(n).padStart(width, '0');

/** A Lua table of `count` strings, `[1]` holding `f(0)`. */
function luaTable(count: number, f: (i: number) => string): string {
  return `{${Array.from({ length: count }, (_, i) => luaString(f(i))).join(',')}}`;
}

/**
 * The Lua function `key64(i)`: {@link benchmarkKey}`(i)` in base64, as etcd's JSON gateway takes keys. The
 * key's 16 bytes are five whole 3-byte groups and one byte (`key`, `:` and two digits, three groups of three
 * digits, the last digit), each group's 4 characters looked up in a table made here: a lookup and a
 * concatenation a request, no encoder in Lua.
 */
function key64Lua(): string {
  if (benchmarkKey(0) !== `key:${digits(0, KEY_DIGITS)}`) throw new Error('wrk-load: benchmarkKey changed its form');
  return [
    `local HEAD = ${luaString(b64('key'))}`,
    `local T2 = ${luaTable(100, (i) => b64(`:${digits(i, 2)}`))}`,
    `local T3 = ${luaTable(1000, (i) => b64(digits(i, 3)))}`,
    `local T1 = ${luaTable(10, (i) => b64(String(i)))}`,
    'local floor = math.floor',
    'local function key64(i)',
    '  return HEAD .. T2[floor(i / 1e10) % 100 + 1] .. T3[floor(i / 1e7) % 1000 + 1] ..',
    '    T3[floor(i / 1e4) % 1000 + 1] .. T3[floor(i / 10) % 1000 + 1] .. T1[i % 10 + 1]',
    'end',
  ].join('\n');
}

/**
 * wrk's Lua script for `op` on random keys below `keySpace` against `api` (the requests of
 * {@link httpRequest}), seeded with `seed`; its `done` prints one `WRK-RESULT` line that
 * {@link parseWrkResult} reads.
 */
export function wrkScript(
  api: HttpApi,
  op: 'put' | 'get',
  keySpace: number,
  valueBytes: number,
  seed: number,
  putAnswer: PutAnswer = 'minimal',
): string {
  if (!Number.isSafeInteger(keySpace) || keySpace < 1 || keySpace > 10 ** KEY_DIGITS)
    throw new RangeError(`wrk-load: key space must be 1 to 10^${KEY_DIGITS}, got ${keySpace}`);
  const value = filler(valueBytes);
  const lines = [
    `local keySpace = ${keySpace}`,
    'local random, fmt = math.random, string.format',
    `math.randomseed(${seed})`,
    'wrk.headers["Content-Type"] = "application/json"',
  ];
  const pick = 'random(0, keySpace - 1)';
  if (api === 'cohort') {
    const path = `fmt("/v1/kv/key:%0${KEY_DIGITS}d", ${pick})`;
    if (op === 'put' && putAnswer === 'minimal') {
      for (const [name, v] of Object.entries(COHORT_PUT_HEADERS))
        lines.push(`wrk.headers[${luaString(name)}] = ${luaString(v)}`);
    }
    lines.push(
      op === 'put'
        ? `local body = ${luaString(JSON.stringify({ value }))}\nrequest = function() return wrk.format("PUT", ${path}, nil, body) end`
        : `request = function() return wrk.format("GET", ${path}) end`,
    );
  } else {
    lines.push(key64Lua());
    lines.push(
      op === 'put'
        ? [
            `local tail = ${luaString(`","value":"${b64(value)}"}`)}`,
            `request = function() return wrk.format("POST", "/v3/kv/put", nil, '{"key":"' .. key64(${pick}) .. tail) end`,
          ].join('\n')
        : `request = function() return wrk.format("POST", "/v3/kv/range", nil, '{"key":"' .. key64(${pick}) .. '"}') end`,
    );
  }
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(fmt("WRK-RESULT %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,',
    '    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))',
    'end',
  );
  return `${lines.join('\n')}\n`;
}

/** What wrk's `done` reported, or undefined when its output holds no `WRK-RESULT` line. */
export function parseWrkResult(stdout: string): HttpRun | undefined {
  const m = /^WRK-RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(stdout);
  if (!m) return undefined;
  const [requests, durationUs, connect, read, write, status, timeout, p50Us, p99Us] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const seconds = durationUs / 1e6;
  // wrk counts every answer in `requests` and those with a status of 400 or more in `status` as well.
  const ops = requests - status;
  const run: HttpRun = {
    ops,
    errors: status + connect + read + write + timeout,
    seconds,
    opsPerSec: seconds > 0 ? Math.round(ops / seconds) : 0,
    p50Ms: p50Us / 1000,
    p99Ms: p99Us / 1000,
  };
  if (run.errors > 0) {
    const kinds = Object.entries({ status, connect, read, write, timeout })
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${n} ${k === 'status' ? 'answers with a status of 400 or more' : `${k} errors`}`);
    run.firstError = `wrk: ${kinds.join(', ')} (--http-load autocannon shows the first answer's body)`;
  }
  return run;
}

/** Seconds wrk runs for `seconds` asked: it takes whole seconds, at least one. */
export function wrkSeconds(seconds: number): number {
  return Math.max(1, Math.ceil(seconds));
}

/**
 * Runs `spec` (its seconds rounded up to whole seconds) with the `wrk` binary at `bin` on one thread; resolves
 * once wrk has exited (its CPU is then in this process's `cutime`/`cstime`).
 */
export async function runWrk(bin: string, spec: HttpLoadSpec): Promise<HttpRun> {
  const { url, api, op, connections, seconds, keySpace, valueBytes, putAnswer } = spec;
  const dir = mkdtempSync(join(tmpdir(), 'cohort-bench-wrk-'));
  const script = join(dir, 'load.lua');
  writeFileSync(script, wrkScript(api, op, keySpace, valueBytes, Math.floor(Math.random() * 2 ** 31), putAnswer));
  try {
    const args = ['-t1', `-c${connections}`, `-d${wrkSeconds(seconds)}s`, '--timeout', '10s', '-s', script, url];
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
        });
        child.stderr.setEncoding('utf8').on('data', (d: string) => {
          err += d;
        });
        child.on('error', reject);
        child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
      },
    );
    const run = parseWrkResult(stdout);
    if (code !== 0 || run === undefined)
      throw new Error(`wrk ${args.join(' ')} exited ${code}: ${(stderr || stdout).trim().slice(0, 500)}`);
    return run;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
