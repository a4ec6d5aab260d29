import { type Entry, type Message, SeededRandom } from '@cohort/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStorage, type RaftOptions, RawNode } from '../src/index.js';

type Action =
  | { kind: 'tick'; node: number; times: number }
  | { kind: 'tickAll' }
  | { kind: 'deliver'; pick: number; duplicate: boolean }
  | { kind: 'drop'; pick: number }
  | { kind: 'propose'; node: number }
  | { kind: 'restart'; node: number }
  | { kind: 'compact'; node: number }
  | { kind: 'isolate'; node: number; steps: number };

interface SimNode {
  id: string;
  rn: RawNode;
  storage: MemoryStorage;
  /** Entries applied since the state machine was last restored, which was at index `base`. */
  applied: Entry[];
  base: number;
  /** How many of `applied` were already checked. */
  checked: number;
  commit: number;
  term: number;
}

/**
 * A randomized cluster: messages are delivered in any order, dropped or
 * duplicated, nodes tick independently and restart from their stores.
 * After every step it checks the Raft safety properties.
 */
class Cluster {
  readonly nodes: SimNode[];
  queue: Message[] = [];
  private readonly leaderOfTerm = new Map<number, string>();
  private readonly appliedAt = new Map<number, string>();
  private proposals = 0;
  private checks = 0;
  /** Nodes cut off from everyone, with the number of steps the partition lasts. */
  private readonly isolated = new Map<string, number>();

  constructor(
    size: number,
    private readonly seed: number,
    private readonly options: Partial<RaftOptions>,
  ) {
    const ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
    this.nodes = ids.map((id, i) => {
      const storage = MemoryStorage.withVoters(ids);
      return { id, rn: this.start(id, i, storage), storage, applied: [], base: 0, checked: 0, commit: 0, term: 0 };
    });
  }

  private start(id: string, i: number, storage: MemoryStorage): RawNode {
    return new RawNode(
      { id, electionTick: 10, heartbeatTick: 1, random: new SeededRandom(this.seed * 31 + i), ...this.options },
      storage,
    );
  }

  private node(i: number): SimNode {
    return this.nodes[i % this.nodes.length] as SimNode;
  }

  run(a: Action): void {
    for (const [id, left] of this.isolated) {
      if (left <= 1) this.isolated.delete(id);
      else this.isolated.set(id, left - 1);
    }
    switch (a.kind) {
      case 'isolate':
        this.isolated.set(this.node(a.node).id, a.steps);
        break;
      case 'tick':
        for (let i = 0; i < a.times; i++) this.node(a.node).rn.tick();
        break;
      case 'tickAll':
        for (const n of this.nodes) n.rn.tick();
        break;
      case 'deliver': {
        if (this.queue.length === 0) break;
        const at = a.pick % this.queue.length;
        const m = this.queue[at] as Message;
        if (!a.duplicate) this.queue.splice(at, 1);
        if (this.isolated.has(m.from) || this.isolated.has(m.to)) break;
        this.nodes.find((n) => n.id === m.to)?.rn.step(m);
        break;
      }
      case 'drop':
        if (this.queue.length > 0) this.queue.splice(a.pick % this.queue.length, 1);
        break;
      case 'propose': {
        // Mostly to the leader (so that proposals commit), sometimes to a follower that forwards.
        const leader = this.nodes.find((n) => n.rn.status().role === 'leader');
        const target = leader && a.node % 3 !== 0 ? leader : this.node(a.node);
        try {
          target.rn.propose(new TextEncoder().encode(`p${this.proposals++}`));
        } catch (e) {
          if ((e as Error).name !== 'ProposalDroppedError') throw e;
        }
        break;
      }
      case 'restart': {
        const i = a.node % this.nodes.length;
        const n = this.node(i);
        // The state machine is rebuilt by replaying the log from the start.
        n.rn = this.start(n.id, i, n.storage);
        n.applied = [];
        n.base = n.storage.snapshot().meta.index;
        n.checked = 0;
        break;
      }
      case 'compact': {
        // The application snapshots what it applied and drops the log up to there.
        const n = this.node(a.node);
        const s = n.rn.status();
        if (s.applied <= n.storage.snapshot().meta.index) break;
        const data = new TextEncoder().encode(`${s.applied}=${this.appliedAt.get(s.applied)}`);
        n.storage.createSnapshot(s.applied, s.confState, data);
        n.storage.compact(s.applied);
        break;
      }
      default: {
        const never: never = a;
        throw new Error(`unknown action ${String(never)}`);
      }
    }
    this.processReadies();
    this.check();
  }

  processReadies(): void {
    for (const n of this.nodes) {
      for (let spins = 0; n.rn.hasReady(); spins++) {
        if (spins > 100) throw new Error(`${n.id} keeps reporting a Ready: ${JSON.stringify(n.rn.status())}`);
        const rd = n.rn.ready();
        if (rd.snapshot) {
          const meta = rd.snapshot.meta;
          // The snapshot carries what the sender applied at its index: it must agree with everyone else.
          expect(new TextDecoder().decode(rd.snapshot.data)).toBe(`${meta.index}=${this.appliedAt.get(meta.index)}`);
          n.storage.applySnapshot(rd.snapshot);
          n.applied = [];
          n.base = meta.index;
          n.checked = 0;
        }
        n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        this.queue.push(...rd.messages);
        n.applied.push(...rd.committedEntries);
        n.rn.advance();
      }
    }
  }

  /**
   * Delivers everything and ticks until a leader commits a final proposal and
   * every node applied the whole log (liveness once faults stop).
   */
  settle(): void {
    const hasFinal = (n: SimNode): boolean => n.applied.some((e) => new TextDecoder().decode(e.data) === 'final');
    for (let round = 0; round < 400; round++) {
      while (this.queue.length > 0) {
        const m = this.queue.shift() as Message;
        this.nodes.find((n) => n.id === m.to)?.rn.step(m);
        this.processReadies();
      }
      this.check();
      const leader = this.nodes.find((n) => n.rn.status().role === 'leader');
      const quiet = leader && this.nodes.every((n) => n.rn.status().applied === leader.rn.status().lastIndex);
      if (quiet && this.nodes.every(hasFinal)) return;
      if (quiet) {
        // (Again, if a leader change lost the previous attempt: uncommitted proposals may be dropped.)
        leader.rn.propose(new TextEncoder().encode('final'));
        this.processReadies();
        continue;
      }
      for (const n of this.nodes) n.rn.tick();
      this.processReadies();
    }
    throw new Error('cluster did not converge after faults stopped');
  }

  check(): void {
    for (const n of this.nodes) {
      const s = n.rn.status();
      // Term and commit never move back (also across restarts, since they are persisted).
      expect(s.term, `${n.id} term`).toBeGreaterThanOrEqual(n.term);
      expect(s.commit, `${n.id} commit`).toBeGreaterThanOrEqual(n.commit);
      n.term = s.term;
      n.commit = s.commit;
      // Election safety: at most one leader per term.
      if (s.role === 'leader') {
        const prev = this.leaderOfTerm.get(s.term);
        expect(prev === undefined || prev === n.id, `two leaders in term ${s.term}: ${prev} and ${n.id}`).toBe(true);
        this.leaderOfTerm.set(s.term, n.id);
      }
      // State machine safety: every node applies the same entry at each index, in order.
      if (n.checked > n.applied.length) n.checked = 0;
      n.applied.slice(n.checked).forEach((e, k) => {
        const i = n.checked + k;
        expect(e.index, `${n.id} applies in order`).toBe(n.base + i + 1);
        const key = `${e.term}/${new TextDecoder().decode(e.data)}`;
        const seen = this.appliedAt.get(e.index);
        expect(seen === undefined || seen === key, `index ${e.index}: ${seen} vs ${key} on ${n.id}`).toBe(true);
        this.appliedAt.set(e.index, key);
      });
      n.checked = n.applied.length;
    }
    if (++this.checks % 8 !== 0) return;
    // Log matching (every few steps, it is costly): if two logs hold an entry with the same index and term, they agree up to it.
    for (let i = 0; i < this.nodes.length; i++) {
      for (let j = i + 1; j < this.nodes.length; j++) {
        const a = (this.nodes[i] as SimNode).storage;
        const b = (this.nodes[j] as SimNode).storage;
        // Compare what both still hold (a snapshot's own index keeps its term).
        const lo = Math.max(a.firstIndex() - 1, b.firstIndex() - 1, 1);
        let k = Math.min(a.lastIndex(), b.lastIndex());
        while (k >= lo && a.term(k) !== b.term(k)) k--;
        for (let x = lo; x <= k; x++) expect(a.term(x), `log matching at ${x}`).toBe(b.term(x));
      }
    }
  }
}

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      node: fc.nat(4),
      times: fc.integer({ min: 1, max: 4 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('tickAll' as const) }) },
  {
    weight: 14,
    arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(1000), duplicate: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('drop' as const), pick: fc.nat(1000) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('propose' as const), node: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), node: fc.nat(4) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('compact' as const), node: fc.nat(4) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('isolate' as const),
      node: fc.nat(4),
      steps: fc.integer({ min: 10, max: 150 }),
    }),
  },
);

const seed = process.env.RAFT_PROPERTY_SEED ? Number(process.env.RAFT_PROPERTY_SEED) : undefined;
/** More runs for a soak: RAFT_PROPERTY_RUNS=1000. */
const numRuns = Number(process.env.RAFT_PROPERTY_RUNS ?? 60);

describe('randomized safety', () => {
  for (const preVote of [true, false]) {
    it(`election safety, log matching and state machine safety hold under drops, reorders, duplicates, partitions, restarts and compaction (preVote ${preVote})`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 3, max: 5 }),
          fc.integer({ min: 1, max: 1_000_000 }),
          fc.array(action, { minLength: 100, maxLength: 600 }),
          (size, clusterSeed, actions) => {
            const c = new Cluster(size, clusterSeed, { preVote, checkQuorum: preVote });
            for (const a of actions) c.run(a);
            c.settle();
          },
        ),
        // A failure prints its seed and path; replay with RAFT_PROPERTY_SEED=<seed>.
        { numRuns, ...(seed !== undefined ? { seed } : {}) },
      );
    });
  }
});
