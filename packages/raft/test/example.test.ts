import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runThreeNodes } from '../examples/three-nodes.js';

describe('README example', () => {
  it('three nodes agree on the applied writes', () => {
    const state = runThreeNodes();
    const want = { color: 'blue', shape: 'round' };
    expect(state).toEqual({ n1: want, n2: want, n3: want });
  });

  it('runs as a script with node', () => {
    const file = fileURLToPath(new URL('../examples/three-nodes.ts', import.meta.url));
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual(runThreeNodes());
  });
});
