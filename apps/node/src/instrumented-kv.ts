import type { KvApi } from './kv-api.js';
import type { NodeMetrics } from './metrics.js';

/**
 * Wraps a {@link KvApi} so every request of `frontend` is counted and timed;
 * a write that arrives while `leading()` is also timed as the `replied` phase
 * of its proposal.
 */
export function instrumentKv(
  api: KvApi,
  metrics: NodeMetrics,
  frontend: 'resp' | 'http',
  leading: () => boolean = () => false,
): KvApi {
  return {
    status: () => api.status(),
    async execute(req) {
      const end = metrics.latency.startTimer({ frontend, kind: req.kind });
      const asLeader = req.kind === 'write' && leading();
      const res = await api.execute(req);
      const seconds = end();
      if (asLeader && res.type !== 'failure') metrics.observeReplied(seconds);
      const command = req.kind === 'write' ? req.write.op : req.op;
      const outcome = res.type === 'failure' ? res.code : res.type === 'error' ? 'error' : 'ok';
      metrics.requests.inc({ frontend, command, outcome });
      return res;
    },
  };
}
