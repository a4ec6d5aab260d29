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
    if (req.op === 'range') {
      const { records, more } = this.sm.range(req.keys[0]!, req.keys[1], req.limit ?? 0, now);
      return { type: 'range', records, more, revision: this.sm.appliedIndex };
    }
    const res = this.sm.read(req.op, req.keys, req.args ?? [], now);
    if (res.type !== 'list') return res;
    // Reads answer their lists of values as arrays, as KvService does.
    return { type: 'array', values: (res.items ?? []).map((r) => (r.type === 'bulk' ? r.value : null)) };
  }

  status(): NodeStatus {
    return { id: 'n1', role: 'leader', term: 1, leader: 'n1', commit: this.index, applied: this.index };
  }
}
