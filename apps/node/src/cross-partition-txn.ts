import type { KvClientRequest, KvClientWrite, KvResponse, TxnReply, TxnRequest } from '@cohort/kv';

/** What runs transactions across partitions: `@cohort/kv`'s `TxnCoordinator` on this node. */
export interface TxnRunner {
  run(req: TxnRequest): Promise<TxnReply>;
}

/** A write as a transaction across partitions, and how the transaction's answer becomes the write's. */
export interface WriteAsTxn {
  request: TxnRequest;
  answer: (reply: TxnReply) => KvResponse;
}

/** The answer of a transaction's first operation (MSET's OK, DEL's count), or its error. */
function firstResult(reply: TxnReply): KvResponse {
  if (reply.type !== 'txn') return reply;
  return reply.results[0] ?? { type: 'error', message: 'ERR the transaction answered no result' };
}

/**
 * The Redis writes that may span partitions, as transactions (see
 * `TxnRequest` in `@cohort/kv`): MSET and multi-key DEL (UNLINK) with no
 * comparisons; MSETNX comparing `absent` on every key, answering 1 when it
 * set them and 0 when one existed; EXEC comparing each WATCHed key's mod
 * revision (0: absent), its queued commands the success branch, answering
 * their results, or a nil array when a watched key changed. Undefined for
 * any other write (it keeps its keys in one partition or answers CROSSSLOT).
 */
export function txnOfWrite(write: KvClientWrite): WriteAsTxn | undefined {
  switch (write.op) {
    case 'mset':
      if (!write.nx) return { request: { compares: [], success: [write], failure: [] }, answer: firstResult };
      return {
        request: {
          compares: write.keys.map((key) => ({ key, compare: { kind: 'absent' } })),
          success: [{ op: 'mset', keys: write.keys, values: write.values }],
          failure: [],
        },
        answer: (reply) => (reply.type === 'txn' ? { type: 'int', value: reply.succeeded ? 1n : 0n } : reply),
      };
    case 'del':
      return { request: { compares: [], success: [write], failure: [] }, answer: firstResult };
    case 'exec':
      return {
        request: {
          compares: write.watch.map((w) => ({ key: w.key, compare: { kind: 'modRevision', value: w.revision } })),
          success: write.writes,
          failure: [],
        },
        answer: (reply) => {
          if (reply.type !== 'txn') return reply;
          return reply.succeeded ? { type: 'list', items: reply.results } : { type: 'list', items: null };
        },
      };
    default:
      return undefined;
  }
}

/**
 * A read of keys in several partitions (MGET, EXISTS) as a transaction of
 * that one read: its intents hold writers off the keys until it commits,
 * so it succeeds where double reading keeps meeting writes. Answers as the
 * read would (the values, or the count).
 */
export function readAsTxn(req: Extract<KvClientRequest, { kind: 'read' }>): WriteAsTxn | undefined {
  if (req.op !== 'mget' && req.op !== 'exists') return undefined;
  return {
    request: { compares: [], success: [{ op: 'read', read: req.op, keys: req.keys }], failure: [] },
    answer: (reply) => {
      const r = firstResult(reply);
      if (req.op === 'exists' || r.type !== 'list') return r;
      return { type: 'array', values: (r.items ?? []).map((i) => (i.type === 'bulk' ? i.value : null)) };
    },
  };
}
