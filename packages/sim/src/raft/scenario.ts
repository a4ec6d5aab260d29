import type { ConfChange, NodeId, SeededRandom } from '@cohort/core';
import type { RaftCluster } from './cluster.js';
import type { SimRaftNode } from './sim-node.js';

/** Fault and operation kinds the scenario injects, for the run summary. */
export type FaultKind = 'crash' | 'partition' | 'oneWayCut' | 'linkChange' | 'confChange' | 'transfer' | 'diskFault';

type ActionKind = FaultKind | 'heal';

/** Share of all actions per kind (in percent); each kind runs on its own schedule and random stream. */
const WEIGHTS: Record<ActionKind, number> = {
  crash: 20,
  partition: 13,
  oneWayCut: 7,
  linkChange: 10,
  confChange: 25,
  transfer: 12,
  heal: 13,
  // Last, so adding it left the other kinds' random streams as they were.
  diskFault: 10,
};

/**
 * Drives a cluster through a random schedule of faults and operator actions:
 * crashes and restarts, symmetric and one-way partitions, changing link
 * quality, membership changes (learners, promotion, removal, joint) and
 * leadership transfers. Every choice comes from its own random stream.
 */
export class Scenario {
  readonly faults: Record<FaultKind, number> = {
    crash: 0,
    partition: 0,
    oneWayCut: 0,
    linkChange: 0,
    confChange: 0,
    transfer: 0,
    diskFault: 0,
  };
  private partitionGen = 0;
  private readonly removing = new Set<NodeId>();
  private stopped = false;
  /** One stream per kind, forked in a fixed order: a new kind never shifts the others' choices. */
  private readonly streams = new Map<ActionKind, SeededRandom>();
  /** The stream of the action being taken. */
  private random: SeededRandom;
  /**
   * Whether this seed damages a disk (a quarter of the seeds by default): a damaged node
   * stops for good, so damaging one in every seed would leave most runs a
   * node short.
   */
  private readonly diskFaults: boolean;

  constructor(
    private readonly cluster: RaftCluster,
    random: SeededRandom,
    /** Mean simulated ms between actions (of all kinds together). */
    private readonly actionEveryMs: number,
    /** Share of the seeds that damage a disk. */
    diskFaultShare = 0.25,
  ) {
    for (const k of Object.keys(WEIGHTS) as ActionKind[]) this.streams.set(k, random.fork());
    this.random = random;
    this.diskFaults = random.next() < diskFaultShare;
  }

  private get sched() {
    return this.cluster.scheduler;
  }

  private pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[this.random.int(0, xs.length - 1)];
  }

  start(): void {
    for (const k of Object.keys(WEIGHTS) as ActionKind[]) this.schedule(k);
    this.housekeeping();
  }

  /** Stops injecting faults, heals everything and restarts every node. */
  calm(): void {
    this.stopped = true;
    this.partitionGen++;
    this.cluster.network.heal();
    this.cluster.network.setFaults({ dropRate: 0, dupRate: 0, spikeRate: 0 });
    for (const n of this.cluster.nodes.values()) n.restart();
    this.cluster.markLaggards(10);
  }

  private schedule(kind: ActionKind): void {
    const r = this.streams.get(kind) as SeededRandom;
    const mean = (this.actionEveryMs * 100) / WEIGHTS[kind];
    this.sched.after(r.int(mean / 2, (mean * 3) / 2), () => {
      if (this.stopped) return;
      this.random = r;
      this.act(kind);
      this.schedule(kind);
    });
  }

  private housekeeping(): void {
    this.sched.after(100, () => {
      const c = this.cluster;
      c.checkCatchUp();
      // Nothing to retire in most rounds: skip the leader search and the member set then.
      const leader = this.removing.size > 0 ? c.leader() : undefined;
      if (leader) {
        const cs = leader.conf;
        const members = new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing]);
        for (const id of this.removing) {
          if (!members.has(id) && cs.voters.length > 0) {
            c.retire(id);
            this.removing.delete(id);
          }
        }
      }
      this.housekeeping();
    });
  }

  private act(kind: ActionKind): void {
    switch (kind) {
      case 'crash':
        this.crash();
        break;
      case 'partition':
        this.partition();
        break;
      case 'oneWayCut':
        this.oneWay();
        break;
      case 'linkChange':
        this.linkChange();
        break;
      case 'confChange':
        this.confChange();
        break;
      case 'transfer':
        this.transfer();
        break;
      case 'heal':
        this.heal();
        break;
      case 'diskFault':
        this.diskFault();
        break;
      default: {
        const never: never = kind;
        throw new Error(`unknown action ${String(never)}`);
      }
    }
  }

  private crash(): void {
    const c = this.cluster;
    const ids = c.nodeIds();
    const down = ids.length - c.upNodes().length;
    // Mostly keep a majority up so the run makes progress; sometimes take it down anyway.
    if (down + 1 > Math.floor((ids.length - 1) / 2) && this.random.next() > 0.1) return;
    const n = this.pick(c.upNodes());
    if (!n) return;
    const r = this.random;
    // Half the crashes wait (up to 40 ms) for a moment the node's disk is writing, so crashes land in
    // the middle of a Ready round often, however rarely the load makes a node write.
    if (r.next() < 0.5 || n.diskBusy) {
      this.crashNode(n);
      return;
    }
    let tries = 40;
    const poll = () => {
      if (this.stopped || !n.up || !c.nodes.has(n.id)) return;
      if (!n.diskBusy && --tries > 0) {
        this.sched.after(1, poll);
        return;
      }
      this.random = r;
      this.crashNode(n);
    };
    this.sched.after(1, poll);
  }

  private crashNode(n: SimRaftNode): void {
    const c = this.cluster;
    this.faults.crash++;
    c.trace.mixString(`crash ${n.id}`);
    // Sometimes the crash tears the last write the disk acknowledged.
    const torn = this.diskFaults && c.mayDamage() && this.random.next() < 0.3;
    if (torn) {
      c.markDamaged(n.id);
      c.coverage.tornWrite++;
    }
    n.crash(torn);
    // A fifth of the crashes keep the node down long enough for the log it needs to be compacted away,
    // so it catches up by snapshot (the calm at the end restarts a node still down).
    const downMs = this.random.next() < 0.2 ? this.random.int(6000, 12_000) : this.random.int(200, 8000);
    this.sched.after(downMs, () => {
      if (!c.nodes.has(n.id) || n.up) return;
      n.restart();
      c.coverage.crashRestart++;
      c.markLaggards(10);
    });
  }

  private partition(): void {
    const c = this.cluster;
    const ids = c.nodeIds();
    c.network.heal();
    const sideA: NodeId[] = [];
    const sizeA = this.random.int(1, Math.max(1, Math.floor(ids.length / 2)));
    const pool = [...ids];
    for (let i = 0; i < sizeA && pool.length > 0; i++) {
      sideA.push(pool.splice(this.random.int(0, pool.length - 1), 1)[0] as NodeId);
    }
    c.network.partition(sideA, pool);
    this.faults.partition++;
    c.trace.mixString(`partition ${sideA.join(',')}`);
    this.healLater(this.random.int(300, 6000));
  }

  private oneWay(): void {
    const c = this.cluster;
    const ids = c.nodeIds();
    const from = this.pick(ids);
    const to = this.pick(ids.filter((x) => x !== from));
    if (!from || !to) return;
    c.network.cutOneWay(from, to);
    this.faults.oneWayCut++;
    this.healLater(this.random.int(300, 4000));
  }

  private healLater(ms: number): void {
    const gen = ++this.partitionGen;
    this.sched.after(ms, () => {
      if (gen === this.partitionGen) this.heal();
    });
  }

  private heal(): void {
    this.cluster.network.heal();
    this.cluster.markLaggards(10);
  }

  /** Damages a node's disk: a log entry (reading it must fail its checksum and stop the node) or a KV row (the node must repair it). */
  private diskFault(): void {
    const c = this.cluster;
    if (!this.diskFaults || !c.mayDamage()) return;
    const n = this.pick([...c.nodes.values()]);
    if (!n) return;
    if (this.random.next() < 0.4) {
      // A damaged KV row: the node restores its state from a healthy replica and keeps serving.
      if (!n.corruptKvRow(this.random)) return;
      this.faults.diskFault++;
      c.markDamaged(n.id);
      c.coverage.corruptRow++;
      c.trace.mixString(`corrupt row ${n.id}`);
      return;
    }
    if (!n.corruptEntry(this.random)) return;
    this.faults.diskFault++;
    c.markDamaged(n.id);
    c.coverage.corruptEntry++;
    c.trace.mixString(`corrupt ${n.id}`);
  }

  private linkChange(): void {
    this.faults.linkChange++;
    const calm = this.random.next() < 0.3;
    this.cluster.network.setFaults({
      maxDelay: this.random.int(2, 40),
      dropRate: calm ? 0 : this.random.next() * 0.1,
      dupRate: calm ? 0 : this.random.next() * 0.05,
      spikeRate: calm ? 0 : this.random.next() * 0.03,
    });
  }

  private propose(cc: ConfChange): boolean {
    const leader = this.cluster.leader();
    if (!leader) return false;
    const ok = leader.proposeConfChange(cc);
    if (ok) this.faults.confChange++;
    return ok;
  }

  private confChange(): void {
    const c = this.cluster;
    const leader = c.leader();
    if (!leader) return;
    const cs = leader.conf;
    const ctx = new Uint8Array(0);
    if (cs.votersOutgoing.length > 0) {
      // An explicit joint configuration is left by an empty change.
      if (!cs.autoLeave) this.propose({ transition: 'auto', changes: [], context: ctx });
      return;
    }
    const learner = this.pick(cs.learners);
    const voters = cs.voters;
    const r = this.random.int(0, 99);
    const roomForMore = c.nodes.size < c.config.voters + 2;
    if (r < 35 && roomForMore) {
      const n = c.spawnNode();
      if (!this.propose({ transition: 'auto', changes: [{ type: 'addLearner', nodeId: n.id }], context: ctx })) {
        c.retire(n.id);
      }
    } else if (r < 55 && learner) {
      this.propose({ transition: 'auto', changes: [{ type: 'addVoter', nodeId: learner }], context: ctx });
    } else if (r < 75 && voters.length > 3) {
      const victim = this.pick(voters) as NodeId;
      if (this.propose({ transition: 'auto', changes: [{ type: 'removeNode', nodeId: victim }], context: ctx })) {
        this.removing.add(victim);
      }
    } else if (learner && voters.length >= 3) {
      // Replace a voter in one step through joint consensus (§6).
      const victim = this.pick(voters) as NodeId;
      const transition = this.random.next() < 0.5 ? 'joint' : 'explicit';
      const changes = [
        { type: 'addVoter' as const, nodeId: learner },
        { type: 'removeNode' as const, nodeId: victim },
      ];
      if (this.propose({ transition, changes, context: ctx })) this.removing.add(victim);
    }
  }

  private transfer(): void {
    const c = this.cluster;
    const leader = c.leader();
    if (!leader) return;
    const to = this.pick(leader.conf.voters.filter((v) => v !== leader.id && c.nodes.get(v)?.up));
    if (!to) return;
    this.faults.transfer++;
    const et = c.config.raft.electionTick ?? 10;
    c.requestTransfer(leader, to, et * c.config.tickMs * 2);
  }
}
