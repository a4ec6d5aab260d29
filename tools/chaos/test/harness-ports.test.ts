import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ChaosCluster } from '../src/cluster.ts';

// The harness picks free ports before the nodes bind them; other test files' processes can take one in between.
it('the chaos harness starts a node again on fresh ports when another process took its HTTP port', async () => {
  const root = mkdtempSync(join(tmpdir(), 'cohort-chaos-ports-'));
  const c = await ChaosCluster.create({ root, nodes: 3 });
  const n2 = c.nodes[1]!;
  const old = n2.http;
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(old, '127.0.0.1', () => r()));
  c.startAll();
  try {
    expect(await c.settled(20_000)).toBeDefined();
    expect(n2.http).not.toBe(old);
    expect(n2.log).toMatch(/EADDRINUSE[\s\S]*was taken; starting again/);
  } finally {
    squatter.close();
    await c.stopAll();
    rmSync(root, { recursive: true, force: true });
  }
}, 40_000);
