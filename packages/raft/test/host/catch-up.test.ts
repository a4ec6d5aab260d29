import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, cmd, until } from './cluster.js';
import { SettlingStore } from './settling-store.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

describe('RaftHost: a follower catching up', () => {
  it('applies its backlog in batches of at most maxApplyBytes (at least one entry), all of it and once', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { maxApplyBytes: 200, maxCatchUpInflightBytes: 400 });
    const c = cluster;
    const leaderId = await until('a leader', () => c.leader());
    const lagging = c.ids.find((id) => id !== leaderId) as string;
    const leader = c.node(leaderId);
    c.hub.down.add(lagging);
    // 100 writes of 20 bytes (2000 bytes) committed by the other two while it is cut off.
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        leader.host.propose('p0', cmd(`key${String(i).padStart(4, '0')}=${'v'.repeat(11)}`)),
      ),
    );
    const target = leader.host.status('p0').commit;
    const sm = c.node(lagging).sms.get('p0')!;
    const before = sm.batches.length;
    c.hub.down.delete(lagging);
    await until('the follower applies the backlog', () => sm.applied().index >= target, 8000);
    const batches = sm.batches.slice(before);
    expect(batches.length).toBeGreaterThanOrEqual(10);
    for (const b of batches) expect(b.entries <= 1 || b.bytes <= 200).toBe(true);
    expect(sm.map.get('key0099')).toBe('v'.repeat(11));
    const indexes = sm.appliedIndexes;
    expect(new Set(indexes).size).toBe(indexes.length);
  });

  it('never holds the rounds of a node behind its writer: writes go on while what it applied is not in the file yet', async () => {
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], { maxOutstandingReadies: 4 }, 1, () => new SettlingStore());
    const c = cluster;
    const leaderId = await until('a leader', () => c.leader());
    const leader = c.node(leaderId);
    const store = leader.store as SettlingStore;
    store.hold();
    // One write at a time: each is applied in a round of its own, after its log write completed.
    for (let i = 0; i < 20; i++) await leader.host.propose('p0', cmd(`k${i}=v`));
    expect(leader.sms.get('p0')!.map.get('k19')).toBe('v');
    expect(store.waits).toBe(0);
    store.release();
  });

  it('pauses applying, not acknowledging, while its writer is behind: commits go on, and the backlog applies once it caught up', async () => {
    const opts = { maxApplyBytes: 100, maxUnsettledApplyBytes: 200 };
    cluster = new Cluster(['a', 'b', 'c'], ['p0'], opts, 1, () => new SettlingStore());
    const c = cluster;
    const leaderId = await until('a leader', () => c.leader());
    const [slow, down] = c.ids.filter((id) => id !== leaderId) as [string, string];
    const leader = c.node(leaderId);
    // The leader's only quorum is with the slow follower: every commit needs its acknowledgement.
    c.hub.down.add(down);
    const store = c.node(slow).store as SettlingStore;
    const sm = c.node(slow).sms.get('p0')!;
    const from = sm.applied().index;
    store.hold();
    // 60 writes of 20 bytes (1,200 bytes), each committed before the next is proposed.
    for (let i = 0; i < 60; i++) {
      await leader.host.propose('p0', cmd(`key${String(i).padStart(4, '0')}=${'v'.repeat(11)}`));
    }
    const target = leader.host.status('p0').commit;
    expect(store.waits).toBeGreaterThan(0);
    expect(c.node(slow).host.stats().applyPauses).toBeGreaterThan(0);
    // Paused past the budget (200 bytes, one more batch at most), far short of the 1,200 committed.
    const held = sm.applied().index;
    expect(held).toBeLessThan(target);
    expect(held - from).toBeLessThanOrEqual(20);
    store.release();
    await until('the follower applies the backlog', () => sm.applied().index >= target, 8000);
    expect(sm.map.get('key0059')).toBe('v'.repeat(11));
    const indexes = sm.appliedIndexes;
    expect(new Set(indexes).size).toBe(indexes.length);
  });
});
