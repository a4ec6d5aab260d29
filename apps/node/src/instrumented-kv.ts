import type { KvClientRequest, KvResponse } from '@cohort/kv';
import type { KvApi } from './kv-api.js';
import type { NodeMetrics } from './metrics.js';

/**
 * Wraps a {@link KvApi} so every request of `frontend` is counted and timed (a
 * pipeline's, each from its start); a write that arrives while `leading()` is
 * also timed as the `replied` phase of its proposal.
 */
export function instrumentKv(
  api: KvApi,
  metrics: NodeMetrics,
  frontend: 'resp' | 'http',
  leading: () => boolean = () => false,
): KvApi {
  const count = (req: KvClientRequest, res: KvResponse): void => {
    const command = req.kind === 'write' ? req.write.op : req.op;
    const outcome = res.type === 'failure' ? res.code : res.type === 'error' ? 'error' : 'ok';
    metrics.requests.inc({ frontend, command, outcome });
  };
  return {
    status: () => api.status(),
    async execute(req) {
      const end = metrics.latency.startTimer({ frontend, kind: req.kind });
      const asLeader = req.kind === 'write' && leading();
      const res = await api.execute(req);
      const seconds = end();
      if (asLeader && res.type !== 'failure') metrics.observeReplied(seconds);
      count(req, res);
      return res;
    },
    async executeAll(reqs) {
      const start = performance.now();
      const lead = leading();
      const res = await api.executeAll(reqs);
      const seconds = (performance.now() - start) / 1000;
      reqs.forEach((req, i) => {
        const r = res[i]!;
        metrics.latency.observe({ frontend, kind: req.kind }, seconds);
        if (lead && req.kind === 'write' && r.type !== 'failure') metrics.observeReplied(seconds);
        count(req, r);
      });
      return res;
    },
  };
}
