import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { currentLargePagesContext, hugePagesUnavailable } from '../src/large-pages.js';
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

  // An operator's own choice in NODE_OPTIONS (which `cohort start` leaves as given, see large-pages.ts): Node
  // accepts it beside these flags and, where the kernel offers transparent huge pages, runs its code from 2 MiB pages.
  it('leave room for NODE_OPTIONS=--use-largepages=on, which maps Node onto huge pages where the kernel offers them', () => {
    const offered = hugePagesUnavailable(currentLargePagesContext()) === undefined;
    if (!offered) console.warn('no transparent huge pages here: only checking that Node accepts --use-largepages=on');
    const script = offered
      ? 'console.log(/AnonHugePages:\\s+(\\d+)/.exec(require("node:fs").readFileSync("/proc/self/smaps_rollup", "utf8"))[1])'
      : 'console.log(0)';
    const run = spawnSync(process.execPath, [...NODE_RUNTIME_FLAGS, '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '--use-largepages=on' },
    });
    expect(run.status).toBe(0);
    if (!offered) return;
    expect(run.stderr).toBe('');
    // In kB: Node's code is tens of MB, so at least four 2 MiB pages of it (0 without the option).
    expect(Number(run.stdout.trim())).toBeGreaterThanOrEqual(4 * 2048);
  });
});
