import type { NodeId } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, cmd, raftMessages, until } from './cluster.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

/**
 * A cluster whose heartbeats are too rare to tell a commit index in time (every 250 ms), counting the
 * appends without entries (commit notices) each node sends, once a leader is elected.
 */
async function quietCluster(
  commitNoticeDelayMs: number,
): Promise<{ c: Cluster; leader: NodeId; notices: () => number }> {
  cluster = new Cluster(['a', 'b', 'c'], ['p0'], {
    tickMs: 50,
    electionTicks: 10,
    heartbeatTicks: 5,
    commitNoticeDelayMs,
  });
  const c = cluster;
  const leader = await until('a leader', () => c.leader(), 10_000);
  await c.node(leader).host.propose('p0', cmd('warm=1'));
  let notices = 0;
  const t = c.hub.nodes.get(leader);
  if (t === undefined) throw new Error('no transport');
  t.onSend = (to, frame) => {
    for (const { message: m } of raftMessages(leader, to, frame))
      if (m.type === 'app' && m.entries.length === 0) notices++;
  };
  return { c, leader, notices: () => notices };
}

const applied = (c: Cluster, key: string, value: string): boolean =>
  c.ids.every((id) => c.node(id).sms.get('p0')?.map.get(key) === value);

describe('commit notices', () => {
  it('a lone write reaches every replica within the notice delay, not the next heartbeat', async () => {
    const { c, leader, notices } = await quietCluster(20);
    const t0 = Date.now();
    await c.node(leader).host.propose('p0', cmd('x=1'));
    await until('every replica applies x=1', () => applied(c, 'x', '1'), 2000);
    // Heartbeats are 250 ms apart; the notice goes out 20 ms after the commit.
    expect(Date.now() - t0).toBeLessThan(200);
    expect(notices()).toBe(2);
  });

  it('writes one after another carry each commit index in the next append instead of one of its own', async () => {
    const { c, leader, notices } = await quietCluster(100);
    for (let i = 0; i < 20; i++) await c.node(leader).host.propose('p0', cmd(`k${i}=v`));
    // Only the last write's commit can be owed yet.
    expect(notices()).toBe(0);
    await until('every replica applies the last write', () => applied(c, 'k19', 'v'), 2000);
    expect(notices()).toBe(2);
  });

  it('with no delay, every commit is sent at once in an append of its own', async () => {
    const { c, leader, notices } = await quietCluster(0);
    for (let i = 0; i < 5; i++) await c.node(leader).host.propose('p0', cmd(`k${i}=v`));
    await until('every replica applies the last write', () => applied(c, 'k4', 'v'), 2000);
    expect(notices()).toBeGreaterThanOrEqual(10);
  });
});
