import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster as Cluster, type ProcCluster, type ProcNode } from './helpers/processes.js';

const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

/** One HTTP INCR with an Idempotency-Key; resolves with the new value, or undefined when it failed or timed out. */
async function httpIncr(node: ProcNode, key: string, idempotencyKey: string): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.http}/v1/kv/${key}/incr`, {
      method: 'POST',
      headers: { 'idempotency-key': idempotencyKey },
      signal: AbortSignal.timeout(4000),
    });
    if (!res.ok) return undefined;
    return ((await res.json()) as { value: string }).value;
  } catch {
    return undefined;
  }
}

describe('writes retried across a leader SIGKILL', () => {
  it('apply once: 1,000 concurrent INCRs from RESP sessions and HTTP Idempotency-Keys give exactly 1,000, and 8 connections’ unpipelined INCRs 40 each', async (ctx) => {
    cluster = await Cluster.create(3, ['--heartbeat-ms', '50', '--election-timeout-ms', '300', '--log-level', 'info']);
    const c = cluster;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const survivors = c.nodes.filter((n) => n !== leader);

    // 600 INCRs over RESP, on connections to the nodes that survive: their forwarded writes retry in the session.
    const resp = survivors.flatMap((n) =>
      [0, 1].map(() => {
        const r = new Redis({ port: n.resp, host: '127.0.0.1', maxRetriesPerRequest: 0 });
        clients.push(r);
        return r;
      }),
    );
    // 400 INCRs over HTTP, sent to the leader; a failure is retried with the same key against another node.
    // The leader dies once 300 of the 1,000 are answered, while both kinds of client have writes in flight.
    let done = 0;
    let killed: Promise<void> | undefined;
    const answered = (n: number): void => {
      done += n;
      if (done >= 300) killed ??= c.kill(leader);
    };
    const httpWorker = async (w: number): Promise<void> => {
      for (let i = w; i < 400; i += 16) {
        const key = `incr-${i}`;
        let target = leader;
        for (let attempt = 0; ; attempt++) {
          if ((await httpIncr(target, 'counter', key)) !== undefined) break;
          if (attempt >= 20) throw new Error(`HTTP INCR ${key} failed 20 times`);
          target = survivors[attempt % 2]!;
        }
        answered(1);
      }
    };
    const respWork = resp.map(async (r) => {
      for (let wave = 0; wave < 15; wave++) {
        const replies = await Promise.all(Array.from({ length: 10 }, () => r.incr('counter')));
        expect(replies.every((v) => typeof v === 'number')).toBe(true);
        answered(10);
      }
    });
    // And 8 connections sending one INCR at a time, each of a counter of its own, 40 times: the survivors propose
    // those arriving together as entries in a session of their own (see merged-writes.ts), resent whole too.
    const single = survivors.flatMap((n) =>
      [0, 1, 2, 3].map(() => {
        const r = new Redis({ port: n.resp, host: '127.0.0.1', maxRetriesPerRequest: 0 });
        clients.push(r);
        return r;
      }),
    );
    const singleWork = single.map(async (r, i) => {
      const replies: number[] = [];
      for (let k = 0; k < 40; k++) {
        replies.push(await r.incr(`solo:${i}`));
        answered(1);
      }
      // Each applied once, in order: 1 to 40.
      expect(replies).toEqual(Array.from({ length: 40 }, (_, k) => k + 1));
    });
    await Promise.all([...respWork, ...singleWork, ...Array.from({ length: 16 }, (_, w) => httpWorker(w))]);
    await killed;
    expect(leader.child?.signalCode).toBe('SIGKILL');

    const reader = new Redis({ port: survivors[0]!.resp, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    clients.push(reader);
    expect(await reader.get('counter')).toBe('1000');
    expect(await reader.mget(...single.map((_, i) => `solo:${i}`))).toEqual(single.map(() => '40'));
    // The RESP waves of 10 arrive together: the survivors proposed them as merged entries (see merged-writes.ts),
    // which the kill's retries resent whole.
    for (const n of survivors) {
      const text = await (
        await fetch(`http://127.0.0.1:${n.http}/metrics`, { signal: AbortSignal.timeout(2000) })
      ).text();
      expect(Number(/^cohort_resp_merged_writes_total (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
      expect(Number(/^cohort_merged_connection_entries_total (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    }
  }, 60_000);
});
