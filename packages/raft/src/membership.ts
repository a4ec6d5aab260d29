import type { ConfChange, ConfState, LogIndex, NodeId } from '@cohort/core';
import { type ChangeResult, Changer } from './confchange/changer.js';
import { NONE, newMessage } from './message.js';
import type { Raft } from './raft.js';

/* Membership: applying committed conf changes to the tracker, and what a leader does about them. */

/** Applies a committed conf change; returns the new membership. Throws `ConfigError` if it is invalid. */
export function applyConfChange(r: Raft, cc: ConfChange): ConfState {
  const result = nextConfig(
    { config: r.trk.config, progress: r.trk.progress },
    cc,
    r.raftLog.lastIndex(),
    r.opts.maxInflightMsgs,
    r.opts.maxInflightBytes,
  );
  return switchToConfig(r, result);
}

/**
 * The membership `cc` turns `cur` into, computed aside (nothing live changes). Throws `ConfigError`
 * if `cc` is invalid in `cur`.
 */
export function nextConfig(
  cur: ChangeResult,
  cc: ConfChange,
  lastIndex: LogIndex,
  maxInflightMsgs: number,
  maxInflightBytes: number,
): ChangeResult {
  const changer = new Changer(cur.config, cur.progress, lastIndex, maxInflightMsgs, maxInflightBytes);
  if (cc.changes.length === 0) return changer.leaveJoint();
  // Several changes at once, or an explicit request, go through joint consensus (§6).
  if (cc.transition !== 'auto' || cc.changes.length > 1)
    return changer.enterJoint(cc.transition !== 'explicit', cc.changes);
  return changer.simple(cc.changes);
}

/** Installs a computed membership in the tracker and derives each peer's learner flag. */
export function applyChangeResult(r: Raft, result: ChangeResult): void {
  r.trk.config = result.config;
  r.trk.progress = result.progress;
  for (const [id, pr] of r.trk.progress) pr.isLearner = result.config.learners.has(id);
  const self = r.trk.progress.get(r.id);
  r.isLearner = self?.isLearner ?? false;
}

function switchToConfig(r: Raft, result: ChangeResult): ConfState {
  applyChangeResult(r, result);
  const cs = r.trk.confState();
  if (r.state !== 'leader') return cs;
  if (!r.trk.isVoter(r.id)) {
    // A removed (or demoted) leader steps down, handing off to an up-to-date voter if there is one.
    let best: NodeId = NONE;
    let bestMatch = -1;
    for (const id of [...r.trk.voterIds()].sort()) {
      const pr = r.trk.progress.get(id);
      if (pr && pr.match > bestMatch) {
        best = id;
        bestMatch = pr.match;
      }
    }
    if (best !== NONE && bestMatch === r.raftLog.lastIndex()) {
      r.send(newMessage({ type: 'timeoutNow', to: best }));
    }
    r.becomeFollower(r.term, NONE);
    return cs;
  }
  if (r.maybeCommit()) {
    // The new config may commit entries the old one could not.
    r.bcastAppend();
  } else {
    r.forEachPeer((id) => r.maybeSendAppend(id, false));
  }
  if (r.leadTransferee !== NONE && !r.trk.isVoter(r.leadTransferee)) r.leadTransferee = NONE;
  return cs;
}
