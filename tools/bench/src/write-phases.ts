// Where a Cohort write's time goes during one run: the leader's proposal
// phase histograms (propose -> persisted locally -> committed -> applied ->
// replied), its store's commits (group commit: writes per transaction, time
// on the writer thread), and what every node spent per write (CPU, bytes
// written to disk). Read from `/metrics` and `/proc` before and after a run;
// the arithmetic is pure and tested.
import { median } from './stats.ts';

/** The counters read from one node at one moment. */
export interface NodeCounters {
  /** `cohort_raft_proposal_phase_seconds` sums and counts by phase. */
  phaseSum: Record<string, number>;
  phaseCount: Record<string, number>;
  /** Store commits (transactions), their jobs and their time on the writer thread (s). */
  commits: number;
  commitJobs: number;
  commitSeconds: number;
  /** Time jobs waited for the writer, from their hand-off to the start of their commit (s). */
  commitWaitSeconds: number;
  /**
   * Keys the store's read-ahead thread read (`cohort_storage_read_ahead_keys_total{outcome="read"}`), and point
   * reads on the event loop that went to the disk (`cohort_storage_cold_reads_total{thread="loop"}`).
   */
  aheadKeys: number;
  loopColdReads: number;
  /**
   * The event loop's garbage collection pauses by kind (`minor`, `major`, `incremental`, `weakcb`): their
   * seconds and their number (prom-client's `nodejs_gc_duration_seconds`).
   */
  gcSeconds: Record<string, number>;
  gcCount: Record<string, number>;
  /** CPU seconds of the process, and bytes it caused to be written to disk. */
  cpuSeconds: number;
  diskBytes: number;
  /**
   * CPU seconds of its threads by kind: the event loop's (`main`), worker threads' (the store's writer),
   * V8's helper threads' (GC, optimizing compilers). Absent where unreadable.
   */
  threadCpu?: { main: number; workers: number; v8: number };
}

/** What one run's writes cost, per write (medians over rounds are taken of these). */
export interface WriteCost {
  /** Mean ms from the leader's proposal to each phase. */
  persistedMs: number;
  committedMs: number;
  appliedMs: number;
  repliedMs: number;
  /** Leader store commits per write (below 1: group commit), and ms per commit on its writer thread. */
  commitsPerWrite: number;
  commitMs: number;
  /** Ms the leader's jobs waited for its writer (to wake up and take them, or to finish earlier commits), per commit. */
  commitWaitMs: number;
  /**
   * The followers' commits per write (each follower's, averaged; above the leader's when their apply
   * transactions commit alone), and the ms their jobs waited for their writers, per commit.
   */
  followerCommitsPerWrite: number;
  followerWaitMs: number;
  /** CPU µs per write on the leader, and summed over every node. */
  leaderCpuUs: number;
  clusterCpuUs: number;
  /** Of the leader's: its event loop's thread, its worker threads (the writer), V8's helper threads (NaN if unknown). */
  leaderMainUs: number;
  leaderWorkersUs: number;
  leaderV8Us: number;
  /**
   * The leader's event loop paused for garbage collection, µs per write (every kind), and how many of its pauses
   * were full (mark-compact) collections in the run (both NaN when its metrics show no GC pauses).
   */
  leaderGcUs: number;
  leaderMajorGcs: number;
  /** Bytes written to disk per write, summed over every node. */
  diskBytes: number;
  /**
   * Keys read ahead per write, summed over every node (about 1 per node per key written while read ahead is
   * on, 0 while off), and event-loop reads that went to the disk per 1,000 writes, summed over every node.
   */
  aheadKeysPerWrite: number;
  loopColdPer1k: number;
}

export const PHASES = ['persisted', 'committed', 'applied', 'replied'] as const;

const PHASE_METRIC = 'cohort_raft_proposal_phase_seconds';
/** prom-client's default metric of the event loop's GC pauses, by `kind`. */
const GC_METRIC = 'nodejs_gc_duration_seconds';

/** Reads the phase sums and counts and the store counters from a Prometheus text page. */
export function parseMetrics(
  text: string,
): Pick<
  NodeCounters,
  | 'phaseSum'
  | 'phaseCount'
  | 'commits'
  | 'commitJobs'
  | 'commitSeconds'
  | 'commitWaitSeconds'
  | 'aheadKeys'
  | 'loopColdReads'
  | 'gcSeconds'
  | 'gcCount'
> {
  const phaseSum: Record<string, number> = {};
  const phaseCount: Record<string, number> = {};
  const gcSeconds: Record<string, number> = {};
  const gcCount: Record<string, number> = {};
  const plain = new Map<string, number>();
  let aheadKeys = 0;
  let loopColdReads = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const m = /^([a-z_]+)(?:\{([^}]*)\})? ([0-9.eE+-]+|NaN)$/.exec(line);
    if (!m) continue;
    const [, name, labels, value] = m as unknown as [string, string, string | undefined, string];
    const v = Number(value);
    if (name === `${PHASE_METRIC}_sum` || name === `${PHASE_METRIC}_count`) {
      const phase = /phase="([^"]+)"/.exec(labels ?? '')?.[1];
      if (phase === undefined) continue;
      const into = name.endsWith('_sum') ? phaseSum : phaseCount;
      into[phase] = (into[phase] ?? 0) + v;
    } else if (name === `${GC_METRIC}_sum` || name === `${GC_METRIC}_count`) {
      const kind = /kind="([^"]+)"/.exec(labels ?? '')?.[1];
      if (kind === undefined) continue;
      const into = name.endsWith('_sum') ? gcSeconds : gcCount;
      into[kind] = (into[kind] ?? 0) + v;
    } else if (labels === undefined) {
      plain.set(name, v);
    } else if (name === 'cohort_storage_read_ahead_keys_total' && labels.includes('outcome="read"')) {
      aheadKeys += v;
    } else if (name === 'cohort_storage_cold_reads_total' && labels.includes('thread="loop"')) {
      loopColdReads += v;
    }
  }
  return {
    phaseSum,
    phaseCount,
    commits: plain.get('cohort_storage_commits_total') ?? 0,
    commitJobs: plain.get('cohort_storage_commit_jobs_total') ?? 0,
    commitSeconds: plain.get('cohort_storage_commit_seconds_total') ?? 0,
    commitWaitSeconds: plain.get('cohort_storage_commit_wait_seconds_total') ?? 0,
    aheadKeys,
    loopColdReads,
    gcSeconds,
    gcCount,
  };
}

/**
 * The cost per write of a run that completed `writes` writes, from the
 * leader's counters and its followers' before and after it. Undefined when
 * no write completed.
 */
export function writeCost(
  writes: number,
  leader: { before: NodeCounters; after: NodeCounters },
  followers: { before: NodeCounters; after: NodeCounters }[],
): WriteCost | undefined {
  if (writes <= 0) return undefined;
  const { before: a, after: b } = leader;
  const phaseMs = (p: string): number => {
    const n = (b.phaseCount[p] ?? 0) - (a.phaseCount[p] ?? 0);
    const s = (b.phaseSum[p] ?? 0) - (a.phaseSum[p] ?? 0);
    return n > 0 ? round((s / n) * 1000, 3) : Number.NaN;
  };
  const commits = b.commits - a.commits;
  const threadUs = (kind: 'main' | 'workers' | 'v8'): number =>
    a.threadCpu && b.threadCpu ? Math.round(((b.threadCpu[kind] - a.threadCpu[kind]) / writes) * 1e6) : Number.NaN;
  const nodes = [leader, ...followers];
  const sum = (pick: (c: NodeCounters) => number, of = nodes): number =>
    of.reduce((t, n) => t + pick(n.after) - pick(n.before), 0);
  const followerCommits = sum((c) => c.commits, followers);
  const gcKinds = Object.keys(b.gcSeconds);
  const gcSeconds = gcKinds.reduce((t, k) => t + (b.gcSeconds[k] ?? 0) - (a.gcSeconds[k] ?? 0), 0);
  return {
    persistedMs: phaseMs('persisted'),
    committedMs: phaseMs('committed'),
    appliedMs: phaseMs('applied'),
    repliedMs: phaseMs('replied'),
    commitsPerWrite: round(commits / writes, 3),
    commitMs: commits > 0 ? round(((b.commitSeconds - a.commitSeconds) / commits) * 1000, 3) : Number.NaN,
    commitWaitMs: commits > 0 ? round(((b.commitWaitSeconds - a.commitWaitSeconds) / commits) * 1000, 3) : Number.NaN,
    followerCommitsPerWrite: followers.length > 0 ? round(followerCommits / followers.length / writes, 3) : Number.NaN,
    followerWaitMs:
      followerCommits > 0
        ? round((sum((c) => c.commitWaitSeconds, followers) / followerCommits) * 1000, 3)
        : Number.NaN,
    leaderCpuUs: Math.round(((b.cpuSeconds - a.cpuSeconds) / writes) * 1e6),
    leaderMainUs: threadUs('main'),
    leaderWorkersUs: threadUs('workers'),
    leaderV8Us: threadUs('v8'),
    leaderGcUs: gcKinds.length > 0 ? Math.round((gcSeconds / writes) * 1e6) : Number.NaN,
    leaderMajorGcs: gcKinds.length > 0 ? (b.gcCount.major ?? 0) - (a.gcCount.major ?? 0) : Number.NaN,
    clusterCpuUs: Math.round((sum((c) => c.cpuSeconds) / writes) * 1e6),
    diskBytes: Math.round(sum((c) => c.diskBytes) / writes),
    aheadKeysPerWrite: round(sum((c) => c.aheadKeys) / writes, 2),
    loopColdPer1k: round((sum((c) => c.loopColdReads) / writes) * 1000, 1),
  };
}

/** The median of each field over `costs` (NaN fields skipped). */
export function medianCost(costs: readonly WriteCost[]): WriteCost | undefined {
  const first = costs[0];
  if (first === undefined) return undefined;
  const out = { ...first };
  for (const k of Object.keys(first) as (keyof WriteCost)[]) {
    out[k] = median(costs.map((c) => c[k]).filter((x) => !Number.isNaN(x)));
  }
  return out;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
