import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcCluster as Cluster, type ProcCluster, type ProcNode, poll } from './helpers/processes.js';

const clients: Redis[] = [];
const clusters: ProcCluster[] = [];

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(clusters.map((c) => c.killAll()));
});

// What the Raft host logs: the leader after compacting, the follower after installing a streamed snapshot.
const COMPACTED = /snapshot taken: log compacted behind a snapshot marker/g;
const INSTALLED = /restored a snapshot from the leader: installed a streamed snapshot/;

/** Small snapshot thresholds from the config flags, so compaction happens within a second of writes. */
const FAST_SNAPSHOTS = [
  '--heartbeat-ms',
  '50',
  '--election-timeout-ms',
  '300',
  '--snapshot-entries',
  '50',
  '--snapshot-bytes',
  '65536',
];

/** Four writers setting a new key each (`<prefix><n>`), until `stop()`; counts what succeeded and what failed. */
function writeContinuously(
  leader: ProcNode,
  prefix = 'w',
): {
  written: () => number;
  failed: () => number;
  stop: () => Promise<void>;
} {
  let written = 0;
  let failed = 0;
  let stop = false;
  const writes = Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      // A connection each, one write at a time (writes of the four that arrive together may share an entry).
      const writer = new Redis({ port: leader.resp, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      clients.push(writer);
      for (let i = w; !stop; i += 4) {
        if ((await writer.set(`${prefix}${i}`, 'x'.repeat(100)).catch(() => null)) === 'OK') written++;
        else failed++;
      }
    }),
  );
  return {
    written: () => written,
    failed: () => failed,
    stop: async () => {
      stop = true;
      await writes;
    },
  };
}

function dumpLogsOnFailure(ctx: { onTestFailed: (fn: () => void) => void }, c: ProcCluster): void {
  ctx.onTestFailed(() => {
    for (const n of c.nodes) process.stderr.write(`--- ${n.id} log tail ---\n${n.log.slice(-3000)}\n`);
  });
}

/** Polls until `node` applied what `leader` had committed when called. */
async function appliedAll(c: ProcCluster, leader: ProcNode, node: ProcNode, ms: number) {
  const target = (await c.status(leader))!.commit;
  return poll(`${node.id} to apply ${target}`, ms, async () => {
    const s = await c.status(node);
    return s && s.applied >= target ? s : undefined;
  });
}

describe('a follower the log was compacted past', () => {
  it('catches up by a streamed snapshot while writes continue, to the same rows as the leader', async (ctx) => {
    const c = await Cluster.create(3, FAST_SNAPSHOTS);
    clusters.push(c);
    dumpLogsOnFailure(ctx, c);
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const follower = c.nodes.find((n) => n !== leader)!;

    // Writes run the whole time: 4 in flight, each a new key.
    const w = writeContinuously(leader);
    try {
      await poll('100 writes', 10_000, async () => (w.written() >= 100 ? true : undefined));
      await c.kill(follower);
      const behind = w.written();
      // The leader compacts past what the follower has: catching up now takes a snapshot.
      await poll('the leader to compact its log', 15_000, async () =>
        (leader.log.match(COMPACTED)?.length ?? 0) >= 3 && w.written() > behind + 300 ? true : undefined,
      );
      c.start(follower);
      const writtenAtRestart = w.written();
      await appliedAll(c, leader, follower, 20_000);
      expect(follower.log).toMatch(INSTALLED);
      // Writes went on while the follower caught up.
      expect(w.written()).toBeGreaterThan(writtenAtRestart);
    } finally {
      await w.stop();
    }
    expect(w.failed()).toBe(0);

    // The follower holds the same rows as the leader once it applied the last write.
    const caughtUp = await appliedAll(c, leader, follower, 10_000);
    expect(caughtUp.keys).toBe(w.written());
    expect((await c.status(leader))!.keys).toBe(w.written());
  }, 60_000);
});

describe('a follower whose data directory was wiped', () => {
  it('is found to have lost what it acknowledged, and catches up by snapshot while writes continue', async (ctx) => {
    const c = await Cluster.create(3, FAST_SNAPSHOTS);
    clusters.push(c);
    dumpLogsOnFailure(ctx, c);
    c.startAll();
    const leader = await c.leader(c.nodes, 30_000);
    const follower = c.nodes.find((n) => n !== leader)!;

    // The follower acknowledges a few hundred entries and the leader compacts past index 3 (the founders'
    // entries a wiped node bootstraps with again), so only a snapshot can catch it up.
    const before = writeContinuously(leader, 'a');
    try {
      await poll('300 entries and a compaction', 15_000, async () =>
        ((await c.status(leader))?.commit ?? 0) > 310 && (leader.log.match(COMPACTED)?.length ?? 0) >= 1
          ? true
          : undefined,
      );
    } finally {
      await before.stop();
    }
    // Writes pause while the follower is down, so the leader still holds the entry at the follower's match
    // when it probes there: the follower's rejection, hinting index 3, is how the leader learns of the loss.
    // (Had the leader compacted past the match meanwhile, it would send a snapshot without learning it.)
    await appliedAll(c, leader, follower, 5_000);
    await c.kill(follower);
    // Everything but `peer-key`, which keeps its libp2p identity (the peers know it by that).
    const wiped = readdirSync(follower.dataDir).filter((f) => f !== 'peer-key');
    expect(wiped.length).toBeGreaterThan(0);
    for (const f of wiped) rmSync(join(follower.dataDir, f), { recursive: true, force: true });
    expect(readdirSync(follower.dataDir)).toEqual(['peer-key']);
    follower.log = '';
    c.start(follower);
    // Of the KV group p0 (the meta group's replica on the wiped node lost its entries too).
    const lost = new RegExp(
      `"group":"p0"[^\\n]*"msg":"follower ${follower.id} lost acknowledged entries \\(match (\\d+), now 3\\)`,
    );
    const match = await poll(
      'the leader to find the follower lost entries',
      10_000,
      async () => lost.exec(leader.log)?.[1],
    );
    expect(Number(match)).toBeGreaterThan(300);

    const after = writeContinuously(leader, 'b');
    try {
      await poll('writes to resume', 5_000, async () => (after.written() >= 20 ? true : undefined));
      await appliedAll(c, leader, follower, 10_000);
      expect(follower.log).toMatch(INSTALLED);
      // Heartbeats carrying a commit past the wiped log are answered, not refused.
      expect(follower.log).not.toMatch(/engine refused a message/);
      const atCatchUp = after.written();
      await poll('more writes after the catch-up', 5_000, async () =>
        after.written() > atCatchUp + 20 ? true : undefined,
      );
    } finally {
      await after.stop();
    }
    expect(before.failed() + after.failed()).toBe(0);

    // Same rows as the leader, and the same digest: a consistency check compares every replica.
    const written = before.written() + after.written();
    const caughtUp = await appliedAll(c, leader, follower, 5_000);
    expect(caughtUp.keys).toBe(written);
    expect((await c.status(leader))!.keys).toBe(written);
    // A replica whose digest could not be taken this time (its reader thread slow to start on a loaded machine:
    // the writer waits a second for it) makes the check `incomplete`, an answer to retry, not a disagreement.
    const report = await poll('a consistency check every replica answered', 20_000, async () => {
      const res = await fetch(`http://127.0.0.1:${follower.http}/v1/admin/consistency-check`, { method: 'POST' });
      const r = (await res.json()) as { verdict: string; replicas: { node: string; digest: string | null }[] };
      return r.verdict === 'incomplete' ? undefined : r;
    });
    expect(report.verdict).toBe('consistent');
    expect(report.replicas).toHaveLength(3);
    expect(new Set(report.replicas.map((r) => r.digest)).size).toBe(1);
  }, 60_000);
});
