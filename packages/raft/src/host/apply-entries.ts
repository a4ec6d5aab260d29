import { type ConfChange, CorruptStateError, type Entry, type Logger, UnavailableError } from '@cohort/core';
import { decodeConfChange } from '../confchange/codec.js';
import type { Group } from './group.js';

/**
 * Applies the committed entries of `all` that the group has not applied yet.
 *
 * Membership changes go to the engine first, in order, once each (tracked by
 * `confApplied`, which can run ahead of the machine). The entries past the
 * machine's applied index then go to the machine in one `applyBatch`
 * (re-delivered ones are skipped, so a restart is idempotent), and the
 * machine records the resulting membership with its applied index. Resolves
 * or fails the proposals waiting on them.
 *
 * While the group repairs its state (see `replica-repair.ts`) the machine is
 * not called: its state is being replaced by a healthy replica's snapshot,
 * and the entries applied meanwhile are replayed from the log once it
 * arrives. A machine that reports its state corrupt while applying starts
 * such a repair through `onCorrupt`; its transaction was rolled back, so the
 * batch is replayed later like the rest. Returns how many entries the
 * machine applied.
 */
export function applyEntries(
  g: Group,
  all: Entry[],
  log: Logger,
  onCorrupt: (err: CorruptStateError) => void,
  onConfChange?: (cc: ConfChange) => void,
): number {
  const fresh: Entry[] = [];
  let changed = false;
  for (const e of all) {
    if (e.index <= g.confApplied) continue; // re-delivered
    if (e.index !== g.confApplied + 1) {
      throw new Error(`invariant: group ${g.id} was handed entry ${e.index} to apply after ${g.confApplied}`);
    }
    if (e.type === 'confChange') {
      const cc = decodeConfChange(e.data);
      g.engine.applyConfChange(cc);
      changed = true;
      onConfChange?.(cc);
    }
    g.confApplied = e.index;
    fresh.push(e);
  }
  if (fresh.length === 0) return 0;
  if (g.repair !== undefined) {
    failWaiting(g, fresh);
    return 0;
  }
  // Usually all of them: only a machine that installed a newer snapshot holds some already.
  const ents = (fresh[0] as Entry).index > g.applied.index ? fresh : fresh.filter((e) => e.index > g.applied.index);
  const last = ents[ents.length - 1];
  if (last === undefined) {
    // The machine holds them already (it installed a newer snapshot): their outcomes are unknown here.
    failWaiting(g, fresh);
    return 0;
  }
  if (ents[0]?.index !== g.applied.index + 1) {
    throw new Error(`invariant: group ${g.id} would apply entry ${ents[0]?.index} after ${g.applied.index}`);
  }
  // A machine that never recorded a membership takes the engine's.
  const confState =
    changed || g.applied.confState.voters.length === 0 ? g.engine.status().confState : g.applied.confState;
  let outcomes: ReturnType<typeof g.sm.applyBatch>;
  try {
    outcomes = g.sm.applyBatch(ents, confState);
  } catch (err) {
    if (!(err instanceof CorruptStateError)) throw err;
    onCorrupt(err);
    failWaiting(g, fresh);
    return 0;
  }
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

/** Entries this replica commits without applying: whoever waits on them may retry (sessions make a retry safe). */
function failWaiting(g: Group, ents: Entry[]): void {
  for (const e of ents) {
    g.pending.failed(
      e.index,
      new UnavailableError(
        `group ${g.id}: entry ${e.index} was committed, but this replica is restoring its state and cannot give its result; retry`,
      ),
    );
  }
}
