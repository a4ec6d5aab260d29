import { ConfigError } from '@cohort/core';

/** The read lease of this node's vpaxos primaries and of the master it runs when it leads the meta group. */
export interface VpLeaseOptions {
  /**
   * A vpaxos primary serves reads locally for this many ms after a heartbeat
   * round every acceptor answered (`--vpaxos-read-lease-ms`); 0: every read is
   * confirmed with every acceptor. Set the same value on every node: the
   * master grants its own value with each activation and a primary uses the
   * smaller of the two. @default 0
   */
  readLeaseMs: number;
  /**
   * The most a lease can outlast its duration through clock drift, in ms
   * (`--vpaxos-lease-max-drift-ms`): the master waits lease + drift before it
   * activates a new primary. @default a tenth of the lease, at least 50
   */
  maxDriftMs: number;
}

/** The longest lease taken: a failover of a primary waits it out. */
const MAX_LEASE_MS = 60_000;
/** The shortest lease taken: shorter than a few heartbeats (50 ms) it would rarely hold. */
const MIN_LEASE_MS = 100;

function whole(name: string, v: unknown): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new ConfigError(`${name} must be a whole number of milliseconds, 0 or above, got ${JSON.stringify(v)}`);
  }
  return n;
}

/**
 * The `vpaxos` section of the config file (`{"readLeaseMs": 2000,
 * "maxDriftMs": 200}`) and its flags (flags win); undefined while leases are
 * off. Throws `ConfigError` naming the field and the fix.
 */
export function loadVpLease(
  raw: unknown,
  flags: { vpaxosReadLeaseMs?: string | undefined; vpaxosLeaseMaxDriftMs?: string | undefined },
): VpLeaseOptions | undefined {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new ConfigError('"vpaxos" must be an object, for example {"readLeaseMs": 2000}');
  }
  const section = (raw ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(section)) {
    if (k !== 'readLeaseMs' && k !== 'maxDriftMs')
      throw new ConfigError(`vpaxos: unknown field '${k}'; the fields are readLeaseMs and maxDriftMs`);
  }
  const lease =
    flags.vpaxosReadLeaseMs !== undefined
      ? whole('--vpaxos-read-lease-ms', flags.vpaxosReadLeaseMs)
      : section.readLeaseMs !== undefined
        ? whole('vpaxos.readLeaseMs', section.readLeaseMs)
        : 0;
  const drift =
    flags.vpaxosLeaseMaxDriftMs !== undefined
      ? whole('--vpaxos-lease-max-drift-ms', flags.vpaxosLeaseMaxDriftMs)
      : section.maxDriftMs !== undefined
        ? whole('vpaxos.maxDriftMs', section.maxDriftMs)
        : undefined;
  if (lease === 0) {
    if (drift !== undefined)
      throw new ConfigError('a vpaxos lease drift is set without a read lease: set --vpaxos-read-lease-ms too');
    return undefined;
  }
  if (lease < MIN_LEASE_MS || lease > MAX_LEASE_MS) {
    throw new ConfigError(
      `the vpaxos read lease must be 0 (off) or ${MIN_LEASE_MS} to ${MAX_LEASE_MS} ms, got ${lease}: a failover waits it out`,
    );
  }
  return { readLeaseMs: lease, maxDriftMs: drift ?? Math.max(50, Math.ceil(lease / 10)) };
}
