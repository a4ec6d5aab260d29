import { type LogIndex, type NodeId, NotLeaderError, type Term } from '@cohort/core';
import { RawNode } from '../raw-node.js';
import type { EngineFactory, EngineStatus, RaftEngine } from './engine.js';

/** Adapts a {@link RawNode} to the host's {@link RaftEngine}. */
export function rawNodeEngine(rn: RawNode): RaftEngine {
  return {
    tick: () => rn.tick(),
    step: (m) => rn.step(m),
    propose(data: Uint8Array): { index: LogIndex; term: Term } {
      const before = rn.basicStatus();
      if (before.role !== 'leader') throw new NotLeaderError(before.lead || undefined);
      rn.propose(data);
      // A leader appends a proposal to its own log at once, so the new last entry is ours.
      const after = rn.basicStatus();
      return { index: after.lastIndex, term: after.term };
    },
    proposeConfChange(cc) {
      const before = rn.basicStatus();
      if (before.role !== 'leader') throw new NotLeaderError(before.lead || undefined);
      rn.proposeConfChange(cc);
      const after = rn.basicStatus();
      return { index: after.lastIndex, term: after.term };
    },
    readIndex: (ctx) => rn.readIndex(ctx),
    applyConfChange: (cc) => rn.applyConfChange(cc),
    hasReady: () => rn.hasReady(),
    ready: () => rn.ready(),
    advance: () => rn.advance(),
    reportUnreachable: (id) => rn.reportUnreachable(id),
    reportSnapshot: (id, ok, index) => rn.reportSnapshot(id, ok, index),
    campaign: () => rn.campaign(),
    forceConfiguration: (voters) => rn.forceConfiguration(voters),
    commitIndex: () => rn.commitIndex(),
    commitNoticeOwed: () => rn.commitNoticeOwed(),
    flushCommitNotice: (upTo) => rn.flushCommitNotice(upTo),
    hedgeReadIndex: () => rn.hedgeReadIndex(),
    pauseApplying: (paused) => rn.pauseApplying(paused),
    leaseRead: () => rn.leaseRead(),
    transferLeadership: (to) => rn.transferLeadership(to),
    quiesce: (down) => rn.quiesce(down),
    quiesceFollower: (from, term, commit) => rn.quiesceFollower(from, term, commit),
    wake: () => rn.wake(),
    isQuiescent: () => rn.isQuiescent(),
    basicStatus: () => rn.basicStatus(),
    status() {
      const s = rn.status();
      const out: EngineStatus = {
        term: s.term,
        lead: s.lead,
        role: s.role,
        commit: s.commit,
        lastIndex: s.lastIndex,
        confState: s.confState,
        lostEntries: s.lostEntries,
      };
      if (s.lastLostEntries) out.lastLostEntries = s.lastLostEntries;
      if (s.leadTransferee !== '') out.leadTransferee = s.leadTransferee;
      return out;
    },
    matchIndexes() {
      const s = rn.status();
      if (s.role !== 'leader') return undefined;
      const match: Record<NodeId, LogIndex> = {};
      for (const [id, pr] of Object.entries(s.progress)) match[id] = pr.match;
      return match;
    },
  };
}

/** The production {@link EngineFactory}: RawNode, bootstrapped when the group is new. */
export const rawNodeFactory: EngineFactory = (options, storage, bootstrapPeers) =>
  rawNodeEngine(bootstrapPeers ? RawNode.bootstrap(options, storage, bootstrapPeers) : new RawNode(options, storage));
