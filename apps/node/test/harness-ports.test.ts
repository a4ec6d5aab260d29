import { createServer } from 'node:net';
import { expect, it } from 'vitest';
import { ProcCluster } from './helpers/processes.js';

// The e2e harness picks free ports before the nodes bind them; other suites' processes can take one in between.
it('the e2e harness starts a node again on fresh ports when another process took its RESP port', async () => {
  const c = await ProcCluster.create(3, ['--heartbeat-ms', '50', '--election-timeout-ms', '300']);
  const n3 = c.nodes[2]!;
  const old = n3.resp;
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(old, '127.0.0.1', () => r()));
  c.startAll();
  try {
    expect(await c.leader(c.nodes, 20_000)).toBeDefined();
    expect(n3.resp).not.toBe(old);
    expect(n3.log).toMatch(/EADDRINUSE[\s\S]*was taken; starting again/);
  } finally {
    squatter.close();
    await c.killAll();
  }
}, 30_000);
