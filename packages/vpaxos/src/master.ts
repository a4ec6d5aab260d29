import type { GroupId, NodeId } from '@cohort/core';
import type { Ballot, Configuration } from './types.js';

/** Options of a {@link ConfigMaster}. */
export interface MasterOptions {
  /** Failures a group must survive: a configuration needs at least f+1 acceptors. */
  f: number;
  /**
   * The read lease granted with an activation that names none (0: no
   * leases). Before activating a new primary the master then waits
   * `leaseMs + maxDriftMs` after its `complete`, so the previous primary's
   * lease has run out. @default 0
   */
  leaseMs?: number;
  /** The most a lease can outlast its duration through clock drift, in milliseconds. @default 0 */
  maxDriftMs?: number;
}

/**
 * The read lease an activation grants its primary: the primary serves reads
 * locally for `ms` of its own clock after a heartbeat round every acceptor
 * answered, and the master waits `ms + maxDriftMs` of its clock before it
 * activates another primary.
 */
export interface LeaseGrant {
  ms: number;
  maxDriftMs: number;
}

/** The configuration master's commands: what a meta group's log would carry. */
export type MasterCommand =
  /** Start `ballot` with `config`; Phase 1 will read the configuration of `prevBallot`, which must be the active ballot. */
  | {
      type: 'newBallot';
      group: GroupId;
      ballot: Ballot;
      prevBallot: Ballot;
      config: Omit<Configuration, 'ballot'>;
      /**
       * A failover to the survivors of the active configuration alone, fewer
       * than f+1 of them: writes continue on fewer copies (the group is
       * under-replicated) until a later ballot adds a replacement. Refused
       * unless every acceptor is one of the active configuration's.
       */
      degraded?: boolean;
    }
  /** The primary of `ballot` finished Phase 1 and the Phase 2 of the safe values. */
  | { type: 'complete'; group: GroupId; ballot: Ballot }
  /**
   * Make the completed `ballot` the active one. `waitedMs`: how long the
   * proposer waited, on its own clock, since it knew the ballot complete;
   * refused below the lease wait `complete` set. `lease`: the read lease
   * granted to the new primary (default: the master's options).
   */
  | { type: 'activate'; group: GroupId; ballot: Ballot; waitedMs?: number; lease?: LeaseGrant };

/** What a command did. */
export type MasterResult =
  | { ok: true; type: 'newBallot'; prevConfig: Configuration | undefined }
  /** Activate after this many milliseconds (the lease wait; 0 without leases). */
  | { ok: true; type: 'complete'; activateAfterMs: number }
  | { ok: true; type: 'activate'; config: Configuration; lease: LeaseGrant | undefined }
  | { ok: false; reason: string };

/** One group's state at the master. */
export interface GroupConfigState {
  /** The active ballot's configuration (its primary serves), if any. */
  active: Configuration | undefined;
  /** The read lease the active ballot's primary was granted (absent: none). */
  lease?: LeaseGrant | undefined;
  /**
   * The ballot being set up, if any: not active, so it has no effect yet.
   * Once completed, `activateAfterMs` is the lease wait its activation needs
   * (absent: 0), recorded so a master that takes over waits it too.
   */
  next: (Configuration & { prevBallot: Ballot; completed: boolean; activateAfterMs?: number }) | undefined;
  /** The highest ballot ever issued (ballots never repeat). */
  maxBallot: Ballot;
}

/**
 * Vertical Paxos' configuration master as a pure state machine: commands in,
 * results and state out, so a Raft group (the meta group) can replicate it.
 * For a Raft reader: it plays the part of elections and membership changes
 * together. It picks each ballot's primary and acceptors, and a ballot does
 * nothing until the master activates it, which it does only after the new
 * primary reported `complete` (Phase 1 over the previous configuration and
 * Phase 2 of the safe values done). Only the active ballot may be the
 * previous ballot of a new one, so an abandoned ballot never matters.
 */
export class ConfigMaster {
  private readonly groups = new Map<GroupId, GroupConfigState>();
  readonly f: number;
  private readonly leaseMs: number;
  private readonly maxDriftMs: number;

  constructor(options: MasterOptions) {
    if (!Number.isSafeInteger(options.f) || options.f < 0)
      throw new RangeError(`f must be a non-negative integer, got ${options.f}`);
    this.f = options.f;
    this.leaseMs = options.leaseMs ?? 0;
    this.maxDriftMs = options.maxDriftMs ?? 0;
  }

  /**
   * Every group's state (copies), as plain data: what a replicated log
   * snapshots. {@link ConfigMaster.restore} takes it back.
   */
  export(): Record<GroupId, GroupConfigState> {
    const out: Record<GroupId, GroupConfigState> = {};
    for (const g of this.groups.keys()) out[g] = this.state(g);
    return out;
  }

  /** A master holding `groups` (as {@link ConfigMaster.export} gave them). */
  static restore(options: MasterOptions, groups: Record<GroupId, GroupConfigState>): ConfigMaster {
    const m = new ConfigMaster(options);
    for (const [id, g] of Object.entries(groups)) {
      m.groups.set(id, copyState(g));
    }
    return m;
  }

  /** A group's state (a copy). */
  state(group: GroupId): GroupConfigState {
    const g = this.groups.get(group);
    return g ? copyState(g) : { active: undefined, next: undefined, maxBallot: 0 };
  }

  /** Applies one command. Refusals change nothing and say why. */
  apply(cmd: MasterCommand): MasterResult {
    let g = this.groups.get(cmd.group);
    if (!g) {
      g = { active: undefined, next: undefined, maxBallot: 0 };
      this.groups.set(cmd.group, g);
    }
    switch (cmd.type) {
      case 'newBallot': {
        const { acceptors, primary } = cmd.config;
        const distinct = new Set(acceptors);
        if (distinct.size !== acceptors.length) {
          return refuse(`group ${cmd.group}: ballot ${cmd.ballot} lists an acceptor twice (${acceptors.join(', ')})`);
        }
        const active = g.active?.ballot ?? 0;
        if (cmd.degraded === true) {
          const survivors = new Set(g.active?.acceptors ?? []);
          const outsider = acceptors.find((a) => !survivors.has(a));
          if (g.active === undefined || outsider !== undefined || distinct.size === 0) {
            return refuse(
              `group ${cmd.group}: degraded ballot ${cmd.ballot} refused: only survivors of the active configuration (${[...survivors].join(', ') || 'none'}) may run on fewer than ${this.f + 1} replicas${outsider ? `, ${outsider} is not one` : ''}`,
            );
          }
        } else if (distinct.size < this.f + 1) {
          return refuse(
            `group ${cmd.group}: ballot ${cmd.ballot} has ${distinct.size} replica(s); tolerating f=${this.f} failure(s) needs at least ${this.f + 1}`,
          );
        }
        if (!distinct.has(primary)) {
          return refuse(`group ${cmd.group}: primary ${primary} of ballot ${cmd.ballot} is not one of its acceptors`);
        }
        if (cmd.ballot <= g.maxBallot) {
          return refuse(`group ${cmd.group}: ballot ${cmd.ballot} is not above the highest issued, ${g.maxBallot}`);
        }
        if (cmd.prevBallot !== active) {
          return refuse(`group ${cmd.group}: previous ballot ${cmd.prevBallot} is not the active ballot ${active}`);
        }
        g.maxBallot = cmd.ballot;
        g.next = {
          ballot: cmd.ballot,
          primary,
          acceptors: [...acceptors],
          prevBallot: cmd.prevBallot,
          completed: false,
        };
        return { ok: true, type: 'newBallot', prevConfig: g.active && copyConfig(g.active) };
      }
      case 'complete': {
        if (g.next === undefined || g.next.ballot !== cmd.ballot) {
          return refuse(
            `group ${cmd.group}: complete for ballot ${cmd.ballot} refused: the next ballot is ${g.next?.ballot ?? 'none'}`,
          );
        }
        g.next.completed = true;
        // With a lease granted, the active primary may still serve reads until it ran out. Its last
        // renewal was sent before an acceptor of its configuration promised this ballot in Phase 1,
        // so waiting it out from now suffices. A ballot keeping the same primary needs no wait.
        const lease = g.lease;
        const wait =
          lease !== undefined && lease.ms > 0 && g.active !== undefined && g.active.primary !== g.next.primary
            ? lease.ms + lease.maxDriftMs
            : 0;
        g.next.activateAfterMs = wait;
        return { ok: true, type: 'complete', activateAfterMs: wait };
      }
      case 'activate': {
        const n = g.next;
        if (n === undefined || n.ballot !== cmd.ballot || !n.completed) {
          return refuse(
            `group ${cmd.group}: ballot ${cmd.ballot} cannot be activated: it is not the completed next ballot`,
          );
        }
        const wait = n.activateAfterMs ?? 0;
        if ((cmd.waitedMs ?? 0) < wait) {
          return refuse(
            `group ${cmd.group}: ballot ${cmd.ballot} activated after ${cmd.waitedMs ?? 0} ms; the previous primary's read lease needs ${wait} ms`,
          );
        }
        const lease = cmd.lease ?? (this.leaseMs > 0 ? { ms: this.leaseMs, maxDriftMs: this.maxDriftMs } : undefined);
        if (lease !== undefined && (!(lease.ms >= 0) || !(lease.maxDriftMs >= 0))) {
          return refuse(
            `group ${cmd.group}: lease ${lease.ms} ms, drift ${lease.maxDriftMs} ms: both must be 0 or above`,
          );
        }
        g.active = { ballot: n.ballot, primary: n.primary, acceptors: n.acceptors };
        g.lease = lease !== undefined && lease.ms > 0 ? { ...lease } : undefined;
        g.next = undefined;
        return { ok: true, type: 'activate', config: copyConfig(g.active), lease: g.lease && { ...g.lease } };
      }
    }
  }

  /** Whether `node` is the active primary of `group`. */
  isActivePrimary(group: GroupId, node: NodeId): boolean {
    return this.groups.get(group)?.active?.primary === node;
  }
}

function refuse(reason: string): MasterResult {
  return { ok: false, reason };
}

function copyState(g: GroupConfigState): GroupConfigState {
  return {
    active: g.active && copyConfig(g.active),
    ...(g.lease !== undefined ? { lease: { ...g.lease } } : {}),
    next: g.next && { ...g.next, acceptors: [...g.next.acceptors] },
    maxBallot: g.maxBallot,
  };
}

function copyConfig(c: Configuration): Configuration {
  return { ballot: c.ballot, primary: c.primary, acceptors: [...c.acceptors] };
}
