import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster, type ProcNode, freePorts, poll, runToExit } from './helpers/processes.js';
import { encodeCommand, replyLength } from './helpers/raw-resp.js';

// Heartbeat 50 ms, election timeout 300..600 ms.
const FAST = ['--heartbeat-ms', '50', '--election-timeout-ms', '300'];

let cluster: ProcCluster | undefined;
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

const PASSWORD = 'e2e-password';

/** An ioredis client of `node` that authenticates as the default user. */
function redisClient(node: ProcNode, list: Redis[]): Redis {
  const r = new Redis({
    port: node.resp,
    host: '127.0.0.1',
    password: PASSWORD,
    maxRetriesPerRequest: 1,
    commandTimeout: 10_000,
  });
  list.push(r);
  return r;
}

async function members(n: ProcNode): Promise<{ id: string; state: string }[] | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${n.http}/v1/members`, { signal: AbortSignal.timeout(1000) });
    return ((await res.json()) as { members: { id: string; state: string }[] }).members;
  } catch {
    return undefined;
  }
}

describe('a cluster with a secret, limits and graceful stops', () => {
  it('refuses an oversized MSET and keeps committing; refuses a node with the wrong secret; a SIGTERMed leader hands over and loses no reply', async (ctx) => {
    cluster = await ProcCluster.create(3, FAST);
    const c = cluster;
    // A clean-clone CI run once failed here with a forward that timed out (UNAVAILABLE ... timed out after
    // 4980 ms), step unknown: the nodes' logs say which node stalled and when.
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-4000)}\n`);
    });
    const secret = join(c.root, 'cluster.secret');
    writeFileSync(secret, 'e2e cluster secret, 32 characters or so\n', { mode: 0o600 });
    for (const n of c.nodes) {
      n.args = ['--cluster-secret-file', secret, '--requirepass', PASSWORD, '--metrics-token', 'scrape'];
    }
    c.startAll();
    const leader = await c.leader(c.nodes, 20_000);
    // The flags reach the front ends: RESP wants AUTH, /metrics its token.
    const anonymous = new Redis({ port: leader.resp, host: '127.0.0.1', lazyConnect: true, enableReadyCheck: false });
    clients.push(anonymous);
    await anonymous.connect();
    await expect(anonymous.get('x')).rejects.toThrow('NOAUTH Authentication required.');
    const metrics = (token?: string) =>
      fetch(`http://127.0.0.1:${leader.http}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    expect((await metrics()).status).toBe(401);
    expect((await metrics('scrape')).status).toBe(200);
    anonymous.disconnect();
    const redis = redisClient(leader, clients);
    expect(await redis.set('before', '1')).toBe('OK');

    // Two 10 MB values: refused before anything is proposed, while other writes keep committing.
    const ten = Buffer.alloc(10 * 1024 * 1024, 120);
    const other = redisClient(c.nodes.find((n) => n !== leader)!, clients);
    const writes = Promise.all(Array.from({ length: 20 }, (_, i) => other.set(`during${i}`, String(i))));
    await expect(redis.mset('big1', ten, 'big2', ten)).rejects.toThrow(
      /^ERR value of 10485760 bytes exceeds the limit of 1048576 bytes \(max-value-bytes\)/,
    );
    expect(await writes).toEqual(Array.from({ length: 20 }, () => 'OK'));
    const t = performance.now();
    expect(await redis.set('after', '2')).toBe('OK');
    expect(performance.now() - t).toBeLessThan(2000);
    expect(await redis.exists('big1', 'big2')).toBe(0);

    // A process with another secret, claiming n2's id, reaches nobody and nobody reaches it.
    const [peer, resp, http] = (await freePorts(3)) as [number, number, number];
    const wrongSecret = join(c.root, 'wrong.secret');
    writeFileSync(wrongSecret, 'not the cluster secret at all, really\n', { mode: 0o600 });
    const n1 = c.nodes[0]!;
    const impostor: ProcNode = {
      id: 'n2',
      dataDir: join(c.root, 'impostor'),
      peer,
      resp,
      http,
      log: '',
      // Its member list places n2 at its own port, the others where they are (a later --peers wins).
      args: [
        '--cluster-secret-file',
        wrongSecret,
        '--request-timeout-ms',
        '1000',
        '--peers',
        c.nodes.map((n) => `${n.id}=127.0.0.1:${n.id === 'n2' ? peer : n.peer}`).join(','),
      ],
    };
    c.start(impostor);
    await poll('the impostor to try n1', 15_000, async () =>
      impostor.log.includes('cannot reach peer') ? true : undefined,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; its log: ${impostor.log.slice(-3000)}`);
    });
    expect((await members(impostor))?.map((m) => m.id)).toEqual(['n2']);
    expect((await members(n1))?.find((m) => m.id === 'n2')?.state).toBe('alive');
    expect(await redis.set('still', 'ok')).toBe('OK');
    await c.kill(impostor);

    // Joining: the member checks the joiner's proof of the secret and pins the peer id it registers.
    const [p1, p2] = (await freePorts(2)) as [number, number];
    const joiner = (id: string, dir: string, port: number, secretFile?: string) => [
      '--id',
      id,
      '--data-dir',
      join(c.root, dir),
      '--listen',
      `127.0.0.1:${port}`,
      '--resp',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--join',
      `127.0.0.1:${n1.http}`,
      ...(secretFile ? ['--cluster-secret-file', secretFile] : []),
    ];
    const [wrong, none] = await Promise.all([
      runToExit(joiner('n4', 'join-wrong', p1, wrongSecret)),
      runToExit(joiner('n4', 'join-none', p2)),
    ]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/does not prove the cluster secret/);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/requires its cluster secret/);
    const n4 = await c.addNode('n4', ['--cluster-secret-file', secret, '--join', `127.0.0.1:${n1.http}`]);
    c.start(n4);
    const registry = async () =>
      (await (await fetch(`http://127.0.0.1:${n1.http}/v1/meta`)).json()) as {
        nodes: Record<string, { peerId?: string }>;
      };
    const pinned = await poll(
      'n4 registered with its peer id',
      15_000,
      async () => (await registry()).nodes.n4?.peerId,
    );
    expect(pinned).toMatch(/^12D3KooW/);
    // Another process with the secret but another identity cannot take n4's id.
    const taker = await runToExit(joiner('n4', 'join-taker', p1, secret));
    expect(taker.code).toBe(2);
    expect(taker.stderr).toMatch(/node id n4 is already in use .* by another identity/);
    expect((await registry()).nodes.n4?.peerId).toBe(pinned);
    await c.kill(n4);
    c.nodes.splice(c.nodes.indexOf(n4), 1);

    // The node found leading at the start may have lost the leadership since (a CI run's node stalled for
    // half a second waiting for a CPU just after its election, and the others elected another): the one
    // leading now is the one stopped.
    const target = await c.leader(c.nodes, 10_000);
    // Pipelined writes to the leader, then SIGTERM: every reply received is OK or a clean error,
    // every OK'd write is readable afterwards, and the leadership was handed over.
    const sock = connect(target.resp, '127.0.0.1');
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    const replies: string[] = [];
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const len = replyLength(buf);
        if (len === undefined) break;
        replies.push(buf.subarray(0, len).toString().trim());
        buf = buf.subarray(len);
      }
    });
    sock.write(encodeCommand(['AUTH', PASSWORD]));
    await poll('AUTH answered', 5000, async () => (replies.length === 1 ? true : undefined));
    expect(replies.splice(0)).toEqual(['+OK']);
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    let sent = 0;
    let open = true;
    void closed.then(() => {
      open = false;
    });
    const pump = async (): Promise<void> => {
      while (open && sent < 100_000) {
        const batch = Array.from({ length: 100 }, (_, i) => encodeCommand(['SET', `p${sent + i}`, `v${sent + i}`]));
        sent += 100;
        if (!sock.write(Buffer.concat(batch))) await new Promise((r) => setTimeout(r, 5));
        await new Promise((r) => setImmediate(r));
      }
    };
    const pumping = pump();
    await poll('pipelined writes answered', 10_000, async () => (replies.length >= 2000 ? true : undefined));
    redis.disconnect();
    const exit = c.terminate(target);
    await closed;
    await pumping;
    expect(await exit).toBe(0);
    // Reply i answers command i: each is OK or a clean error, and each OK'd write is readable below.
    const oks = replies.filter((r) => r === '+OK').length;
    const errors = replies.filter((r) => r !== '+OK');
    expect(oks).toBeGreaterThanOrEqual(2000);
    for (const e of errors) expect(e).toMatch(/^-(NOT_LEADER|UNAVAILABLE|TIMEOUT|CLUSTERDOWN)/);
    // Every phase finished within its bound: none was cut short by the deadline.
    expect(target.log).toMatch(/"phase":"clients","ms":\d+,"msg":"shutdown phase done"/);
    expect(target.log).toContain('leadership handed over for shutdown');
    expect(target.log).not.toContain('shutdown phase timed out');
    const survivors = c.nodes.filter((n) => n !== target);
    const next = await c.leader(survivors, 10_000, target.id);
    const check = redisClient(next, clients);
    const acked = replies.flatMap((r, i) => (r === '+OK' ? [i] : []));
    const values: (string | null)[] = [];
    for (let i = 0; i < acked.length; i += 1000) {
      values.push(...(await check.mget(...acked.slice(i, i + 1000).map((k) => `p${k}`))));
    }
    const missing = acked.filter((k, j) => values[j] !== `v${k}`);
    expect(missing).toEqual([]);
  }, 60_000);
});
