import { describe, expect, it } from 'vitest';
import { type AbRun, buildArms, combinedRatio, parseArm, parseArmEnv, passes, summarizePass } from '../src/ab-plan.ts';

const run = (pass: number, r: number, arm: string, opsPerSec: number, extra: Partial<AbRun> = {}): AbRun => ({
  pass,
  run: r,
  arm,
  opsPerSec,
  p50Ms: 5,
  p99Ms: 40,
  serverUs: 300,
  leaderMainUs: 100,
  leaderWorkersUs: 20,
  leaderV8Us: 10,
  leaderGcUs: 8,
  leaderMajorGcs: 1,
  diskBytes: 12_000,
  errors: 0,
  ...extra,
});

describe('arms from the command line', () => {
  it('takes a label and the cohort start flags after "="', () => {
    expect(parseArm('base')).toEqual({ label: 'base', flags: [], nodeFlags: [], env: {} });
    expect(parseArm('base=')).toEqual({ label: 'base', flags: [], nodeFlags: [], env: {} });
    expect(parseArm('hold400=--writer-apply-batch-ms  400').flags).toEqual(['--writer-apply-batch-ms', '400']);
  });

  it('refuses a label that is empty or not a plain word', () => {
    expect(() => parseArm('=--read-ahead off')).toThrow(/expected a label/);
    expect(() => parseArm('two words=--x')).toThrow(/expected a label/);
  });

  it('folds node flags, environment and another build into the arm they name', () => {
    const arms = buildArms(['base', 'inline', 'old=--read-ahead off'], {
      nodeFlags: ['inline=--max-semi-space-size=32 --trace-gc'],
      env: ['inline:COHORT_STORE_WRITER=inline', 'inline:X=a=b'],
      cli: ['old=/tmp/other/apps/node/dist/cli.js'],
    });
    expect(arms[0]).toEqual({ label: 'base', flags: [], nodeFlags: [], env: {} });
    expect(arms[1]).toEqual({
      label: 'inline',
      flags: [],
      nodeFlags: ['--max-semi-space-size=32', '--trace-gc'],
      env: { COHORT_STORE_WRITER: 'inline', X: 'a=b' },
    });
    expect(arms[2]?.cli).toBe('/tmp/other/apps/node/dist/cli.js');
    expect(arms[2]?.flags).toEqual(['--read-ahead', 'off']);
  });

  it('says which label is unknown, repeated, or what an option lacks', () => {
    expect(() => buildArms(['a'])).toThrow(/at least two arms/);
    expect(() => buildArms(['a', 'a=--x'])).toThrow(/'a' is given twice/);
    expect(() => buildArms(['a', 'b'], { env: ['c:K=V'] })).toThrow(/no arm is labelled 'c' \(arms: a, b\)/);
    expect(() => buildArms(['a', 'b'], { cli: ['b='] })).toThrow(/expected label=value/);
    expect(() => parseArmEnv('a:=V')).toThrow(/label:KEY=VALUE/);
    expect(() => parseArmEnv('a:1K=V')).toThrow(/label:KEY=VALUE/);
  });
});

describe('passes and their arithmetic', () => {
  it('runs the arms in the order given, then reversed, unless one order is asked for', () => {
    expect(passes(['a', 'b', 'c'], true)).toEqual([
      ['a', 'b', 'c'],
      ['c', 'b', 'a'],
    ]);
    expect(passes(['a', 'b'], false)).toEqual([['a', 'b']]);
  });

  it('pairs each run with the same run of the baseline', () => {
    const runs = [
      run(0, 0, 'base', 1000),
      run(0, 0, 'b', 1200),
      run(0, 1, 'base', 2000),
      run(0, 1, 'b', 1800),
      run(0, 2, 'base', 1000, { p99Ms: 60, serverUs: 320 }),
      run(0, 2, 'b', 1100, { p99Ms: 30, serverUs: 280 }),
    ];
    const [base, b] = summarizePass(runs, ['base', 'b'], 'base');
    expect(base).toEqual({
      label: 'base',
      medianOpsPerSec: 1000,
      medianP99Ms: 40,
      medianServerUs: 300,
      runs: 3,
    });
    // (1.2 + 0.9 + 1.1) / 3: the pairs' ratios, not the ratio of the medians (1200 / 1000).
    expect(b?.meanRatio).toBeCloseTo(3.2 / 3, 10);
    expect(b?.ahead).toBe(2);
    expect(b?.medianOpsPerSec).toBe(1200);
    expect(b?.medianP99Ms).toBe(40);
    expect(b?.medianServerUs).toBe(300);
  });

  it('leaves out a run the baseline has no pair for, or served nothing in', () => {
    const runs = [
      run(0, 0, 'base', 0),
      run(0, 0, 'b', 900),
      run(0, 1, 'b', 1000),
      run(0, 2, 'base', 500),
      run(0, 2, 'b', 1000),
    ];
    const b = summarizePass(runs, ['base', 'b'], 'base')[1];
    expect(b?.meanRatio).toBe(2);
    expect(b?.ahead).toBe(1);
    expect(b?.runs).toBe(3);
  });

  it('cancels a bias of the start order across the two passes', () => {
    // The arm started second runs 6% ahead; the change itself is worth 10%.
    const pass1 = [
      { label: 'base', medianOpsPerSec: 1, medianP99Ms: 1, medianServerUs: 1, runs: 4 },
      { label: 'b', medianOpsPerSec: 1, medianP99Ms: 1, medianServerUs: 1, runs: 4, meanRatio: 1.1 * 1.06, ahead: 4 },
    ];
    const pass2 = [pass1[0]!, { ...pass1[1]!, meanRatio: 1.1 / 1.06 }];
    expect(combinedRatio([pass1, pass2], 'b')).toBeCloseTo(1.1, 10);
    expect(combinedRatio([pass1], 'b')).toBeCloseTo(1.166, 10);
    expect(combinedRatio([pass1, [pass1[0]!]], 'b')).toBeUndefined();
    expect(combinedRatio([], 'b')).toBeUndefined();
  });
});
