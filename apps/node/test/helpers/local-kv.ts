import { type KvClientRequest, type KvResponse, KvStateMachine, encodeCommand, toCommand } from '@cohort/kv';
import type { KvApi, NodeStatus } from '../../src/kv-api.js';

/** A single-node KvApi over a real state machine, with no replication: for front-end tests. */
export class LocalKv implements KvApi {
  readonly sm = new KvStateMachine();
  /** Every request the front end sent, in order. */
  readonly requests: KvClientRequest[] = [];
  /** The size of each pipeline the front end sent (`executeAll`). */
  readonly pipelines: number[] = [];
  private index = 0;

  /** Serves the pipeline one request after another. */
  async executeAll(reqs: KvClientRequest[]): Promise<KvResponse[]> {
    this.pipelines.push(reqs.length);
    const out: KvResponse[] = [];
    for (const req of reqs) out.push(await this.execute(req));
    return out;
  }

  async execute(req: KvClientRequest): Promise<KvResponse> {
    this.requests.push(req);
    // Yield like a real round trip would, so ordering bugs show.
    await new Promise((r) => setImmediate(r));
    return this.serve(req);
  }

  /** Serves `req` now. */
  serve(req: KvClientRequest): KvResponse {
    const now = Date.now();
    if (req.kind === 'write') {
      try {
        return this.sm.apply(++this.index, encodeCommand(toCommand(req.write, now, req.session)));
      } catch (err) {
        return { type: 'error', message: (err as Error).message };
      }
    }
    switch (req.op) {
      case 'get': {
        const v = this.sm.get(req.keys[0]!, now);
        return v ? { type: 'bulk', value: v } : { type: 'nil' };
      }
      case 'mget':
        return { type: 'array', values: req.keys.map((k) => this.sm.get(k, now) ?? null) };
      case 'exists':
        return { type: 'int', value: BigInt(req.keys.filter((k) => this.sm.has(k, now)).length) };
      case 'pttl':
        return { type: 'int', value: BigInt(this.sm.ttl(req.keys[0]!, now)) };
      case 'range': {
        const { records, more } = this.sm.range(req.keys[0]!, req.keys[1], req.limit ?? 0, now);
        return { type: 'range', records, more, revision: this.sm.appliedIndex };
      }
    }
  }

  status(): NodeStatus {
    return { id: 'n1', role: 'leader', term: 1, leader: 'n1', commit: this.index, applied: this.index };
  }
}
