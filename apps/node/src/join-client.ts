import { ConfigError, type Logger } from '@cohort/core';
import type { JoinAnswer, JoinRequest } from './meta-routes.js';

/** How long a join request waits for the member. */
const JOIN_TIMEOUT_MS = 10_000;

/** Why `fetch` failed, in a few words. */
function why(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

/**
 * Asks the member at `address` (its HTTP address) to admit this node.
 * Throws ConfigError with the reason on a refusal (another cluster, an id
 * in use) or when nothing answers there; the data directory is untouched.
 */
export async function joinThrough(address: string, req: JoinRequest): Promise<JoinAnswer> {
  let res: Response;
  try {
    res = await fetch(`http://${address}/v1/cluster/join`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(req),
      signal: AbortSignal.timeout(JOIN_TIMEOUT_MS),
    });
  } catch (err) {
    throw new ConfigError(
      `--join ${address}: no member answers there (${why(err)}); --join takes the HTTP address (--http) of a running member`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as Partial<JoinAnswer> & { error?: { message?: string } };
  if (!res.ok) {
    throw new ConfigError(`--join ${address}: the member refused: ${body.error?.message ?? `HTTP ${res.status}`}`);
  }
  if (typeof body.clusterId !== 'string' || typeof body.partitions !== 'number' || !Array.isArray(body.replicas)) {
    throw new ConfigError(
      `--join ${address}: the answer is not a cohort join answer; is it a cohort node's HTTP address?`,
    );
  }
  return body as JoinAnswer;
}

/**
 * On a node restarting after it joined: checks that the member at `address`
 * belongs to the cluster recorded in the data directory (ConfigError
 * otherwise). A member that does not answer is only logged: the node knows
 * its cluster's members already.
 */
export async function checkClusterId(address: string, clusterId: string, dataDir: string, log: Logger): Promise<void> {
  let state: { clusterId?: string };
  try {
    const res = await fetch(`http://${address}/v1/meta`, { signal: AbortSignal.timeout(JOIN_TIMEOUT_MS) });
    state = (await res.json()) as { clusterId?: string };
  } catch (err) {
    log.warn('the member given by --join does not answer; starting with the members recorded here', {
      join: address,
      err: why(err),
    });
    return;
  }
  if (state.clusterId && state.clusterId !== clusterId) {
    throw new ConfigError(
      `--join ${address}: that member belongs to cluster ${state.clusterId}, but the data in ${dataDir} belongs to cluster ${clusterId}; join with an empty data directory, or point --join at a member of cluster ${clusterId}`,
    );
  }
}
