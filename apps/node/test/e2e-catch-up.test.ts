import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster as Cluster, type ProcCluster, poll } from './helpers/processes.js';

const clients: Redis[] = [];
let cluster: ProcCluster | undefined;

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.killAll();
});

describe('a follower the log was compacted past', () => {
  it('catches up by a streamed snapshot while writes continue, to the same rows as the leader', async (ctx) => {
    // Small snapshot thresholds from the config flags, so compaction happens within a second of writes.
    cluster = await Cluster.create(3, [
      '--heartbeat-ms',
      '50',
      '--election-timeout-ms',
      '300',
      '--snapshot-entries',
      '50',
      '--snapshot-bytes',
      '65536',
    ]);
    const c = cluster;
    ctx.onTestFailed(() => {
      for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
    });
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const follower = c.nodes.find((n) => n !== leader)!;
    const writer = new Redis({ port: leader.resp, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    clients.push(writer);

    // Writes run the whole time: 4 in flight, each a new key.
    let written = 0;
    let failed = 0;
    let stop = false;
    const writes = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = w; !stop; i += 4) {
          if ((await writer.set(`w${i}`, 'x'.repeat(100)).catch(() => null)) === 'OK') written++;
          else failed++;
        }
      }),
    );
    try {
      await poll('100 writes', 10_000, async () => (written >= 100 ? true : undefined));
      await c.kill(follower);
      const behind = written;
      // The leader compacts past what the follower has: catching up now takes a snapshot.
      await poll('the leader to compact its log', 15_000, async () =>
        (leader.log.match(/log compacted behind a snapshot marker/g)?.length ?? 0) >= 3 && written > behind + 300
          ? true
          : undefined,
      );
      c.start(follower);
      const writtenAtRestart = written;
      const target = (await c.status(leader))!.commit;
      await poll(`${follower.id} to apply ${target}`, 20_000, async () => {
        const s = await c.status(follower);
        return s && s.applied >= target ? s : undefined;
      });
      expect(follower.log).toMatch(/installed a streamed snapshot/);
      // Writes went on while the follower caught up.
      expect(written).toBeGreaterThan(writtenAtRestart);
    } finally {
      stop = true;
      await writes;
    }
    expect(failed).toBe(0);

    // The follower holds the same rows as the leader once it applied the last write.
    const last = (await c.status(leader))!;
    const caughtUp = await poll(`${follower.id} to apply ${last.commit}`, 10_000, async () => {
      const s = await c.status(follower);
      return s && s.applied >= last.commit ? s : undefined;
    });
    expect(caughtUp.keys).toBe(written);
    expect(last.keys).toBe(written);
  }, 60_000);
});
