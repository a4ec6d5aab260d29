import { type GroupMessage, type NodeId, Protocols } from '@cohort/core';
import { type EngineFactory, type RaftHostOptions, rawNodeFactory } from '../../src/index.js';
import { Cluster, cmd, raftMessages, until } from './cluster.js';
import { GatedStore } from './gated-store.js';

export interface Watch {
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
export function watch(c: Cluster): Watch {
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
 * Three hosts over gated stores whose elections go in a fixed order (by default no check-quorum
 * lease, so a pre-vote is granted as soon as a node times out).
 */
export function gated(
  options: Partial<RaftHostOptions> = {},
  checkQuorum = false,
  newStore: () => GatedStore = () => new GatedStore(),
): Cluster {
  const createEngine: EngineFactory = (o, storage, peers) => {
    const ticks = ELECTION_TICKS[o.id] ?? 30;
    return rawNodeFactory({ ...o, electionTick: ticks, electionTickMax: ticks, checkQuorum }, storage, peers);
  };
  return new Cluster(['a', 'b', 'c'], ['p0'], { createEngine, ...options }, 1, newStore);
}

export const store = (c: Cluster, id: NodeId): GatedStore => c.node(id).store as GatedStore;

/** Calls `seen` with each Raft message `to` receives, right after its host stepped it. */
export function onReceived(c: Cluster, to: NodeId, seen: (from: NodeId, m: GroupMessage['message']) => void): void {
  const t = c.hub.nodes.get(to)!;
  const handler = t.handlers.get(Protocols.raft)!;
  t.handlers.set(Protocols.raft, (from, frame) => {
    handler(from, frame);
    for (const { message } of raftMessages(from, to, frame)) seen(from, message);
  });
}

/** Resolves to a settled cluster's leader after one write went through (no write in flight). */
export async function settled(c: Cluster): Promise<NodeId> {
  const leader = await until('a leader', () => c.leader());
  await c.node(leader).host.propose('p0', cmd('warm=1'));
  await until('every node applied the warm-up', () =>
    c.ids.every((id) => c.node(id).sms.get('p0')!.map.get('warm') === '1' && store(c, id).inFlight === 0),
  );
  return leader;
}
