import { SlotMap } from '@cohort/kv';

/**
 * `n` keys `${prefix}<i>` placed round-robin over the partitions of a
 * `partitions`-way layout: key i lies in partition i mod P, so any two
 * consecutive keys are in different partitions.
 */
export function keysOverPartitions(prefix: string, n: number, partitions: number): string[] {
  const map = new SlotMap(partitions);
  const byPartition: string[][] = Array.from({ length: partitions }, () => []);
  const per = Math.ceil(n / partitions);
  for (let i = 0; byPartition.some((l) => l.length < per); i++) {
    const key = `${prefix}${i}`;
    const list = byPartition[map.partitionOfKey(Buffer.from(key))]!;
    if (list.length < per) list.push(key);
  }
  return Array.from({ length: n }, (_, i) => byPartition[i % partitions]![Math.floor(i / partitions)]!);
}

/** The partition of `key` in a `partitions`-way layout. */
export function partitionOf(key: string, partitions: number): number {
  return new SlotMap(partitions).partitionOfKey(Buffer.from(key));
}

/** What `POST /v1/txn` answers: the branch and its results, or an error. */
export interface TxnAnswer {
  succeeded: boolean;
  results: { type: string; key?: string; value?: string | null; deleted?: number }[];
  error?: { code: string; message: string };
}
