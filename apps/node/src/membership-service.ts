import type { Logger, Transport } from '@cohort/core';
import { type Member, MembershipHost, type Seed, type SwimConfig } from '@cohort/membership';

/** What `GET /v1/members` and `cohort members` show for one member. */
export interface MemberView {
  id: string;
  address: string;
  state: Member['state'];
  incarnation: number;
  tags: Record<string, string>;
  /** The failure detector's phi for the member now, when it has a verdict (see `MembershipHost.phi`). */
  phi?: number;
}

/** Options of {@link startMembership}. */
export interface MembershipServiceOptions {
  transport: Transport;
  /** The peer address others reach this node at. */
  address: string;
  /** The founding members (this node may be among them; it is skipped). */
  seeds: readonly Seed[];
  logger: Logger;
  /** @default {} */
  tags?: Record<string, string>;
  /** SWIM tunables (shorter probes in tests). */
  config?: Partial<SwimConfig>;
  /**
   * Told when the failure detector finds a member failed or gone (`up` false) and when it is back
   * (`up` true); after events were dropped, of every member's state as the member list has it.
   */
  onLiveness?: (id: string, up: boolean) => void;
}

/**
 * Runs cluster membership (SWIM) beside Raft over the node's transport and
 * joins through the founding members in the background: a node started
 * before its seeds keeps retrying with backoff instead of failing to start.
 */
export function startMembership(opts: MembershipServiceOptions): MembershipHost {
  const log = opts.logger.child({ component: 'membership' });
  const host = new MembershipHost({
    transport: opts.transport,
    address: opts.address,
    logger: opts.logger,
    tags: opts.tags ?? {},
    ...(opts.config ? { config: opts.config } : {}),
  });
  host.start();
  const seeds = opts.seeds.filter((s) => s.id !== host.self);
  const tryJoin = (): void => {
    host.join(seeds).then(
      (n) => log.info('joined the cluster', { members: n }),
      (err: Error) => {
        log.warn('could not join the cluster; trying again in 30 s', { err: err.message });
        // Founding members may start much later than this one: keep trying while running.
        setTimeout(() => {
          if (host.isRunning && !host.members().some((m) => m.id !== host.self && m.state === 'alive')) tryJoin();
        }, 30_000).unref();
      },
    );
  };
  if (seeds.length > 0) tryJoin();
  const events = host.events.subscribe();
  void (async () => {
    for await (const e of events) {
      if (e.type === 'PartitionDetected') log.warn('membership: partition status changed', { status: e.status });
      else if (e.type === 'EventsDropped') {
        log.warn('membership: event log fell behind', { dropped: e.count });
        // A dropped event must not hide a failure: tell the state of every member as the list has it.
        for (const m of host.members()) if (m.id !== host.self) opts.onLiveness?.(m.id, m.state === 'alive');
      } else {
        log.info(`membership: ${e.type}`, 'id' in e ? { id: e.id } : { id: e.member.id });
        if (e.type === 'NodeFailed' || e.type === 'NodeLeft') opts.onLiveness?.(e.id, false);
        else if (e.type === 'NodeRecovered') opts.onLiveness?.(e.id, true);
        else if (e.type === 'NodeJoined') opts.onLiveness?.(e.member.id, true);
      }
    }
  })();
  return host;
}

/** The member list as JSON-friendly views, sorted by id. */
export function memberViews(host: MembershipHost): MemberView[] {
  return host
    .members()
    .map((m) => {
      const phi = host.phi(m.id);
      return {
        id: m.id,
        address: m.address,
        state: m.state,
        incarnation: m.incarnation,
        tags: { ...m.tags },
        ...(phi !== undefined ? { phi: Math.round(phi * 100) / 100 } : {}),
      };
    })
    .sort((a, b) => a.id.localeCompare(b.id));
}
