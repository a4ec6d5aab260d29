import { api } from './api.js';
import type { ClusterEvent, Member, Meta, MetricsSample, Partition, Status } from './types.js';

/** What one round of polling brought; a field is absent when its request failed (see `errors`). */
export interface Snapshot {
  status?: Status;
  members?: Member[];
  partitions?: Partition[];
  meta?: Meta;
  events: ClusterEvent[];
  samples: MetricsSample[];
  errors: { what: string; status: number; message: string }[];
}

/** How many events and samples the page keeps. */
const KEEP_EVENTS = 200;
const KEEP_SAMPLES = 300;

/**
 * Reads the node's state each round: status, members, partitions (as their
 * leaders report them), the meta map, and what is new in the event log and
 * the metrics history since the previous round.
 */
export class Poller {
  private lastEvent = 0;
  private lastSample = 0;
  private events: ClusterEvent[] = [];
  private samples: MetricsSample[] = [];

  async round(): Promise<Snapshot> {
    const errors: Snapshot['errors'] = [];
    const get = async <T>(what: string, path: string): Promise<T | undefined> => {
      try {
        return await api<T>(path, { timeoutMs: 4000 });
      } catch (err) {
        const e = err as { status?: number; message?: string };
        errors.push({ what, status: e.status ?? 0, message: e.message ?? String(err) });
        return undefined;
      }
    };
    const [status, members, partitions, meta, events, history] = await Promise.all([
      get<Status>('status', '/v1/status'),
      get<{ members: Member[] }>('members', '/v1/members'),
      get<{ partitions: Partition[] }>('partitions', '/v1/partitions?from=leaders'),
      get<Meta>('meta', '/v1/meta'),
      get<{ events: ClusterEvent[]; last: number }>('events', `/v1/admin/events?after=${this.lastEvent}`),
      get<{ samples: MetricsSample[] }>('metrics', `/v1/admin/metrics/history?since=${this.lastSample}`),
    ]);
    if (events) {
      // A node restarted: its sequence numbers begin again.
      if (events.last < this.lastEvent) this.events = [];
      this.events = [...this.events, ...events.events].slice(-KEEP_EVENTS);
      this.lastEvent = events.last;
    }
    if (history && history.samples.length > 0) {
      this.samples = [...this.samples, ...history.samples].slice(-KEEP_SAMPLES);
      this.lastSample = history.samples.at(-1)!.t;
    }
    return {
      ...(status ? { status } : {}),
      ...(members ? { members: members.members } : {}),
      ...(partitions ? { partitions: partitions.partitions } : {}),
      ...(meta ? { meta } : {}),
      events: this.events,
      samples: this.samples,
      errors,
    };
  }
}
