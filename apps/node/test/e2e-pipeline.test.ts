import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster as Cluster, type ProcCluster, type ProcNode, poll, redisClient } from './helpers/processes.js';

const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

const redis = (node: ProcNode): Redis => redisClient(node, clients);

/** The leader's Raft host counters, from its Prometheus metrics. */
async function counters(node: ProcNode): Promise<{ rounds: number; storeWrites: number; entries: number }> {
  const text = await (
    await fetch(`http://127.0.0.1:${node.http}/metrics`, { signal: AbortSignal.timeout(2000) })
  ).text();
  const read = (name: string): number => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`metric ${name} missing`);
    return Number(m[1]);
  };
  return {
    rounds: read('cohort_raft_ready_rounds_total'),
    storeWrites: read('cohort_raft_store_writes_total'),
    entries: read('cohort_raft_entries_persisted_total'),
  };
}

/** The pipelined writes a node merged and the entries they became, from its metrics. */
async function merged(node: ProcNode): Promise<{ writes: number; entries: number }> {
  const text = await (
    await fetch(`http://127.0.0.1:${node.http}/metrics`, { signal: AbortSignal.timeout(2000) })
  ).text();
  const read = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { writes: read('cohort_resp_merged_writes_total'), entries: read('cohort_resp_merged_entries_total') };
}

/** Entries holding unpipelined writes of several connections that `nodes` proposed, from their metrics. */
async function connectionEntries(nodes: ProcNode[]): Promise<number> {
  let n = 0;
  for (const node of nodes) {
    const text = await (
      await fetch(`http://127.0.0.1:${node.http}/metrics`, { signal: AbortSignal.timeout(2000) })
    ).text();
    n += Number(/^cohort_merged_connection_entries_total (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
  }
  return n;
}

type Cmd = ['set', string, string] | ['incr', string] | ['get', string];

/**
 * 200 commands: runs of SETs and INCRs, each followed by a GET of a key the
 * run wrote (or of a key no write touches yet), and the replies a server
 * running them one by one gives.
 */
function mixed(prefix: string): { cmds: Cmd[]; expected: (string | number | null)[] } {
  const model = new Map<string, string>();
  const cmds: Cmd[] = [];
  const expected: (string | number | null)[] = [];
  for (let i = 0; cmds.length < 200; i++) {
    const key = `${prefix}:k${i % 13}`;
    let c: Cmd;
    if (i % 10 === 9) c = ['get', i % 20 === 19 ? `${prefix}:n` : key];
    else if (i % 3 === 0) c = ['incr', `${prefix}:n`];
    else c = ['set', key, `v${i}`];
    cmds.push(c);
    if (c[0] === 'set') {
      model.set(c[1], c[2]);
      expected.push('OK');
    } else if (c[0] === 'incr') {
      const n = Number(model.get(c[1]) ?? '0') + 1;
      model.set(c[1], String(n));
      expected.push(n);
    } else expected.push(model.get(c[1]) ?? null);
  }
  return { cmds, expected };
}

async function run(r: Redis, cmds: Cmd[]): Promise<unknown[]> {
  const p = r.pipeline();
  for (const c of cmds) {
    if (c[0] === 'set') p.set(c[1], c[2]);
    else if (c[0] === 'incr') p.incr(c[1]);
    else p.get(c[1]);
  }
  const results = (await p.exec()) ?? [];
  return results.map(([err, v]) => (err ? `error: ${err.message}` : v));
}

describe('pipelined RESP commands on three cohort processes', () => {
  it('come back in order with read-your-writes, each run of writes one log entry, in far fewer Raft rounds than commands', async (ctx) => {
    // A slow heartbeat keeps its own rounds out of the counts.
    cluster = await Cluster.create(3, ['--heartbeat-ms', '200', '--election-timeout-ms', '1000']);
    const c = cluster;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const follower = c.nodes.find((n) => n !== leader)!;
    // The meta group founds the cluster and registers each node in entries of its own: over before counting.
    await poll('every node registered in the meta group', 30_000, async () => {
      const res = await fetch(`http://127.0.0.1:${leader.http}/v1/meta`).catch(() => undefined);
      const m = (await res?.json()) as { nodes?: Record<string, { startedAt: number }> } | undefined;
      const nodes = Object.values(m?.nodes ?? {});
      return nodes.length === 3 && nodes.every((n) => n.startedAt > 0) ? true : undefined;
    });

    for (const [via, name] of [
      [leader, 'leader'],
      [follower, 'follower'],
    ] as const) {
      const r = redis(via);
      await r.ping();
      const { cmds, expected } = mixed(name);
      const before = await counters(leader);
      const mergedBefore = await merged(via);
      const replies = await run(r, cmds);
      const after = await counters(leader);
      expect(replies).toEqual(expected);
      const writes = cmds.filter((x) => x[0] !== 'get').length;
      const runs = cmds.filter((x, i) => x[0] !== 'get' && (i === 0 || cmds[i - 1]![0] === 'get')).length;
      // Each run of writes is one log entry (an EXEC of them, see merged-writes.ts), merged by the node that
      // took it; a run the connection's reads cut in two (its halves in separate batches) makes two.
      const m = await merged(via);
      const mergedWrites = m.writes - mergedBefore.writes;
      const entries = after.entries - before.entries;
      expect(entries).toBe(m.entries - mergedBefore.entries + (writes - mergedWrites));
      expect(entries).toBeGreaterThanOrEqual(runs);
      expect(entries).toBeLessThanOrEqual(runs + 5);
      process.stdout.write(
        `pipeline of ${cmds.length} (${writes} writes in ${runs} runs) via the ${name}: ${after.rounds - before.rounds} Ready rounds, ${after.storeWrites - before.storeWrites} store writes on the leader\n`,
      );
      // One command at a time takes two or more rounds each; here each run of writes shares its rounds.
      expect(after.storeWrites - before.storeWrites).toBeLessThanOrEqual(runs + 5);
      expect(after.rounds - before.rounds).toBeLessThan(cmds.length / 2);
    }

    // A write over a limit (small enough to be merged) is refused alone: the writes around it still share an
    // entry and apply.
    const r = redis(follower);
    const longKey = 'k'.repeat(64 * 1024 + 1);
    const m0 = await merged(follower);
    const results = await r
      .pipeline()
      .set('lim:a', '1')
      .set(longKey, 'v')
      .set('lim:b', '2')
      .set('lim:e', '1', 'EX', 9007199254740)
      .incr('lim:n')
      .exec();
    expect(results?.map(([err, v]) => (err ? (err as Error).message.split(' (')[0] : v))).toEqual([
      'OK',
      'ERR key of 65537 bytes exceeds the limit of 65536 bytes',
      'OK',
      // A deadline past what a JavaScript number holds exactly, in Redis' words; its neighbours apply.
      "ERR invalid expire time in 'set' command",
      1,
    ]);
    expect(await r.mget('lim:a', 'lim:b', 'lim:n')).toEqual(['1', '2', '1']);
    expect(await r.exists(longKey)).toBe(0);
    // Which of them share an entry depends on how the pipeline's bytes were read; some did.
    const m1 = await merged(follower);
    expect(m1.entries - m0.entries).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('unpipelined writes of many connections share entries, each answered as it would be alone, and apply once', async () => {
    const c = cluster!;
    const leader = await c.leader(c.nodes, 10_000);
    const follower = c.nodes.find((n) => n !== leader)!;
    // Sixteen connections, half to the leader and half through a follower, each sending one command at a time.
    const conns = Array.from({ length: 16 }, (_, i) => redis(i % 2 === 0 ? leader : follower));
    await Promise.all(conns.map((r) => r.ping()));
    const before = await connectionEntries([leader, follower]);
    const incrs: number[] = [];
    const written = new Map<string, string>();
    let round = 0;
    // Each round, every connection SETs a key of its own and INCRs one shared counter, one after the other,
    // all connections at once: until some of their writes shared an entry.
    await poll('unpipelined writes of several connections sharing an entry', 30_000, async () => {
      round++;
      await Promise.all(
        conns.map(async (r, i) => {
          const key = `conn:${round}:${i}`;
          expect(await r.set(key, `v${round}.${i}`)).toBe('OK');
          written.set(key, `v${round}.${i}`);
          incrs.push(await r.incr('conn:n'));
        }),
      );
      return (await connectionEntries([leader, follower])) > before ? true : undefined;
    });
    // Every INCR got an answer of its own: 1 to n, each once; the counter is n.
    expect([...incrs].sort((a, b) => a - b)).toEqual(incrs.map((_, i) => i + 1));
    const check = redis(follower);
    expect(await check.get('conn:n')).toBe(String(incrs.length));
    const keys = [...written.keys()];
    expect(await check.mget(...keys)).toEqual(keys.map((k) => written.get(k)));
    process.stdout.write(`connection merge: ${round} round(s) of 16 connections until some shared an entry\n`);
  }, 60_000);
});
