import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HARNESS_RUNTIME_FLAGS } from '../src/runtime-flags.js';
import { CLI, ProcCluster, type ProcNode, poll } from './helpers/processes.js';

const FAST = ['--heartbeat-ms', '50', '--election-timeout-ms', '300'];
const tmp = mkdtempSync(join(tmpdir(), 'cohort-cli-'));
const clusters: ProcCluster[] = [];

afterAll(async () => {
  await Promise.all(clusters.map((c) => c.killAll()));
  rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cohort <args>` to completion. */
function cohort(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...HARNESS_RUNTIME_FLAGS, CLI, ...args],
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

const at = (n: ProcNode): string[] => ['--http', `127.0.0.1:${n.http}`];

async function ready(n: ProcNode): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${n.http}/readyz`, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

async function voters(n: ProcNode): Promise<{ voters: string[]; learners: string[]; leader: string }> {
  const c = (await (await fetch(`http://127.0.0.1:${n.http}/v1/cluster`)).json()) as {
    leader: string;
    members: { id: string; role: string }[];
  };
  return {
    leader: c.leader,
    voters: c.members.filter((m) => m.role === 'voter').map((m) => m.id),
    learners: c.members.filter((m) => m.role === 'learner').map((m) => m.id),
  };
}

describe('cohort CLI against a running cluster', () => {
  let c: ProcCluster;
  beforeAll(async () => {
    c = await ProcCluster.create(3, FAST);
    clusters.push(c);
    c.startAll();
    await poll('every node ready', 30_000, async () =>
      (await Promise.all(c.nodes.map(ready))).every(Boolean) ? true : undefined,
    );
  }, 60_000);

  it('kv get, put and del, with exit statuses and COHORT_HTTP', async () => {
    const n1 = c.nodes[0]!;
    const env = { COHORT_HTTP: `127.0.0.1:${n1.http}` };
    expect(await cohort(['kv', 'put', 'a/b', 'v1'], env)).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect(await cohort(['kv', 'get', 'a/b', ...at(c.nodes[1]!)])).toMatchObject({ code: 0, stdout: 'v1\n' });
    const json = await cohort(['kv', 'get', 'a/b', '--json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject({ key: 'a/b', value: 'v1' });
    const missing = await cohort(['kv', 'get', 'nope'], env);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain("key 'nope' does not exist");
    expect(await cohort(['kv', 'del', 'a/b'], env)).toMatchObject({ code: 0, stdout: '1\n' });
    expect((await cohort(['kv', 'get', 'a/b'], env)).code).toBe(4);
    const bad = await cohort(['kv', 'put', 'k', 'v', '--ttl-ms', 'soon'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--ttl-ms must be a whole number');
    expect((await cohort(['kv', 'get'], env)).code).toBe(2);
    const down = await cohort(['kv', 'get', 'k', '--http', '127.0.0.1:1', '--timeout-ms', '2000']);
    expect(down.code).toBe(6);
    expect(down.stderr).toMatch(/cannot reach a node at 127\.0\.0\.1:1 .*--http host:port or set COHORT_HTTP/);
  });

  it('status and members', async () => {
    const st = await cohort(['status', ...at(c.nodes[2]!)]);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/ready {5}yes/);
    for (const n of c.nodes) expect(st.stdout).toContain(n.id);
    // Polled over HTTP (a CLI process per poll is slow on a loaded machine), then the command prints it.
    await poll('members all alive', 30_000, async () => {
      const res = await fetch(`http://127.0.0.1:${c.nodes[0]!.http}/v1/members`);
      const m = ((await res.json()) as { members: { state: string }[] }).members;
      return m.filter((x) => x.state === 'alive').length === 3 ? true : undefined;
    });
    const members = await cohort(['members', ...at(c.nodes[0]!)]);
    expect(members.code).toBe(0);
    expect((members.stdout.match(/ alive /g) ?? []).length).toBe(3);
  });

  it('backs up the dataset and restores it into a new cluster, refusing a non-empty one unless forced', async () => {
    const n1 = c.nodes[0]!;
    for (let i = 0; i < 300; i++) {
      const res = await fetch(`http://127.0.0.1:${n1.http}/v1/kv/key${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(i === 0 ? { value: 'v0', ttlMs: 3_600_000 } : { value: `v${i}` }),
      });
      expect(res.status).toBe(200);
    }
    // Two of them become a hash and a list (with an expiry): they come back as such.
    const redis = new Redis({ port: n1.resp, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
    await redis.del('key1', 'key2');
    await redis.hset('key1', 'f', '1', 'g', '');
    await redis.rpush('key2', 'a', 'b', 'a');
    await redis.expire('key2', 3600);
    redis.disconnect();
    const file = join(tmp, 'one.backup');
    const backup = await cohort(['backup', file, ...at(c.nodes[1]!)]);
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect(backup.stdout).toMatch(/backup of 300 keys at index \d+ written to/);
    expect(existsSync(`${file}.partial`)).toBe(false);

    // Into the cluster it came from: it holds keys.
    const refused = await cohort(['restore', file, ...at(n1)]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/holds \d+ keys.*--force/);

    // A damaged or cut-short file is refused before anything is sent.
    const bytes = readFileSync(file);
    const cut = join(tmp, 'cut.backup');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 3));
    const cutRun = await cohort(['restore', cut, ...at(n1), '--force']);
    expect(cutRun.code).toBe(2);
    expect(cutRun.stderr).toMatch(/cut short|damaged/);

    // A new single-node cluster takes it.
    const fresh = await ProcCluster.create(1, FAST);
    clusters.push(fresh);
    fresh.startAll();
    const f = fresh.nodes[0]!;
    await poll('the new cluster ready', 30_000, async () => ((await ready(f)) ? true : undefined));
    const restored = await cohort(['restore', file, ...at(f)]);
    expect(restored.stderr).toBe('');
    expect(restored).toMatchObject({ code: 0 });
    expect(restored.stdout).toContain('restored 300 keys');
    expect(await cohort(['kv', 'get', 'key299', ...at(f)])).toMatchObject({ code: 0, stdout: 'v299\n' });
    const restoredRedis = new Redis({
      port: f.resp,
      host: '127.0.0.1',
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    expect(await restoredRedis.hgetall('key1')).toEqual({ f: '1', g: '' });
    expect(await cohort(['kv', 'get', 'key1', ...at(f)])).toMatchObject({ code: 0, stdout: '[["f","1"],["g",""]]\n' });
    expect(await restoredRedis.lrange('key2', 0, -1)).toEqual(['a', 'b', 'a']);
    expect(await restoredRedis.ttl('key2')).toBeGreaterThan(3000);
    restoredRedis.disconnect();
    const ttl = (await (await fetch(`http://127.0.0.1:${f.http}/v1/kv/key0?ttl=true`)).json()) as { ttlMs: number };
    expect(ttl.ttlMs).toBeGreaterThan(3_000_000);
    // Forced into the now non-empty cluster: the same keys again.
    expect((await cohort(['restore', file, ...at(f), '--force'])).code).toBe(0);
    await fresh.killAll();
  }, 60_000);

  it('adds a learner, promotes it, moves the leadership, removes a voter, and refuses unsafe changes', async () => {
    const n4 = await c.addNode('n4', ['--join']);
    c.start(n4);
    // Asked of any node: a follower sends the CLI on to the leader.
    const lead = await c.leader(c.nodes.slice(0, 3), 10_000);
    const follower = c.nodes.find((n) => n !== lead && n !== n4)!;
    const notStarted = await cohort(['cluster', 'add', 'n9', ...at(follower)]);
    expect(notStarted.code).toBe(5);
    expect(notStarted.stderr).toContain('cohort start --id n9 --join');
    expect((await cohort(['cluster', 'add', 'n9', '--address', 'nowhere', ...at(follower)])).code).toBe(2);
    const add = await cohort(['cluster', 'add', 'n4', '--address', `127.0.0.1:${n4.peer}`, ...at(follower)]);
    expect(add.stderr).toBe('');
    expect(add.stdout).toMatch(/learners n4/);
    expect((await cohort(['cluster', 'promote', 'n5', ...at(follower)])).code).toBe(5);
    const promote = await poll('n4 promoted once caught up', 20_000, async () => {
      const r = await cohort(['cluster', 'promote', 'n4', ...at(follower)]);
      return r.code === 0 ? r : undefined;
    });
    expect(promote.stdout).toMatch(/voters n1, n2, n3, n4/);
    const moved = await cohort(['cluster', 'transfer-leader', 'n4', ...at(c.nodes[0]!)]);
    expect(moved.stderr).toBe('');
    expect(moved.stdout).toMatch(/OK: leader n4/);
    expect((await voters(n4)).leader).toBe('n4');
    const leaderOut = await cohort(['cluster', 'remove', 'n4', ...at(n4)]);
    expect(leaderOut.code).toBe(5);
    expect(leaderOut.stderr).toContain('transfer-leader');
    const removed = await cohort(['cluster', 'remove', 'n3', ...at(c.nodes[0]!)]);
    expect(removed.stderr).toBe('');
    expect(removed.stdout).toMatch(/voters n1, n2, n4/);
    expect((await voters(n4)).voters).toEqual(['n1', 'n2', 'n4']);
    await c.kill(c.nodes[2]!);
    // n2 down: removing n1 would leave n2 and n4, one of them reachable.
    await c.kill(c.nodes[1]!);
    await poll('the leader finds n2 unreachable', 10_000, async () => {
      const view = (await (await fetch(`http://127.0.0.1:${n4.http}/v1/cluster`)).json()) as {
        members: { id: string; reachable?: boolean }[];
      };
      return view.members.find((m) => m.id === 'n2')?.reachable === false ? true : undefined;
    });
    const unsafe = await cohort(['cluster', 'remove', 'n1', ...at(n4)]);
    expect(unsafe.code).toBe(5);
    expect(unsafe.stderr).toMatch(
      /removing n1 would leave voters n2, n4, of which only n4 is reachable; a quorum needs 2/,
    );
    // The cluster still serves with n1 and n4.
    expect(await cohort(['kv', 'put', 'after', 'x', ...at(c.nodes[0]!)])).toMatchObject({ code: 0 });
  }, 90_000);
});

describe('cohort kv range and watch, against a server speaking the HTTP API contract', () => {
  let server: Server;
  let port = 0;
  const watches: URL[] = [];
  /** Runs `cohort kv watch <args>` until it printed `lines` lines (over as many connections as it takes); those lines. */
  const watchLines = async (args: string[], lines: number): Promise<string[]> => {
    const child = spawn(process.execPath, [...HARNESS_RUNTIME_FLAGS, CLI, 'kv', 'watch', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      await poll(`${lines} lines of cohort kv watch`, 10_000, async () =>
        out.split('\n').length > lines ? true : undefined,
      );
    } finally {
      child.kill('SIGKILL');
    }
    return out.split('\n').slice(0, lines);
  };
  beforeAll(async () => {
    const keys = Array.from({ length: 5 }, (_, i) => `p/${i}`);
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/v1/kv') {
        const after = url.searchParams.get('after');
        const limit = Number(url.searchParams.get('limit'));
        const from = after === null ? 0 : keys.indexOf(after) + 1;
        const page = keys.slice(from, from + Math.min(limit, 2));
        const more = from + page.length < keys.length;
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            kvs: page.map((k) => ({ key: k, value: `v${k}`, createRevision: 1, modRevision: 1, version: 1 })),
            more,
            ...(more ? { next: page[page.length - 1] } : {}),
          }),
        );
        return;
      }
      if (url.pathname === '/v1/watch' && url.searchParams.get('prefix') === 't/') {
        // A prefix across two partitions: ids are resume tokens, the stream opens with its own.
        watches.push(url);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const [p0, p1] = (url.searchParams.get('resume') ?? '3.5').split('.').map(Number) as [number, number];
        res.write(`: watching 2 partitions after revisions ${p0}.${p1}\nid: ${p0}.${p1}\n\n`);
        const put = (key: string, rev: number) => JSON.stringify({ type: 'put', key, value: 'v', modRevision: rev });
        // Two events of one revision of partition 0 (only the last carries the id), then one of partition 1.
        res.write(`event: put\ndata: ${put('t/a', p0 + 1)}\n\n`);
        // The first two connections drop inside that revision.
        if (watches.filter((u) => u.searchParams.get('prefix') === 't/').length <= 2) {
          setTimeout(() => res.end(), 20);
          return;
        }
        res.write(`id: ${p0 + 1}.${p1}\nevent: put\ndata: ${put('t/b', p0 + 1)}\n\n`);
        res.write(`id: ${p0 + 1}.${p1 + 1}\nevent: put\ndata: ${put('t/c', p1 + 1)}\n\n`);
        setTimeout(() => res.end(), 20);
        return;
      }
      if (url.pathname === '/v1/watch') {
        watches.push(url);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const rev = Number(url.searchParams.get('fromRevision') ?? 1);
        // Two events, then the connection drops: the CLI resumes from the revision after the last one.
        for (const r of [rev, rev + 1]) {
          res.write(
            `id: ${r}\nevent: put\ndata: ${JSON.stringify({ type: 'put', key: `p/${r}`, value: `x${r}` })}\n\n`,
          );
        }
        setTimeout(() => res.end(), 20);
        return;
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no route' } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('range follows continuations and honours --limit', async () => {
    const http = ['--http', `127.0.0.1:${port}`];
    const all = await cohort(['kv', 'range', '--prefix', 'p/', ...http]);
    expect(all).toMatchObject({ code: 0, stdout: 'p/0\tvp/0\np/1\tvp/1\np/2\tvp/2\np/3\tvp/3\np/4\tvp/4\n' });
    const three = await cohort(['kv', 'range', '--prefix', 'p/', '--limit', '3', '--keys-only', ...http]);
    expect(three.stdout).toBe('p/0\np/1\np/2\n');
    expect((await cohort(['kv', 'range', '--prefix', 'p/', '--start', 'a', ...http])).code).toBe(2);
  });

  it('watch prints events and resumes from the revision after the last one seen', async () => {
    const out = await watchLines(['--prefix', 'p/', '--from-revision', '7', '--http', `127.0.0.1:${port}`], 4);
    expect(out).toEqual(['7\tput\tp/7\tx7', '8\tput\tp/8\tx8', '9\tput\tp/9\tx9', '10\tput\tp/10\tx10']);
    expect(watches[1]?.searchParams.get('fromRevision')).toBe('9');
    expect((await cohort(['kv', 'watch', '--http', `127.0.0.1:${port}`])).code).toBe(2);
  });

  it('watch of a prefix across partitions resumes after its last resume token, printing each event once', async () => {
    watches.length = 0;
    const out = await watchLines(['--prefix', 't/', '--http', `127.0.0.1:${port}`], 6);
    expect(out).toEqual([
      '4\tput\tt/a\tv',
      '4.5\tput\tt/b\tv',
      '4.6\tput\tt/c\tv',
      '5\tput\tt/a\tv',
      '5.6\tput\tt/b\tv',
      '5.7\tput\tt/c\tv',
    ]);
    // Cut twice after t/a, before its revision's id: resumed from the opening token, t/a comes again (twice)
    // and is printed once.
    expect(watches.slice(0, 4).map((u) => u.searchParams.get('resume'))).toEqual([null, '3.5', '3.5', '4.6']);
    expect(watches[1]?.searchParams.get('fromRevision')).toBeNull();
  });
});
