import { Protocols, UnavailableError } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, meshAll, text, utf8, waitFor } from './helpers.js';

let cluster = new Cluster();
afterEach(async () => {
  await cluster.close();
  cluster = new Cluster();
});

describe('the fault hook', () => {
  it('loses the messages it names, one way only, and lets them through again once it stops', async () => {
    let cut = true;
    const a = await cluster.start({ self: 'a', faultHook: { dropsTo: (peer) => cut && peer === 'b' } });
    const b = await cluster.start({ self: 'b' });
    meshAll(a, b);
    const atA: string[] = [];
    const atB: string[] = [];
    a.handle(Protocols.raft, (_from, f) => atA.push(text(f)));
    b.handle(Protocols.raft, (_from, f) => atB.push(text(f)));
    b.handleRequest(Protocols.kv, async (_from, f) => f);

    await a.send('b', Protocols.raft, utf8('lost'));
    await expect(a.request('b', Protocols.kv, utf8('x'))).rejects.toBeInstanceOf(UnavailableError);
    // The other direction still works: the cut is one way.
    await b.send('a', Protocols.raft, utf8('from b'));
    await waitFor('the frame from b', () => atA.length === 1);
    expect(a.stats().faultDrops).toBe(2);

    cut = false;
    await a.send('b', Protocols.raft, utf8('through'));
    await waitFor('the frame once healed', () => atB.length === 1);
    expect(atB).toEqual(['through']);
  });
});
