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
 * A lease read that fails (no lease, not the leader) is served linearizably.
 */
export async function executeWithModes(
  api: KvApi,
  reads: ReadApi,
  requests: KvClientRequest[],
  modes: ReadMode[],
): Promise<KvResponse[]> {
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
      out.push(
        ...(await Promise.all(
          run.map(async (req, k): Promise<KvResponse> => {
            const read = req as KvReadRequest;
            if (modes[i + k] === 'stale') return reads.stale(read);
            const res = await reads.lease(read);
            return res.type === 'failure' ? ((await api.executeAll([req]))[0] as KvResponse) : res;
          }),
        )),
      );
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
