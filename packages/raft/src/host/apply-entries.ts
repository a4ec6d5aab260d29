import type { Entry, Logger } from '@cohort/core';
import { decodeConfChange } from '../confchange/codec.js';
import type { Group } from './group.js';

/**
 * Applies the entries of `all` past the machine's applied index in one
 * `applyBatch` (re-delivered ones are skipped, so a restart is idempotent);
 * membership changes go to the engine first, in order, and the machine
 * records the resulting membership with its applied index. Resolves or fails
 * the proposals waiting on them. Returns how many entries were applied.
 */
export function applyEntries(g: Group, all: Entry[], log: Logger): number {
  const ents: Entry[] = [];
  let next = g.applied.index + 1;
  for (const e of all) {
    if (e.index < next) continue; // re-delivered: the machine holds it already
    if (e.index > next) {
      throw new Error(`invariant: group ${g.id} was handed entry ${e.index} to apply after ${next - 1}`);
    }
    ents.push(e);
    next++;
  }
  const last = ents[ents.length - 1];
  if (last === undefined) return 0;
  let confState = g.applied.confState;
  let changed = false;
  for (const e of ents) {
    if (e.type !== 'confChange') continue;
    confState = g.engine.applyConfChange(decodeConfChange(e.data));
    changed = true;
  }
  // A machine that never recorded a membership takes the engine's.
  if (!changed && g.applied.confState.voters.length === 0) confState = g.engine.status().confState;
  const outcomes = g.sm.applyBatch(ents, confState);
  g.applied = { index: last.index, term: last.term, confState };
  ents.forEach((e, i) => {
    const out = outcomes[i];
    if (out === undefined) g.pending.applied(e.index, e.term, undefined);
    else if (out.ok) g.pending.applied(e.index, e.term, out.value);
    else {
      // A command every replica rejects alike (bad bytes) fails its proposer; the log moves on.
      log.warn('entry failed to apply', { group: g.id, index: e.index, err: out.error.message });
      g.pending.failed(e.index, out.error);
    }
  });
  return ents.length;
}
