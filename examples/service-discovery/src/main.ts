/**
 * @cohort/membership on its own, for service discovery: each service instance runs a MembershipHost and
 * publishes where it serves in its tags; a client joins the same cluster and finds the live instances of a
 * service with `nodesWithTag`, following joins, graceful leaves and crashes through the event stream.
 *
 * The hosts talk over @cohort/core's in-process MemoryHub (from `@cohort/core/testing`) so the example runs
 * in one process; across machines, give each host `createLibp2pTransport(...)` from @cohort/transport
 * instead. Run it with `node src/main.ts`: it prints what the client saw.
 */
import { pathToFileURL } from 'node:url';
import { SeededRandom } from '@cohort/core';
import { MemoryHub } from '@cohort/core/testing';
import { type MembershipEvent, MembershipHost, parseSeed } from '@cohort/membership';

/** Short protocol periods, so a crash is noticed within about a second. */
const FAST = { probeIntervalMs: 50, probeTimeoutMs: 25, gossipIntervalMs: 20, suspicionMult: 2 };

/** Runs the scenario and returns the steps the client observed. */
export async function runDiscovery(timeoutMs = 10_000): Promise<string[]> {
  const hub = new MemoryHub();
  const start = (id: string, tags: Record<string, string>, seed: number): MembershipHost => {
    const host = new MembershipHost({
      transport: hub.transport(id),
      address: `${id}.local:7946`,
      tags,
      random: new SeededRandom(seed),
      config: FAST,
    });
    host.start();
    return host;
  };
  const registry = start('registry', { role: 'registry' }, 1);
  const api1 = start('api-1', { service: 'api', endpoint: 'http://10.0.0.11:8080' }, 2);
  const api2 = start('api-2', { service: 'api', endpoint: 'http://10.0.0.12:8080' }, 3);
  const client = start('client', { role: 'client' }, 4);
  const hosts = [registry, api1, api2, client];

  const seen: string[] = [];
  const endpoints = () =>
    client
      .nodesWithTag('service', 'api')
      .map((m) => m.tags.endpoint)
      .sort();
  const events = client.events.subscribe();
  const until = async (what: string, done: () => boolean): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const waitEvent = (type: MembershipEvent['type'], id: string): Promise<void> => {
    const matches = (e: ReturnType<typeof events.poll>) => e?.type === type && 'id' in e && e.id === id;
    return until(`${type} ${id}`, () => {
      for (let e = events.poll(); e !== undefined; e = events.poll()) if (matches(e)) return true;
      return false;
    });
  };

  try {
    // Everyone joins through the registry.
    const seeds = [parseSeed('registry@registry.local:7946')];
    await Promise.all([api1, api2, client].map((h) => h.join(seeds)));
    await until('both api instances', () => endpoints().length === 2);
    seen.push(`api: ${endpoints().join(' ')}`);

    // A graceful leave reaches the client as NodeLeft.
    await api2.leave();
    await waitEvent('NodeLeft', 'api-2');
    seen.push(`api-2 left; api: ${endpoints().join(' ')}`);

    // A crash: api-1 is cut off without a word; the others suspect it, then declare it dead.
    hub.down.add('api-1');
    api1.stop();
    await waitEvent('NodeFailed', 'api-1');
    seen.push(`api-1 failed; api: ${endpoints().join(' ') || '(none)'}`);
    return seen;
  } finally {
    for (const h of hosts) h.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const line of await runDiscovery()) console.log(line);
}
