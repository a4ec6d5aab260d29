import { Protocols, SeededRandom } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { NoSeedsReachableError } from '../src/errors.js';
import type { MembershipEvent } from '../src/events.js';
import { MembershipHost } from '../src/membership-host.js';
import { parseSeed } from '../src/seeds.js';
import { MemoryNetwork } from './helpers/memory-transport.js';

const fast = {
  probeIntervalMs: 100,
  probeTimeoutMs: 40,
  gossipIntervalMs: 20,
  pushPullIntervalMs: 1000,
  reconnectIntervalMs: 300,
};

const hosts: MembershipHost[] = [];

function host(net: MemoryNetwork, id: string, seed: number): MembershipHost {
  const h = new MembershipHost({
    transport: net.transport(id),
    address: `${id}:7946`,
    random: new SeededRandom(seed),
    config: fast,
    joinAttemptTimeoutMs: 50,
    joinBackoff: { baseMs: 5, maxMs: 20 },
  });
  hosts.push(h);
  return h;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

afterEach(() => {
  for (const h of hosts.splice(0)) h.stop();
});

describe('MembershipHost over a Transport', () => {
  it('joins through a seed, publishes NodeJoined, and detects a crashed member', async () => {
    const net = new MemoryNetwork();
    const [a, b, c] = [host(net, 'a', 1), host(net, 'b', 2), host(net, 'c', 3)];
    const sub = a.events.subscribe();
    a.start();
    await b.join([{ id: 'a', address: 'a:7946' }]);
    await c.join([parseSeed('a@a:7946')]);
    expect(
      await until(() => [a, b, c].every((h) => h.members().filter((m) => m.state === 'alive').length === 3), 5000),
    ).toBe(true);
    const joined: MembershipEvent[] = [sub.poll(), sub.poll()].filter(
      (e): e is MembershipEvent => e?.type === 'NodeJoined',
    );
    expect(joined).toHaveLength(2);

    net.transports.get('c')!.up = false;
    const failed = await until(
      () => [a, b].every((h) => h.members().find((m) => m.id === 'c')?.state === 'dead'),
      10_000,
    );
    expect(failed).toBe(true);
  });

  it('gives up after 10 attempts with NoSeedsReachableError naming the seeds', async () => {
    const net = new MemoryNetwork();
    const lonely = host(net, 'x', 4);
    const err = await lonely.join([parseSeed('gone@10.0.0.9:7946')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoSeedsReachableError);
    expect((err as NoSeedsReachableError).seeds).toEqual(['gone@10.0.0.9:7946']);
    expect((err as NoSeedsReachableError).attempts).toBe(10);
    expect((err as Error).message).toContain('gone@10.0.0.9:7946');
  });

  it('drops a garbage frame and keeps working', async () => {
    const net = new MemoryNetwork();
    const [a, b] = [host(net, 'a', 5), host(net, 'b', 6)];
    a.start();
    await b.join([{ id: 'a', address: 'a:7946' }]);
    net.transports.get('a')!.handlers.get(Protocols.swim)!('b', new Uint8Array([1, 0xff, 0x00, 0x13]));
    net.transports.get('a')!.handlers.get(Protocols.swim)!('b', new Uint8Array([]));
    expect(await until(() => a.members().filter((m) => m.state === 'alive').length === 2, 3000)).toBe(true);
  });

  it('a graceful leave reaches the others as NodeLeft', async () => {
    const net = new MemoryNetwork();
    const [a, b, c] = [host(net, 'a', 7), host(net, 'b', 8), host(net, 'c', 9)];
    a.start();
    await b.join([{ id: 'a', address: 'a:7946' }]);
    await c.join([{ id: 'a', address: 'a:7946' }]);
    await until(() => a.members().length === 3 && b.members().length === 3, 5000);
    const sub = a.events.subscribe();
    await c.leave();
    net.transports.get('c')!.up = false;
    expect(await until(() => [a, b].every((h) => h.members().find((m) => m.id === 'c')?.state === 'left'), 5000)).toBe(
      true,
    );
    const seen: MembershipEvent[] = [];
    for (let e = sub.poll(); e !== undefined; e = sub.poll()) if (e.type !== 'EventsDropped') seen.push(e);
    expect(seen).toContainEqual({ type: 'NodeLeft', id: 'c' });
  });
});
