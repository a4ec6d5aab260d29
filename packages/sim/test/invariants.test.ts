import type { Entry } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import { InvariantViolationError, RaftInvariants } from '../src/index.js';

const at = () => ({ seed: 42, step: 7, time: 1234 });
const enc = new TextEncoder();
function ent(index: number, term: number, data = `e${index}`): Entry {
  return { index, term, type: 'normal', data: enc.encode(data) };
}

function expectViolation(fn: () => void, property: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvariantViolationError);
    const v = e as InvariantViolationError;
    expect(v.property).toBe(property);
    expect(v.message).toContain('seed 42');
    expect(v.message).toContain('step 7');
    expect(v.message).toContain('pnpm sim --seed 42');
    return;
  }
  throw new Error(`expected a ${property} violation`);
}

describe('RaftInvariants', () => {
  it('catches two leaders in one term', () => {
    const inv = new RaftInvariants(at);
    inv.onLeader('n1', 3);
    inv.onLeader('n1', 3);
    inv.onLeader('n2', 4);
    expectViolation(() => inv.onLeader('n3', 4), 'election safety');
  });

  it('reads whole Readies of an engine observed at its seam: two nodes stepping up in one term are caught', () => {
    const inv = new RaftInvariants(at, 'meta');
    const ready = (term: number, role: 'leader' | 'follower') => ({
      entries: [],
      committedEntries: [],
      messages: [],
      readStates: [],
      mustSync: true,
      hardState: { term, vote: '', commit: 0 },
      softState: { lead: role === 'leader' ? 'x' : '', role },
    });
    inv.onReady('n1', ready(2, 'leader'));
    inv.onReady('n1', ready(2, 'leader'));
    inv.onReady('n2', ready(2, 'follower'));
    expectViolation(() => inv.onReady('n2', ready(2, 'leader')), 'election safety');
  });

  it('allows another vote after a restart in a term whose vote never became durable, but not after a durable one', () => {
    const inv = new RaftInvariants(at);
    // Cast, then the node crashed before the write completed: the vote was never sent.
    inv.onHardState('n1', { term: 3, vote: 'n2', commit: 0 });
    inv.onRestart('n1', { term: 2, vote: '', commit: 0 }, 0);
    inv.onHardState('n1', { term: 3, vote: 'n1', commit: 0 });
    inv.onDurable('n1', { term: 3, vote: 'n1', commit: 0 });
    inv.onRestart('n1', { term: 3, vote: 'n1', commit: 0 }, 0);
    expectViolation(() => inv.onHardState('n1', { term: 3, vote: 'n3', commit: 0 }), 'one vote per term');
  });

  it('catches a second vote in one term, even after a restart', () => {
    const inv = new RaftInvariants(at);
    inv.onHardState('n1', { term: 2, vote: 'n2', commit: 0 });
    inv.onRestart('n1', { term: 2, vote: 'n2', commit: 0 }, 0);
    inv.onHardState('n1', { term: 3, vote: 'n3', commit: 0 });
    expectViolation(() => inv.onHardState('n1', { term: 3, vote: 'n1', commit: 0 }), 'one vote per term');
  });

  it('catches a commit index going back', () => {
    const inv = new RaftInvariants(at);
    inv.onAppend('n1', [ent(1, 1), ent(2, 1)]);
    inv.onHardState('n1', { term: 1, vote: '', commit: 2 });
    expectViolation(() => inv.onHardState('n1', { term: 1, vote: '', commit: 1 }), 'commit monotonic');
  });

  it('catches a restart that lost durable commits', () => {
    const inv = new RaftInvariants(at);
    inv.onAppend('n1', [ent(1, 1)]);
    inv.onDurable('n1', { term: 1, vote: '', commit: 1 });
    expectViolation(() => inv.onRestart('n1', { term: 1, vote: '', commit: 0 }, 0), 'durability');
  });

  it('catches logs that agree on (index, term) but differ before it', () => {
    const inv = new RaftInvariants(at);
    inv.onAppend('n1', [ent(1, 1, 'x'), ent(2, 2)]);
    expectViolation(() => inv.onAppend('n2', [ent(1, 1, 'y'), ent(2, 2)]), 'log matching');
  });

  it('catches two nodes applying different entries at one index', () => {
    const inv = new RaftInvariants(at);
    inv.onAppend('n1', [ent(1, 1, 'x')]);
    inv.onHardState('n1', { term: 1, vote: '', commit: 1 });
    inv.onApply('n1', ent(1, 1, 'x'));
    // n2's log is not reported, so only the apply itself can reveal the divergence.
    inv.onHardState('n2', { term: 2, vote: '', commit: 1 });
    expectViolation(() => inv.onApply('n2', ent(1, 2, 'y')), 'state machine safety');
  });

  it('catches a node committing a log that differs from one committed elsewhere', () => {
    const inv = new RaftInvariants(at);
    inv.onAppend('n1', [ent(1, 1, 'x')]);
    inv.onHardState('n1', { term: 1, vote: '', commit: 1 });
    inv.onAppend('n2', [ent(1, 2, 'y')]);
    expectViolation(() => inv.onHardState('n2', { term: 2, vote: '', commit: 1 }), 'log matching');
  });

  it('catches a leader missing a committed entry', () => {
    const inv = new RaftInvariants(at);
    inv.onAppend('n1', [ent(1, 1), ent(2, 1)]);
    inv.onHardState('n1', { term: 1, vote: '', commit: 2 });
    inv.onAppend('n2', [ent(1, 1)]);
    expectViolation(() => inv.onLeader('n2', 2), 'leader completeness');
  });

  it('accepts a follower that catches up through a snapshot', () => {
    const inv = new RaftInvariants(at);
    inv.onAppend('n1', [ent(1, 1), ent(2, 1), ent(3, 1)]);
    inv.onHardState('n1', { term: 1, vote: '', commit: 3 });
    inv.onSnapshot('n2', 2, 1);
    inv.onAppend('n2', [ent(3, 1)]);
    inv.onHardState('n2', { term: 1, vote: '', commit: 3 });
    inv.onApply('n2', ent(3, 1));
    inv.onLeader('n2', 2);
    expect(inv.checks).toBeGreaterThan(0);
  });
});
