import { ProposalDroppedError, UnavailableError } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { PendingWork } from '../../src/host/pending.js';

describe('PendingWork: what a proposal whose entry is replaced hears', () => {
  it('an entry of another term written over its index: UNAVAILABLE at once (outcome unknown), not dropped', async () => {
    const pending = new PendingWork<string>();
    const p = pending.addProposal(5, 2, Number.POSITIVE_INFINITY);
    const same = pending.addProposal(6, 2, Number.POSITIVE_INFINITY);
    // The node's own entry at that index again (its own Ready): nothing happens.
    pending.replacedAt(6, 2);
    pending.replacedAt(5, 3);
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/entry 5 of term 2 was replaced .* of term 3 .*outcome unknown/);
    pending.applied(6, 2, 'ok');
    expect(await same).toBe('ok');
    expect(pending.hasProposals).toBe(false);
  });

  it('a new proposal at an index already waited on: the earlier one hears UNAVAILABLE (its entry may commit elsewhere)', async () => {
    const pending = new PendingWork<string>();
    const first = pending.addProposal(7, 2, Number.POSITIVE_INFINITY);
    const second = pending.addProposal(7, 4, Number.POSITIVE_INFINITY);
    expect(await first.catch((e: unknown) => e)).toBeInstanceOf(UnavailableError);
    pending.applied(7, 4, 'mine');
    expect(await second).toBe('mine');
  });

  it('an entry of another term applied at its index: dropped (it can never commit), safe to retry', async () => {
    const pending = new PendingWork<string>();
    const p = pending.addProposal(9, 2, Number.POSITIVE_INFINITY);
    pending.applied(9, 3, 'theirs');
    expect(await p.catch((e: unknown) => e)).toBeInstanceOf(ProposalDroppedError);
  });
});

describe('PendingWork: whether a read still waits (a batch of reads joins only a read that does)', () => {
  it('waits until released, refused or expired', async () => {
    const pending = new PendingWork<string>();
    const released = pending.addRead('r1', 100);
    const refused = pending.addRead('r2', 100);
    const expired = pending.addRead('r3', 10);
    expect([pending.hasRead('r1'), pending.hasRead('r2'), pending.hasRead('r3')]).toEqual([true, true, true]);
    pending.readConfirmed('r1', 4);
    pending.releaseReads(3);
    expect(pending.hasRead('r1')).toBe(true);
    pending.releaseReads(4);
    await released;
    expect(pending.hasRead('r1')).toBe(false);
    pending.failReads(new UnavailableError('leadership lost'));
    expect(await refused.catch((e: unknown) => e)).toBeInstanceOf(UnavailableError);
    expect(pending.hasRead('r2')).toBe(false);
    // failReads refused r3 too (its round had not confirmed it); a fresh one expires.
    await expired.catch(() => undefined);
    const late = pending.addRead('r4', 10);
    pending.expire(10);
    await late.catch(() => undefined);
    expect(pending.hasRead('r3')).toBe(false);
    expect(pending.hasRead('r4')).toBe(false);
  });
});
