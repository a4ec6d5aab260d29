import type { KvClientRequest, KvResponse } from '@cohort/kv';
import type { KvApi, KvReadRequest, ReadApi } from '../kv-api.js';
import type { CommandDoc } from './command-docs.js';
import type { Handler } from './plan.js';
import { OK } from './reply.js';

/**
 * RESP read modes. By default every read is linearizable: a ReadIndex round
 * on the leader (a follower forwards it). READONLY on a connection, as in
 * Redis Cluster, has this node serve the connection's reads from its own
 * state as it stands (stale reads, possibly behind the leader, the leader's
 * own state included); READWRITE restores the default. With
 * `raft.leaseReads` in the config, the leader serves reads under its lease
 * (no ReadIndex round) while the lease holds, and through ReadIndex
 * otherwise; a follower forwards them as usual. WATCH always reads
 * linearizably. Both go through the same {@link ReadApi} as the HTTP API's
 * `?consistency=stale|lease`.
 */

/** How one planned request is served. */
export type ReadMode = 'linearizable' | 'stale' | 'lease';

/** The mode of a request planned on a connection whose session is `readOnly` (or not), on a node with `lease` on. */
export function readModeOf(req: KvClientRequest, readOnly: boolean, lease: boolean): ReadMode {
  if (req.kind !== 'read' || req.op === 'revisions') return 'linearizable';
  if (readOnly) return 'stale';
  return lease ? 'lease' : 'linearizable';
}

/**
 * Serves `requests` in order, each read in its mode: consecutive
 * linearizable requests go to {@link KvApi.executeAll} together; consecutive
 * stale or lease reads are served once everything before them is answered.
 * Lease reads are served linearizably on a node that does not lead, and
 * those the lease did not cover (it lapsed, leadership moved) are too, together.
 */
export async function executeWithModes(
  api: KvApi,
  reads: ReadApi,
  requests: KvClientRequest[],
  requested: ReadMode[],
): Promise<KvResponse[]> {
  let modes = requested;
  if (modes.includes('lease') && api.status().role !== 'leader') {
    modes = modes.map((m) => (m === 'lease' ? 'linearizable' : m));
  }
  if (modes.every((m) => m === 'linearizable')) return api.executeAll(requests);
  const out: KvResponse[] = [];
  let i = 0;
  while (i < requests.length) {
    const plain = modes[i] === 'linearizable';
    let j = i;
    while (j < requests.length && (modes[j] === 'linearizable') === plain) j++;
    const run = requests.slice(i, j);
    if (plain) out.push(...(await api.executeAll(run)));
    else {
      const answers = await Promise.all(
        run.map((req, k) =>
          modes[i + k] === 'stale' ? reads.stale(req as KvReadRequest) : reads.lease(req as KvReadRequest),
        ),
      );
      const missed = answers.flatMap((a, k) => (a.type === 'failure' && modes[i + k] === 'lease' ? [k] : []));
      if (missed.length > 0) {
        const retried = await api.executeAll(missed.map((k) => run[k]!));
        missed.forEach((k, n) => {
          answers[k] = retried[n]!;
        });
      }
      out.push(...answers);
    }
    i = j;
  }
  return out;
}

/** READONLY and READWRITE (Redis Cluster's replica reads). */
export const READ_MODE_COMMANDS: Record<string, { arity: number; run: Handler }> = {
  readonly: {
    arity: 1,
    run: (_args, _api, session) => {
      session.readOnly = true;
      return OK;
    },
  },
  readwrite: {
    arity: 1,
    run: (_args, _api, session) => {
      session.readOnly = false;
      return OK;
    },
  },
};

/** COMMAND INFO and COMMAND DOCS of READONLY and READWRITE. */
export const READ_MODE_DOCS: Record<string, CommandDoc> = {
  readonly: {
    flags: ['loading', 'stale', 'fast'],
    keys: [0, 0, 0],
    group: 'cluster',
    since: '3.0.0',
    summary: 'Enables read-only queries for a connection to a Redis Cluster replica node.',
  },
  readwrite: {
    flags: ['loading', 'stale', 'fast'],
    keys: [0, 0, 0],
    group: 'cluster',
    since: '3.0.0',
    summary: 'Enables read-write queries for a connection to a Redis Cluster replica node.',
  },
};
