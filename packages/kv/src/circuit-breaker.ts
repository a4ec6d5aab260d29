import type { NodeId } from '@cohort/core';

/** Tuning of a forwarding {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** The outcomes of at most this many of the latest forwards are weighed. @default 20 */
  window: number;
  /** Outcomes older than this (ms) are forgotten. @default 30000 */
  windowMs: number;
  /** The circuit opens only with at least this many failures in the window. @default 5 */
  minFailures: number;
  /** ...and when failures are more than this share of the outcomes in the window (0..1). @default 0.5 */
  failureRate: number;
  /** How long an open circuit refuses forwards before it lets one probe through (ms). @default 2000 */
  cooldownMs: number;
}

export const DEFAULT_CIRCUIT_BREAKER: Readonly<CircuitBreakerOptions> = {
  window: 20,
  windowMs: 30_000,
  minFailures: 5,
  failureRate: 0.5,
  cooldownMs: 2000,
};

/** `closed`: forwards go; `open`: refused until the cooldown ends; `half-open`: one probe is in flight. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * Whether a forward may go now. `probe`: it is the one probe of a half-open
 * circuit. Refused: the circuit is open (or a probe is in flight) and
 * `probeAt` is when it lets the next probe through (on the clock given);
 * `reason` says why it opened.
 */
export type Admission = { ok: true; probe: boolean } | { ok: false; probeAt: number; reason: string };

/**
 * The circuit breaker of forwarding to one peer. Pure: every call takes the
 * time (`now`, monotonic ms) and it starts no timers.
 *
 * Closed, it lets every forward through and records each outcome: a failure
 * of the peer (a transport error, no answer in time) or a success (the peer
 * answered, whatever it answered). When the window of the latest outcomes
 * holds at least `minFailures` failures and they are more than `failureRate`
 * of it, the circuit opens: forwards are refused at once for `cooldownMs`.
 * The first forward after that is a probe (half-open; the others are still
 * refused): its success closes the circuit with an empty window, its failure
 * opens it for another cooldown. A probe that ends neither way (`release`:
 * the forward was abandoned for reasons of this node) lets the next forward
 * probe at once.
 */
export class CircuitBreaker {
  private readonly opts: CircuitBreakerOptions;
  /** Times of the latest outcomes, oldest first, and whether each failed. */
  private readonly times: number[] = [];
  private readonly failed: boolean[] = [];
  private current: CircuitState = 'closed';
  /** While open: when the next probe may go. */
  private probeAt = 0;
  /** When the circuit last opened from closed (a failed probe keeps it). */
  openedAt = 0;
  /** Why the circuit last opened. */
  private reason = '';
  /** Times the circuit opened (from closed or after a failed probe). */
  opens = 0;
  /** Forwards refused at once. */
  rejections = 0;
  /** Times the circuit closed again (a probe was answered). */
  closes = 0;
  /** Called when the circuit opens or closes again. */
  onChange: ((state: 'open' | 'closed') => void) | undefined;

  constructor(
    readonly peer: NodeId,
    options: Partial<CircuitBreakerOptions> = {},
  ) {
    this.opts = { ...DEFAULT_CIRCUIT_BREAKER, ...options };
    const o = this.opts;
    if (!(o.window >= 1 && o.minFailures >= 1 && o.failureRate >= 0 && o.failureRate < 1 && o.cooldownMs >= 0)) {
      throw new RangeError(
        `invalid circuit breaker options ${JSON.stringify(o)}: window and minFailures must be at least 1, failureRate in [0, 1), cooldownMs at least 0`,
      );
    }
  }

  /** The state at `now` (an open circuit whose cooldown ended reads `half-open`: its next forward probes). */
  state(now: number): CircuitState {
    return this.current === 'open' && now >= this.probeAt ? 'half-open' : this.current;
  }

  /** Whether a forward may go at `now`; a refusal is counted in `rejections`. */
  admit(now: number): Admission {
    if (this.current === 'closed') return { ok: true, probe: false };
    if (this.current === 'open' && now >= this.probeAt) {
      this.current = 'half-open';
      return { ok: true, probe: true };
    }
    this.rejections++;
    return {
      ok: false,
      probeAt: this.probeAt,
      reason: this.current === 'half-open' ? `${this.reason}; a probe is in flight` : this.reason,
    };
  }

  /** The peer answered a forward (`probe`: the half-open probe admitted). */
  success(now: number, probe = false): void {
    if (probe && this.current === 'half-open') {
      this.current = 'closed';
      this.times.length = 0;
      this.failed.length = 0;
      this.closes++;
      this.onChange?.('closed');
      return;
    }
    if (this.current === 'closed') this.record(now, false);
  }

  /** The peer failed a forward: unreachable, or no answer in time. */
  failure(now: number, probe = false): void {
    if (probe && this.current === 'half-open') {
      this.open(now);
      return;
    }
    if (this.current !== 'closed') return;
    this.record(now, true);
    const failures = this.failed.filter(Boolean).length;
    if (failures >= this.opts.minFailures && failures > this.opts.failureRate * this.failed.length) this.open(now);
  }

  /** A forward ended without saying anything of the peer; a probe's end lets the next forward probe. */
  release(now: number, probe = false): void {
    if (probe && this.current === 'half-open') {
      this.current = 'open';
      this.probeAt = now;
    }
  }

  private record(now: number, failed: boolean): void {
    this.times.push(now);
    this.failed.push(failed);
    while (
      this.times.length > this.opts.window ||
      (this.times.length > 0 && this.times[0]! <= now - this.opts.windowMs)
    ) {
      this.times.shift();
      this.failed.shift();
    }
  }

  private open(now: number): void {
    if (this.current === 'closed') this.openedAt = now;
    this.reason =
      this.current === 'closed'
        ? `${this.failed.filter(Boolean).length} of its last ${this.failed.length} forwards failed (unreachable or timed out)`
        : 'the probe after the cooldown failed too';
    this.current = 'open';
    this.probeAt = now + this.opts.cooldownMs;
    this.opens++;
    this.onChange?.('open');
  }
}

/** One peer's breaker as metrics show it. */
export interface CircuitBreakerStats {
  peer: NodeId;
  state: CircuitState;
  opens: number;
  rejections: number;
}

/**
 * The circuit breakers of a node's forwarding, one per peer, shared by the
 * services of all its groups: a peer failing for one group fails for all.
 */
export class CircuitBreakers {
  private readonly byPeer = new Map<NodeId, CircuitBreaker>();

  constructor(
    readonly options: Partial<CircuitBreakerOptions> = {},
    /** Called when the circuit to a peer opens or closes again. */
    private readonly onChange?: (peer: NodeId, state: 'open' | 'closed') => void,
  ) {
    // Validates the options now, not at the first forward.
    new CircuitBreaker('', options);
  }

  /** The breaker of forwards to `peer`. */
  of(peer: NodeId): CircuitBreaker {
    let b = this.byPeer.get(peer);
    if (b === undefined) {
      b = new CircuitBreaker(peer, this.options);
      const onChange = this.onChange;
      if (onChange !== undefined) b.onChange = (state) => onChange(peer, state);
      this.byPeer.set(peer, b);
    }
    return b;
  }

  /** Every peer's breaker at `now`, by peer id. */
  stats(now: number): CircuitBreakerStats[] {
    return [...this.byPeer.values()]
      .map((b) => ({ peer: b.peer, state: b.state(now), opens: b.opens, rejections: b.rejections }))
      .sort((x, y) => (x.peer < y.peer ? -1 : x.peer > y.peer ? 1 : 0));
  }
}
