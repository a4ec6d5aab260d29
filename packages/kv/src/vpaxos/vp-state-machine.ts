import type { Entry } from '@cohort/core';
import type { VpStateMachine } from '@cohort/vpaxos';
import type { KvResult } from '../result.js';
import type { KvStateMachine } from '../state-machine.js';

/**
 * The KV state machine as a Vertical Paxos replica applies to it: a chosen
 * value at slot s is the entry at index s, and consecutive chosen values go
 * in one `applyBatch`, one store transaction with the applied index, rather
 * than one transaction per slot. Its snapshot (the partition's rows and
 * sessions, streamed from a consistent view) is what a replica lacking
 * compacted slots installs: the same stream a Raft partition sends.
 */
export function vpStateMachine(sm: KvStateMachine): VpStateMachine<KvResult> {
  return {
    apply: (slot, data) => sm.apply(slot, data),
    applyMany: (entries) => {
      const applied = sm.applied();
      const batch: Entry[] = entries.map((e) => ({ index: e.slot, term: applied.term, type: 'normal', data: e.data }));
      return sm.applyBatch(batch, applied.confState).map((out, i) => {
        // A no-op only moves the applied index.
        if (out === undefined && entries[i]?.data.length === 0) return undefined;
        if (out === undefined)
          throw new Error(`slot ${entries[i]?.slot} is at or below the applied index ${applied.index}`);
        if (!out.ok) throw out.error;
        return out.value;
      });
    },
    applied: () => sm.applied(),
    openSnapshot: () => sm.openSnapshot(),
    receiveSnapshot: (meta) => sm.receiveSnapshot(meta),
  };
}
