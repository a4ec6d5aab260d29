import type { KvCompare, SlotMap, TxnReply, TxnRequest, WatchedKey } from '@cohort/kv';
import type { TxnRunner } from './cross-partition-txn.js';
import type { KvApi } from './kv-api.js';
import { writeKeys } from './partitioned-kv.js';

/** A comparison as a WATCHed key's revision (0: absent), when it is one. */
function asWatch(key: Uint8Array, c: KvCompare): WatchedKey | undefined {
  if (c.kind === 'absent') return { key, revision: 0 };
  if (c.kind === 'modRevision') return { key, revision: c.value };
  return undefined;
}

/**
 * `runner` with the one-round path for transactions that need no commit
 * protocol: every key in one partition, comparisons on mod revisions (or
 * absence) only and no failure branch. Such a transaction is that
 * partition's EXEC with WATCH, one log entry, served through `api` (limits,
 * routing and forwarding as any write); any other goes to `runner`.
 */
export function withFastPath(runner: TxnRunner, api: KvApi, slots: SlotMap): TxnRunner {
  return {
    run: async (req: TxnRequest): Promise<TxnReply> => {
      const watch = req.compares.map((c) => asWatch(c.key, c.compare));
      const keys = [...req.compares.map((c) => c.key), ...req.success.flatMap(writeKeys)];
      const first = keys[0];
      const onePartition =
        first !== undefined &&
        req.success.every((w) => writeKeys(w).length > 0) &&
        keys.every((k) => slots.partitionOfKey(k) === slots.partitionOfKey(first));
      if (!onePartition || req.failure.length > 0 || watch.some((w) => w === undefined)) return runner.run(req);
      const res = await api.execute({
        kind: 'write',
        write: { op: 'exec', writes: req.success, watch: watch as WatchedKey[] },
      });
      if (res.type === 'error' || res.type === 'failure') return res;
      if (res.type !== 'list') return { type: 'error', message: `ERR a transaction answered ${res.type}` };
      return res.items === null
        ? { type: 'txn', txn: '', succeeded: false, results: [] }
        : { type: 'txn', txn: '', succeeded: true, results: res.items };
    },
  };
}
