import { systemClock } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import type { KvRequest, KvResponse } from '../src/request.js';
import { IntentResolver } from '../src/txn/resolver.js';

/**
 * A resolver whose record partition answers `records` in turn (the last one from then on), on a partition
 * holding an intent while `held()`; counts the record reads.
 */
function resolverOver(
  records: KvResponse[],
  held: () => boolean = () => false,
): { resolver: IntentResolver; reads: () => number; writes: KvRequest[] } {
  let reads = 0;
  const writes: KvRequest[] = [];
  const resolver = new IntentResolver({
    participant: () => ({
      execute: async (req) => {
        if (req.kind === 'write') {
          writes.push(req);
          return { type: 'txn', step: { outcome: 'aborted' } };
        }
        return records[Math.min(reads++, records.length - 1)]!;
      },
    }),
    local: async () => ({ type: 'txn', step: { outcome: 'resolved' } }),
    clock: systemClock,
    wallClock: () => Date.now(),
    random: () => 0.5,
    holds: () => held(),
  });
  return { resolver, reads: () => reads, writes };
}

const missing: KvResponse = { type: 'txn', step: { outcome: 'missing' } };

describe('meeting an intent whose transaction record is missing', () => {
  it('serves the command again once the intent is gone, instead of waiting out its deadline on the record', async () => {
    // The record was forgotten: the transaction finished and every intent, this one included, was resolved
    // after the command met it.
    const { resolver, reads, writes } = resolverOver([missing]);
    const lock = { type: 'locked' as const, txn: 't1', recordPartition: 2, deadline: Date.now() + 60_000, write: true };
    const started = performance.now();
    for (const reader of [true, false]) {
      expect(await resolver.resolve(lock, reader, systemClock.now() + 5000)).toEqual({ kind: 'retry' });
    }
    expect(performance.now() - started).toBeLessThan(1000);
    expect(reads()).toBe(2);
    // Nothing is aborted while the intent's deadline has not passed (the record's prepare may be on its way).
    expect(writes).toEqual([]);
  });

  it('keeps reading the record while the intent is held (its prepare may be on its way), until the record shows', async () => {
    const held = true;
    const pending: KvResponse = { type: 'txn', step: { outcome: 'pending', deadline: Date.now() + 60_000 } };
    const { resolver, reads } = resolverOver([missing, missing, missing, pending], () => held);
    const lock = { type: 'locked' as const, txn: 't3', recordPartition: 1, deadline: Date.now() + 60_000, write: true };
    // A reader passes the pending transaction once its record shows.
    expect(await resolver.resolve(lock, true, systemClock.now() + 5000)).toEqual({ kind: 'pass', txn: 't3' });
    expect(reads()).toBe(4);
  });

  it('aborts the record once the intent deadline passed, then resolves from the tombstone', async () => {
    const { resolver, writes } = resolverOver([missing, { type: 'txn', step: { outcome: 'aborted' } }]);
    const lock = { type: 'locked' as const, txn: 't2', recordPartition: 0, deadline: Date.now() - 1, write: true };
    expect(await resolver.resolve(lock, false, systemClock.now() + 5000)).toEqual({ kind: 'retry' });
    expect(writes.map((w) => (w.kind === 'write' ? w.command.op : w.kind))).toEqual(['txnAbort']);
  });
});
