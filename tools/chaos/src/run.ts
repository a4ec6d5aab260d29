import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type LinearizabilityResult, checkLinearizable, kvModel, prunedKvHistory } from '@cohort/sim';
import { Redis } from 'ioredis';
import { ChaosCluster, type ChaosNode, type PartitionView } from './cluster.ts';
import { Workload, type WorkloadStats } from './workload.ts';

/** The faults the harness injects, one at a time, each healed before the next. */
export const FAULT_KINDS = ['kill', 'pause', 'partition', 'one-way', 'disk-full'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** How long faults are injected under load. */
  durationMs: number;
  /** @default 3 */
  nodes?: number;
  /** @default 6 */
  clients?: number;
  /** Register keys of the checked history. @default 12 */
  keys?: number;
  /** @default 1 */
  seed?: number;
  /**
   * Partitions of the key space, each a Raft group of 3 replicas, with the meta group placing them.
   * Faults then take turns between the meta group's leader and the leader of a partition. @default 1
   */
  partitions?: number;
  /**
   * Partitions run by Vertical Paxos (2 replicas, reconfigured by the master on the meta group); faults
   * then also take turns aiming at their primary. Needs `partitions` > 1. @default none
   */
  vpaxos?: number[];
  /** Plants the test-only stale-read fault in every node (the check must then fail). @default false */
  staleReads?: boolean;
  /** Keeps the data directories and logs. @default false */
  keep?: boolean;
  /** Progress lines. @default none */
  log?: (line: string) => void;
}

/** What a run found. */
export interface ChaosReport {
  faults: Record<FaultKind, number>;
  /** Operations in the checked history (after pruning), and in all. */
  checkedOperations: number;
  recordedOperations: number;
  clientStats: WorkloadStats;
  /** Writes acknowledged to keys written once, all read back at the end. */
  acknowledgedWrites: number;
  lostWrites: string[];
  linearizability: LinearizabilityResult;
  /** Reads sent to a paused leader and answered once it resumed, some after a refusal asked again (checked with the rest). */
  pausedReads: number;
  /**
   * While a node's disk was full: writes it refused with the disk-full error, reads it served, status reports,
   * and reports of a commit waiting for space (SQLite failed it with SQLITE_FULL; the store retries it).
   */
  diskFull: { refusedWrites: number; servedReads: number; degradedReported: number; commitsWaited: number };
  /** Whose leader the faults aimed at (partitioned runs): the meta group's, a Raft partition's, a Vertical Paxos primary. */
  targets: { meta: number; partition: number; primary: number };
  /** A description of the first violation, if any. */
  violation?: string;
  root: string;
}

/**
 * How long the cluster may take to start (and to settle once healed) before the run fails: a
 * partitioned cluster elects the meta group and every partition, and the test suite starts it while
 * other suites load both cores.
 */
const SETTLE_MS = 90_000;

/** A small seeded generator (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs a cluster of real `cohort` processes under concurrent clients while
 * injecting faults in turn (every kind in each round, in a seeded order):
 * SIGKILL and restart; a SIGSTOP of the leader longer than the election
 * timeout and the lease, then SIGCONT; the leader partitioned from the
 * others; a one-way cut (the leader's messages lost, or the others' to it);
 * and a full disk on one node. Then heals everything, reads every register
 * and every acknowledged write back, and checks the history.
 */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const random = seeded(opts.seed ?? 1);
  const root = mkdtempSync(join(tmpdir(), 'cohort-chaos-'));
  const cluster = await ChaosCluster.create({
    root,
    nodes: opts.nodes ?? 3,
    partitions: opts.partitions ?? 1,
    ...(opts.vpaxos?.length ? { vpaxos: opts.vpaxos } : {}),
    ...(opts.staleReads ? { env: { COHORT_TEST_STALE_READS: '1' } } : {}),
  });
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const diskFull = { refusedWrites: 0, servedReads: 0, degradedReported: 0, commitsWaited: 0 };
  const paused = { reads: 0, probes: 0 };
  const keys = opts.keys ?? 12;
  const targets = { meta: 0, partition: 0, primary: 0 };
  let workload: Workload | undefined;
  try {
    cluster.startAll();
    await cluster.settled(SETTLE_MS);
    workload = new Workload({ nodes: cluster.nodes, clients: opts.clients ?? 6, keys, commandTimeoutMs: 2000, random });
    workload.start();
    const end = performance.now() + opts.durationMs;
    let round: FaultKind[] = [];
    while (performance.now() < end) {
      if (round.length === 0) round = shuffled([...FAULT_KINDS], random);
      const kind = round.shift() as FaultKind;
      faults[kind]++;
      await inject(kind, {
        cluster,
        workload,
        random,
        log,
        diskFull,
        paused,
        targets,
        partitioned: (opts.partitions ?? 1) > 1,
        vpaxos: (opts.vpaxos?.length ?? 0) > 0,
      });
      cluster.healAll();
      // Time to recover before the next fault.
      await sleep(800 + random() * 700);
    }
    cluster.healAll();
    await cluster.settled(SETTLE_MS);
    await workload.stop();
    await workload.finalReads();
    const lost = await workload.lostWrites();
    const pruned = prunedKvHistory(workload.history);
    const lin = checkLinearizable(kvModel, pruned, { maxSteps: 20_000_000 });
    const report: ChaosReport = {
      faults,
      checkedOperations: pruned.length,
      recordedOperations: workload.history.length,
      clientStats: workload.stats,
      acknowledgedWrites: workload.acknowledged.size,
      lostWrites: lost,
      linearizability: lin,
      pausedReads: paused.reads,
      diskFull,
      targets,
      root,
    };
    if (lin.result !== 'ok') report.violation = describe(lin, pruned);
    else if (lost.length > 0)
      report.violation = `${lost.length} acknowledged writes are not readable: ${lost.slice(0, 5).join(', ')}`;
    return report;
  } finally {
    workload?.close();
    await cluster.stopAll();
    if (!opts.keep) rmSync(root, { recursive: true, force: true });
  }
}

interface FaultContext {
  cluster: ChaosCluster;
  workload: Workload;
  random: () => number;
  log: (line: string) => void;
  diskFull: ChaosReport['diskFull'];
  paused: { reads: number; probes: number };
  targets: ChaosReport['targets'];
  partitioned: boolean;
  /** Whether the cluster has Vertical Paxos partitions. */
  vpaxos: boolean;
}

/**
 * The node a fault aims at: the leader; with partitions, the meta group's
 * leader and the leader of a random partition take turns.
 */
async function target(ctx: FaultContext): Promise<ChaosNode> {
  const { cluster, random, targets, log } = ctx;
  if (!ctx.partitioned) return (await cluster.leader()) ?? pickOne(cluster.nodes, random);
  const views = (await Promise.all(cluster.nodes.map((n) => cluster.partitions(n)))).find((v) => v !== undefined);
  const led = (views ?? []).filter((p) => p.leader);
  const primaries = led.filter((p) => p.engine === 'vpaxos');
  const raft = led.filter((p) => p.engine !== 'vpaxos');
  // Turns: the meta leader, a Raft partition's leader, then a Vertical Paxos primary (when there are any).
  const turn = targets.meta + targets.partition + targets.primary;
  const kinds = ctx.vpaxos ? 3 : 2;
  if (turn % kinds === 0) {
    const meta = await cluster.metaLeader();
    if (meta !== undefined) {
      targets.meta++;
      log(`aiming at the meta leader ${meta.id}`);
      return meta;
    }
  }
  const primary = turn % kinds === 2 && primaries.length > 0;
  const pool = primary ? primaries : raft.length > 0 ? raft : led;
  const p: PartitionView | undefined = pool.length > 0 ? pickOne(pool, random) : undefined;
  const node = cluster.nodes.find((n) => n.id === p?.leader);
  if (primary) targets.primary++;
  else targets.partition++;
  if (node === undefined) return pickOne(cluster.nodes, random);
  log(`aiming at p${p?.partition}'s ${primary ? 'primary' : 'leader'} ${node.id}`);
  return node;
}

async function inject(kind: FaultKind, ctx: FaultContext): Promise<void> {
  const { cluster, random, log, diskFull } = ctx;
  const leader = await target(ctx);
  const others = (n: ChaosNode): ChaosNode[] => cluster.nodes.filter((o) => o !== n);
  switch (kind) {
    case 'kill': {
      // The leader half of the time, else any node.
      const victim = random() < 0.5 ? leader : pickOne(cluster.nodes, random);
      log(`kill -9 ${victim.id}`);
      await cluster.kill(victim);
      await sleep(1000 + random() * 1500);
      cluster.start(victim);
      return;
    }
    case 'pause': {
      // Longer than the longest election timeout (1 s) and the lease (300 ms): others elect a new leader
      // meanwhile, and the resumed one must not answer reads from its old lease.
      const ms = 2000 + random() * 1000;
      log(
        `SIGSTOP ${leader.id} for ${Math.round(ms)} ms${ctx.paused.probes % 2 === 1 ? ', the others cut from it' : ''}`,
      );
      // Connected before the pause; its reads wait in the socket and are served the moment the node resumes.
      const probe = new Redis({
        host: '127.0.0.1',
        port: leader.resp,
        maxRetriesPerRequest: 0,
        commandTimeout: ms + 5000,
        retryStrategy: () => null,
      });
      probe.on('error', () => {});
      // Every other pause also cuts the others' messages to the leader until shortly after it resumes (a GC
      // pause met by a partition): no higher term reaches it, and only its clock tells it the lease is over.
      // The first pause is a plain one (its reads are answered after it resumes, which the tests expect), then they alternate.
      const isolate = ctx.paused.probes % 2 === 1;
      if (isolate) for (const o of others(leader)) cluster.setFaults(o, { dropTo: [leader.id], diskFull: false });
      try {
        await probe.ping();
        cluster.pause(leader);
        const reads = ctx.workload.probeReads(probe, 1000 + 100 * ctx.paused.probes++);
        await sleep(ms);
        cluster.resume(leader);
        ctx.paused.reads += await reads;
        if (isolate) await sleep(300);
      } catch {
        // The probe could not connect (the leader just moved): pause anyway.
        cluster.pause(leader);
        await sleep(ms);
        cluster.resume(leader);
      } finally {
        probe.disconnect();
      }
      await sleep(500);
      return;
    }
    case 'partition': {
      const ms = 2000 + random() * 1500;
      log(`partition ${leader.id} | ${others(leader).map((n) => n.id)} for ${Math.round(ms)} ms`);
      cluster.setFaults(leader, { dropTo: others(leader).map((n) => n.id), diskFull: false });
      for (const o of others(leader)) cluster.setFaults(o, { dropTo: [leader.id], diskFull: false });
      await sleep(ms);
      return;
    }
    case 'one-way': {
      const ms = 2000 + random() * 1500;
      if (random() < 0.5) {
        log(`one-way cut ${leader.id} -> ${others(leader).map((n) => n.id)} for ${Math.round(ms)} ms`);
        cluster.setFaults(leader, { dropTo: others(leader).map((n) => n.id), diskFull: false });
      } else {
        log(`one-way cut ${others(leader).map((n) => n.id)} -> ${leader.id} for ${Math.round(ms)} ms`);
        for (const o of others(leader)) cluster.setFaults(o, { dropTo: [leader.id], diskFull: false });
      }
      await sleep(ms);
      return;
    }
    case 'disk-full': {
      const victim = random() < 0.5 ? leader : pickOne(cluster.nodes, random);
      log(`disk full on ${victim.id}`);
      cluster.setFaults(victim, { dropTo: [], diskFull: true });
      await probeFullDisk(cluster, victim, diskFull, 2500 + random() * 1000);
      return;
    }
    default: {
      const never: never = kind;
      throw new Error(`unknown fault ${String(never)}`);
    }
  }
}

/**
 * While `node`'s disk is full: its status says so, it refuses a write with the disk-full error and serves a read.
 * The disk stays full for `ms`, and past it (up to {@link PROBE_GRACE_MS} more) until both probes met their answer:
 * a fault right after another (a kill, a partition) can leave the group without a leader for most of `ms`, and a
 * read then has nothing to be served by.
 */
async function probeFullDisk(
  cluster: ChaosCluster,
  node: ChaosNode,
  counts: ChaosReport['diskFull'],
  ms: number,
): Promise<void> {
  const end = performance.now() + ms;
  const last = end + PROBE_GRACE_MS;
  const r = new Redis({
    host: '127.0.0.1',
    port: node.resp,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    commandTimeout: 1500,
    retryStrategy: () => null,
  });
  r.on('error', () => {});
  let refused = false;
  let served = false;
  let reported = false;
  let waited = false;
  try {
    for (;;) {
      const now = performance.now();
      if (now >= last || (now >= end && refused && served)) break;
      const status = waited && reported ? undefined : await cluster.status(node);
      if (!reported && status?.degraded?.includes('disk-full')) {
        reported = true;
        counts.degradedReported++;
      }
      if (!waited && status?.diskFull?.includes('cannot grow')) {
        waited = true;
        counts.commitsWaited++;
      }
      if (reported && !refused) {
        try {
          await r.set('chaos:disk-full-probe', 'x');
        } catch (err) {
          if (/disk full/.test((err as Error).message)) {
            refused = true;
            counts.refusedWrites++;
          }
        }
      }
      if (reported && !served) {
        try {
          await r.get('reg:0');
          served = true;
          counts.servedReads++;
        } catch {
          // No leader yet (it may be handing its leadership over): try again.
        }
      }
      await sleep(100);
    }
  } finally {
    r.disconnect();
  }
}

/** How long a full disk may outlast its planned time while the probes wait for their answers. */
const PROBE_GRACE_MS = 5000;

function pickOne<T>(items: T[], random: () => number): T {
  return items[Math.floor(random() * items.length)] as T;
}

function shuffled<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

function describe(lin: LinearizabilityResult, history: ReturnType<typeof prunedKvHistory>): string {
  if (lin.result === 'ok') return 'linearizable';
  const ops = lin.partition.map((i) => history[i]!);
  const key = ops[0]?.input.key;
  const t0 = Math.min(...ops.map((o) => o.call));
  const tail = ops
    .slice(-12)
    .map(
      (o) =>
        `  c${o.client} ${o.input.op}${o.input.op === 'set' ? ` ${o.input.value}` : ''} -> ${o.output ?? '?'} [${Math.round(o.call - t0)}, ${o.ret === Number.POSITIVE_INFINITY ? 'inf' : Math.round(o.ret - t0)}]`,
    )
    .join('\n');
  return `${lin.result === 'illegal' ? 'not linearizable' : `undecided (${lin.reason})`}: key ${key}, ${ops.length} operations; the last ones:\n${tail}`;
}
