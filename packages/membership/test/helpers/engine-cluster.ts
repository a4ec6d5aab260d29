import { SeededRandom } from '@cohort/core';
import { decodeSwim, encodeSwim } from '../../src/codec.js';
import type { SwimConfig } from '../../src/config.js';
import type { MembershipEvent } from '../../src/events.js';
import { Swim, type SwimOutput } from '../../src/swim.js';
import type { Tags } from '../../src/types.js';

interface Node {
  swim: Swim;
  up: boolean;
  events: MembershipEvent[];
}

interface InFlight {
  at: number;
  seq: number;
  from: string;
  to: string;
  frame: Uint8Array;
}

/**
 * A deterministic in-memory network of Swim engines: simulated time, fixed
 * delay, a drop predicate; frames go through the real codec.
 */
export class EngineCluster {
  now = 0;
  readonly nodes = new Map<string, Node>();
  private flights: InFlight[] = [];
  private seq = 0;
  private readonly random: SeededRandom;
  /** Return true to drop a frame. */
  drop: (from: string, to: string) => boolean = () => false;
  delayMs = 5;

  constructor(
    readonly seed: number,
    private readonly config: Partial<SwimConfig> = {},
  ) {
    this.random = new SeededRandom(seed);
  }

  add(id: string, opts: { tags?: Tags; incarnation?: number } = {}): Swim {
    const swim = new Swim({
      self: id,
      address: `${id}:7946`,
      random: this.random.fork(),
      config: this.config,
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...(opts.incarnation !== undefined ? { incarnation: opts.incarnation } : {}),
    });
    this.nodes.set(id, { swim, up: true, events: [] });
    return swim;
  }

  /** Creates `n` nodes n0..n(n-1) that all know each other. */
  static full(n: number, seed: number, config: Partial<SwimConfig> = {}): EngineCluster {
    const c = new EngineCluster(seed, config);
    for (let i = 0; i < n; i++) c.add(`n${i}`);
    const all = [...c.nodes.values()].map((x) => x.swim.member(x.swim.self)!);
    for (const node of c.nodes.values()) node.swim.bootstrap(all);
    return c;
  }

  swim(id: string): Swim {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n.swim;
  }

  events(id: string): MembershipEvent[] {
    return this.nodes.get(id)?.events ?? [];
  }

  crash(id: string): void {
    const n = this.nodes.get(id);
    if (n) n.up = false;
  }

  /** Wakes a crashed (paused) node: it keeps its state and sees its clock jump to now. */
  resume(id: string): void {
    const n = this.nodes.get(id);
    if (n) n.up = true;
  }

  /** Feeds an engine output into the network. */
  emit(from: string, out: SwimOutput): void {
    const node = this.nodes.get(from);
    node?.events.push(...out.events);
    for (const m of out.messages) {
      if (this.drop(from, m.to)) continue;
      this.flights.push({ at: this.now + this.delayMs, seq: this.seq++, from, to: m.to, frame: encodeSwim(m.message) });
    }
    this.flights.sort((a, b) => a.at - b.at || a.seq - b.seq);
  }

  /** Runs until `until` returns true or `ms` pass; returns whether it became true. */
  runUntil(until: () => boolean, ms: number): boolean {
    const end = this.now + ms;
    let stuck = 0;
    while (this.now <= end) {
      const before = this.now;
      if (until()) return true;
      let next = this.flights[0]?.at ?? Number.POSITIVE_INFINITY;
      for (const n of this.nodes.values()) if (n.up) next = Math.min(next, n.swim.nextDeadline());
      if (next > end) break;
      this.now = Math.max(this.now, next);
      stuck = this.now === before ? stuck + 1 : 0;
      if (stuck > 100_000) throw new Error(`simulation made no progress at ${this.now} ms (seed ${this.seed})`);
      while (this.flights.length > 0 && (this.flights[0]?.at ?? 0) <= this.now) {
        const f = this.flights.shift()!;
        const to = this.nodes.get(f.to);
        if (!to?.up) continue;
        this.emit(f.to, to.swim.step(f.from, decodeSwim(f.frame), this.now));
      }
      for (const [id, n] of this.nodes) {
        if (n.up && n.swim.nextDeadline() <= this.now) this.emit(id, n.swim.tick(this.now));
      }
    }
    this.now = Math.max(this.now, end);
    return until();
  }

  run(ms: number): void {
    this.runUntil(() => false, ms);
  }

  stateOf(observer: string, id: string): string | undefined {
    return this.swim(observer).member(id)?.state;
  }
}
