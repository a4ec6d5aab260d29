import { describe, expect, it } from 'vitest';
import { type NodeCounters, medianCost, parseMetrics, writeCost } from '../src/write-phases.ts';

const PAGE = `# HELP cohort_raft_proposal_phase_seconds Time from a proposal
# TYPE cohort_raft_proposal_phase_seconds histogram
cohort_raft_proposal_phase_seconds_bucket{le="0.001",phase="persisted"} 3
cohort_raft_proposal_phase_seconds_sum{phase="persisted"} 0.004
cohort_raft_proposal_phase_seconds_count{phase="persisted"} 4
cohort_raft_proposal_phase_seconds_sum{phase="replied"} 0.012
cohort_raft_proposal_phase_seconds_count{phase="replied"} 4
cohort_storage_commits_total 10
cohort_storage_commit_jobs_total 25
cohort_storage_commit_seconds_total 0.005
cohort_storage_commit_wait_seconds_total 0.002
cohort_storage_read_ahead_keys_total{outcome="read"} 120
cohort_storage_read_ahead_keys_total{outcome="dropped"} 7
cohort_storage_cold_reads_total{thread="loop"} 3
cohort_storage_cold_reads_total{thread="ahead"} 9
cohort_requests_total{op="put"} 99
nodejs_gc_duration_seconds_bucket{le="0.001",kind="minor"} 40
nodejs_gc_duration_seconds_sum{kind="minor"} 0.09
nodejs_gc_duration_seconds_count{kind="minor"} 45
nodejs_gc_duration_seconds_sum{kind="major"} 0.03
nodejs_gc_duration_seconds_count{kind="major"} 2
`;

const node = (over: Partial<NodeCounters>): NodeCounters => ({
  phaseSum: {},
  phaseCount: {},
  commits: 0,
  commitJobs: 0,
  commitSeconds: 0,
  commitWaitSeconds: 0,
  aheadKeys: 0,
  loopColdReads: 0,
  gcSeconds: {},
  gcCount: {},
  cpuSeconds: 0,
  diskBytes: 0,
  ...over,
});

describe('write phases', () => {
  it('reads the phase sums and counts, the store counters and the GC pauses from a metrics page', () => {
    expect(parseMetrics(PAGE)).toEqual({
      phaseSum: { persisted: 0.004, replied: 0.012 },
      phaseCount: { persisted: 4, replied: 4 },
      commits: 10,
      commitJobs: 25,
      commitSeconds: 0.005,
      commitWaitSeconds: 0.002,
      aheadKeys: 120,
      loopColdReads: 3,
      gcSeconds: { minor: 0.09, major: 0.03 },
      gcCount: { minor: 45, major: 2 },
    });
    expect(parseMetrics('')).toMatchObject({ commits: 0, phaseSum: {}, gcCount: {} });
  });

  it('gives the per-write cost of a run from the counters around it', () => {
    const before = node({
      phaseSum: { persisted: 1 },
      phaseCount: { persisted: 100 },
      commits: 50,
      commitSeconds: 0.1,
      commitWaitSeconds: 0.2,
    });
    const after = node({
      phaseSum: { persisted: 1.2, committed: 0.3 },
      phaseCount: { persisted: 200, committed: 100 },
      commits: 100,
      commitSeconds: 0.15,
      commitWaitSeconds: 0.25,
      cpuSeconds: 0.05,
      diskBytes: 400_000,
      threadCpu: { main: 0.03, workers: 0.005, v8: 0.01 },
      loopColdReads: 5,
      gcSeconds: { minor: 0.0011, major: 0.0003 },
      gcCount: { minor: 12, major: 3 },
    });
    const follower = {
      before: node({ cpuSeconds: 1, aheadKeys: 40, loopColdReads: 2, commits: 10 }),
      after: node({
        cpuSeconds: 1.03,
        diskBytes: 300_000,
        aheadKeys: 140,
        loopColdReads: 2,
        commits: 90,
        commitWaitSeconds: 0.12,
      }),
    };
    const c = writeCost(
      100,
      {
        before: {
          ...before,
          threadCpu: { main: 0, workers: 0, v8: 0 },
          gcSeconds: { minor: 0.0001 },
          gcCount: { minor: 2, major: 1 },
        },
        after,
      },
      [follower],
    );
    expect(c).toEqual({
      persistedMs: 2,
      committedMs: 3,
      appliedMs: Number.NaN,
      repliedMs: Number.NaN,
      commitsPerWrite: 0.5,
      commitMs: 1,
      commitWaitMs: 1,
      followerCommitsPerWrite: 0.8,
      followerWaitMs: 1.5,
      leaderCpuUs: 500,
      leaderMainUs: 300,
      leaderWorkersUs: 50,
      leaderV8Us: 100,
      leaderGcUs: 13,
      leaderMajorGcs: 2,
      clusterCpuUs: 800,
      diskBytes: 7000,
      aheadKeysPerWrite: 1,
      loopColdPer1k: 50,
    });
    // Threads unread on either side: their split is unknown, not zero.
    expect(writeCost(100, { before, after }, [])).toMatchObject({
      leaderCpuUs: 500,
      leaderMainUs: Number.NaN,
      followerCommitsPerWrite: Number.NaN,
      followerWaitMs: Number.NaN,
    });
    // A leader whose metrics show no GC pauses: unknown, not zero.
    expect(writeCost(100, { before: node({}), after: node({}) }, [])).toMatchObject({
      leaderGcUs: Number.NaN,
      leaderMajorGcs: Number.NaN,
    });
    expect(writeCost(0, { before, after }, [])).toBeUndefined();
  });

  it('takes the median of each field, skipping the runs that lack it', () => {
    const base = writeCost(1, { before: node({}), after: node({}) }, []);
    if (!base) throw new Error('no cost');
    const costs = [1, 5, 3].map((x) => ({ ...base, persistedMs: x, diskBytes: x * 10 }));
    expect(medianCost(costs)).toMatchObject({ persistedMs: 3, diskBytes: 30, appliedMs: Number.NaN });
    expect(medianCost([])).toBeUndefined();
  });
});
