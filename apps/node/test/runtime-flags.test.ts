import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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

  // The README's recipe for servers (`NODE_OPTIONS=--use-largepages=on`): Node accepts it beside these
  // flags and, where the kernel offers transparent huge pages, runs its code from 2 MiB pages.
  it('leave room for NODE_OPTIONS=--use-largepages=on, which maps Node onto huge pages where the kernel offers them', () => {
    const offered = hugePagesOffered();
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

/** Linux on x86-64 with transparent huge pages not `never`: where Node's `--use-largepages` works. */
function hugePagesOffered(): boolean {
  const setting = '/sys/kernel/mm/transparent_hugepage/enabled';
  if (process.platform !== 'linux' || process.arch !== 'x64' || !existsSync(setting)) return false;
  return !readFileSync(setting, 'utf8').includes('[never]');
}
