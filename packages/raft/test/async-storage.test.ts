import { describe, expect, it } from 'vitest';
import { Network, bytes } from './network.js';

/** Leader a proposes; only b's acknowledgement comes back while a's own write is still in flight. */
function scenario(asyncStorageWrites: boolean): { net: Network; before: number; commitAfterB: number } {
  const net = new Network(['a', 'b', 'c'], { asyncStorageWrites, checkQuorum: false });
  net.elect('a');
  const a = net.node('a');
  const before = a.rn.status().commit;
  a.rn.propose(bytes('x'));
  const rd = a.rn.ready();
  // The host sends the appends before persisting its own entries.
  for (const m of rd.messages) if (m.to === 'b') net.node('b').rn.step(m);
  net.processReady('b', { send: false });
  const resp =
    net
      .node('b')
      .readies.at(-1)
      ?.messages.filter((m) => m.to === 'a') ?? [];
  for (const m of resp) a.rn.step(m);
  const commitAfterB = a.rn.status().commit;
  a.storage.append(rd.entries);
  a.rn.advance();
  return { net, before, commitAfterB };
}

describe('asynchronous storage writes', () => {
  it('the leader counts itself toward the commit quorum only once its entries are durable', () => {
    const { net, before, commitAfterB } = scenario(true);
    expect(commitAfterB).toBe(before);
    // advance() reports the write durable: now a and b form a quorum.
    expect(net.node('a').rn.status().commit).toBe(before + 1);
  });

  it('with synchronous writes the leader counts itself at once', () => {
    const { before, commitAfterB } = scenario(false);
    expect(commitAfterB).toBe(before + 1);
  });

  it('a leader with asynchronous writes still replicates and applies everywhere', () => {
    const net = new Network(['a', 'b', 'c'], { asyncStorageWrites: true });
    net.elect('a');
    for (let i = 0; i < 10; i++) net.node('a').rn.propose(bytes(`v${i}`));
    net.stabilize();
    for (const id of ['a', 'b', 'c']) expect(net.node(id).rn.status().applied).toBe(11);
  });
});
