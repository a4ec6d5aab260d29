import { SeededRandom } from '@cohort/core';
import { LinearizabilityViolationError } from '../errors.js';
import { checkLinearizable } from '../lin/checker.js';
import type { KvOperation } from '../lin/history.js';
import { kvModel, prunedKvHistory } from '../lin/model.js';
import type { NetworkStats } from '../network.js';
import { SimClient } from './client.js';
import { type ClusterConfig, RaftCluster } from './cluster.js';
import { type Coverage, addCoverage, emptyCoverage } from './coverage.js';
import { type FaultKind, Scenario } from './scenario.js';

/** Options of one seeded run. */
export interface RunOptions {
  /** Simulated milliseconds of faults and traffic. @default 30_000 */
  simMs?: number;
  /** Simulated milliseconds of calm at the end (healed, restarted) for operations to settle. @default 6_000 */
  settleMs?: number;
  /** Concurrent clients. @default 3 */
  clients?: number;
  /** Mean simulated ms between injected faults and actions. @default 1_500 */
  actionEveryMs?: number;
  /** Share of the seeds in which one node's disk is damaged (torn write or corrupt entry). @default 0.25 */
  diskFaultShare?: number;
  /** Inject faults and actions at all. @default true */
  faults?: boolean;
  /** How reads are served: 'mixed' (a quarter of the seeds by lease), or every seed 'safe' (ReadIndex) or 'lease'. @default 'mixed' */
  reads?: 'mixed' | 'safe' | 'lease';
  /** Extra Raft groups per node, written by a background load (ClusterConfig.groups). @default 0 */
  groups?: number;
  /** Hosts quiesce idle groups, with liveness reports from the failure state (ClusterConfig.quiesce). @default false */
  quiesce?: boolean;
  /** Clients pause this long between operations, uniform in [min, max] simulated ms. @default [20, 400] */
  clientThinkMs?: [number, number];
  /** Overrides of the seed's randomly chosen cluster shape (engine options field by field). */
  cluster?: Partial<Omit<ClusterConfig, 'raft'>> & { raft?: Partial<ClusterConfig['raft']> };
}

/** What one seed did. */
export interface SeedResult {
  seed: number;
  simMs: number;
  wallMs: number;
  /** CPU time of this process during the run (wall time inflates when the machine is shared). */
  cpuMs: number;
  events: number;
  traceHash: string;
  faults: Record<FaultKind, number>;
  network: NetworkStats;
  coverage: Coverage;
  ops: { total: number; completed: number; unknown: number };
  invariantChecks: number;
  config: ClusterConfig;
}

const DEFAULT_SIM_MS = 30_000;

/** The CLI command that replays `seed` with these options (cluster overrides aside). */
export function replayCommandFor(seed: number, options: RunOptions): string {
  let cmd = `pnpm sim --seed ${seed}`;
  if (options.simMs !== undefined && options.simMs !== DEFAULT_SIM_MS) cmd += ` --sim-seconds ${options.simMs / 1000}`;
  if (options.faults === false) cmd += ' --no-faults';
  if (options.reads !== undefined && options.reads !== 'mixed') cmd += ` --reads ${options.reads}`;
  if (options.diskFaultShare !== undefined && options.diskFaultShare !== 0.25) {
    cmd += ` --disk-fault-share ${options.diskFaultShare}`;
  }
  if (options.groups) cmd += ` --groups ${options.groups}`;
  if (options.quiesce) cmd += ' --quiesce';
  if (options.clientThinkMs) cmd += ` --client-think-ms ${options.clientThinkMs.join(',')}`;
  return cmd;
}

/** The cluster shape of a seed: sizes, engine options and link quality vary with the seed. */
export function seedConfig(r: SeededRandom): ClusterConfig {
  const lease = r.next() < 0.25;
  return {
    voters: r.next() < 0.5 ? 3 : 5,
    tickMs: 100,
    // Lease reads rest on bounded clock drift, so those seeds run without tick skew.
    tickSkew: lease ? 0 : r.next() * 0.2,
    raft: {
      electionTick: 10,
      heartbeatTick: 1,
      preVote: r.next() < 0.7,
      checkQuorum: true,
      readOnlyOption: lease ? 'leaseBased' : 'safe',
      maxSizePerMsg: r.int(256, 4096),
      maxInflightMsgs: r.int(2, 64),
      snapshotChunkBytes: r.int(64, 1024),
    },
    snapshotEvery: r.int(15, 80),
    snapshotKeep: r.int(0, 10),
    diskLatencyMs: [0.1 + r.next() * 0.4, 0.5 + r.next() * 4.5],
    links: {
      minDelay: 1,
      maxDelay: r.int(3, 30),
      dropRate: r.next() * 0.05,
      dupRate: r.next() * 0.03,
      spikeRate: r.next() * 0.02,
      spikeDelay: 500,
    },
    // Drawn last, so the draws above stay as they were for every seed.
    commitNoticeDelayMs: r.next() < 0.3 ? 0 : r.int(1, 20),
    readIndexHedgeMs: r.next() < 0.3 ? 0 : r.int(1, 20),
  };
}

/**
 * Runs one seed: a cluster of production hosts under a random fault
 * schedule with clients, every invariant checked as it goes, then the client
 * history checked for linearizability. Rejects on any violation (the error
 * names the seed and the command that replays it).
 */
export async function runSeed(seed: number, options: RunOptions = {}): Promise<SeedResult> {
  // A run never yields to the real event loop; let it turn once between seeds (a test runner's
  // messages, a progress bar). Nothing of this seed exists yet, so the run stays a function of its seed.
  await new Promise<void>((resolve) => setImmediate(resolve));
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const root = new SeededRandom(seed);
  const configRandom = root.fork();
  const randoms = RaftCluster.randoms(root);
  const faultRandom = root.fork();
  const clientRandom = root.fork();
  const loadRandom = root.fork();
  const seeded = seedConfig(configRandom);
  const config: ClusterConfig = { ...seeded, ...options.cluster, raft: { ...seeded.raft, ...options.cluster?.raft } };
  if (options.groups !== undefined) config.groups = options.groups;
  if (options.quiesce !== undefined) config.quiesce = options.quiesce;
  if (options.reads === 'lease') {
    config.raft = { ...config.raft, readOnlyOption: 'leaseBased', checkQuorum: true };
    config.tickSkew = 0;
  } else if (options.reads === 'safe') {
    config.raft = { ...config.raft, readOnlyOption: 'safe' };
  }
  if (options.faults === false) config.links = { ...config.links, dropRate: 0, dupRate: 0, spikeRate: 0 };
  const simMs = options.simMs ?? DEFAULT_SIM_MS;
  const cluster = new RaftCluster(seed, config, randoms, replayCommandFor(seed, options));
  const settleMs = options.settleMs ?? 6_000;
  const scenario = new Scenario(cluster, faultRandom, options.actionEveryMs ?? 1_500, options.diskFaultShare);
  if (options.faults !== false) scenario.start();
  cluster.startLiveness();
  cluster.startGroupLoad(loadRandom, 1_000);
  const history: KvOperation[] = [];
  const clients: SimClient[] = [];
  for (let i = 0; i < (options.clients ?? 3); i++) {
    const c = new SimClient(i + 1, cluster, clientRandom.fork(), history, {
      registerKeys: ['a', 'b'],
      counterKeys: ['n'],
      thinkMs: options.clientThinkMs ?? [20, 400],
      attemptTimeoutMs: 1_500,
      maxAttempts: 4,
    });
    clients.push(c);
    c.start();
  }
  await cluster.run(simMs);
  scenario.calm();
  await cluster.run(simMs + settleMs / 2);
  for (const c of clients) c.stop();
  await cluster.run(simMs + settleMs);
  cluster.checkCatchUp();
  for (const n of cluster.nodes.values()) n.tallyHedges();

  const checked = prunedKvHistory(history);
  const verdict = checkLinearizable(kvModel, checked);
  if (verdict.result !== 'ok') {
    const ops = verdict.partition.map((i) => checked[i] as KvOperation);
    const detail =
      verdict.result === 'illegal' ? `no linearization for key ${ops[0]?.input.key ?? '?'}` : verdict.reason;
    throw new LinearizabilityViolationError(seed, detail, ops, replayCommandFor(seed, options));
  }
  const completed = history.filter((o) => o.ret !== Number.POSITIVE_INFINITY).length;
  return {
    seed,
    simMs: simMs + settleMs,
    wallMs: performance.now() - started,
    cpuMs: cpuMillis(cpuStarted),
    events: cluster.scheduler.executed,
    traceHash: cluster.trace.digest(),
    faults: { ...scenario.faults },
    network: { ...cluster.network.stats },
    coverage: cluster.coverage,
    ops: { total: history.length, completed, unknown: history.length - completed },
    invariantChecks: cluster.invariants.checks,
    config,
  };
}

function cpuMillis(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/** Totals over a batch of seeds. */
export interface BatchSummary {
  seeds: number;
  simMs: number;
  wallMs: number;
  cpuMs: number;
  events: number;
  faults: Record<string, number>;
  coverage: Coverage;
  ops: { total: number; completed: number; unknown: number };
}

export function emptySummary(): BatchSummary {
  return {
    seeds: 0,
    simMs: 0,
    wallMs: 0,
    cpuMs: 0,
    events: 0,
    faults: {},
    coverage: emptyCoverage(),
    ops: { total: 0, completed: 0, unknown: 0 },
  };
}

/** Adds one seed's result into a summary. */
export function addToSummary(s: BatchSummary, r: SeedResult): void {
  s.seeds++;
  s.simMs += r.simMs;
  s.wallMs += r.wallMs;
  s.cpuMs += r.cpuMs;
  s.events += r.events;
  const add = (k: string, v: number): void => {
    s.faults[k] = (s.faults[k] ?? 0) + v;
  };
  for (const [k, v] of Object.entries(r.faults)) add(k, v);
  add('msgDropped', r.network.dropped);
  add('msgDuplicated', r.network.duplicated);
  add('msgDelayed', r.network.delayed);
  add('msgBlocked', r.network.blocked);
  addCoverage(s.coverage, r.coverage);
  s.ops.total += r.ops.total;
  s.ops.completed += r.ops.completed;
  s.ops.unknown += r.ops.unknown;
}

/** Runs seeds `first .. first+count-1`, reporting each result; rejects at the first violation. */
export async function runSeeds(
  first: number,
  count: number,
  options: RunOptions = {},
  onSeed: (r: SeedResult) => void = () => {},
): Promise<BatchSummary> {
  const s = emptySummary();
  for (let seed = first; seed < first + count; seed++) {
    const r = await runSeed(seed, options);
    addToSummary(s, r);
    onSeed(r);
  }
  return s;
}
