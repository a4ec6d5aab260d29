import type { Entry, LogIndex } from '@cohort/core';
import type { StateMachine } from '@cohort/raft';
import type { KvResult } from './result.js';
import { KvStateMachine } from './state-machine.js';

/** The KV state machine as a Raft group's {@link StateMachine}. */
export class KvReplica implements StateMachine<KvResult> {
  constructor(readonly kv: KvStateMachine = new KvStateMachine()) {}

  apply(entry: Entry): KvResult {
    return this.kv.apply(entry.index, entry.data);
  }

  skip(index: LogIndex): void {
    this.kv.skip(index);
  }

  snapshot(): Uint8Array {
    return this.kv.snapshot();
  }

  restore(data: Uint8Array): void {
    this.kv.restore(data);
  }
}
