import { type NodeId, SeededRandom } from '@cohort/core';
import { NotPrimaryError } from '@cohort/vpaxos';
import { LinearizabilityViolationError } from '../errors.js';
import { checkLinearizable } from '../lin/checker.js';
import type { KvInput, KvOperation } from '../lin/history.js';
import { kvModel, prunedKvHistory } from '../lin/model.js';
import { VpCluster, type VpClusterConfig } from './cluster.js';
import { DEPTH_BUCKETS, type VpCoverage, addVpCoverage, depthBucket, emptyVpCoverage } from './coverage.js';
import type { VpMutations } from './sim-acceptor-store.js';
import type { SimVpNode } from './sim-vp-node.js';

type DepthBucket = (typeof DEPTH_BUCKETS)[number];

/** Options of one seeded Vertical Paxos run. */
export interface VpRunOptions {
  /** Simulated ms of faults and traffic. @default 20_000 */
  simMs?: number;
  /** Simulated ms of calm at the end. @default 4_000 */
  settleMs?: number;
  /** Concurrent clients. @default 3 */
  clients?: number;
  /** Inject crashes and partitions. @default true */
  faults?: boolean;
  /** Reads: 'mixed' (leases in a third of the seeds), or every seed 'safe' or 'lease'. @default 'mixed' */
  reads?: 'mixed' | 'safe' | 'lease';
  /** Deliberate bugs, for tests proving the checks fail. */
  mutations?: VpMutations;
  /**
   * Where the configuration master runs: a reliable process, or the binary's
   * master on a simulated meta group of the replicas (crashing with them).
   * @default 'reliable'
   */
  master?: 'reliable' | 'meta';
  /** Acceptor compaction: in half the seeds with a small threshold ('mixed'), in every seed, or never. @default 'mixed' */
  compaction?: 'mixed' | 'on' | 'off';
}

/** What one seed did. */
export interface VpSeedResult {
  seed: number;
  simMs: number;
  wallMs: number;
  events: number;
  traceHash: string;
  failovers: number;
  /** How deep the run went: the highest ballot activated and the highest slot chosen, bucketed. */
  depth: { ballots: DepthBucket; slots: DepthBucket };
  coverage: VpCoverage;
  ops: { total: number; completed: number; unknown: number };
  /** Checks of the Vertical Paxos invariants, plus the meta group's Raft ones with `--master meta`. */
  invariantChecks: number;
  /** Of those, the meta group's Raft safety checks (0 without `--master meta`). */
  metaInvariantChecks: number;
  config: VpClusterConfig;
}

const DEFAULT_SIM_MS = 20_000;

/** The CLI command that replays `seed` with these options. */
export function vpReplayCommand(seed: number, options: VpRunOptions): string {
  let cmd = `pnpm --filter @cohort/sim sim:vpaxos --seed ${seed}`;
  if (options.simMs !== undefined && options.simMs !== DEFAULT_SIM_MS) cmd += ` --sim-seconds ${options.simMs / 1000}`;
  if (options.faults === false) cmd += ' --no-faults';
  if (options.reads !== undefined && options.reads !== 'mixed') cmd += ` --reads ${options.reads}`;
  if (options.master === 'meta') cmd += ' --master meta';
  if (options.compaction !== undefined && options.compaction !== 'mixed') cmd += ` --compaction ${options.compaction}`;
  return cmd;
}

/** The group's shape for a seed. */
export function vpSeedConfig(r: SeededRandom, reads: VpRunOptions['reads']): VpClusterConfig {
  const f = r.next() < 0.75 ? 1 : 2;
  const lease = reads === 'lease' || (reads !== 'safe' && r.next() < 1 / 3);
  return {
    nodes: f + 1 + r.int(1, 2),
    f,
    leaseMs: lease ? r.int(200, 600) : 0,
    clockSkew: lease ? r.next() * 0.01 : r.next() * 0.05,
    heartbeatMs: 50,
    failAfterMs: r.int(200, 800),
    diskLatencyMs: [0.1 + r.next() * 0.4, 0.5 + r.next() * 4.5],
    master: 'reliable',
    links: {
      minDelay: 1,
      maxDelay: r.int(3, 20),
      dropRate: r.next() * 0.03,
      dupRate: r.next() * 0.02,
      spikeRate: r.next() * 0.01,
      spikeDelay: 300,
    },
    // Drawn last, so the fields above stay what they were for every seed. Half the seeds compact often.
    compactSlots: r.next() < 0.5 ? r.int(2, 12) : 0,
    // Half of those compact by bytes too (a command is ~20 bytes): points closer to the applied slot.
    compactBytes: r.next() < 0.5 ? r.int(40, 400) : 0,
  };
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * A client of the simulated group: one operation at a time, at the replica
 * it believes is the primary (moving on a not-primary answer, which names the
 * primary). A write whose outcome is unknown (timed out, ballot superseded,
 * replica crashed) is given up and stays in the history as possibly applied.
 */
class VpClient {
  private hint: NodeId = '';
  private stopped = false;

  constructor(
    private readonly index: number,
    private readonly cluster: VpCluster,
    private readonly random: SeededRandom,
    private readonly history: KvOperation[],
    private readonly leaseReads: boolean,
  ) {}

  start(): void {
    this.cluster.scheduler.after(this.random.int(20, 300), () => void this.next());
  }

  stop(): void {
    this.stopped = true;
  }

  private pick(): SimVpNode | undefined {
    const h = this.cluster.nodes.get(this.hint);
    if (h?.up) return h;
    const up = this.cluster.upNodes();
    return up[this.random.int(0, up.length - 1)];
  }

  private async next(): Promise<void> {
    if (this.stopped) return;
    const r = this.random.next();
    const key = ['a', 'b', 'n'][this.random.int(0, 2)] as string;
    const input: KvInput =
      r < 0.35
        ? { op: 'get', key }
        : key === 'n'
          ? { op: 'incr', key }
          : { op: 'set', key, value: `${this.index}.${this.random.int(0, 1e6)}` };
    const s = this.cluster.scheduler;
    const op: KvOperation = {
      client: this.index,
      input,
      output: undefined,
      call: s.now(),
      ret: Number.POSITIVE_INFINITY,
    };
    this.history.push(op);
    let done = false;
    for (let attempt = 0; attempt < 5 && !done && !this.stopped; attempt++) {
      const node = this.pick();
      const host = node?.host;
      if (!node || !host) break;
      try {
        if (input.op === 'get') {
          const lease = this.leaseReads && this.random.next() < 0.7;
          if (this.cluster.config.mutations?.unconfirmedReads) {
            if (!host.node.isActive()) throw new NotPrimaryError(host.node.knownPrimary().id || undefined);
          } else {
            await (lease ? host.leaseRead() : host.read());
          }
          if (lease) this.cluster.coverage.leaseRead++;
          else this.cluster.coverage.linearizableRead++;
          op.output = node.machine.get(input.key);
        } else {
          const cmd = input.op === 'set' ? `set\0${input.key}\0${input.value}` : `incr\0${input.key}`;
          op.output = await host.propose<string>(enc(cmd));
        }
        op.ret = s.now();
        done = true;
      } catch (e) {
        if (e instanceof NotPrimaryError) {
          // Certainly not applied: try the primary it named, or another replica.
          this.hint = e.primaryId ?? '';
          if (this.hint === node.id) this.hint = '';
          await new Promise<void>((res) => s.after(30, res));
          continue;
        }
        this.hint = '';
        // A read failing has no effect: retry it. A write's outcome is unknown: give up.
        if (input.op !== 'get') break;
        await new Promise<void>((res) => s.after(50, res));
      }
    }
    if (!done && input.op === 'get') this.history.splice(this.history.indexOf(op), 1);
    if (!this.stopped) s.after(this.random.int(20, 300), () => void this.next());
  }
}

/**
 * Crashes (the primary more often than not), restarts and partitions,
 * leaving at least f+1 replicas up so the master can always form a configuration.
 */
function startFaults(cluster: VpCluster, random: SeededRandom, untilMs: number): void {
  const s = cluster.scheduler;
  const maxDown = cluster.config.nodes - (cluster.config.f + 1);
  const down = (): number => cluster.config.nodes - cluster.upNodes().length;
  const act = (): void => {
    if (s.now() >= untilMs) return;
    const r = random.next();
    const metaLeader = cluster.metaLeader();
    if (r < 0.12 && metaLeader !== undefined && down() < maxDown) {
      // The master on the meta group: its leader crashes, possibly in the middle of a failover.
      cluster.crashMetaLeader(metaLeader);
    } else if (r < 0.6 && down() < maxDown) {
      const up = cluster.upNodes();
      const primary = cluster.activePrimary();
      const victim = primary && random.next() < 0.7 ? primary : up[random.int(0, up.length - 1)];
      if (victim) {
        victim.crash();
        cluster.trace.mixString(`crash ${victim.id}`);
        s.after(random.int(300, 3_000), () => {
          cluster.coverage.crashRestart++;
          cluster.liveness?.forget(victim.id);
          void victim.start();
        });
      }
    } else if (r < 0.8) {
      const ids = [...cluster.nodes.keys()];
      const primary = cluster.activePrimary();
      const one = primary && random.next() < 0.5 ? primary.id : (ids[random.int(0, ids.length - 1)] as NodeId);
      cluster.network.partition([one], [...ids.filter((i) => i !== one), 'master']);
      s.after(random.int(300, 2_000), () => cluster.network.heal());
    }
    s.after(random.int(500, 2_500), act);
  };
  s.after(random.int(1_000, 2_000), act);
}

/**
 * Runs one seed: a Vertical Paxos group of production hosts and the
 * simulated master under crashes, partitions and lossy links, with clients;
 * every invariant checked as it goes, then the client history checked for
 * linearizability. Rejects on any violation, naming how to replay it.
 */
export async function runVpSeed(seed: number, options: VpRunOptions = {}): Promise<VpSeedResult> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  const started = performance.now();
  const root = new SeededRandom(seed);
  const config = vpSeedConfig(root.fork(), options.reads);
  if (options.mutations) config.mutations = options.mutations;
  if (options.compaction === 'off') config.compactSlots = 0;
  else if (options.compaction === 'on' && !config.compactSlots) config.compactSlots = 4;
  if (options.master === 'meta') {
    config.master = 'meta';
    config.metaLeaderCrashAtFailover = 0.5;
  }
  if (options.faults === false) config.links = { ...config.links, dropRate: 0, dupRate: 0, spikeRate: 0 };
  const replay = vpReplayCommand(seed, options);
  const cluster = new VpCluster(seed, config, root.fork(), replay);
  const faultRandom = root.fork();
  const clientRandom = root.fork();
  const simMs = options.simMs ?? DEFAULT_SIM_MS;
  const settleMs = options.settleMs ?? 4_000;
  await cluster.startAll();
  cluster.startExploration();
  if (options.faults !== false) startFaults(cluster, faultRandom, simMs);
  const history: KvOperation[] = [];
  const clients: VpClient[] = [];
  for (let i = 0; i < (options.clients ?? 3); i++) {
    const c = new VpClient(i + 1, cluster, clientRandom.fork(), history, config.leaseMs > 0);
    clients.push(c);
    c.start();
  }
  await cluster.run(simMs);
  cluster.network.heal();
  await cluster.run(simMs + settleMs / 2);
  for (const c of clients) c.stop();
  await cluster.run(simMs + settleMs);
  cluster.countStale();

  const checked = prunedKvHistory(history);
  const verdict = checkLinearizable(kvModel, checked);
  if (verdict.result !== 'ok') {
    const ops = verdict.partition.map((i) => checked[i] as KvOperation);
    const detail =
      verdict.result === 'illegal' ? `no linearization for key ${ops[0]?.input.key ?? '?'}` : verdict.reason;
    throw new LinearizabilityViolationError(seed, detail, ops, replay);
  }
  const completed = history.filter((o) => o.ret !== Number.POSITIVE_INFINITY).length;
  return {
    seed,
    simMs: simMs + settleMs,
    wallMs: performance.now() - started,
    events: cluster.scheduler.executed,
    traceHash: cluster.trace.digest(),
    failovers: cluster.failovers,
    depth: {
      ballots: depthBucket(cluster.activeConfig()?.ballot ?? 0),
      slots: depthBucket(cluster.invariants.maxChosen),
    },
    coverage: cluster.coverage,
    ops: { total: history.length, completed, unknown: history.length - completed },
    invariantChecks: cluster.invariants.checks + cluster.metaInvariants.checks,
    metaInvariantChecks: cluster.metaInvariants.checks,
    config,
  };
}

/** Totals over a batch of seeds. */
export interface VpBatchSummary {
  seeds: number;
  wallMs: number;
  events: number;
  coverage: VpCoverage;
  ops: { total: number; completed: number; unknown: number };
  /** The meta group's Raft safety checks over every seed. */
  metaInvariantChecks: number;
  /** Seeds per depth bucket of activated ballots and of chosen slots. */
  depth: { ballots: Record<DepthBucket, number>; slots: Record<DepthBucket, number> };
}

function emptyBuckets(): Record<DepthBucket, number> {
  return Object.fromEntries(DEPTH_BUCKETS.map((b) => [b, 0])) as Record<DepthBucket, number>;
}

/** Runs seeds `first .. first+count-1`; rejects at the first violation. */
export async function runVpSeeds(
  first: number,
  count: number,
  options: VpRunOptions = {},
  onSeed: (r: VpSeedResult) => void = () => {},
): Promise<VpBatchSummary> {
  const s: VpBatchSummary = {
    seeds: 0,
    wallMs: 0,
    events: 0,
    coverage: emptyVpCoverage(),
    ops: { total: 0, completed: 0, unknown: 0 },
    metaInvariantChecks: 0,
    depth: { ballots: emptyBuckets(), slots: emptyBuckets() },
  };
  for (let seed = first; seed < first + count; seed++) {
    const r = await runVpSeed(seed, options);
    s.seeds++;
    s.wallMs += r.wallMs;
    s.events += r.events;
    addVpCoverage(s.coverage, r.coverage);
    s.depth.ballots[r.depth.ballots]++;
    s.depth.slots[r.depth.slots]++;
    s.ops.total += r.ops.total;
    s.ops.completed += r.ops.completed;
    s.ops.unknown += r.ops.unknown;
    s.metaInvariantChecks += r.metaInvariantChecks;
    onSeed(r);
  }
  return s;
}
