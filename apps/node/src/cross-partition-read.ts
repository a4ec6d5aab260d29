import type { KvClientRequest, KvResponse, RouteSplit } from '@cohort/kv';

/** Rounds a read of several partitions tries again before it gives up with TRYAGAIN. @default 8 */
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
 * with respect to transactions across partitions, by reading twice: in each
 * round every partition answers its keys' mod revisions and then the read
 * itself (one pipeline: the read sees the same state or a later one). When
 * no revision moved from one round to the next, every key held the value
 * the first of the two rounds read throughout an instant between them, so
 * those parts form one cut: a transaction that committed before that
 * instant had laid its intents everywhere, and a read meeting an intent of
 * a decided transaction resolves it first (a new revision), so it cannot be
 * seen in part. Otherwise the later round becomes the first of the next
 * pair, up to {@link ATOMIC_READ_ATTEMPTS} more rounds, then it answers TRYAGAIN (`PartitionedKv`
 * then runs the read as a transaction).
 */
export async function atomicRead(
  req: Extract<KvClientRequest, { kind: 'read' }>,
  splits: readonly RouteSplit[],
  pipeline: PartitionPipeline,
  merge: (answers: KvResponse[]) => KvResponse,
  attempts = ATOMIC_READ_ATTEMPTS,
): Promise<KvResponse> {
  const round = async (): Promise<KvResponse[][] | KvResponse> => {
    const answers = await Promise.all(
      splits.map((s) => {
        const keys = s.indexes.map((i) => req.keys[i]!);
        return pipeline(s.group, [
          { kind: 'read', op: 'revisions', keys },
          { ...req, keys },
        ]);
      }),
    );
    return failed(answers.flat()) ?? answers;
  };
  const first = await round();
  if (!Array.isArray(first)) return first;
  let previous: KvResponse[][] = first;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const next = await round();
    if (!Array.isArray(next)) return next;
    const before = previous;
    if (next.every((answers, i) => sameRevisions(before[i]![0]!, answers[0]!))) {
      return merge(before.map((answers) => answers[1]!));
    }
    previous = next;
  }
  // Redis Cluster's word for "retry later", as the transaction coordinator answers after repeated conflicts.
  return {
    type: 'error',
    message: `TRYAGAIN the keys of this read across ${splits.length} partitions changed during each of ${attempts} attempts; retry`,
  };
}
