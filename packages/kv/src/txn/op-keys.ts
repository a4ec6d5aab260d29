import type { KvOp } from '../command.js';

/**
 * The keys an operation reads or writes, in its order; `all` when it may
 * touch any key of its partition (FLUSHDB, KEYS, SCAN, DBSIZE, RANDOMKEY,
 * an EXEC holding one). Transaction steps touch only reserved rows: none.
 */
export function opKeys(op: KvOp): Uint8Array[] | 'all' {
  switch (op.op) {
    case 'set':
    case 'incr':
    case 'expire':
    case 'persist':
    case 'cond':
    case 'append':
    case 'setrange':
    case 'getdel':
    case 'getex':
    case 'incrbyfloat':
      return [op.key];
    case 'rename':
    case 'copy':
      return [op.key, op.dest];
    case 'del':
    case 'mset':
    case 'delExpired':
    case 'collection':
      return op.keys;
    case 'read':
      return op.read === 'keys' || op.read === 'scan' || op.read === 'dbsize' || op.read === 'randomkey'
        ? 'all'
        : op.keys;
    case 'checksum':
      return [];
    case 'flush':
      return 'all';
    case 'exec': {
      const keys: Uint8Array[] = op.watch.map((w) => w.key);
      for (const inner of op.ops) {
        const k = opKeys(inner);
        if (k === 'all') return 'all';
        keys.push(...k);
      }
      return keys;
    }
    case 'txnPrepare': {
      const keys: Uint8Array[] = op.compares.map((c) => c.key);
      for (const inner of [...op.success, ...op.failure]) {
        const k = opKeys(inner);
        if (k === 'all') return 'all';
        keys.push(...k);
      }
      return keys;
    }
    case 'txnCommit':
    case 'txnAbort':
    case 'txnResolve':
    case 'txnForget':
      return [];
    default: {
      const never: never = op;
      throw new Error(`unknown command ${String(never)}`);
    }
  }
}

/** Whether `op` only reads (a read queued in a transaction): its keys get read intents, which readers pass. */
export function readsOnly(op: KvOp): boolean {
  return op.op === 'read';
}
