import { type GroupMessage, type NodeId, Protocols } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type EngineFactory, type ProposalTiming, rawNodeFactory } from '../../src/index.js';
import { Cluster, cmd, raftMessages, until } from './cluster.js';
import { GatedStore } from './gated-store.js';

let cluster: Cluster | undefined;
afterEach(() => {
  cluster?.stop();
  cluster = undefined;
});

interface Watch {
  /** Messages sent that depended on a write not yet durable. */
  violations: string[];
  /** Appends a leader sent carrying entries it did not hold durably yet (allowed: §10.2.1). */
  appendsAhead: number;
  /** Every message sent, with its sender. */
  sent: { from: NodeId; message: GroupMessage['message'] }[];
}

/**
 * Checks every message any node sends against what that node holds durably:
 * nothing goes out under a term or vote not yet durable, a vote request only
 * once the candidate's own vote is durable, a granted vote only once durable,
 * and an acknowledgement only of entries durable on the acknowledging node.
 */
function watch(c: Cluster): Watch {
  const w: Watch = { violations: [], appendsAhead: 0, sent: [] };
  for (const id of c.ids) {
    const store = c.node(id).store as GatedStore;
    c.hub.nodes.get(id)!.onSend = (to, frame) => {
      for (const { group, message: m } of raftMessages(id, to, frame)) {
        w.sent.push({ from: id, message: m });
        const d = store.durable(group);
        const hs = d.hardState;
        // A pre-vote carries the term the node would campaign in, which it has not taken (§9.6).
        const preVote = m.type === 'preVote' || m.type === 'preVoteResp';
        if (!preVote && m.term > hs.term)
          w.violations.push(`${id} sent ${m.type} in term ${m.term}, durable ${hs.term}`);
        if (m.type === 'vote' && (hs.term !== m.term || hs.vote !== id))
          w.violations.push(`${id} asked for votes in term ${m.term} before its own vote was durable`);
        if (m.type === 'voteResp' && !m.reject && (hs.term !== m.term || hs.vote !== m.to))
          w.violations.push(`${id} granted ${m.to} its vote in term ${m.term} before the vote was durable`);
        if (m.type === 'appResp' && !m.reject && m.index > d.lastIndex)
          w.violations.push(`${id} acknowledged ${m.index} holding ${d.lastIndex} durably`);
        const last = m.entries.at(-1);
        if (m.type === 'app' && last && last.index > d.lastIndex) w.appendsAhead++;
      }
    };
  }
  return w;
}

/** Election timeouts in ticks of 10 ms, fixed per node: `a` leads first, `b` campaigns next, then `c`. */
const ELECTION_TICKS: Record<NodeId, number> = { a: 5, b: 30, c: 60 };

/**
 * Three hosts over gated stores whose elections go in a fixed order (no
 * check-quorum lease, so a pre-vote is granted as soon as a node times out).
 */
function gated(): Cluster {
  const createEngine: EngineFactory = (o, storage, peers) => {
    const ticks = ELECTION_TICKS[o.id] ?? 30;
    return rawNodeFactory({ ...o, electionTick: ticks, electionTickMax: ticks, checkQuorum: false }, storage, peers);
  };
  cluster = new Cluster(['a', 'b', 'c'], ['p0'], { createEngine }, 1, () => new GatedStore());
  return cluster;
}

const store = (c: Cluster, id: NodeId): GatedStore => c.node(id).store as GatedStore;

/** Calls `seen` with each Raft message `to` receives, right after its host stepped it. */
function onReceived(c: Cluster, to: NodeId, seen: (from: NodeId, m: GroupMessage['message']) => void): void {
  const t = c.hub.nodes.get(to)!;
  const handler = t.handlers.get(Protocols.raft)!;
  t.handlers.set(Protocols.raft, (from, frame) => {
    handler(from, frame);
    for (const { message } of raftMessages(from, to, frame)) seen(from, message);
  });
}

/** Resolves to a settled cluster's leader after one write went through (no write in flight). */
async function settled(c: Cluster): Promise<NodeId> {
  const leader = await until('a leader', () => c.leader());
  await c.node(leader).host.propose('p0', cmd('warm=1'));
  await until('every node applied the warm-up', () =>
    c.ids.every((id) => c.node(id).sms.get('p0')!.map.get('warm') === '1' && store(c, id).inFlight === 0),
  );
  return leader;
}

describe('persistence in parallel with replication', () => {
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
