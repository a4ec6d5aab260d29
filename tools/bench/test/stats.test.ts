import { describe, expect, it } from 'vitest';
import {
  type RunResult,
  comparisonTable,
  cpuTable,
  formatCell,
  formatMs,
  formatRatio,
  formatTable,
  latencySummary,
  median,
  opCpu,
  percentile,
  ratio,
  summarize,
} from '../src/stats.ts';

const run = (over: Partial<RunResult>): RunResult => ({
  stage: '10k',
  workload: 'http-put-c1',
  system: 'cohort',
  round: 1,
  ops: 1000,
  errors: 0,
  seconds: 1,
  opsPerSec: 1000,
  p50Ms: 1,
  p99Ms: 2,
  ...over,
});

describe('median and percentile', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
  });

  it('does not reorder its input', () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });

  it('takes percentiles by nearest rank', () => {
    const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile(sorted, 1)).toBe(100);
    expect(percentile(sorted, 0)).toBe(1);
    expect(percentile([5], 0.99)).toBe(5);
    expect(percentile([], 0.5)).toBeNaN();
  });

  it('summarizes latencies given in any order', () => {
    const lat = Array.from({ length: 1000 }, (_, i) => (1000 - i) / 100);
    expect(latencySummary(lat)).toEqual({ p50Ms: 5, p99Ms: 9.9 });
  });
});

describe('ratio', () => {
  it('divides, and has no ratio against nothing', () => {
    expect(ratio(150, 100)).toBe(1.5);
    expect(ratio(1, 0)).toBeUndefined();
    expect(ratio(undefined, 3)).toBeUndefined();
    expect(ratio(3, Number.NaN)).toBeUndefined();
    expect(formatRatio(ratio(2900, 1000))).toBe('2.90x');
    expect(formatRatio(undefined)).toBe('-');
  });
});

describe('summarize', () => {
  it('takes medians per stage, workload and system over rounds, in the order they ran', () => {
    const results = [
      run({ system: 'cohort', round: 1, opsPerSec: 400, p50Ms: 2.2, p99Ms: 9 }),
      run({ system: 'etcd', round: 1, opsPerSec: 900, p50Ms: 1 }),
      run({ system: 'cohort', round: 2, opsPerSec: 500, p50Ms: 2.0, p99Ms: 7, errors: 2 }),
      run({ system: 'cohort', round: 3, opsPerSec: 450, p50Ms: 1.9, p99Ms: 8 }),
    ];
    const [cohort, etcd] = summarize(results);
    expect(cohort).toEqual({
      stage: '10k',
      workload: 'http-put-c1',
      system: 'cohort',
      rounds: 3,
      opsPerSec: 450,
      minOpsPerSec: 400,
      maxOpsPerSec: 500,
      p50Ms: 2,
      p99Ms: 8,
      errors: 2,
    });
    expect(etcd?.system).toBe('etcd');
    expect(etcd?.rounds).toBe(1);
  });
});

describe('formatting', () => {
  it('writes milliseconds with three significant digits', () => {
    expect(formatMs(0.41234)).toBe('0.412');
    expect(formatMs(1.95)).toBe('1.95');
    expect(formatMs(23.44)).toBe('23.4');
    expect(formatMs(160.4)).toBe('160');
    expect(formatMs(Number.NaN)).toBe('?');
  });

  it('writes a cell with rate, p50, p99 and errors', () => {
    const [s] = summarize([run({ opsPerSec: 7612, p50Ms: 1.951, p99Ms: 23.44, errors: 3 })]);
    expect(formatCell(s)).toBe('7,612/s p50 1.95 p99 23.4 (3 errors)');
    expect(formatCell(undefined)).toBe('-');
  });

  it('pads columns, left then right aligned', () => {
    expect(
      formatTable(
        ['a', 'n'],
        [
          ['xyz', '1'],
          ['b', '100'],
        ],
        1,
      ),
    ).toBe(['a      n', '---  ---', 'xyz    1', 'b    100'].join('\n'));
  });

  it('puts each system in its column and Cohort over the compared system in the ratio columns', () => {
    const summaries = summarize([
      run({ system: 'cohort', opsPerSec: 2000 }),
      run({ system: 'etcd', opsPerSec: 1000 }),
      run({ workload: 'resp-put-c50', system: 'cohort', opsPerSec: 3000 }),
      run({ workload: 'resp-put-c50', system: 'redis', opsPerSec: 60000 }),
    ]);
    const table = comparisonTable(
      [
        { stage: '10k', workload: 'http-put-c1', title: 'HTTP put, 1 conn', versus: 'etcd' },
        { stage: '10k', workload: 'resp-put-c50', title: 'RESP SET, 50 conns', versus: 'redis' },
        { stage: '10k', workload: 'never-ran', title: 'left out', versus: 'etcd' },
      ],
      summaries,
    );
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^keys\s+workload\s+Cohort\s+etcd\s+Redis\s+Cohort\/etcd\s+Cohort\/Redis$/);
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatch(/^10k\s+HTTP put, 1 conn\s+2,000\/s p50 1 p99 2\s+1,000\/s p50 1 p99 2\s+-\s+2\.00x$/);
    expect(lines[3]).toMatch(/RESP SET, 50 conns\s+3,000\/s p50 1 p99 2\s+-\s+60,000\/s p50 1 p99 2\s+0\.05x$/);
  });
});

describe('CPU per operation', () => {
  it('divides the CPU read around a run by its operations, and has none without operations', () => {
    expect(opCpu(2000, { before: 10, after: 11 }, { before: 3, after: 3.1 })).toEqual({ serverUs: 500, loadUs: 50 });
    expect(opCpu(0, { before: 10, after: 11 }, { before: 3, after: 3.1 })).toBeUndefined();
  });

  it('takes medians over the rounds that read it, and leaves it out when none did', () => {
    const [cohort, etcd] = summarize([
      run({ system: 'cohort', round: 1, cpuPerOp: { serverUs: 300, loadUs: 40 } }),
      run({ system: 'cohort', round: 2, cpuPerOp: { serverUs: 500, loadUs: 20 } }),
      run({ system: 'cohort', round: 3 }),
      run({ system: 'etcd', round: 1 }),
    ]);
    expect(cohort).toMatchObject({ serverCpuUs: 400, loadCpuUs: 30 });
    expect(etcd).not.toHaveProperty('serverCpuUs');
  });

  it('puts each system in its column and Cohort over the compared system in the last', () => {
    const rows = [
      { stage: '10k', workload: 'http-put-c1', title: 'HTTP put, 1 conn', versus: 'etcd' as const },
      { stage: '10k', workload: 'resp-put-c50', title: 'RESP SET, 50 conns', versus: 'redis' as const },
      { stage: '10k', workload: 'never-ran', title: 'left out', versus: 'etcd' as const },
    ];
    const table = cpuTable(
      rows,
      summarize([
        run({ system: 'cohort', cpuPerOp: { serverUs: 600, loadUs: 40 } }),
        run({ system: 'etcd', cpuPerOp: { serverUs: 400, loadUs: 41 } }),
        run({ workload: 'resp-put-c50', system: 'cohort', cpuPerOp: { serverUs: 450, loadUs: 12 } }),
        run({ workload: 'resp-put-c50', system: 'redis', cpuPerOp: { serverUs: 15, loadUs: 10 } }),
      ]),
    );
    const lines = table?.split('\n') ?? [];
    expect(lines[0]).toMatch(/^keys\s+workload\s+Cohort\s+etcd\s+Redis\s+Cohort server CPU \/ other$/);
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatch(/^10k\s+HTTP put, 1 conn\s+600 \+ 40\s+400 \+ 41\s+-\s+1\.50x$/);
    expect(lines[3]).toMatch(/RESP SET, 50 conns\s+450 \+ 12\s+-\s+15 \+ 10\s+30\.00x$/);
    expect(cpuTable(rows, summarize([run({})]))).toBeUndefined();
  });
});
