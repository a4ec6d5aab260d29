import { assetsDir, buildCommand, isBuilt } from '@cohort/dashboard';
import { type ClusterEventSources, ClusterEventWatch } from './cluster-events.js';
import type { DashboardRoutesOptions } from './dashboard-routes.js';
import { EventLog } from './event-log.js';
import { MetricsHistory } from './metrics-history.js';
import type { NodeMetrics } from './metrics.js';

/** What the dashboard of one node reads: its metrics history and its event log, fed every second. */
export interface DashboardFeed {
  routes: DashboardRoutesOptions;
  events: ClusterEventWatch;
  stop(): void;
}

/**
 * Starts the dashboard's feeds on a node: the metrics history (sampled from
 * the node's registry every second, five minutes kept) and the event log
 * (leader changes as told to {@link ClusterEventWatch.leaderChanged}, the
 * rest polled from `sources` every second). The timers keep no process alive.
 */
export function startDashboardFeed(metrics: NodeMetrics, sources: ClusterEventSources): DashboardFeed {
  const history = new MetricsHistory(metrics.registry);
  const log = new EventLog();
  const events = new ClusterEventWatch(log, sources);
  history.start();
  const poller = setInterval(() => events.poll(), 1000);
  poller.unref();
  events.poll();
  return {
    routes: { assets: { dir: assetsDir, isBuilt, buildCommand }, history, events: log },
    events,
    stop() {
      history.stop();
      clearInterval(poller);
    },
  };
}
