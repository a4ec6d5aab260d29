import { afterAll, describe, expect, it } from 'vitest';
import type { MemberView } from '../src/membership-service.js';
import { ProcCluster, type ProcNode, poll } from './helpers/processes.js';

async function members(node: ProcNode): Promise<MemberView[] | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.http}/v1/members`, { signal: AbortSignal.timeout(1000) });
    return ((await res.json()) as { members: MemberView[] }).members;
  } catch {
    return undefined;
  }
}

describe('membership across real processes', () => {
  let cluster: ProcCluster | undefined;
  afterAll(async () => {
    await cluster?.killAll();
  });

  it('marks a SIGKILLed node dead everywhere; restarted, it is alive with a higher incarnation', async () => {
    cluster = await ProcCluster.create(5);
    const c = cluster;
    c.startAll();
    const ids = c.nodes.map((n) => n.id);
    const viewOf = async (n: ProcNode, id: string): Promise<MemberView | undefined> =>
      (await members(n))?.find((m) => m.id === id);
    await poll('every node sees all five alive', 60_000, async () => {
      for (const n of c.nodes) {
        const ms = await members(n);
        if (!ms || ids.some((id) => ms.find((m) => m.id === id)?.state !== 'alive')) return undefined;
      }
      return true;
    });
    const victim = c.nodes[4]!;
    const before = (await viewOf(c.nodes[0]!, victim.id))!.incarnation;
    await c.kill(victim);
    const others = c.nodes.slice(0, 4);
    await poll(`every other node marks ${victim.id} dead`, 60_000, async () => {
      for (const n of others) if ((await viewOf(n, victim.id))?.state !== 'dead') return undefined;
      return true;
    });
    c.start(victim);
    const back = await poll(`${victim.id} alive again everywhere`, 90_000, async () => {
      const views = await Promise.all(others.map((n) => viewOf(n, victim.id)));
      if (views.some((v) => v?.state !== 'alive')) return undefined;
      return views;
    }).catch((err: Error) => {
      const tail = (n: ProcNode): string =>
        n.log
          .split('\n')
          .filter((l) => l.includes('membership'))
          .slice(-15)
          .join('\n');
      throw new Error(`${err.message}\n--- ${victim.id}:\n${tail(victim)}\n--- ${others[0]!.id}:\n${tail(others[0]!)}`);
    });
    for (const v of back) expect(v?.incarnation).toBeGreaterThan(before);
  }, 180_000);
});
