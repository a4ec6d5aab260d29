import type { KvClientRequest, KvResponse } from '@cohort/kv';
import type { CounterCell } from './hot-metrics.js';
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
  // Each label set's cell, found without allocating (see hot-metrics.ts): by command, then outcome.
  const counts = new Map<string, Map<string, CounterCell>>();
  // (A cell is listed once it counted something: made ahead, an unused one shows nowhere.)
  const latency = {
    read: metrics.latency.cell({ frontend, kind: 'read' }),
    write: metrics.latency.cell({ frontend, kind: 'write' }),
  };
  const count = (req: KvClientRequest, res: KvResponse): void => {
    const command = req.kind === 'write' ? req.write.op : req.op;
    const outcome = res.type === 'failure' ? res.code : res.type === 'error' ? 'error' : 'ok';
    let byOutcome = counts.get(command);
    if (byOutcome === undefined) {
      byOutcome = new Map();
      counts.set(command, byOutcome);
    }
    let cell = byOutcome.get(outcome);
    if (cell === undefined) {
      cell = metrics.requests.cell({ frontend, command, outcome });
      byOutcome.set(outcome, cell);
    }
    cell.inc();
  };
  return {
    status: () => api.status(),
    async execute(req) {
      const start = performance.now();
      const asLeader = req.kind === 'write' && leading();
      const res = await api.execute(req);
      const seconds = (performance.now() - start) / 1000;
      latency[req.kind].observe(seconds);
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
        latency[req.kind].observe(seconds);
        if (lead && req.kind === 'write' && r.type !== 'failure') metrics.observeReplied(seconds);
        count(req, r);
      });
      return res;
    },
  };
}
