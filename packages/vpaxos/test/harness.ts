import type { NodeId } from '@cohort/core';
import { type AcceptorState, type Ready, VPaxosEngine } from '../src/engine.js';
import type { Ballot, Message, Proposal } from '../src/types.js';

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/**
 * Replicas of one group wired together in memory: messages are queued and
 * delivered by {@link pump}; each Ready's acceptor state is "written" to the
 * node's durable copy before its messages are queued, as a host does.
 */
export class Harness {
  readonly engines = new Map<NodeId, VPaxosEngine>();
  readonly durable = new Map<NodeId, AcceptorState>();
  readonly applied = new Map<NodeId, Proposal[]>();
  readonly completes: { node: NodeId; ballot: Ballot }[] = [];
  readonly reads: { node: NodeId; id: number; index: number }[] = [];
  readonly deposed: { node: NodeId; error: Error }[] = [];
  readonly sent: { from: NodeId; to: NodeId; msg: Message }[] = [];
  /** Snapshots streamed (the sender's applied values copied to the receiver, which installs them). */
  readonly snapshots: { from: NodeId; to: NodeId; index: number }[] = [];
  private snapshotQueue: { from: NodeId; to: NodeId }[] = [];
  /** Nodes whose incoming and outgoing messages are lost. */
  readonly down = new Set<NodeId>();
  /** Drops messages for which this returns true. */
  filter: (from: NodeId, to: NodeId, msg: Message) => boolean = () => false;
  private queue: { from: NodeId; to: NodeId; msg: Message }[] = [];

  constructor(ids: NodeId[]) {
    for (const id of ids) this.add(id);
  }

  add(id: NodeId, applied = 0): VPaxosEngine {
    const state = this.durable.get(id);
    const e = new VPaxosEngine({ id, applied, ...(state ? { state: structuredClone(state) } : {}) });
    this.engines.set(id, e);
    if (!this.applied.has(id)) this.applied.set(id, []);
    return e;
  }

  /** Restarts `id` from its durable state: volatile state (primary role, queued messages to it) is lost. */
  restart(id: NodeId): VPaxosEngine {
    this.queue = this.queue.filter((q) => q.to !== id);
    return this.add(id, this.applied.get(id)?.length ?? 0);
  }

  e(id: NodeId): VPaxosEngine {
    return this.engines.get(id) as VPaxosEngine;
  }

  private drain(id: NodeId, rd: Ready): void {
    const d = this.durable.get(id) ?? { maxBallot: 0, votes: [] };
    if (rd.persist.maxBallot !== undefined) d.maxBallot = rd.persist.maxBallot;
    for (const v of rd.persist.votes) {
      const i = d.votes.findIndex((x) => x.slot === v.slot);
      if (i >= 0) d.votes[i] = { ...v };
      else d.votes.push({ ...v });
    }
    const to = rd.persist.compactTo;
    if (to !== undefined) {
      d.votes = d.votes.filter((v) => v.slot > to);
      d.compacted = Math.max(d.compacted ?? 0, to);
    }
    this.durable.set(id, d);
    for (const s of rd.snapshots) this.snapshotQueue.push({ from: id, to: s.to });
    for (const m of rd.messages) this.queue.push({ from: id, to: m.to, msg: m.msg });
    (this.applied.get(id) as Proposal[]).push(...rd.committed);
    if (rd.complete !== undefined) this.completes.push({ node: id, ballot: rd.complete });
    for (const r of rd.reads) this.reads.push({ node: id, ...r });
    if (rd.deposed) this.deposed.push({ node: id, error: rd.deposed });
  }

  /** Delivers messages until nothing moves (or `max` deliveries). */
  pump(max = 10_000): void {
    for (let n = 0; n < max; n++) {
      for (const [id, e] of this.engines) if (e.hasReady()) this.drain(id, e.ready());
      const snap = this.snapshotQueue.shift();
      if (snap) {
        if (this.down.has(snap.from) || this.down.has(snap.to)) continue;
        const have = this.applied.get(snap.to) as Proposal[];
        const image = this.applied.get(snap.from) as Proposal[];
        this.snapshots.push({ ...snap, index: image.length });
        if (image.length > have.length)
          this.applied.set(
            snap.to,
            image.map((p) => ({ ...p })),
          );
        this.e(snap.to).installSnapshot(image.length);
        continue;
      }
      const q = this.queue.shift();
      if (!q) return;
      if (this.down.has(q.from) || this.down.has(q.to) || this.filter(q.from, q.to, q.msg)) continue;
      this.sent.push(q);
      this.engines.get(q.to)?.step(q.from, q.msg);
    }
  }

  /** Makes `primary` the primary of `ballot` and runs it to `complete`, then activates it. */
  elect(
    primary: NodeId,
    ballot: Ballot,
    prevBallot: Ballot,
    prevAcceptors: NodeId[],
    acceptors: NodeId[],
    activate = true,
  ): void {
    this.e(primary).startBallot({ ballot, prevBallot, prevAcceptors, acceptors });
    this.pump();
    if (activate && this.completes.some((c) => c.node === primary && c.ballot === ballot)) {
      this.e(primary).activate(ballot);
      this.pump();
    }
  }

  values(id: NodeId): string[] {
    return (this.applied.get(id) as Proposal[]).map((p) => dec(p.value));
  }
}
