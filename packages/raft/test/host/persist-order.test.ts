import type { NodeId } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProposalTiming } from '../../src/index.js';
import { type Cluster, cmd, until } from './cluster.js';
import { gated as gatedCluster, onReceived, settled, store, watch } from './gated-cluster.js';
import { GatedStore } from './gated-store.js';
import type { MapMachine } from './map-machine.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

function gated(): Cluster {
  cluster = gatedCluster();
  return cluster;
}

/** A gated store that says it writes on another thread, as the node's SQLite store does. */
class OffThreadStore extends GatedStore {
  readonly writesOffThread = true;
}

/**
 * What `id` did in each synchronous run of its code (a run ends at the next microtask checkpoint): each
 * store write that carried entries (`w`) and each batch its machine applied (`a`), in order.
 */
function runsOf(c: Cluster, id: NodeId): string[] {
  const runs: string[] = [];
  let open = false;
  const note = (what: string): void => {
    if (!open) {
      open = true;
      runs.push('');
      queueMicrotask(() => {
        open = false;
      });
    }
    runs[runs.length - 1] += what;
  };
  const node = c.node(id);
  const st = node.store as GatedStore;
  const write = st.write.bind(st);
  st.write = (batch) => {
    if (batch.some((w) => (w.entries?.length ?? 0) > 0)) note('w');
    return write(batch);
  };
  const sm = node.sms.get('p0') as MapMachine;
  const apply = sm.applyBatch.bind(sm);
  sm.applyBatch = (entries, confState) => {
    if (entries.length > 0) note('a');
    return apply(entries, confState);
  };
  return runs;
}

describe('persistence in parallel with replication', () => {
  it("a follower whose store writes on another thread hands over an append's entries before it applies what the append committed", async () => {
    for (const offThread of [true, false]) {
      cluster?.stop();
      const c = gatedCluster({}, false, offThread ? () => new OffThreadStore() : undefined);
      cluster = c;
      const leader = await settled(c);
      const runs = c.ids.filter((id) => id !== leader).map((id) => runsOf(c, id));
      // Waves of concurrent writes: a follower's appends carry new entries and the commit of earlier ones.
      for (let wave = 0; wave < 10; wave++) {
        await Promise.all(
          Array.from({ length: 8 }, (_, i) => c.node(leader).host.propose('p0', cmd(`k${wave}-${i}=1`))),
        );
      }
      const both = runs.flat().filter((r) => r.includes('w') && r.includes('a'));
      expect(both.length, 'runs that both wrote entries and applied').toBeGreaterThan(0);
      // Off the thread the write goes first, so its fsync overlaps the apply; a store that syncs on the
      // caller's thread writes after the apply (its sync would block the apply and the sends).
      for (const r of both) expect(r.indexOf('w') < r.indexOf('a'), r).toBe(offThread);
    }
  });

  it("a leader's append reaches the followers before its own write completes, and it counts itself toward a commit only once that write is durable", async () => {
    const c = gated();
    const w = watch(c);
    const leader = await settled(c);
    const [f1, f2] = c.ids.filter((id) => id !== leader) as [NodeId, NodeId];
    const target = c.node(leader).host.status('p0').lastIndex + 1;
    let acked = false;
    onReceived(c, leader, (from, m) => {
      if (from === f1 && m.type === 'appResp' && !m.reject && m.index >= target) acked = true;
    });
    // The leader's and f2's writes stay open: only f1 holds the entry durably.
    store(c, leader).hold();
    store(c, f2).hold();
    let resolved = false;
    const p = c
      .node(leader)
      .host.propose('p0', cmd('x=1'))
      .then(() => {
        resolved = true;
      });
    await until("f1's acknowledgement reached the leader", () => acked);
    // The append left while the leader's own write was open.
    expect(store(c, f1).durable('p0').lastIndex).toBeGreaterThanOrEqual(target);
    expect(store(c, leader).durable('p0').lastIndex).toBeLessThan(target);
    expect(store(c, f2).requested('p0', target)).toBe(true);
    // One durable copy of three is no majority: the leader must not count its own open write.
    expect(c.node(leader).host.status('p0').commit).toBeLessThan(target);
    expect(resolved).toBe(false);
    expect(c.node(leader).sms.get('p0')!.map.has('x')).toBe(false);

    store(c, leader).release();
    await p;
    // Committed by the leader and f1 while f2's write is still open.
    expect(c.node(leader).host.status('p0').commit).toBeGreaterThanOrEqual(target);
    expect(store(c, f2).durable('p0').lastIndex).toBeLessThan(target);
    store(c, f2).release();
    await until('f2 applies x', () => c.node(f2).sms.get('p0')!.map.get('x') === '1');
    expect(w.appendsAhead).toBeGreaterThan(0);
    expect(c.node(leader).host.stats().messagesSentBeforeWrite).toBeGreaterThan(0);
    expect(w.violations).toEqual([]);
  });

  it('the followers can commit an entry without the leader, but the leader applies it only once its own write completes', async () => {
    const c = gated();
    const w = watch(c);
    const leader = await settled(c);
    const followers = c.ids.filter((id) => id !== leader);
    const target = c.node(leader).host.status('p0').lastIndex + 1;
    const acks = new Set<NodeId>();
    onReceived(c, leader, (from, m) => {
      if (m.type === 'appResp' && !m.reject && m.index >= target) acks.add(from);
    });
    store(c, leader).hold();
    let resolved = false;
    const p = c
      .node(leader)
      .host.propose('p0', cmd('y=1'))
      .then(() => {
        resolved = true;
      });
    await until('both followers acknowledged', () => acks.size === 2);
    expect(c.node(leader).host.status('p0').commit).toBeGreaterThanOrEqual(target);
    expect(store(c, leader).durable('p0').lastIndex).toBeLessThan(target);
    expect(c.node(leader).sms.get('p0')!.map.has('y')).toBe(false);
    expect(resolved).toBe(false);
    store(c, leader).release();
    await p;
    expect(c.node(leader).sms.get('p0')!.map.get('y')).toBe('1');
    expect(followers.every((id) => store(c, id).durable('p0').lastIndex >= target)).toBe(true);
    expect(w.violations).toEqual([]);
  });

  it('a follower acknowledges and applies an entry only once its own write of it completes', async () => {
    const c = gated();
    const w = watch(c);
    const leader = await settled(c);
    const [lagging, other] = c.ids.filter((id) => id !== leader) as [NodeId, NodeId];
    const target = c.node(leader).host.status('p0').lastIndex + 1;
    // The entry commits without `lagging`, which then receives it together with its commit index.
    c.hub.down.add(lagging);
    await c.node(leader).host.propose('p0', cmd('z=1'));
    await until('the other follower applied z', () => c.node(other).sms.get('p0')!.map.get('z') === '1');
    store(c, lagging).hold();
    c.hub.down.delete(lagging);
    const f = c.node(lagging);
    await until('the lagging follower is writing z', () => store(c, lagging).requested('p0', target));
    expect(f.host.status('p0').commit).toBeGreaterThanOrEqual(target);
    expect(f.sms.get('p0')!.map.has('z')).toBe(false);
    const acks = () =>
      w.sent.filter(({ from, message: m }) => from === lagging && m.type === 'appResp' && m.index >= target).length;
    expect(acks()).toBe(0);
    store(c, lagging).release();
    await until('the lagging follower applies z', () => f.sms.get('p0')!.map.get('z') === '1');
    await until('and acknowledges it', () => acks() > 0);
    expect(w.violations).toEqual([]);
  });

  it('term and vote are durable before a vote request or a granted vote leaves', async () => {
    const c = gated();
    const w = watch(c);
    const old = await settled(c);
    expect(old).toBe('a');
    const term = c.node(old).host.status('p0').term;
    const [candidate, voter] = ['b', 'c'];
    for (const id of [candidate, voter]) store(c, id).hold();
    // b times out first and wins c's pre-vote; its own vote for itself is then held open.
    c.hub.down.add(old);
    const others = [candidate, voter];
    await until('b is writing its vote for itself', () =>
      store(c, candidate).writes.some((b) =>
        b.some((x) => (x.hardState?.term ?? 0) > term && x.hardState?.vote === candidate),
      ),
    );
    const votesAsked = () =>
      w.sent.filter(({ from, message: m }) => from === candidate && m.type === 'vote' && m.term > term).length;
    expect(votesAsked()).toBe(0);
    // Its vote durable, the candidate asks; the voter's own vote write is held in turn.
    store(c, candidate).release();
    await until('the voter is writing its vote', () =>
      store(c, voter).writes.some((b) => b.some((x) => x.hardState?.vote === candidate)),
    );
    expect(votesAsked()).toBeGreaterThan(0);
    const granted = () =>
      w.sent.filter(({ from, message: m }) => from === voter && m.type === 'voteResp' && !m.reject && m.term > term)
        .length;
    expect(granted()).toBe(0);
    expect(c.leader('p0', others)).toBeUndefined();
    store(c, voter).release();
    const next = await until('a new leader', () => c.leader('p0', others));
    await c.node(next).host.propose('p0', cmd('after=1'));
    expect(w.violations).toEqual([]);
  });
});

describe('proposal phase times', () => {
  it('reports, for each proposal applied on the leader, when it was persisted, committed and applied', async () => {
    const c = gated();
    const leader = await settled(c);
    const seen: ProposalTiming[] = [];
    c.node(leader).host.onProposalTiming = (group, t) => {
      expect(group).toBe('p0');
      seen.push(t);
    };
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.node(leader).host.propose('p0', cmd(`t${i}=1`))));
    expect(seen).toHaveLength(20);
    for (const t of seen) {
      expect(t.persisted).toBeGreaterThanOrEqual(t.proposed);
      expect(t.committed).toBeGreaterThanOrEqual(t.proposed);
      expect(t.applied).toBeGreaterThanOrEqual(Math.max(t.persisted, t.committed));
    }
  });
});
