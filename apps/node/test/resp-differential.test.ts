import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_NAMES } from '../src/resp/commands.js';
import { ProcCluster, type ProcNode, freePorts, poll } from './helpers/processes.js';
import { RawClient, type Value, parseReply } from './helpers/raw-resp.js';
import { type Arg, SEQUENCES, type Sequence, type Step } from './helpers/resp-cases.js';

/**
 * The same command sequences against a real Redis 7 (`redis-server`,
 * standalone) and a three-node Cohort cluster, reply by reply, compared byte
 * for byte as RESP, except where a step states its normalization (see
 * `Norm` in helpers/resp-cases.ts): KEYS as a sorted set; remaining and
 * absolute times of relative expiries within a tolerance; RANDOMKEY as nil
 * or a key on both; a whole SCAN iteration as a sorted key set with each
 * reply a cursor and an array; INFO, COMMAND and HELLO by reply type.
 */

const INSTALL = 'apt-get install -y redis-server';
const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
const version = found.status === 0 ? /v=(\d+)\./.exec(found.stdout)?.[1] : undefined;
const haveRedis = version !== undefined && Number(version) >= 7;

if (!haveRedis && process.env.CI !== 'true') {
  console.warn(
    `\n!!!!! resp-differential: SKIPPED — no redis-server 7 on PATH (${found.error?.message ?? found.stdout.trim()}). Install it: \`${INSTALL}\` !!!!!\n`,
  );
}

describe('redis-server 7 is installed (required under CI)', () => {
  it.runIf(process.env.CI === 'true')('finds redis-server 7 on PATH', () => {
    expect(haveRedis, `redis-server 7 is required under CI: ${INSTALL}`).toBe(true);
  });
});

describe.runIf(haveRedis)('RESP differential: Redis 7 and Cohort answer alike', () => {
  let cluster: ProcCluster;
  let redisPort: number;
  let redis: ReturnType<typeof spawn> | undefined;

  beforeAll(async () => {
    [redisPort] = (await freePorts(1)) as [number];
    redis = spawn(
      'redis-server',
      [
        '--port',
        String(redisPort),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
      { stdio: 'ignore' },
    );
    cluster = await ProcCluster.create(3);
    cluster.startAll();
    await cluster.leader(cluster.nodes, 20_000);
    await poll('redis-server to answer', 10_000, async () => {
      try {
        const c = await RawClient.connect(redisPort);
        c.close();
        return true;
      } catch {
        return undefined;
      }
    });
  }, 40_000);

  afterAll(async () => {
    redis?.kill('SIGKILL');
    await cluster?.killAll();
  });

  it('has cases for every command in the command table', () => {
    const covered = new Set<string>();
    for (const seq of SEQUENCES) {
      for (const step of seq.steps) covered.add('scan' in step ? 'scan' : String(step.cmd[0]).toLowerCase());
    }
    expect(COMMAND_NAMES.filter((name) => !covered.has(name))).toEqual([]);
  });

  SEQUENCES.forEach((seq, i) => {
    it(`answers sequence '${seq.name}' as Redis does`, async () => {
      const node = cluster.nodes[i % cluster.nodes.length]!;
      const mismatches = await runBoth(seq, redisPort, node);
      expect(mismatches).toEqual([]);
    });
  });
});

function keyed(seq: Sequence, arg: Arg): Arg {
  return typeof arg === 'string' && arg.startsWith('@') ? `{${seq.name}}${arg.slice(1)}` : arg;
}

function show(b: Buffer): string {
  return JSON.stringify(b.toString('latin1'));
}

/** Runs `seq` on both servers and lists the steps whose replies differ. */
async function runBoth(seq: Sequence, redisPort: number, node: ProcNode): Promise<string[]> {
  const r = await RawClient.connect(redisPort);
  const c = await RawClient.connect(node.resp);
  const mismatches: string[] = [];
  try {
    if (seq.flush) {
      await r.call(['FLUSHDB']);
      await c.call(['FLUSHDB']);
    }
    for (const step of seq.steps) {
      const what = describeStep(seq, step);
      const diff = 'scan' in step ? await compareScan(seq, step.scan, r, c) : await compareStep(seq, step, r, c);
      if (diff) mismatches.push(`${what}: ${diff}`);
    }
  } finally {
    r.close();
    c.close();
  }
  return mismatches;
}

function describeStep(seq: Sequence, step: Step): string {
  const args = 'scan' in step ? ['SCAN*', ...step.scan] : step.cmd;
  return args.map((a) => (typeof a === 'string' ? keyed(seq, a) : `<${a.toString('hex')}>`)).join(' ');
}

async function compareStep(
  seq: Sequence,
  step: Extract<Step, { cmd: Arg[] }>,
  r: RawClient,
  c: RawClient,
): Promise<string | undefined> {
  const args = step.cmd.map((a) => keyed(seq, a));
  const want = await r.call(args);
  const got = await c.call(args);
  const norm = step.norm;
  if (norm === undefined) return want.equals(got) ? undefined : `redis ${show(want)} cohort ${show(got)}`;
  const w = parseReply(want);
  const g = parseReply(got);
  if ('sorted' in norm) {
    const sort = (v: Value): string[] | Value =>
      Array.isArray(v) ? v.map((x) => (Buffer.isBuffer(x) ? x.toString('hex') : String(x))).sort() : v;
    return JSON.stringify(sort(w)) === JSON.stringify(sort(g)) ? undefined : `redis ${show(want)} cohort ${show(got)}`;
  }
  if ('approx' in norm) {
    if (typeof w === 'bigint' && typeof g === 'bigint' && w >= 0n && g >= 0n) {
      const d = w > g ? w - g : g - w;
      return d <= BigInt(norm.approx) ? undefined : `redis ${w} cohort ${g} (tolerance ${norm.approx})`;
    }
    return want.equals(got) ? undefined : `redis ${show(want)} cohort ${show(got)}`;
  }
  if ('random' in norm) {
    const kind = (v: Value): string => (v === null ? 'nil' : Buffer.isBuffer(v) ? 'bulk' : JSON.stringify(v));
    return kind(w) === kind(g) ? undefined : `redis ${show(want)} cohort ${show(got)}`;
  }
  if ('scanPage' in norm) {
    const page = (v: Value): boolean =>
      Array.isArray(v) &&
      v.length === 2 &&
      Buffer.isBuffer(v[0]) &&
      /^[0-9]+$/.test(v[0].toString()) &&
      Array.isArray(v[1]);
    return page(w) && page(g) ? undefined : `not SCAN replies: redis ${show(want)} cohort ${show(got)}`;
  }
  return want[0] === got[0] ? undefined : `reply types differ: redis ${show(want)} cohort ${show(got)}`;
}

/** A whole SCAN iteration on each server: the same keys (sorted), each reply a cursor and an array. */
async function compareScan(seq: Sequence, opts: Arg[], r: RawClient, c: RawClient): Promise<string | undefined> {
  const all = async (client: RawClient): Promise<string[] | string> => {
    const keys: string[] = [];
    let cursor = '0';
    for (let i = 0; i < 1000; i++) {
      const reply = parseReply(await client.call(['SCAN', cursor, ...opts.map((a) => keyed(seq, a))]));
      if (!Array.isArray(reply) || reply.length !== 2 || !Buffer.isBuffer(reply[0]) || !Array.isArray(reply[1])) {
        return `not a SCAN reply: ${JSON.stringify(reply)}`;
      }
      cursor = reply[0].toString();
      if (!/^[0-9]+$/.test(cursor)) return `cursor ${cursor}`;
      keys.push(...reply[1].map((k) => (k as Buffer).toString('hex')));
      if (cursor === '0') return keys.sort();
    }
    return 'SCAN did not end in 1000 calls';
  };
  const want = await all(r);
  const got = await all(c);
  return JSON.stringify(want) === JSON.stringify(got)
    ? undefined
    : `redis ${JSON.stringify(want)} cohort ${JSON.stringify(got)}`;
}
