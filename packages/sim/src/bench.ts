import { SeededRandom } from '@cohort/core';
import { encodeCommand } from '@cohort/kv';
import { RaftCluster } from './raft/cluster.js';
import { runSeed, runSeeds, seedConfig } from './raft/run.js';
import { GROUP } from './raft/sim-node.js';
import { encodeText } from './text-codec.js';

/**
 * Figures of the simulator: simulated speed of a 5-node cluster under faults,
 * wall time of 500 seeds, simulated single-client put latency, and engine
 * throughput without faults.
 */

async function simSpeed5(): Promise<void> {
  // Warm up the JIT first so the figure reflects steady state: a batch runs hundreds of seeds, and
  // with only a few warm-up seeds the measured ones still run partly unoptimized code (about 30% slower).
  for (let s = 1; s <= 30; s++) await runSeed(s, { cluster: { voters: 5 } });
  let sim = 0;
  let wall = 0;
  let cpu = 0;
  for (let s = 1000; s < 1030; s++) {
    const r = await runSeed(s, { cluster: { voters: 5 } });
    sim += r.simMs;
    wall += r.wallMs;
    cpu += r.cpuMs;
  }
  console.log(
    `5-node cluster with faults (30 seeds): ${(sim / 1000).toFixed(0)} simulated s in ${(wall / 1000).toFixed(2)} wall s = ${(sim / wall).toFixed(0)}x real time (${(sim / cpu).toFixed(0)}x per CPU second)`,
  );
}

async function fiveHundredSeeds(): Promise<void> {
  const t0 = performance.now();
  const s = await runSeeds(1, 500);
  const wall = performance.now() - t0;
  console.log(
    `500 seeds (mixed faults, ${(s.simMs / 3_600_000).toFixed(2)} simulated h): ${(wall / 1000).toFixed(1)} s wall, ${(s.cpuMs / 1000).toFixed(1)} s CPU, ${(s.simMs / wall).toFixed(0)}x`,
  );
}

async function throughput(batch: number): Promise<void> {
  const config = seedConfig(new SeededRandom(7));
  const cluster = new RaftCluster(
    7,
    {
      ...config,
      voters: 3,
      tickSkew: 0,
      snapshotEvery: 5_000,
      raft: { ...config.raft, maxSizePerMsg: 64 * 1024, maxInflightMsgs: 256, readOnlyOption: 'safe' },
      links: { minDelay: 1, maxDelay: 2, dropRate: 0, dupRate: 0, spikeRate: 0 },
    },
    RaftCluster.randoms(new SeededRandom(7)),
  );
  const sched = cluster.scheduler;
  await cluster.run(5_000);
  const leader = cluster.leader();
  const group = leader?.host?.replicated(GROUP);
  if (!leader || !group) throw new Error('no leader elected in 5 simulated seconds');
  const start = leader.applied;
  let seq = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  while (performance.now() - t0 < 3_000) {
    for (let i = 0; i < batch; i++) {
      seq++;
      const command = encodeCommand({
        op: 'set',
        key: encodeText(`k${seq % 64}`),
        value: encodeText(`v${seq}`),
        condition: 'always',
        expiresAt: 0,
        returnOld: false,
        now: sched.now(),
      });
      group.propose(command).catch(() => {});
    }
    await cluster.run(sched.now() + 1);
  }
  await cluster.run(sched.now() + 100);
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(cpu0);
  const cpu = (c.user + c.system) / 1e6;
  const committed = leader.applied - start;
  console.log(
    `3-node throughput, no faults, batches of ${batch}: ${committed} entries committed and applied (leader) in ${wall.toFixed(2)} s wall = ${(committed / wall).toFixed(0)} entries/s (${(committed / cpu).toFixed(0)} per CPU second)`,
  );
}

/**
 * Simulated latency of one client's puts, one after another, on a 3-node cluster without faults, with a
 * fixed disk latency and link delay: what a write costs in fsyncs and network hops, free of CPU noise.
 */
async function putLatency(diskMs: number, linkMs: number): Promise<void> {
  const config = seedConfig(new SeededRandom(7));
  const cluster = new RaftCluster(
    7,
    {
      ...config,
      voters: 3,
      tickSkew: 0,
      snapshotEvery: 5_000,
      diskLatencyMs: [diskMs, diskMs],
      raft: { ...config.raft, maxSizePerMsg: 64 * 1024, maxInflightMsgs: 256, readOnlyOption: 'safe' },
      links: { minDelay: linkMs, maxDelay: linkMs, dropRate: 0, dupRate: 0, spikeRate: 0 },
    },
    RaftCluster.randoms(new SeededRandom(7)),
  );
  const sched = cluster.scheduler;
  await cluster.run(5_000);
  const group = cluster.leader()?.host?.replicated(GROUP);
  if (!group) throw new Error('no leader elected in 5 simulated seconds');
  const took: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = sched.now();
    let done = false;
    const command = encodeCommand({
      op: 'set',
      key: encodeText(`k${i}`),
      value: encodeText('v'),
      condition: 'always',
      expiresAt: 0,
      returnOld: false,
      now: Math.floor(t0),
    });
    group.propose(command).then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    while (!done) await cluster.run(sched.now() + 0.05);
    took.push(sched.now() - t0);
  }
  took.sort((a, b) => a - b);
  const at = (q: number) => (took[Math.floor(q * (took.length - 1))] as number).toFixed(2);
  console.log(
    `single-client puts, 3 nodes, disk ${diskMs} ms, link ${linkMs} ms one way: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms (simulated time)`,
  );
}

/**
 * What idle groups cost in messages, counted in simulated time (free of CPU noise): 3 nodes, `groups`
 * groups each, no faults and no clients; one write per group, then 60 idle simulated seconds.
 */
async function idleGroups(groups: number, mode: 'plain' | 'coalesced' | 'quiesce'): Promise<void> {
  const config = seedConfig(new SeededRandom(7));
  const cluster = new RaftCluster(
    7,
    {
      ...config,
      voters: 3,
      tickSkew: 0,
      groups: groups - 1,
      quiesce: mode === 'quiesce',
      coalesceHeartbeats: mode !== 'plain',
      raft: { ...config.raft, readOnlyOption: 'safe' },
      links: { minDelay: 1, maxDelay: 2, dropRate: 0, dupRate: 0, spikeRate: 0 },
    },
    RaftCluster.randoms(new SeededRandom(7)),
  );
  const traffic = { frames: 0, bytes: 0 };
  const send = cluster.network.send.bind(cluster.network);
  cluster.network.send = (from, to, msg, once) => {
    traffic.frames++;
    if (msg.kind !== 'failure') traffic.bytes += msg.bytes.byteLength;
    send(from, to, msg, once);
  };
  cluster.startLiveness();
  await cluster.run(10_000);
  for (const g of [GROUP, ...cluster.extraGroups]) {
    const leader = [...cluster.nodes.values()].find((n) => n.host?.isLeader(g));
    leader?.host
      ?.propose(
        g,
        encodeCommand({
          op: 'set',
          key: encodeText('k'),
          value: encodeText(g),
          condition: 'always',
          expiresAt: 0,
          returnOld: false,
          now: 0,
        }),
      )
      .catch(() => {});
  }
  await cluster.run(20_000);
  const hosts = [...cluster.nodes.values()].map((n) => n.host).filter((h) => h !== undefined);
  const messages = () => hosts.reduce((n, h) => n + h.stats().messagesSent, 0);
  const m0 = messages();
  const t0 = { ...traffic };
  const seconds = 60;
  await cluster.run(20_000 + seconds * 1000);
  const per = (x: number) => (x / seconds / groups).toFixed(2);
  const quiescent = hosts.map((h) => h.quiescentGroups()).join('/');
  console.log(
    `idle groups (simulated), 3 nodes x ${groups} groups, ${mode}: per group per second ${per(messages() - m0)} raft messages, ${per(traffic.frames - t0.frames)} frames, ${per(traffic.bytes - t0.bytes)} bytes (quiescent per node ${quiescent})`,
  );
}

if (process.argv.includes('--idle-groups')) {
  for (const mode of ['plain', 'coalesced', 'quiesce'] as const) await idleGroups(100, mode);
  process.exit(0);
}

await simSpeed5();
await putLatency(1, 0);
await putLatency(2, 1);
await throughput(1);
await throughput(64);
if (!process.argv.includes('--quick')) await fiveHundredSeeds();
