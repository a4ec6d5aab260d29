import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, QUICK, parseOptions, program } from '../src/args.ts';

/** A program that writes nothing, so a test's failures do not print usage. */
function quiet() {
  return program().configureOutput({ writeErr: () => {}, writeOut: () => {} });
}
const parse = (...argv: string[]) => parseOptions(argv, quiet());
function failure(...argv: string[]): CommanderError {
  try {
    parse(...argv);
  } catch (err) {
    if (err instanceof CommanderError) return err;
    throw err;
  }
  throw new Error(`parsed ${argv.join(' ')}`);
}

describe('parseOptions', () => {
  it('has the full run by default', () => {
    const o = parse();
    expect(o).toMatchObject({
      quick: false,
      rounds: DEFAULTS.rounds,
      seconds: DEFAULTS.seconds,
      systemWarmup: 30,
      httpConnections: [1, 64],
      respConnections: 50,
      pipeline: 16,
      keys: 1_000_000,
      valueBytes: 100,
      systems: ['cohort', 'etcd', 'redis'],
      cohortFlags: [],
      nodeFlags: [],
      requireAll: false,
      json: undefined,
      httpLoad: undefined,
      putAnswer: 'minimal',
    });
  });

  it("takes what Cohort's puts ask for, minimal or record, and refuses anything else", () => {
    expect(parse('--put-answer', 'record').putAnswer).toBe('record');
    expect(parse('--put-answer', 'minimal').putAnswer).toBe('minimal');
    expect(failure('--put-answer', 'full').code).toBe('commander.invalidArgument');
  });

  it('takes the HTTP load generator by name and refuses any other', () => {
    expect(parse('--http-load', 'autocannon').httpLoad).toBe('autocannon');
    expect(parse('--http-load', 'wrk').httpLoad).toBe('wrk');
    expect(failure('--http-load', 'ab').code).toBe('commander.invalidArgument');
  });

  it('makes --quick one short round, and explicit flags win over it', () => {
    expect(parse('--quick')).toMatchObject({
      quick: true,
      rounds: 1,
      seconds: QUICK.seconds,
      systemWarmup: QUICK.systemWarmup,
      keys: QUICK.keys,
    });
    expect(parse('--quick', '--seconds', '4', '--keys', '50000')).toMatchObject({
      rounds: 1,
      seconds: 4,
      keys: 50_000,
    });
  });

  it('reads lists, numbers and the literal -- npm passes on', () => {
    const o = parse('--', '--http-connections', '1, 16,64', '--systems', 'redis,cohort', '--rounds', '5');
    expect(o.httpConnections).toEqual([1, 16, 64]);
    expect(o.systems).toEqual(['cohort', 'redis']);
    expect(o.rounds).toBe(5);
    expect(parse('--seconds', '1.5').seconds).toBe(1.5);
    expect(parse('--keys', '0').keys).toBe(0);
    expect(parse('--system-warmup', '0').systemWarmup).toBe(0);
    expect(parse('--require-all', '--json', 'out.json')).toMatchObject({ requireAll: true, json: 'out.json' });
    expect(parse('--cohort-flags', ' --row-cache-bytes  0 ').cohortFlags).toEqual(['--row-cache-bytes', '0']);
    expect(parse('--node-flags', '--trace-gc  --minor-ms').nodeFlags).toEqual(['--trace-gc', '--minor-ms']);
  });

  it('refuses bad values with a message naming them', () => {
    expect(failure('--rounds', '0').message).toMatch(/--rounds.*at least 1, got '0'/);
    expect(failure('--rounds', 'two').message).toMatch(/got 'two'/);
    expect(failure('--seconds', '0.1').message).toMatch(/at least 0.5/);
    expect(failure('--http-connections', '1,x').message).toMatch(/got 'x'/);
    expect(failure('--systems', 'etcd,mysql').message).toMatch(/unknown system 'mysql'/);
    expect(failure('--systems', 'etcd').message).toMatch(/must include cohort/);
    expect(failure('--keys', '5000').message).toMatch(/--keys \(5000\) must be above --small-keys \(10000\)/);
    expect(failure('--bogus').code).toBe('commander.unknownOption');
    expect(failure('extra').code).toBe('commander.excessArguments');
  });

  it('answers --help through commander', () => {
    expect(failure('--help').code).toBe('commander.helpDisplayed');
  });
});
