import { type Logger, SeededRandom } from '@cohort/core';
import { META_GROUP, type SlotMap } from '@cohort/kv';
import { InvariantViolationError, LinearizabilityViolationError } from '../errors.js';
import { checkLinearizable } from '../lin/checker.js';
import type { KvOperation } from '../lin/history.js';
import { kvModel, prunedKvHistory } from '../lin/model.js';
import { SimClient } from '../raft/client.js';
import { type PlacementCoverage, addPlacementCoverage, emptyPlacementCoverage } from './coverage.js';
import { PlacementCluster, type PlacementClusterConfig } from './placement-cluster.js';
import type { PlacementMutations, SimPlacementNode } from './placement-node.js';

/** Options of one seeded placement run. */
export interface PlacementRunOptions {
  /** Fault episodes after the joins (each waits for the cluster to settle). @default 3 */
  episodes?: number;
  /** Concurrent clients. @default 3 */
  clients?: number;
  /** Where the meta services log (silent by default; the CLI's `--verbose`). */
  logger?: Logger;
  /** Deliberate bugs, for tests proving the checks fail. @default {} */
  mutations?: PlacementMutations;
}

/** The kinds of episode a seed picks from. */
export const EPISODES = [
  'dead',
  'deadMetaCrash',
  'shortRestart',
  'leave',
  'isolateLong',
  'isolateShort',
  'isolateMetaLeader',
] as const;
export type Episode = (typeof EPISODES)[number];

/** What one placement seed did. */
export interface PlacementSeedResult {
  seed: number;
  simMs: number;
  wallMs: number;
  cpuMs: number;
  events: number;
  traceHash: string;
  episodes: Episode[];
  coverage: PlacementCoverage;
  ops: { total: number; completed: number; unknown: number };
  reconfigurations: number;
  config: PlacementClusterConfig;
}

/** How long the cluster may take to settle after a fault before the run fails (repair must converge). */
const SETTLE_TIMEOUT_MS = 40_000;

/** The command that replays `seed`. */
export function placementReplayCommand(seed: number, options: PlacementRunOptions): string {
  let cmd = `pnpm --filter @cohort/sim sim:placement --seed ${seed}`;
  if (options.episodes !== undefined && options.episodes !== 3) cmd += ` --episodes ${options.episodes}`;
  return cmd;
}

/** The cluster shape of a seed. */
export function placementConfig(r: SeededRandom): PlacementClusterConfig {
  return {
    founders: r.next() < 0.5 ? 3 : 4,
    partitions: r.int(3, 8),
    replication: 3,
    metaVoters: 3,
    deadGraceMs: r.int(2_000, 4_000),
    placementIntervalMs: r.int(100, 300),
    livenessDelayMs: r.int(400, 1_000),
    tickMs: 100,
    raft: {
      electionTick: 10,
      heartbeatTick: 1,
      preVote: r.next() < 0.7,
      checkQuorum: true,
      readOnlyOption: 'safe',
      maxSizePerMsg: r.int(512, 4096),
      maxInflightMsgs: r.int(4, 64),
      snapshotChunkBytes: r.int(128, 2048),
    },
    snapshotEvery: r.int(20, 80),
    snapshotKeep: r.int(0, 10),
    diskLatencyMs: [0.1 + r.next() * 0.4, 0.5 + r.next() * 2.5],
    links: {
      minDelay: 1,
      maxDelay: r.int(3, 15),
      dropRate: r.next() * 0.02,
      dupRate: r.next() * 0.02,
      spikeRate: r.next() * 0.01,
      spikeDelay: 300,
    },
  };
}

/** Client keys: one per partition where the slot map allows, so every partition takes writes. */
function clientKeys(slots: SlotMap): { registers: string[]; counters: string[] } {
  const byPartition = new Map<number, string>();
  for (let i = 0; i < 1000 && byPartition.size < slots.partitions; i++) {
    const key = `k${i}`;
    const p = slots.partitionOfKey(new TextEncoder().encode(key));
    if (!byPartition.has(p)) byPartition.set(p, key);
  }
  const keys = [...byPartition.values()];
  const counters = keys.filter((_, i) => i % 3 === 2);
  return { registers: keys.filter((k) => !counters.includes(k)), counters };
}

/**
 * Runs one seed: a partitioned cluster of production hosts and meta
 * services founds itself, nodes join, then fault episodes (a node dead past
 * the grace period, with or without the meta leader crashing during its
 * repair; a restart within the grace period; a node leaving; a node cut off
 * briefly or for long; the meta leader cut off), each followed by a wait for
 * the cluster to settle, with clients writing to every partition all along.
 * Rejects on any violation, naming the seed and how to replay it.
 */
export async function runPlacementSeed(seed: number, options: PlacementRunOptions = {}): Promise<PlacementSeedResult> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const root = new SeededRandom(seed);
  const config = placementConfig(root.fork());
  const faults = root.fork();
  const clientRandom = root.fork();
  const replay = placementReplayCommand(seed, options);
  const cluster = new PlacementCluster(seed, config, root.fork(), replay, options.logger, options.mutations);
  const history: KvOperation[] = [];
  const { registers, counters } = clientKeys(cluster.slots);
  const clients: SimClient[] = [];
  for (let i = 0; i < (options.clients ?? 3); i++) {
    const c = new SimClient(i + 1, cluster, clientRandom.fork(), history, {
      registerKeys: registers,
      counterKeys: counters,
      thinkMs: [20, 300],
      attemptTimeoutMs: 1_500,
      maxAttempts: 4,
    });
    clients.push(c);
    c.start();
  }
  const settle = async (what: string): Promise<void> => {
    if (!(await cluster.runUntil(() => cluster.settled(), SETTLE_TIMEOUT_MS))) {
      const map = cluster.latestMap();
      const parts = map?.partitions.map(
        (p, i) => `p${i}@${p.epoch}:${p.replicas.map((r) => r.node + (r.role === 'learner' ? '(l)' : '')).join(',')}`,
      );
      throw new InvariantViolationError(
        'repair converges',
        `the cluster did not settle within ${SETTLE_TIMEOUT_MS} ms after ${what} (every partition at ${config.replication} voters on available nodes): ${parts?.join(' ') ?? 'no map'}; up: ${cluster
          .upNodes()
          .map((n) => n.id)
          .join(',')}; groups: ${map?.partitions.map((_, i) => cluster.groupView(i)).join('; ') ?? '-'}`,
        cluster.position(),
      );
    }
  };
  const wait = (ms: number): Promise<void> => cluster.run(cluster.scheduler.now() + ms);
  const grace = config.deadGraceMs;

  await settle('founding');
  // One or two nodes join; rebalancing gives them replicas.
  const joins = faults.int(1, 2);
  for (let j = 0; j < joins; j++) {
    await wait(faults.int(0, 2_000));
    const node = await cluster.join();
    if (node === undefined) continue;
    const id = node.id;
    if (await cluster.runUntil(() => cluster.replicasOn(id) > 0 && cluster.settled(), SETTLE_TIMEOUT_MS)) {
      cluster.coverage.joinRebalanced++;
    }
  }
  await settle('the joins');
  // Leaders spread by count over the nodes (each leading about P/N partitions), by leadership transfers.
  const fair = Math.ceil(config.partitions / cluster.upNodes().length) + 1;
  if (
    await cluster.runUntil(() => {
      const counts = cluster.leaderCounts();
      return counts !== undefined && [...counts.values()].every((c) => c <= fair);
    }, 20_000)
  ) {
    cluster.coverage.leadersBalanced++;
  }

  const episodes: Episode[] = [];
  for (let e = 0; e < (options.episodes ?? 3); e++) {
    await wait(faults.int(200, 2_000));
    await cluster.runUntil(() => cluster.settled() && cluster.balanced(), 20_000);
    const up = cluster.upNodes();
    const map = cluster.latestMap();
    if (map === undefined) break;
    // A node is replaceable only if the others can hold every partition's R replicas.
    const spare = up.filter((n) => !map.nodes[n.id]?.leaving).length > config.replication;
    let kind = EPISODES[faults.int(0, EPISODES.length - 1)] as Episode;
    if (!spare && kind !== 'shortRestart' && kind !== 'isolateShort') kind = 'shortRestart';
    episodes.push(kind);
    cluster.trace.mixString(`episode ${kind}`);
    const metaLeader = cluster.metaLeader();
    const pick = (xs: SimPlacementNode[]): SimPlacementNode => xs[faults.int(0, xs.length - 1)] as SimPlacementNode;
    const holders = up.filter((n) => cluster.replicasOn(n.id) > 0);
    const victim = pick(holders.length > 0 ? holders : up);
    switch (kind) {
      case 'dead':
      case 'deadMetaCrash': {
        // Not the meta leader when the meta leader is to crash later in the repair.
        const others = up.filter((n) => n !== metaLeader && cluster.replicasOn(n.id) > 0);
        const dead = kind === 'deadMetaCrash' && others.length > 0 ? pick(others) : victim;
        const held = cluster.replicasOn(dead.id);
        dead.crash();
        let metaCrashed = false;
        if (kind === 'deadMetaCrash') {
          // Once the repair started (the first reconfiguration after the grace period), crash the meta leader.
          const since = cluster.reconfigurations.length;
          await cluster.runUntil(() => cluster.reconfigurations.length > since, grace + 10_000);
          const leader = cluster.metaLeader();
          if (leader !== undefined && leader !== dead && cluster.reconfigurations.length > since) {
            leader.crash();
            metaCrashed = true;
            await wait(faults.int(500, 3_000));
            leader.start();
          }
        }
        await settle(`${dead.id} died`);
        if (held > 0 && cluster.replicasOn(dead.id) === 0) {
          cluster.coverage.deadReplaced++;
          if (metaCrashed) cluster.coverage.repairAfterMetaCrash++;
        }
        await wait(faults.int(0, 2_000));
        dead.start();
        await settle(`${dead.id} came back`);
        break;
      }
      case 'shortRestart': {
        const since = cluster.reconfigurations.length;
        const before = cluster.replicasOn(victim.id);
        victim.crash();
        await wait(faults.int(Math.floor(grace / 5), Math.floor(grace / 2)));
        victim.start();
        await settle(`${victim.id} restarted`);
        const moved = cluster.reconfigurations.slice(since);
        if (moved.length > 0) {
          throw new InvariantViolationError(
            'a restart within the grace period moves no data',
            `${victim.id} restarted within ${grace} ms and placement made ${moved.length} change(s): ${moved.map((m) => `${m.action.type} ${m.action.node} (${m.action.reason})`).join('; ')}`,
            cluster.position(),
          );
        }
        if (before > 0) cluster.coverage.restartNoMove++;
        break;
      }
      case 'leave': {
        const id = victim.id;
        const member = cluster.metaLeader() ?? victim;
        let asked = false;
        member.meta
          ?.propose({ type: 'setLeaving', id })
          .then((r) => {
            asked = r.ok;
          })
          .catch(() => {});
        await cluster.runUntil(() => asked, 5_000);
        if (!asked) break;
        const gone = (): boolean => {
          const leader = cluster.metaLeader();
          const voters = leader?.host?.status(META_GROUP).voters ?? [id];
          return cluster.replicasOn(id) === 0 && !voters.includes(id) && cluster.settled();
        };
        if (await cluster.runUntil(gone, SETTLE_TIMEOUT_MS)) {
          cluster.coverage.leaveCompleted++;
          cluster.retire(id);
        } else {
          throw new InvariantViolationError(
            'a leave completes',
            `${id} still holds ${cluster.replicasOn(id)} replica(s) or a meta vote ${SETTLE_TIMEOUT_MS} ms after it asked to leave`,
            cluster.position(),
          );
        }
        await settle(`${id} left`);
        break;
      }
      case 'isolateLong':
      case 'isolateShort':
      case 'isolateMetaLeader': {
        const target = kind === 'isolateMetaLeader' && metaLeader !== undefined ? metaLeader : victim;
        const since = cluster.reconfigurations.length;
        const held = cluster.replicasOn(target.id);
        const rest = cluster.nodeIds().filter((id) => id !== target.id);
        cluster.network.partition([target.id], rest);
        cluster.isolated.add(target.id);
        const long = kind !== 'isolateShort';
        await wait(long ? grace + faults.int(3_000, 8_000) : faults.int(Math.floor(grace / 5), Math.floor(grace / 2)));
        if (long && held > 0) {
          await cluster.runUntil(() => cluster.replicasOn(target.id) === 0, SETTLE_TIMEOUT_MS);
          if (cluster.replicasOn(target.id) === 0) cluster.coverage.isolatedReplaced++;
        }
        cluster.network.heal();
        cluster.isolated.delete(target.id);
        await settle(`${target.id} was cut off`);
        if (!long) {
          const moved = cluster.reconfigurations.slice(since);
          if (moved.length > 0) {
            throw new InvariantViolationError(
              'a short partition moves no data',
              `${target.id} was cut off for less than the grace period and placement made ${moved.length} change(s): ${moved.map((m) => `${m.action.type} ${m.action.node} (${m.action.reason})`).join('; ')}`,
              cluster.position(),
            );
          }
        }
        break;
      }
      default: {
        const never: never = kind;
        throw new Error(`unknown episode ${String(never)}`);
      }
    }
  }
  // Calm: clients finish, stragglers settle.
  await settle('the last episode');
  for (const c of clients) c.stop();
  await wait(3_000);

  const checked = prunedKvHistory(history);
  const verdict = checkLinearizable(kvModel, checked);
  if (verdict.result !== 'ok') {
    const ops = verdict.partition.map((i) => checked[i] as KvOperation);
    const detail =
      verdict.result === 'illegal' ? `no linearization for key ${ops[0]?.input.key ?? '?'}` : verdict.reason;
    throw new LinearizabilityViolationError(seed, detail, ops, replay);
  }
  const completed = history.filter((o) => o.ret !== Number.POSITIVE_INFINITY).length;
  const d = process.cpuUsage(cpuStarted);
  return {
    seed,
    simMs: cluster.scheduler.now(),
    wallMs: performance.now() - started,
    cpuMs: (d.user + d.system) / 1000,
    events: cluster.scheduler.executed,
    traceHash: cluster.trace.digest(),
    episodes,
    coverage: cluster.coverage,
    ops: { total: history.length, completed, unknown: history.length - completed },
    reconfigurations: cluster.reconfigurations.length,
    config,
  };
}

/** Totals over a batch of placement seeds. */
export interface PlacementBatchSummary {
  seeds: number;
  simMs: number;
  wallMs: number;
  cpuMs: number;
  episodes: Record<string, number>;
  coverage: PlacementCoverage;
  ops: { total: number; completed: number; unknown: number };
}

/** Runs seeds `first .. first+count-1`; rejects at the first violation. */
export async function runPlacementSeeds(
  first: number,
  count: number,
  options: PlacementRunOptions = {},
  onSeed: (r: PlacementSeedResult) => void = () => {},
): Promise<PlacementBatchSummary> {
  const s: PlacementBatchSummary = {
    seeds: 0,
    simMs: 0,
    wallMs: 0,
    cpuMs: 0,
    episodes: {},
    coverage: emptyPlacementCoverage(),
    ops: { total: 0, completed: 0, unknown: 0 },
  };
  for (let seed = first; seed < first + count; seed++) {
    const r = await runPlacementSeed(seed, options);
    s.seeds++;
    s.simMs += r.simMs;
    s.wallMs += r.wallMs;
    s.cpuMs += r.cpuMs;
    for (const e of r.episodes) s.episodes[e] = (s.episodes[e] ?? 0) + 1;
    addPlacementCoverage(s.coverage, r.coverage);
    s.ops.total += r.ops.total;
    s.ops.completed += r.ops.completed;
    s.ops.unknown += r.ops.unknown;
    onSeed(r);
  }
  return s;
}
