import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { HARNESS_RUNTIME_FLAGS } from '../src/runtime-flags.js';
import { CLI, ProcCluster, type ProcNode, poll } from './helpers/processes.js';

/** `GET /v1/meta`, the part read here. */
interface Meta {
  clusterId: string;
  /** The meta group's leader, when known. */
  leader?: string;
  nodes: Record<string, { http?: string; startedAt: number }>;
  partitions: { replicas: { node: string; role: 'voter' | 'learner' }[]; epoch: number }[];
}

/** `GET /v1/partitions`, the part read here. */
interface PartitionView {
  partition: number;
  slots: { first: number; last: number };
  local: boolean;
  leader?: string;
  commit?: number;
  applied?: number;
}

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

async function get<T>(node: ProcNode, path: string): Promise<T | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.http}${path}`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

const meta = (n: ProcNode) => get<Meta>(n, '/v1/meta');
const views = async (n: ProcNode) => (await get<{ partitions: PartitionView[] }>(n, '/v1/partitions'))?.partitions;

const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

describe('unsafe recovery of a partition that lost its quorum for good, then Redis Cluster redirects on it', () => {
  it('cohort partitions recover rebuilds it from its survivor: writes resume, what the survivor held reads back, placement restores 3 replicas; a cluster-aware client gets MOVED, ASK during a hand-over, and is served after ASKING', async (ctx) => {
    // 5 nodes, 5 partitions, 3 replicas: p3 lives on n4, n5 and n1; the meta group's voters are n1, n2, n3.
    const c = await ProcCluster.create(5, [
      '--partitions',
      '5',
      '--replicas',
      '3',
      '--heartbeat-ms',
      '50',
      '--election-timeout-ms',
      '300',
      '--swim-probe-ms',
      '200',
      // Long enough that a node slow to start on a busy machine is not replaced before the test begins.
      '--dead-grace',
      '3000',
    ]);
    cluster = c;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const [n1, n2, , n4, n5] = c.nodes as [ProcNode, ProcNode, ProcNode, ProcNode, ProcNode];
    const before = await poll('the map founded and every node registered', 60_000, async () => {
      const m = await meta(n1);
      return m?.clusterId && Object.values(m.nodes).every((n) => n.http !== undefined && n.startedAt > 0)
        ? m
        : undefined;
    });
    expect(before.partitions[3]!.replicas.map((r) => r.node).sort()).toEqual(['n1', 'n4', 'n5']);

    // Keys of p3, written through n1 and acknowledged.
    const client = new Redis({ port: n1.resp, host: '127.0.0.1', maxRetriesPerRequest: 0, commandTimeout: 3000 });
    client.on('error', () => {});
    clients.push(client);
    const { slots } = (await views(n1))!.find((p) => p.partition === 3)!;
    const keys: string[] = [];
    for (let k = 0; keys.length < 22; k++) {
      const slot = Number(await client.call('CLUSTER', 'KEYSLOT', `r:${k}`));
      if (slot >= slots.first && slot <= slots.last) keys.push(`r:${k}`);
    }
    await poll('p3 takes writes', 30_000, async () =>
      (await client.set(keys[0]!, 'v0').catch(() => '')) === 'OK' ? true : undefined,
    );
    // The last key of p3 is written only after the recovery.
    const after = keys.pop()!;
    // Written while the partition has no quorum: never acknowledged; it may still apply if it reached the survivor's log.
    const probe = keys.pop()!;
    for (const [i, k] of keys.entries()) expect(await client.set(k, `v${i}`)).toBe('OK');
    // n1 holds them all before the others die (a quorum of n4 and n5 alone could have acknowledged them).
    await poll('n1 applied what p3 committed', 10_000, async () => {
      const mine = (await views(n1))?.find((p) => p.partition === 3);
      const leader = c.nodes.find((n) => n.id === mine?.leader);
      const theirs = leader && (await views(leader))?.find((p) => p.partition === 3);
      return mine?.applied !== undefined && theirs?.commit !== undefined && mine.applied >= theirs.commit
        ? true
        : undefined;
    });

    await Promise.all([c.kill(n4), c.kill(n5)]);
    await expect(client.set(probe, 'unacknowledged')).rejects.toThrow();

    const http = ['--http', `127.0.0.1:${n2.http}`, '--timeout-ms', '20000'];
    // Without --yes (and no terminal to ask on): the plan, and nothing done. Once SWIM finds n4 and n5 dead.
    const dry = await poll('the plan of the recovery', 15_000, async () => {
      const out = await cohort(['partitions', 'recover', '3', ...http]);
      return out.stdout.includes('UNSAFE RECOVERY') ? out : undefined;
    });
    expect(dry.code).toBe(5);
    expect(dry.stdout).toMatch(/lost replicas: +n4, n5/);
    expect(dry.stdout).toMatch(/rebuild from: +n1 \(last index \d+, applied \d+, commit \d+\)/);
    expect(dry.stdout).toMatch(
      /DATA LOSS: +writes the lost replicas \(n4, n5\) acknowledged after index \d+ of n1's log may be gone/,
    );
    expect(dry.stderr).toMatch(/not done: run again with --yes/);
    expect((await meta(n1))!.partitions[3]!.epoch).toBe(before.partitions[3]!.epoch);

    // Refused with a closed reason, nothing changed: a partition that still has a quorum (p1 on n2, n3, n4), a
    // survivor that is dead.
    const recover = async (body: object) => {
      const res = await fetch(`http://127.0.0.1:${n2.http}/v1/admin/partitions/recover`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return {
        status: res.status,
        error: ((await res.json()) as { error: { reason: string; message: string } }).error,
      };
    };
    const quorum = await recover({ partition: 1, confirm: true });
    expect(quorum.status).toBe(409);
    expect(quorum.error.reason).toBe('QUORUM_ALIVE');
    expect(quorum.error.message).toMatch(/^partition 1 still has a quorum of voters not known dead/);
    const dead = await recover({ partition: 3, from: 'n5', confirm: true });
    expect(dead.status).toBe(409);
    expect(dead.error.reason).toBe('SURVIVOR_NOT_LIVE');
    expect(dead.error.message).toMatch(/^n5 is not a live replica of partition 3/);

    // Asked of n2, carried out by n1.
    const done = await cohort(['partitions', 'recover', '3', '--yes', ...http]);
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/p3: rebuilt from n1, its only voter now \(term \d+, epoch \d+\)/);
    expect(n1.log).toMatch(/"level":40,.*UNSAFE RECOVERY/);

    let refusal = '';
    await poll('p3 takes writes again', 10_000, async () =>
      (await client.set(after, 'yes').catch((err: Error) => {
        refusal = err.message;
        return '';
      })) === 'OK'
        ? true
        : undefined,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the last answer: ${refusal}`);
    });
    for (const [i, k] of keys.entries()) expect(await client.get(k)).toBe(`v${i}`);

    // Placement adds replicas back: the live nodes n1, n2 and n3.
    const repaired = await poll('p3 back to 3 live voters', 30_000, async () => {
      const m = await meta(n1);
      const p = m?.partitions[3];
      const nodes = p?.replicas
        .filter((r) => r.role === 'voter')
        .map((r) => r.node)
        .sort();
      return nodes?.join() === 'n1,n2,n3' && p!.replicas.length === 3 ? m : undefined;
    });
    expect(repaired.partitions[3]!.epoch).toBeGreaterThan(before.partitions[3]!.epoch + 1);
    // Each new replica serves the data: a read through n3 (its own replica, or forwarded to the leader).
    const other = new Redis({
      port: c.nodes[2]!.resp,
      host: '127.0.0.1',
      maxRetriesPerRequest: 0,
      commandTimeout: 3000,
    });
    clients.push(other);
    expect(await other.get(keys[5]!)).toBe('v5');
    expect(await other.get(after)).toBe('yes');
    expect([null, 'unacknowledged']).toContain(await other.get(probe));

    // A cluster-aware connection (it asked CLUSTER SLOTS) to a node not leading p3 is sent to the leader with
    // MOVED; after ASKING, its next command is served where it arrived.
    const aware = await poll('a cluster-aware connection answered MOVED for p3', 10_000, async () => {
      const leader = (await views(n1))?.find((p) => p.partition === 3)?.leader;
      const node = c.nodes.slice(0, 3).find((n) => n.id !== leader);
      if (leader === undefined || node === undefined) return undefined;
      const r = new Redis({ port: node.resp, host: '127.0.0.1', maxRetriesPerRequest: 0, commandTimeout: 3000 });
      clients.push(r);
      await r.call('CLUSTER', 'SLOTS');
      const moved = await r.call('GET', keys[1]!).then(
        () => '',
        (err: Error) => err.message,
      );
      return /^MOVED \d+ 127\.0\.0\.1:\d+$/.test(moved) ? r : undefined;
    });
    expect(await aware.call('ASKING')).toBe('OK');
    expect(await aware.call('GET', keys[1]!)).toBe('v1');

    // While p3's leader hands its leadership to a voter that cannot take it yet (stopped), a cluster-aware
    // connection to the leader is sent there once with ASK; after ASKING, that voter serves it once it runs.
    const leaderId = (await views(n1))!.find((p) => p.partition === 3)!.leader!;
    const leader = c.nodes.find((n) => n.id === leaderId)!;
    // Not the meta group's leader either: a hand-over first records the preferred leader in the meta group, which
    // a stopped meta leader holds up for an election, by when the target is known unreachable and refused (a CI
    // failure: 503 "no leader is known", then 409 "not reachable", then "declared dead").
    const metaLeader = await poll("the meta group's leader", 10_000, async () => (await meta(n1))?.leader);
    const target = c.nodes.slice(0, 3).find((n) => n.id !== leaderId && n.id !== metaLeader)!;
    const atLeader = new Redis({ port: leader.resp, host: '127.0.0.1', maxRetriesPerRequest: 0, commandTimeout: 5000 });
    clients.push(atLeader);
    await atLeader.call('CLUSTER', 'SLOTS');
    target.child!.kill('SIGSTOP');
    let asked: string;
    const transfers: Promise<unknown>[] = [];
    try {
      // A hand-over to a voter that does not answer is given up after an election timeout (300 ms here):
      // ask again while polling, so a loaded machine still meets one.
      let lastTransfer = 0;
      // What the hand-overs and the reads answered, for the message of a timeout: the last few in order, and
      // every distinct answer with when it first came and how often (one CI failure's first and last few alone
      // left out what the hand-overs answered in between).
      const seen: string[] = [];
      const kinds = new Map<string, { first: number; n: number }>();
      const since = Date.now();
      const note = (what: string) => {
        const at = Date.now() - since;
        const answer = what.slice(0, 200);
        seen.push(`+${at} ms ${answer}`);
        const kind = kinds.get(answer);
        if (kind) kind.n++;
        else kinds.set(answer, { first: at, n: 1 });
      };
      asked = await poll('ASK while the leadership is handed over', 15_000, async () => {
        if (Date.now() - lastTransfer > 250) {
          lastTransfer = Date.now();
          transfers.push(
            fetch(`http://127.0.0.1:${leader.http}/v1/admin/partitions/transfer-leader`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ partition: 3, node: target.id }),
            }).then(
              async (res) => note(`hand-over: ${res.status} ${await res.text()}`),
              (e: Error) => note(`hand-over: ${e.message}`),
            ),
          );
        }
        const err = await atLeader.call('GET', keys[2]!).then(
          () => undefined,
          (e: Error) => e.message,
        );
        note(`GET: ${err ?? 'served'}`);
        return err?.startsWith('ASK') ? err : undefined;
      }).catch((err: Error) => {
        const all = [...kinds].map(([answer, k]) => `${k.n} x from +${k.first} ms: ${answer}`).join(' | ');
        throw new Error(`${err.message}; answers: ${all}; last: ${seen.slice(-8).join(' | ')}`);
      });
      target.child!.kill('SIGCONT');
      await Promise.all(transfers);
    } finally {
      target.child!.kill('SIGCONT');
    }
    const slot = Number(await atLeader.call('CLUSTER', 'KEYSLOT', keys[2]!));
    expect(asked).toBe(`ASK ${slot} 127.0.0.1:${target.resp}`);
    const atTarget = new Redis({ port: target.resp, host: '127.0.0.1', maxRetriesPerRequest: 0, commandTimeout: 5000 });
    clients.push(atTarget);
    await atTarget.call('CLUSTER', 'SLOTS');
    expect(await atTarget.call('ASKING')).toBe('OK');
    expect(await atTarget.call('GET', keys[2]!)).toBe('v2');
  }, 120_000);
});
