import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runCounter } from '../src/main.ts';

describe('the raft-counter example', () => {
  it('replicates three additions to every node', async () => {
    expect(await runCounter(10_000)).toEqual({ n1: 6, n2: 6, n3: 6 });
  });

  it('runs as a script with node and exits', async () => {
    const file = fileURLToPath(new URL('../src/main.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 20_000 });
    expect(JSON.parse(stdout)).toEqual({ n1: 6, n2: 6, n3: 6 });
  });
});
