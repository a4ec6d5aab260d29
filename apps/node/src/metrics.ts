import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NodeStatus } from './kv-api.js';

/** The node's Prometheus metrics, served on `GET /metrics`. */
export class NodeMetrics {
  readonly registry = new Registry();
  /** Client requests by front end, command and outcome (`ok`, `error`, or a failure code). */
  readonly requests = new Counter({
    name: 'cohort_requests_total',
    help: 'Client requests served, by front end, command and outcome',
    labelNames: ['frontend', 'command', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'cohort_request_duration_seconds',
    help: 'Client request latency, by front end and kind (read or write)',
    labelNames: ['frontend', 'kind'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  constructor(status: () => NodeStatus) {
    collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, read: (s: NodeStatus) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read(status()));
        },
      });
    };
    gauge('cohort_raft_term', 'Current Raft term', (s) => s.term);
    gauge('cohort_raft_commit_index', 'Highest log index known committed', (s) => s.commit);
    gauge('cohort_raft_applied_index', 'Highest log index applied to the state machine', (s) => s.applied);
    gauge('cohort_raft_is_leader', '1 when this node leads the group', (s) => (s.role === 'leader' ? 1 : 0));
  }
}
