import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createParser } from 'eventsource-parser';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ProcCluster, poll } from './helpers/processes.js';

/** What `GET /v1/partitions` answers for one partition. */
interface Partition {
  partition: number;
  slots: { first: number; last: number };
  replicas: string[];
  leader: string;
  term: number;
}

const PARTITIONS = 4;
const KEYS = 300;
const clients: (Redis | Cluster)[] = [];
let cluster: ProcCluster | undefined;
const hasRedisCli = spawnSync('redis-cli', ['--version']).status === 0;

function plain(port: number): Redis {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
  // Nodes are killed under open connections: their errors fail the commands, not the test run.
  r.on('error', () => {});
  clients.push(r);
  return r;
}

interface WatchEvent {
  id: string;
  event: string;
  data: {
    key: string;
    value?: string;
    partition: number;
    modRevision: number;
    createRevision?: number;
    version?: number;
  };
}

/** A watch read with fetch: its status, and its events as they arrive. */
async function openWatch(http: number, query: string, headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const res = await fetch(`http://127.0.0.1:${http}/v1/watch?${query}`, { signal: abort.signal, headers });
  const events: WatchEvent[] = [];
  let lastId = '';
  const parser = createParser({
    onId: (id) => {
      lastId = id;
    },
    onEvent: (m) => events.push({ id: m.id ?? '', event: m.event ?? 'message', data: JSON.parse(m.data) }),
  });
  if (res.status === 200) {
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk));
      } catch {
        // Closed by the test.
      }
    })();
  }
  return {
    status: res.status,
    body: res.status === 200 ? undefined : ((await res.json()) as unknown),
    events,
    lastId: () => lastId,
    until: (n: number) => poll(`${n} watch events`, 15_000, async () => (events.length >= n ? events : undefined)),
    close: () => abort.abort(),
  };
}

async function partitions(http: number): Promise<Partition[] | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${http}/v1/partitions`, { signal: AbortSignal.timeout(1000) });
    return ((await res.json()) as { partitions: Partition[] }).partitions;
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  cluster = await ProcCluster.create(3, [
    '--partitions',
    String(PARTITIONS),
    '--heartbeat-ms',
    '50',
    '--election-timeout-ms',
    '300',
  ]);
  cluster.startAll();
  const c = cluster;
  // Every node sees each partition led by its preferred replica (placed round-robin: n1, n2, n3, n1), where
  // leaders stay once there: the preferred replica campaigns first and is handed the leadership back.
  const preferred = ['n1', 'n2', 'n3', 'n1'];
  await poll('each partition led by its preferred replica, as every node sees it', 45_000, async () => {
    const views = await Promise.all(c.nodes.map((n) => partitions(n.http)));
    const agreed = views.every((v) => v?.every((p, i) => p.leader === preferred[i]));
    return agreed ? true : undefined;
  });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

describe('a cluster of 3 nodes with 4 partitions of 3 replicas', () => {
  it('lays the slots out over the partitions and answers the Redis Cluster commands', async () => {
    const c = cluster!;
    const view = (await partitions(c.nodes[0]!.http))!;
    expect(view.map((p) => p.slots)).toEqual([
      { first: 0, last: 4095 },
      { first: 4096, last: 8191 },
      { first: 8192, last: 12287 },
      { first: 12288, last: 16383 },
    ]);
    for (const p of view) expect([...p.replicas].sort()).toEqual(['n1', 'n2', 'n3']);
    const r = plain(c.nodes[1]!.resp);
    // CLUSTER SLOTS covers every slot exactly once, each range's master being its partition's leader.
    const slots = (await r.call('CLUSTER', 'SLOTS')) as [number, number, ...[string, number, string][]][];
    const covered = new Uint8Array(16384);
    for (const [lo, hi] of slots) for (let s = lo; s <= hi; s++) covered[s]!++;
    expect(covered.every((n) => n === 1)).toBe(true);
    const byPort = new Map(c.nodes.map((n) => [n.resp, n.id]));
    expect(slots.map((s) => byPort.get(s[2]![1]))).toEqual(view.map((p) => p.leader));
    expect(slots.every((s) => s.length === 5)).toBe(true);
    expect(await r.call('CLUSTER', 'KEYSLOT', 'foo')).toBe(12182);
    expect(await r.call('CLUSTER', 'KEYSLOT', '{user1000}.following')).toBe(3443);
    expect(String(await r.call('CLUSTER', 'INFO'))).toMatch(/cluster_state:ok\r\ncluster_slots_assigned:16384/);
    const nodes = String(await r.call('CLUSTER', 'NODES'))
      .trim()
      .split('\n');
    expect(nodes).toHaveLength(3);
    expect(nodes.filter((l) => l.includes('myself')).length).toBe(1);
  });

  it('serves a cluster-aware client at the partition leaders and a plain client through any node', async () => {
    const c = cluster!;
    const aware = new Cluster([{ host: '127.0.0.1', port: c.nodes[0]!.resp }], {
      redisOptions: { connectTimeout: 2000 },
      slotsRefreshTimeout: 2000,
    });
    aware.on('error', () => {});
    clients.push(aware);
    const keys = Array.from({ length: KEYS }, (_, i) => `key:${i}`);
    const slotsOf = await Promise.all(keys.map((k) => aware.call('CLUSTER', 'KEYSLOT', k) as Promise<number>));
    // The keys fall in every partition.
    expect(new Set(slotsOf.map((s) => Math.floor((s * PARTITIONS) / 16384))).size).toBe(PARTITIONS);
    expect(await Promise.all(keys.map((k, i) => aware.set(k, `a${i}`)))).toEqual(keys.map(() => 'OK'));
    expect(await Promise.all(keys.map((k) => aware.get(k)))).toEqual(keys.map((_, i) => `a${i}`));

    // A plain client writes through one node and reads through another; MGET spans every slot.
    const writer = plain(c.nodes[1]!.resp);
    const w = writer.pipeline();
    for (const [i, k] of keys.entries()) w.set(`plain:${k}`, `p${i}`);
    expect((await w.exec())!.map(([err, v]) => err ?? v)).toEqual(keys.map(() => 'OK'));
    const reader = plain(c.nodes[2]!.resp);
    expect(await reader.mget(...keys.map((k) => `plain:${k}`))).toEqual(keys.map((_, i) => `p${i}`));
    expect(await reader.mget(...keys, 'no-such-key')).toEqual([...keys.map((_, i) => `a${i}`), null]);
    expect(await reader.exists(keys[0]!, keys[1]!, 'no-such-key', `plain:${keys[2]}`)).toBe(3);
    expect(await reader.dbsize()).toBe(2 * KEYS);

    // A plain client's write of keys in several slots runs as one transaction across the partitions
    // (test/e2e-transactions.test.ts); a cluster-aware one's is refused, as Redis Cluster refuses it (below).
    expect(await writer.mset('key:0', 'a0', 'key:1', 'a1')).toBe('OK');
    expect(await writer.mset('{t}a', '1', '{t}b', '2')).toBe('OK');
    expect(await aware.mget('{t}a', '{t}b')).toEqual(['1', '2']);
    // A connection that asked for the layout is cluster-aware: CROSSSLOT for a read across slots too, and
    // MOVED to the leader for a key of a partition another node leads. (ioredis asks on a connection of its
    // own: its connections to each node stay plain, and are served wherever they send.)
    const view = (await partitions(c.nodes[0]!.http))!;
    const asked = plain(c.nodes[0]!.resp);
    await asked.call('CLUSTER', 'SLOTS');
    await expect(asked.mget('key:0', 'key:1')).rejects.toThrow(/CROSSSLOT/);
    await expect(asked.mset('key:0', 'x', 'key:1', 'y')).rejects.toThrow(
      "CROSSSLOT Keys in request don't hash to the same slot",
    );
    const elsewhere = keys.findIndex((_, i) => view[Math.floor((slotsOf[i]! * PARTITIONS) / 16384)]!.leader !== 'n1');
    const leader = c.nodes.find((n) => n.id === view[Math.floor((slotsOf[elsewhere]! * PARTITIONS) / 16384)]!.leader)!;
    await expect(asked.get(keys[elsewhere]!)).rejects.toThrow(`MOVED ${slotsOf[elsewhere]} 127.0.0.1:${leader.resp}`);
    expect(await plain(c.nodes[0]!.resp).get(keys[elsewhere]!)).toBe(`a${elsewhere}`);

    // Keyspace-wide commands answer per node on cluster-aware connections, as Redis Cluster nodes answer for
    // their own slots: each node covers the partitions it leads, so the nodes together cover each key once.
    const partitionOf = (i: number) => Math.floor((slotsOf[i]! * PARTITIONS) / 16384);
    const total = 2 * KEYS + 2;
    const perNode = c.nodes.map((n) => ({ id: n.id, conn: plain(n.resp) }));
    for (const { conn } of perNode) await conn.call('CLUSTER', 'SHARDS');
    // Leaders may move while the nodes are asked (each hands partitions back to their preferred replica):
    // take the answers between two identical views of the leaders.
    const answers = await poll('per-node answers under one view of the leaders', 20_000, async () => {
      const before = (await partitions(c.nodes[0]!.http))?.map((p) => p.leader);
      const got = await Promise.all(
        perNode.map(async ({ conn }) => {
          const scanned: string[] = [];
          let cursor = '0';
          do {
            const [next, found] = await conn.scan(cursor, 'MATCH', 'key:*', 'COUNT', 50);
            scanned.push(...found);
            cursor = next;
          } while (cursor !== '0');
          return { size: await conn.dbsize(), keys: (await conn.keys('key:*')).sort(), scanned: scanned.sort() };
        }),
      );
      const after = (await partitions(c.nodes[0]!.http))?.map((p) => p.leader);
      return before && JSON.stringify(before) === JSON.stringify(after) ? { leaders: before, got } : undefined;
    });
    let sizes = 0;
    for (const [k, { id }] of perNode.entries()) {
      const mine = keys.filter((_, i) => answers.leaders[partitionOf(i)] === id).sort();
      const got = answers.got[k]!;
      sizes += got.size;
      expect(got.keys).toEqual(mine);
      expect(got.scanned).toEqual(mine);
    }
    expect(sizes).toBe(total);
    expect(await reader.dbsize()).toBe(total);
  });

  it('blocks BLPOP until a push through another node, keeps the connection in order, and times out', async () => {
    const c = cluster!;
    const blocked = plain(c.nodes[1]!.resp);
    const waiting = blocked.blpop('jobs', 20);
    // The connection's next command waits behind the blocked one, as in Redis.
    const next = blocked.incr('after-blpop');
    const watcher = plain(c.nodes[1]!.resp);
    await poll('the BLPOP to be blocked', 10_000, async () =>
      ((await watcher.call('CLIENT', 'LIST')) as string).includes('cmd=blpop') ? true : undefined,
    );
    const pusher = plain(c.nodes[2]!.resp);
    expect(await pusher.get('after-blpop')).toBeNull();
    const pushed = Date.now();
    expect(await pusher.rpush('jobs', 'j1', 'j2')).toBe(2);
    expect(await waiting).toEqual(['jobs', 'j1']);
    // Woken by the change, not by a timeout.
    expect(Date.now() - pushed).toBeLessThan(5000);
    expect(await next).toBe(1);
    expect(await pusher.lrange('jobs', 0, -1)).toEqual(['j2']);
    const started = Date.now();
    expect(await blocked.brpop('no-such-list', 0.3)).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    await expect(blocked.blpop('jobs', 'no-such-list', 1)).rejects.toThrow(/CROSSSLOT/);
  });

  it('backs up every partition on its leader and restores through any node, refusing a non-empty cluster', async () => {
    const c = cluster!;
    const dir = mkdtempSync(join(tmpdir(), 'cohort-partitions-backup-'));
    const file = join(dir, 'all.backup');
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
    const r = plain(c.nodes[0]!.resp);
    const size = await r.dbsize();
    await r.hset('backup:h', 'f', 'v');
    const backup = cli('backup', file, '--http', `127.0.0.1:${c.nodes[2]!.http}`);
    expect(backup.stderr).toBe('');
    expect(backup.status).toBe(0);
    expect(backup.stdout).toMatch(new RegExp(`backup of ${size + 1} keys in ${PARTITIONS} partitions`));
    const refused = cli('restore', file, '--http', `127.0.0.1:${c.nodes[1]!.http}`);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/holds \d+ keys/);
    await r.flushdb();
    expect(await r.dbsize()).toBe(0);
    const restored = cli('restore', file, '--http', `127.0.0.1:${c.nodes[1]!.http}`);
    expect(restored.stderr).toBe('');
    expect(restored.status).toBe(0);
    expect(await r.dbsize()).toBe(size + 1);
    expect(await r.hgetall('backup:h')).toEqual({ f: 'v' });
    expect(await r.get('key:7')).toBe('a7');
    rmSync(dir, { recursive: true, force: true });
  });

  it('pages HTTP range reads over every partition in key order', async () => {
    const c = cluster!;
    const got: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const q = new URLSearchParams({ prefix: 'plain:', limit: '128', ...(after ? { after } : {}) });
      const res = await fetch(`http://127.0.0.1:${c.nodes[2]!.http}/v1/kv?${q}`);
      const body = (await res.json()) as { kvs: { key: string }[]; more: boolean; next?: string };
      got.push(...body.kvs.map((r) => r.key));
      if (!body.more) break;
      after = body.next;
    }
    const want = Array.from({ length: KEYS }, (_, i) => `plain:key:${i}`).sort();
    expect(got).toEqual(want);
    const one = await fetch(`http://127.0.0.1:${c.nodes[0]!.http}/v1/kv/${encodeURIComponent('key:7')}`);
    expect(((await one.json()) as { value: string }).value).toBe('a7');
    // Revisions are per partition: a prefix watch resumes from a token of every partition's, not from one revision.
    const byRevision = await openWatch(c.nodes[0]!.http, 'prefix=key&fromRevision=1');
    expect(byRevision.status).toBe(400);
    expect((byRevision.body as { error: { message: string } }).error.message).toMatch(/resume=<token>/);
  });

  it.skipIf(!hasRedisCli)('lets redis-cli -c follow a MOVED to the partition leader', async () => {
    const c = cluster!;
    const view = (await partitions(c.nodes[0]!.http))!;
    // Ask a node that does not lead key:1's partition.
    const slot = (await plain(c.nodes[0]!.resp).call('CLUSTER', 'KEYSLOT', 'key:1')) as number;
    const p = view[Math.floor((slot * PARTITIONS) / 16384)]!;
    const other = c.nodes.find((n) => n.id !== p.leader)!;
    const leader = c.nodes.find((n) => n.id === p.leader)!;
    const out = spawnSync('redis-cli', ['-c', '-p', String(other.resp)], {
      input: 'CLUSTER MYID\nCLUSTER NODES\nSET key:1 moved\nGET key:1\n',
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(out.stdout).toContain(`Redirected to slot [${slot}] located at 127.0.0.1:${leader.resp}`);
    expect(out.stdout.trim().split('\n').at(-1)).toBe('moved');
  });

  it('refuses to start on a data directory created with another partition count', async () => {
    const c = cluster!;
    const n3 = c.nodes[2]!;
    await c.kill(n3);
    const res = spawnSync(
      process.execPath,
      [CLI, 'start', '--id', 'n3', '--data-dir', n3.dataDir, '--partitions', '2', '--resp', '127.0.0.1:0'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/created with 4 partition\(s\), not 2.*--partitions 4/);
  });
});

describe('a cluster of 4 nodes with 4 partitions of 3 replicas', () => {
  let four: ProcCluster | undefined;
  afterAll(async () => {
    await four?.killAll();
  });

  it('serves every key through a node holding no replica of its partition, and redirects to leaders it learnt by gossip', async () => {
    four = await ProcCluster.create(4, [
      '--partitions',
      '4',
      '--replicas',
      '3',
      '--heartbeat-ms',
      '50',
      '--election-timeout-ms',
      '300',
    ]);
    const c = four;
    c.startAll();
    // Round-robin over n1..n4: p0 on n1-n3, p1 on n2-n4, p2 on n3,n4,n1, p3 on n4,n1,n2; each node misses one.
    // Every node, the one outside each partition included (by gossip), sees it led by its preferred replica,
    // where leaders stay.
    const preferred = ['n1', 'n2', 'n3', 'n4'];
    await poll('each partition led by its preferred replica, as every node sees it', 45_000, async () => {
      const views = await Promise.all(c.nodes.map((n) => partitions(n.http)));
      if (views.some((v) => v === undefined)) return undefined;
      const outside = views.map((v) => v!.filter((p) => !(p as Partition & { local: boolean }).local).length);
      expect(outside).toEqual([1, 1, 1, 1]);
      return views.every((v) => v!.every((p, i) => p.leader === preferred[i])) ? true : undefined;
    });
    const keys = Array.from({ length: 100 }, (_, i) => `four:${i}`);
    // Each node writes a quarter of the keys; every node reads them all, MGET across slots included.
    await Promise.all(
      c.nodes.map(async (n, k) => {
        const r = plain(n.resp);
        for (let i = k; i < keys.length; i += 4) expect(await r.set(keys[i]!, `v${i}`)).toBe('OK');
      }),
    );
    for (const n of c.nodes) {
      expect(await plain(n.resp).mget(...keys)).toEqual(keys.map((_, i) => `v${i}`));
    }
    // The node holding no replica of p0 redirects a cluster-aware connection to p0's leader, as gossip told it.
    const outsider = c.nodes[3]!;
    const leader = 'n1';
    const asked = plain(outsider.resp);
    await asked.call('CLUSTER', 'SLOTS');
    const port = c.nodes.find((n) => n.id === leader)!.resp;
    // hello: slot 866, in p0.
    await expect(asked.get('hello')).rejects.toThrow(`MOVED 866 127.0.0.1:${port}`);

    // A prefix watch spans every partition. Through n4, p0's part is relayed from one of its replicas. It
    // starts where a range read of the prefix stood (its resume token: one revision per partition).
    const range = (await (await fetch(`http://127.0.0.1:${outsider.http}/v1/kv?prefix=four:`)).json()) as {
      resume: string;
      kvs: unknown[];
    };
    expect(range.kvs).toHaveLength(keys.length);
    expect(range.resume.split('.')).toHaveLength(4);
    const w = await openWatch(outsider.http, `prefix=four:&resume=${range.resume}`);
    expect(w.status).toBe(200);
    const writer = plain(c.nodes[0]!.resp);
    for (const [i, k] of keys.entries()) await writer.set(k, `w${i}`);
    const seen = await w.until(keys.length);
    expect(new Set(seen.map((e) => e.data.partition))).toEqual(new Set([0, 1, 2, 3]));
    expect(seen.map((e) => e.data.key).sort()).toEqual([...keys].sort());
    for (const e of seen) expect(e.data.value).toBe(`w${keys.indexOf(e.data.key)}`);
    // Each key's second write: its event names the version and create revision it left (worked out when the
    // event is sent: a plain SET's apply does not read the row it replaces).
    for (const e of seen) expect([e.data.key, e.data.version]).toEqual([e.data.key, 2]);
    const created = new Map(seen.map((e) => [e.data.key, e.data.createRevision]));
    for (const c of created.values()) expect(c).toBeGreaterThan(0);
    // Each event's id is the resume token after it: resuming from the 50th, through another node, sends the
    // events after it (in every partition) and none before, then the new ones.
    const mid = seen[49]!;
    w.close();
    for (const [i, k] of keys.entries()) await writer.set(k, `x${i}`);
    const resumed = await openWatch(c.nodes[1]!.http, 'prefix=four:', { 'last-event-id': mid.id });
    const again = await resumed.until(keys.length - 50 + keys.length);
    resumed.close();
    const text = (e: WatchEvent) => `${e.data.key}=${e.data.value}`;
    expect(
      again
        .filter((e) => e.data.value?.startsWith('w'))
        .map(text)
        .sort(),
    ).toEqual(seen.slice(50).map(text).sort());
    expect(
      again
        .filter((e) => e.data.value?.startsWith('x'))
        .map((e) => e.data.value)
        .sort(),
    ).toEqual(keys.map((_, i) => `x${i}`).sort());
    // The third writes, from the replicas' histories: version 3, the key's create revision kept (an event a
    // node serves from its log, before its history, names no version).
    for (const e of again.filter((x) => x.data.value?.startsWith('x') && x.data.version !== undefined)) {
      expect([e.data.key, e.data.version, e.data.createRevision]).toEqual([e.data.key, 3, created.get(e.data.key)]);
    }
    expect(again).toHaveLength(keys.length - 50 + keys.length);
  }, 90_000);
});
