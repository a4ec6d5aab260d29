import type { KvClientRequest, KvResponse, RouteSplit } from '@cohort/kv';

/** How many times a read of several partitions is tried before it gives up with TRYAGAIN. @default 8 */
export const ATOMIC_READ_ATTEMPTS = 8;

/** The partitions' services, as the reader needs them: one pipeline to partition `p`. */
export type PartitionPipeline = (partition: number, reqs: KvClientRequest[]) => Promise<KvResponse[]>;

function failed(answers: KvResponse[]): KvResponse | undefined {
  return answers.find((a) => a.type === 'failure' || a.type === 'error');
}

/** Whether two `revisions` answers name the same revision for every key. */
function sameRevisions(a: KvResponse, b: KvResponse): boolean {
  if (a.type !== 'array' || b.type !== 'array' || a.values.length !== b.values.length) return false;
  return a.values.every((v, i) => {
    const w = b.values[i];
    return v === w || (v !== null && w !== null && w !== undefined && Buffer.compare(v, w) === 0);
  });
}

/**
 * A read of keys in several partitions (MGET, EXISTS) as one atomic cut
 * with respect to transactions across partitions, by double reading: each
 * partition answers its keys' mod revisions and then the read itself (one
 * pipeline: the read sees the same or a later state), then every partition
 * answers the revisions again. When no revision moved between the two
 * rounds, every key held the value read throughout an instant between them
 * (the end of the first round), so the parts form one cut; a transaction
 * that committed before that instant had laid its intents everywhere, and a
 * read meeting an intent resolves it (a new revision), so it cannot be seen
 * in part. Otherwise it reads again, up to {@link ATOMIC_READ_ATTEMPTS}
 * times, then answers TRYAGAIN.
 */
export async function atomicRead(
  req: Extract<KvClientRequest, { kind: 'read' }>,
  splits: readonly RouteSplit[],
  pipeline: PartitionPipeline,
  merge: (answers: KvResponse[]) => KvResponse,
  attempts = ATOMIC_READ_ATTEMPTS,
): Promise<KvResponse> {
  const keysOf = (s: RouteSplit) => s.indexes.map((i) => req.keys[i]!);
  const revisions = (s: RouteSplit): KvClientRequest => ({ kind: 'read', op: 'revisions', keys: keysOf(s) });
  for (let attempt = 0; attempt < attempts; attempt++) {
    const first = await Promise.all(splits.map((s) => pipeline(s.group, [revisions(s), { ...req, keys: keysOf(s) }])));
    const bad = failed(first.flat());
    if (bad) return bad;
    const second = await Promise.all(splits.map((s) => pipeline(s.group, [revisions(s)])));
    const bad2 = failed(second.flat());
    if (bad2) return bad2;
    if (first.every((answers, i) => sameRevisions(answers[0]!, second[i]![0]!))) return merge(first.map((a) => a[1]!));
  }
  // Redis Cluster's word for "retry later", as the transaction coordinator answers after repeated conflicts.
  return {
    type: 'error',
    message: `TRYAGAIN the keys of this read across ${splits.length} partitions changed during each of ${attempts} attempts; retry`,
  };
}
