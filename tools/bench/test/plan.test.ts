import { describe, expect, it } from 'vitest';
import { checkTargets, keysLabel, schedule, warmUpPlan, workloads } from '../src/plan.ts';
import { parseRedisBenchmarkCsv, redisBenchmarkArgs } from '../src/resp-load.ts';
import { type RunResult, summarize } from '../src/stats.ts';

const list = workloads({ httpConnections: [1, 64], respConnections: 50, pipeline: 16 });

describe('workloads and schedule', () => {
  it('has HTTP put and get at each connection count, RESP SET and GET with and without pipelining', () => {
    expect(list.map((w) => w.workload)).toEqual([
      'http-put-c1',
      'http-put-c64',
      'http-get-c1',
      'http-get-c64',
      'resp-put-c50',
      'resp-get-c50',
      'resp-put-c50-P16',
      'resp-get-c50-P16',
    ]);
    expect(list.find((w) => w.workload === 'resp-put-c50-P16')?.title).toBe('RESP SET, 50 conns, -P 16');
  });

  it('alternates which system runs first from round to round, and leaves out systems not running', () => {
    const runs = schedule('10k', 3, list.slice(0, 1), ['cohort', 'etcd', 'redis']);
    expect(runs.map((r) => `${r.round}:${r.system}`)).toEqual([
      '1:cohort',
      '1:etcd',
      '2:etcd',
      '2:cohort',
      '3:cohort',
      '3:etcd',
    ]);
    const alone = schedule('10k', 1, list, ['cohort', 'redis']);
    expect(alone.filter((r) => r.system === 'cohort')).toHaveLength(8);
    expect(alone.filter((r) => r.system === 'redis')).toHaveLength(4);
    expect(alone.some((r) => r.system === 'etcd')).toBe(false);
  });

  it('warms each system up on each kind of request it serves, at the most requests in flight, for an equal share', () => {
    const names = (s: Parameters<typeof warmUpPlan>[0], available: Parameters<typeof warmUpPlan>[2]) =>
      warmUpPlan(s, list, available, 30).map((p) => `${p.workload.workload} ${p.seconds}`);
    expect(names('cohort', ['cohort', 'etcd', 'redis'])).toEqual([
      'http-put-c64 7.5',
      'http-get-c64 7.5',
      'resp-put-c50-P16 7.5',
      'resp-get-c50-P16 7.5',
    ]);
    expect(names('etcd', ['cohort', 'etcd', 'redis'])).toEqual(['http-put-c64 15', 'http-get-c64 15']);
    expect(names('redis', ['cohort', 'redis'])).toEqual(['resp-put-c50-P16 15', 'resp-get-c50-P16 15']);
    expect(names('etcd', ['cohort', 'redis'])).toEqual([]);
    expect(warmUpPlan('cohort', list, ['cohort'], 0)).toEqual([]);
  });

  it('labels key counts', () => {
    expect(keysLabel(10_000)).toBe('10k');
    expect(keysLabel(1_000_000)).toBe('1M');
    expect(keysLabel(2_500_000)).toBe('2.5M');
    expect(keysLabel(750)).toBe('750');
  });
});

describe('targets', () => {
  const r = (workload: string, system: RunResult['system'], opsPerSec: number, p50Ms = 1, p99Ms = 10): RunResult => ({
    stage: '1M',
    workload,
    system,
    round: 1,
    ops: opsPerSec,
    errors: 0,
    seconds: 1,
    opsPerSec,
    p50Ms,
    p99Ms,
  });

  it('checks each target on the medians and says what it measured', () => {
    const checks = checkTargets(
      summarize([
        r('http-put-c1', 'cohort', 1000, 0.9),
        r('http-put-c1', 'etcd', 950, 1.0),
        r('http-put-c64', 'cohort', 9000, 5, 30),
        r('http-put-c64', 'etcd', 6500, 5, 22),
        r('http-get-c64', 'cohort', 40000),
        r('http-get-c64', 'etcd', 8000),
        r('resp-put-c50', 'cohort', 21000),
        r('resp-put-c50', 'redis', 70000),
        r('resp-put-c50-P16', 'cohort', 60000),
      ]),
      list,
    );
    expect(checks.map((c) => [c.target, c.measured, c.met])).toEqual([
      ['HTTP put, 1 conn: p50 at or below etcd', 'p50 0.9 vs 1 ms', true],
      ['HTTP put, 64 conns: 1.5x etcd, p99 at or below', '1.38x, p99 30 vs 22 ms', false],
      ['HTTP linearizable get, 64 conns: 4x etcd', '5.00x', true],
      ['RESP SET, 50 conns: 0.3x Redis', '0.30x', true],
      ['RESP SET, 50 conns, -P 16: 3x Cohort unpipelined', '2.86x', false],
    ]);
  });

  it("gives each round's own comparison beside the medians' verdict", () => {
    const runs = [
      { ...r('http-put-c1', 'cohort', 400, 2.1), round: 2 },
      { ...r('http-put-c1', 'etcd', 600, 1.5), round: 2 },
      { ...r('http-put-c1', 'cohort', 450, 2.0), round: 1 },
      { ...r('http-put-c1', 'etcd', 650, 1.4), round: 1 },
      { ...r('http-get-c64', 'cohort', 43000), round: 1 },
      { ...r('http-get-c64', 'etcd', 10000), round: 1 },
      { ...r('http-get-c64', 'cohort', 14000), round: 2 },
      { ...r('http-get-c64', 'etcd', 4000), round: 2 },
      { ...r('http-get-c64', 'cohort', 30000), round: 3 },
      { ...r('http-get-c64', 'etcd', 9000), round: 3 },
      // A round whose etcd run is missing has no comparison of its own.
      { ...r('http-get-c64', 'cohort', 30000), round: 4 },
    ];
    const checks = checkTargets(summarize(runs), list, runs);
    expect(checks.map((c) => [c.target, c.measured, c.met, c.byRound])).toEqual([
      ['HTTP put, 1 conn: p50 at or below etcd', 'p50 2.05 vs 1.45 ms', false, ['2/1.4', '2.1/1.5']],
      // The ratio of the medians (30,000 / 9,000) misses the target, which the first round met.
      ['HTTP linearizable get, 64 conns: 4x etcd', '3.33x', false, ['4.30x', '3.50x', '3.33x']],
    ]);
    expect(checkTargets(summarize(runs), list).every((c) => c.byRound === undefined)).toBe(true);
  });

  it('leaves out a target whose workloads did not run', () => {
    expect(checkTargets(summarize([r('http-put-c1', 'cohort', 1000)]), list)).toEqual([]);
  });
});

describe('redis-benchmark', () => {
  it('reads the rate and percentiles of its CSV output', () => {
    const out = [
      'WARNING: Could not fetch server CONFIG',
      '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"',
      '"SET","33277.87","1.414","0.264","0.671","3.895","11.215","36.511"',
    ].join('\n');
    expect(parseRedisBenchmarkCsv(out)).toEqual({ test: 'SET', rps: 33277.87, p50Ms: 0.671, p99Ms: 11.215 });
    expect(parseRedisBenchmarkCsv('Could not connect to Redis at 127.0.0.1:1: Connection refused')).toBeUndefined();
  });

  it('asks for random keys below the key space, the value size and the pipeline depth', () => {
    const args = redisBenchmarkArgs({
      port: 7000,
      op: 'get',
      connections: 50,
      pipeline: 16,
      requests: 1000,
      keySpace: 10_000,
      valueBytes: 100,
      timeoutSeconds: 10,
    }).join(' ');
    expect(args).toBe('-h 127.0.0.1 -p 7000 -c 50 -n 1000 -r 10000 -d 100 -P 16 -t get --csv');
  });
});
