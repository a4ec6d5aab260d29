import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NODE_RUNTIME_FLAGS } from '../src/runtime-flags.js';

describe('the flags every node runs with', () => {
  it('are the ones the cohort binary passes on its shebang line', () => {
    const first = readFileSync(new URL('../src/cli.ts', import.meta.url), 'utf8').split('\n')[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${NODE_RUNTIME_FLAGS.join(' ')}`);
  });

  it('are accepted by this Node, which applies them', () => {
    const run = spawnSync(
      process.execPath,
      [...NODE_RUNTIME_FLAGS, '-e', 'console.log(require("node:v8").getHeapSpaceStatistics().length)'],
      { encoding: 'utf8' },
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(Number(run.stdout.trim())).toBeGreaterThan(0);
  });
});
