import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type MetaState, assignLeaders } from '@cohort/kv';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HARNESS_RUNTIME_FLAGS } from '../src/runtime-flags.js';
import { CLI, ProcCluster, type ProcNode, freePorts, poll, runToExit } from './helpers/processes.js';

/** `GET /v1/meta`: the registry and the partition map. */
interface Meta {
  clusterId: string;
  replicationFactor: number;
  nodes: Record<string, { id: string; http?: string; startedAt: number }>;
  partitions: {
    replicas: { node: string; role: 'voter' | 'learner' }[];
    epoch: number;
    preferredLeader?: string;
    move?: { from: string; to: string };
  }[];
}

/** Runs a `cohort` client command and resolves with its exit code and output. */
function cohort(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...HARNESS_RUNTIME_FLAGS, CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Partition `p`'s leader as node `node` reports it in GET /v1/partitions. */
async function leaderOf(node: ProcNode, p: number): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.http}/v1/partitions`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { partitions: { leader?: string; role?: string }[] };
    return body.partitions[p]?.leader || undefined;
  } catch {
    return undefined;
  }
}

const PARTITIONS = 16;
const GRACE_MS = 2000;
const clients: (Redis | Cluster)[] = [];
let cluster: ProcCluster;
/** The SETs acknowledged under write load while a node was killed (key -> value): every later test may read them. */
const acked = new Map<string, string>();

function plain(port: number): Redis {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
    commandTimeout: 5000,
  });
  // Nodes are killed under open connections: their errors fail the commands, not the test run.
  r.on('error', () => {});
  clients.push(r);
  return r;
}

async function meta(node: ProcNode): Promise<Meta | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.http}/v1/meta`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as Meta) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether every partition has `r` voters, no learner, and none on `excluded`. */
function settled(m: Meta, r: number, excluded: string[] = []): boolean {
  return m.partitions.every(
    (p) => p.replicas.length === r && p.replicas.every((x) => x.role === 'voter' && !excluded.includes(x.node)),
  );
}

const equalJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

const held = (m: Meta, id: string): number => m.partitions.filter((p) => p.replicas.some((r) => r.node === id)).length;

beforeAll(async () => {
  cluster = await ProcCluster.create(5, [
    '--partitions',
    String(PARTITIONS),
    '--replicas',
    '3',
    '--heartbeat-ms',
    '50',
    '--election-timeout-ms',
    '300',
    '--swim-probe-ms',
    '200',
    '--dead-grace',
    String(GRACE_MS),
    '--stuck-after',
    '1000',
  ]);
  cluster.startAll();
  const n1 = cluster.nodes[0]!;
  await poll('the meta group founded and every node registered', 60_000, async () => {
    const m = await meta(n1);
    return m?.clusterId && Object.values(m.nodes).every((n) => n.http !== undefined && n.startedAt > 0) ? m : undefined;
  });
  // Round-robin may leave the replica counts uneven: placement evens them out first (9 or 10 each).
  await poll('the founding map balanced', 45_000, async () => {
    const m = await meta(n1);
    if (!m || !settled(m, 3)) return undefined;
    const counts = cluster.nodes.map((n) => held(m, n.id));
    return Math.max(...counts) - Math.min(...counts) <= 1 ? m : undefined;
  });
}, 120_000);

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  for (const n of cluster.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-4000)}\n`);
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

describe('the meta group and placement (5 nodes, 16 partitions, 3 replicas)', () => {
  it('founds the map from the layout: every partition on 3 nodes, each reconfiguration one epoch', async () => {
    const m = (await meta(cluster.nodes[0]!))!;
    expect(m.replicationFactor).toBe(3);
    expect(m.partitions).toHaveLength(PARTITIONS);
    expect(settled(m, 3)).toBe(true);
    // A partition moved by the first rebalance went through a learner, then one joint change promoting it and
    // removing the source: epoch 1 + 2 per move.
    for (const p of m.partitions) expect((p.epoch - 1) % 2).toBe(0);
    // GET /v1/partitions shows each partition's epoch, and on the partitions it leads each replica's lag.
    const res = await fetch(`http://127.0.0.1:${cluster.nodes[0]!.http}/v1/partitions`);
    const local = (
      (await res.json()) as { partitions: { epoch?: number; role?: string; lag?: Record<string, number> }[] }
    ).partitions;
    local.forEach((p, i) => {
      expect(p.epoch).toBe(m.partitions[i]!.epoch);
      if (p.role === 'leader')
        expect(Object.keys(p.lag ?? {}).sort()).toEqual(m.partitions[i]!.replicas.map((r) => r.node).sort());
    });
    // Every node applies the same map.
    for (const n of cluster.nodes) {
      const other = await poll(`${n.id}'s map`, 10_000, () => meta(n));
      expect(other.clusterId).toBe(m.clusterId);
    }
  });

  it('cohort partitions transfer moves a partition leadership through any node, and refuses a non-voter target', async () => {
    const n1 = cluster.nodes[0]!;
    const m = (await meta(n1))!;
    // A partition n1 does not lead, handed to a voter that does not lead it either: n1 redirects to the leader.
    const pick = await poll('a partition led by another node', 10_000, async () => {
      for (const [i, p] of m.partitions.entries()) {
        const leader = await leaderOf(n1, i);
        const to = p.replicas.find((r) => r.node !== leader && r.node !== 'n1')?.node;
        if (leader !== undefined && leader !== 'n1' && to !== undefined) return { i, to };
      }
      return undefined;
    });
    const http = ['--http', `127.0.0.1:${n1.http}`, '--timeout-ms', '10000'];
    const out = await cohort(['partitions', 'transfer', String(pick.i), pick.to, ...http]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`p${pick.i}: ${pick.to} leads`);
    const target = cluster.nodes.find((n) => n.id === pick.to)!;
    expect(await poll('the target reports itself leader', 10_000, () => leaderOf(target, pick.i))).toBe(pick.to);
    // cohort partitions lists it (n1's view: its replica's, or the leader's gossip): once n1's API says so
    // (polled over HTTP: a CLI process per poll is slow on a loaded machine), the command prints it.
    await poll("n1's view names the new leader", 10_000, async () =>
      (await leaderOf(n1, pick.i)) === pick.to ? true : undefined,
    );
    const list = await cohort(['partitions', ...http]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^p${pick.i}\\s+epoch \\d+\\s+leader ${pick.to}\\s`, 'm'));
    // Recorded as the preferred leader, so leader balancing keeps it there.
    expect((await meta(n1))!.partitions[pick.i]!.preferredLeader).toBe(pick.to);
    const outsider = cluster.nodes.find((n) => !m.partitions[pick.i]!.replicas.some((r) => r.node === n.id))!;
    const refused = await cohort(['partitions', 'transfer', String(pick.i), outsider.id, ...http]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(new RegExp(`${outsider.id} is not a voter of partition ${pick.i}`));
  }, 30_000);

  it('cohort partitions move adds the target as a learner, then promotes it and removes the source in one joint change; refuses a target that holds the partition', async () => {
    const n1 = cluster.nodes[0]!;
    const m = (await meta(n1))!;
    const ids = cluster.nodes.map((n) => n.id);
    // From a most loaded node to a least loaded one, so the balance stays as it is (no rebalance follows).
    const byLoad = [...ids].sort((a, b) => held(m, b) - held(m, a));
    let move: { i: number; from: string; to: string } | undefined;
    for (const from of byLoad) {
      for (const to of [...byLoad].reverse()) {
        const i = m.partitions.findIndex(
          (p) => p.replicas.some((r) => r.node === from) && !p.replicas.some((r) => r.node === to),
        );
        if (i >= 0 && held(m, from) > held(m, to)) move = { i, from, to };
        if (move) break;
      }
      if (move) break;
    }
    expect(move).toBeDefined();
    const { i, from, to } = move!;
    const http = ['--http', `127.0.0.1:${n1.http}`, '--timeout-ms', '10000'];
    const holder = m.partitions[i]!.replicas.find((r) => r.node !== from)!.node;
    const refused = await cohort(['partitions', 'move', String(i), '--from', from, '--to', holder, ...http]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain(`${holder} already holds a replica of partition ${i}`);
    const out = await cohort([
      'partitions',
      'move',
      String(i),
      '--from',
      from,
      '--to',
      to,
      '--wait-ms',
      '20000',
      ...http,
    ]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`p${i}: moved to ${to}`);
    const after = (await meta(n1))!;
    const p = after.partitions[i]!;
    expect(p.replicas.map((r) => r.node).sort()).toEqual(
      [...m.partitions[i]!.replicas.map((r) => r.node).filter((x) => x !== from), to].sort(),
    );
    expect(p.replicas.every((r) => r.role === 'voter')).toBe(true);
    // Learner, then the replacement: one epoch each.
    expect(p.epoch).toBe(m.partitions[i]!.epoch + 2);
    expect(p.move).toBeUndefined();
    // The partition's leader made the promotion and the removal one joint change and left it; the target applied it.
    const joint = [
      { type: 'addVoter', nodeId: to },
      { type: 'removeNode', nodeId: from },
    ];
    const lines = (n: ProcNode) =>
      n.log
        .split('\n')
        .filter((l) => l.startsWith('{') && l.includes(`"p${i}"`))
        .map((l) => JSON.parse(l) as { msg: string; group?: string; changes?: unknown });
    const proposed = cluster.nodes.filter((n) =>
      lines(n).some(
        (l) => l.msg === 'joint membership change proposed' && l.group === `p${i}` && equalJson(l.changes, joint),
      ),
    );
    expect(proposed).toHaveLength(1);
    expect(lines(proposed[0]!).some((l) => l.msg === 'joint configuration left' && l.group === `p${i}`)).toBe(true);
    const target = cluster.nodes.find((n) => n.id === to)!;
    expect(
      lines(target).some((l) => l.msg === 'membership changed' && l.group === `p${i}` && equalJson(l.changes, joint)),
    ).toBe(true);
    // A forced replacement of the moved replica: the cluster picks a node that holds none (here the source).
    const notHolder = await cohort(['partitions', 'replace', String(i), from, ...http]);
    expect(notHolder.code).toBe(5);
    expect(notHolder.stderr).toContain(`${from} holds no replica of partition ${i}`);
    const replaced = await cohort(['partitions', 'replace', String(i), to, '--wait-ms', '20000', ...http]);
    expect(replaced.stderr).toBe('');
    expect(replaced.code).toBe(0);
    const picked = /move from \S+ to (\S+) recorded/.exec(replaced.stdout)?.[1];
    expect(picked).toBeDefined();
    expect(p.replicas.map((r) => r.node)).not.toContain(picked);
    expect(replaced.stdout).toContain(`p${i}: moved to ${picked}`);
    // An operator's catch-up of the new replica, asked of any node, done by the partition's leader (which the new
    // replica may be by now, leaders spreading: then it is caught up).
    const caught = await cohort(['partitions', 'catch-up', String(i), picked!, ...http]);
    expect(caught.stderr).toBe('');
    expect(caught.stdout).toMatch(
      new RegExp(
        `^p${i}: ${picked} was \\d+ entries behind .*: (it is caught up|its missing entries are being resent|a snapshot is on its way)`,
      ),
    );
    const notReplica = await cohort(['partitions', 'catch-up', String(i), to, ...http]);
    expect(notReplica.code).toBe(5);
    expect(notReplica.stderr).toContain(`${to} is not a replica of p${i}`);
    const last = (await meta(n1))!.partitions[i]!;
    expect(last.replicas.map((r) => r.node).sort()).toEqual(
      [...p.replicas.map((r) => r.node).filter((x) => x !== to), picked!].sort(),
    );
  }, 90_000);

  it('replaces a SIGKILLed node under write load: 3 live replicas per partition, epochs advanced, no acknowledged write lost', async () => {
    const [n1, , n3] = cluster.nodes as [ProcNode, ProcNode, ProcNode];
    const before = (await meta(n1))!;
    const hit = before.partitions.flatMap((p, i) => (p.replicas.some((r) => r.node === 'n3') ? [i] : []));
    expect(hit.length).toBeGreaterThan(0);
    const writer = plain(n1.resp);
    let stop = false;
    let seq = 0;
    // Four writers through n1 (which stays up): every acknowledged SET must survive the repair.
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          const i = seq++;
          const key = `key:${i}`;
          const value = `v${i}`;
          try {
            if ((await writer.set(key, value)) === 'OK') acked.set(key, value);
          } catch {
            // A write to a partition whose leader died may fail: it was not acknowledged.
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }),
    );
    await poll('some writes acknowledged', 30_000, async () => (acked.size >= 20 ? true : undefined));
    // The partitions n3 leads, as their replicas see them.
    const views = async (n: ProcNode) =>
      (
        (await (await fetch(`http://127.0.0.1:${n.http}/v1/partitions`)).json()) as {
          partitions: { partition: number; leader?: string; local: boolean; lastFailoverMs?: number }[];
        }
      ).partitions;
    const led = (await views(n3)).filter((p) => p.local && p.leader === 'n3').map((p) => p.partition);
    await cluster.kill(n3);
    const after = await poll('every partition back to 3 voters, none on n3', 45_000, async () => {
      const m = await meta(n1);
      return m && settled(m, 3, ['n3']) ? m : undefined;
    });
    const atRepair = acked.size;
    await poll('more writes acknowledged after the repair', 30_000, async () =>
      acked.size >= atRepair + 10 ? true : undefined,
    );
    stop = true;
    await load;
    // Each partition n3 led failed over, and a surviving replica timed it.
    const survivors = cluster.nodes.filter((n) => n !== n3 && n.child?.exitCode === null);
    const seen = (await Promise.all(survivors.map(views))).flat();
    for (const i of led) {
      const timed = seen.filter((p) => p.partition === i && p.local && p.lastFailoverMs !== undefined);
      expect(timed.length, `p${i}: a survivor's lastFailoverMs`).toBeGreaterThan(0);
      for (const p of timed) expect(p.lastFailoverMs).toBeLessThan(30_000);
    }
    // Each repaired partition went through a learner, then one joint change promoting it and removing n3: two
    // epochs at least, recorded by the meta leader (whichever survivor led the meta group then) in that order.
    const recorded = survivors.flatMap((n) =>
      n.log
        .split('\n')
        .filter((l) => l.startsWith('{') && l.includes('"partition reconfigured"'))
        .map(
          (l) => JSON.parse(l) as { partition: number; action: string; node: string; removed?: string; epoch: number },
        ),
    );
    for (const i of hit) {
      const from = before.partitions[i]!.epoch;
      expect(after.partitions[i]!.epoch).toBeGreaterThanOrEqual(from + 2);
      const steps = recorded.filter((r) => r.partition === i && r.epoch > from);
      const promoted = steps.find((r) => r.action === 'replace' && r.removed === 'n3');
      expect(promoted, `p${i}: n3 replaced`).toBeDefined();
      const learner = steps.find((r) => r.action === 'addLearner' && r.node === promoted!.node);
      expect(learner, `p${i}: ${promoted!.node} added as a learner first`).toBeDefined();
      expect(learner!.epoch).toBeLessThan(promoted!.epoch);
      expect(after.partitions[i]!.replicas).toContainEqual({ node: promoted!.node, role: 'voter' });
    }
    const reader = plain(n1.resp);
    const keys = [...acked.keys()];
    for (let at = 0; at < keys.length; at += 200) {
      const slice = keys.slice(at, at + 200);
      const values = await reader.mget(...slice);
      slice.forEach((k, j) => expect(values[j], k).toBe(acked.get(k)));
    }
    // And each partition's live replicas hold them: a read on any node, through its own routing.
    const n4 = cluster.nodes[3]!;
    const other = plain(n4.resp);
    expect(await other.get(keys[0]!)).toBe(acked.get(keys[0]!));
  }, 90_000);

  it('a sixth node joins through a member and ends up with its share of replicas and of leaders', async () => {
    const n1 = cluster.nodes[0]!;
    const n6 = await cluster.addNode('n6', ['--join', `127.0.0.1:${n1.http}`, '--tag', 'zone=b']);
    cluster.start(n6);
    const live = ['n1', 'n2', 'n4', 'n5', 'n6'];
    // 48 replicas over the 5 live nodes: 9 or 10 each.
    const share = Math.floor((PARTITIONS * 3) / live.length);
    const m = await poll('n6 registered and holding replicas, every partition settled', 60_000, async () => {
      const v = await meta(n1);
      return v?.nodes.n6 && held(v, 'n6') >= share && settled(v, 3, ['n3']) ? v : undefined;
    });
    for (const id of live) expect(held(m, id)).toBeGreaterThanOrEqual(share);
    // Leaders are balanced by count too: every node hands the partitions it leads to the voter `assignLeaders`
    // gives them from the map (16 over 5 live nodes, about 3 each; the operator's preferred leader above stays
    // pinned). n6 ends up leading every partition assigned to it, at least 2.
    const leads = await poll('n6 leading every partition assigned to it', 30_000, async () => {
      const v = await meta(n1);
      if (!v || !settled(v, 3, ['n3'])) return undefined;
      const assigned = assignLeaders(v as unknown as MetaState).flatMap((to, i) => (to === 'n6' ? [i] : []));
      const res = await fetch(`http://127.0.0.1:${n6.http}/v1/partitions`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { partitions: { partition: number; leader?: string; local: boolean }[] };
      const mine = body.partitions.filter((p) => p.local && p.leader === 'n6').map((p) => p.partition);
      return assigned.length >= 2 && assigned.every((i) => mine.includes(i)) ? mine : undefined;
    });
    expect(leads.length).toBeGreaterThanOrEqual(2);
    // Every key written under load is read, then written again, by a cluster-aware client (sent to each key's
    // leader, n6 among them) and by a plain client through n6 (forwarded where n6 does not lead).
    const aware = new Cluster([{ host: '127.0.0.1', port: n6.resp }], {
      redisOptions: { connectTimeout: 2000, commandTimeout: 5000 },
      slotsRefreshTimeout: 2000,
    });
    aware.on('error', () => {});
    clients.push(aware);
    const viaN6 = plain(n6.resp);
    const keys = [...acked.keys()];
    expect(keys.length).toBeGreaterThan(0);
    for (let at = 0; at < keys.length; at += 200) {
      const slice = keys.slice(at, at + 200);
      expect(await Promise.all(slice.map((k) => aware.get(k)))).toEqual(slice.map((k) => acked.get(k)));
      expect(await Promise.all(slice.map((k) => aware.set(k, `c:${k}`)))).toEqual(slice.map(() => 'OK'));
      expect(await viaN6.mget(...slice)).toEqual(slice.map((k) => `c:${k}`));
      const w = viaN6.pipeline();
      for (const k of slice) w.set(k, `p:${k}`);
      expect((await w.exec())!.map(([err, v]) => err ?? v)).toEqual(slice.map(() => 'OK'));
      expect(await Promise.all(slice.map((k) => aware.get(k)))).toEqual(slice.map((k) => `p:${k}`));
    }
    // Its tags are registered and gossiped: /v1/members?tag=zone:b finds it.
    expect((m.nodes.n6 as { tags?: Record<string, string> }).tags).toEqual({ zone: 'b' });
    const tagged = await poll('n6 found by its zone tag', 10_000, async () => {
      const res = await fetch(`http://127.0.0.1:${n1.http}/v1/members?tag=zone:b`).catch(() => undefined);
      const body = (await res?.json()) as { members: { id: string }[] } | undefined;
      return body?.members.length ? body.members.map((x) => x.id) : undefined;
    });
    expect(tagged).toEqual(['n6']);
    // Its tags change at run time (PUT /v1/admin/tags): gossiped and recorded in the registry; the tags a
    // node sets itself are refused.
    const put = (tags: Record<string, string>) =>
      fetch(`http://127.0.0.1:${n6.http}/v1/admin/tags`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tags }),
      });
    const set = await put({ zone: 'c', rack: 'r7' });
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ id: 'n6', tags: { zone: 'c', rack: 'r7' } });
    await poll('n6 registered and gossiped in zone c', 10_000, async () => {
      const v = await meta(n1);
      const res = await fetch(`http://127.0.0.1:${n1.http}/v1/members?tag=zone:c`).catch(() => undefined);
      const body = (await res?.json()) as { members: { id: string }[] } | undefined;
      const registered = (v?.nodes.n6 as { tags?: Record<string, string> } | undefined)?.tags;
      return registered?.zone === 'c' && registered.rack === 'r7' && body?.members.some((x) => x.id === 'n6')
        ? true
        : undefined;
    });
    const refused = await put({ leads: 'x', 'cohort.disk': 'full' });
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      error: { code: 'REFUSED', message: expect.stringMatching(/leads, cohort\.disk are set by the node itself/) },
    });
    // The new node serves every key: through its own replicas or forwarding.
    const r = plain(n6.resp);
    await poll('n6 serves reads and writes', 20_000, async () =>
      (await r.set('joined', 'yes').catch(() => '')) === 'OK' ? true : undefined,
    );
    expect(await r.get('key:0')).toBe('p:key:0');
  }, 120_000);

  it('refuses a join through an address that does not answer, a node id in use, another cluster: nothing changes', async () => {
    const [port, ...peers] = (await freePorts(4)) as number[];
    let next = 0;
    const base = (id: string, dir: string) => [
      '--id',
      id,
      '--data-dir',
      dir,
      '--listen',
      `127.0.0.1:${peers[next++]}`,
      '--resp',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
    ];
    const n1 = cluster.nodes[0]!;
    const nowhere = join(cluster.root, 'x1');
    const taken = join(cluster.root, 'x2');
    const other = join(cluster.root, 'x3');
    mkdirSync(other, { recursive: true });
    writeFileSync(
      join(other, 'partitions.json'),
      JSON.stringify({ partitions: PARTITIONS, replicationFactor: 3, replicas: [], clusterId: 'another-cluster' }),
    );
    // Three processes start at once beside the cluster's six: on a loaded machine loading them takes most of the time.
    const [r1, r2, r3] = await Promise.all([
      runToExit([...base('x1', nowhere), '--join', `127.0.0.1:${port}`], 40_000),
      runToExit([...base('n2', taken), '--join', `127.0.0.1:${n1.http}`], 40_000),
      runToExit([...base('x3', other), '--join', `127.0.0.1:${n1.http}`], 40_000),
    ]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/no member answers there/);
    expect(existsSync(join(nowhere, 'partitions.json'))).toBe(false);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/node id n2 is already in use/);
    expect(existsSync(join(taken, 'partitions.json'))).toBe(false);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/belongs to cluster another-cluster/);
    const m = (await meta(n1))!;
    expect(Object.keys(m.nodes).sort()).toEqual(['n1', 'n2', 'n3', 'n4', 'n5', 'n6']);
  }, 60_000);
  it('cohort leave moves every replica off a node', async () => {
    const n1 = cluster.nodes[0]!;
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [...HARNESS_RUNTIME_FLAGS, CLI, 'leave', 'n2', '--http', `127.0.0.1:${n1.http}`, '--wait-ms', '40000'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.once('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/n2 holds no replica any more/);
    const m = await poll('every partition settled without n2', 20_000, async () => {
      const v = await meta(n1);
      return v && settled(v, 3, ['n2', 'n3']) ? v : undefined;
    });
    expect(held(m, 'n2')).toBe(0);
    // Every key is still served.
    expect(await plain(n1.resp).get('key:0')).toBe('p:key:0');
  }, 60_000);

  it('flags a partition stuck in GET /v1/partitions when its proposals wait with no commit progress', async () => {
    const n1 = cluster.nodes[0]!;
    // The tests before move replicas: wait until none is moving (a learner cannot take the leadership). Placement
    // may still be evening out the replica counts between two moves, and a move of this partition after the map
    // is read would leave it a quorum without the two nodes killed below (a CI run did so: never stuck). So the
    // map must also have stayed the same for a few of placement's rounds.
    let seen = '';
    let since = Date.now();
    const m = await poll('every partition settled on 3 voters, the map unchanged for 3 s', 40_000, async () => {
      const v = await meta(n1);
      if (v === undefined || !settled(v, 3)) {
        seen = '';
        return undefined;
      }
      const now = JSON.stringify(v.partitions.map((p) => [p.epoch, p.replicas]));
      if (now !== seen) {
        seen = now;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= 3000 ? v : undefined;
    });
    const i = m.partitions.findIndex((p) => p.replicas.some((r) => r.node === 'n1' && r.role === 'voter'));
    const others = m.partitions[i]!.replicas.map((r) => r.node).filter((id) => id !== 'n1');
    const http = ['--http', `127.0.0.1:${n1.http}`, '--timeout-ms', '10000'];
    const transferred = await cohort(['partitions', 'transfer', String(i), 'n1', ...http]);
    expect(transferred.code, transferred.stderr).toBe(0);
    const status = async () => {
      const res = await fetch(`http://127.0.0.1:${n1.http}/v1/partitions`, { signal: AbortSignal.timeout(2000) });
      return (
        (await res.json()) as {
          partitions: { stuck?: boolean; replicas: string[]; slots: { first: number; last: number } }[];
        }
      ).partitions[i]!;
    };
    const { slots } = await status();
    expect((await status()).stuck).toBe(false);
    // Writes to the partition through its leader n1 while its two other replicas are killed: one is appended, never committed.
    const r = plain(n1.resp);
    const keys: string[] = [];
    for (let k = 0; keys.length < 4; k++) {
      const slot = Number(await r.call('CLUSTER', 'KEYSLOT', `stuck:${k}`));
      if (slot >= slots.first && slot <= slots.last) keys.push(`stuck:${k}`);
    }
    let stop = false;
    // A failed write waits before the next: once the connection is closed every command fails at once, and a
    // loop of those would never let a timer run (the test's own deadline included) and hang the test run.
    const load = (async () => {
      for (let k = 0; !stop; k++)
        await r.set(keys[k % keys.length]!, String(k)).catch(() => new Promise((w) => setTimeout(w, 20)));
    })();
    try {
      // The nodes killed are the partition's other voters as n1's replica has them now.
      expect([...(await status()).replicas].sort()).toEqual(['n1', ...others].sort());
      await Promise.all(others.map((id) => cluster.kill(cluster.nodes.find((n) => n.id === id)!)));
      await poll(`partition ${i} stuck on n1`, 15_000, async () => ((await status()).stuck ? true : undefined));
    } finally {
      stop = true;
    }
    await load;
  }, 80_000);
});
