import { type KvRequest, type KvResponse, KvStateMachine, encodeCommand } from '@cohort/kv';
import type { KvApi, NodeStatus } from '../../src/kv-api.js';

/** A single-node KvApi over a real state machine, with no replication: for front-end tests. */
export class LocalKv implements KvApi {
  readonly sm = new KvStateMachine();
  private index = 0;

  async execute(req: KvRequest): Promise<KvResponse> {
    // Yield like a real round trip would, so ordering bugs show.
    await new Promise((r) => setImmediate(r));
    if (req.kind === 'write') return this.sm.apply(++this.index, encodeCommand(req.command));
    switch (req.op) {
      case 'get': {
        const v = this.sm.get(req.keys[0]!, req.now);
        return v ? { type: 'bulk', value: v } : { type: 'nil' };
      }
      case 'mget':
        return { type: 'array', values: req.keys.map((k) => this.sm.get(k, req.now) ?? null) };
      case 'exists':
        return { type: 'int', value: BigInt(req.keys.filter((k) => this.sm.has(k, req.now)).length) };
      case 'pttl':
        return { type: 'int', value: BigInt(this.sm.ttl(req.keys[0]!, req.now)) };
    }
  }

  status(): NodeStatus {
    return { id: 'n1', role: 'leader', term: 1, leader: 'n1', commit: this.index, applied: this.index };
  }
}
