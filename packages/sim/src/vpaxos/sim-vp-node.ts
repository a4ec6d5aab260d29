import type { NodeId, SeededRandom } from '@cohort/core';
import { MemoryNodeStore } from '@cohort/storage';
import { VPaxosHost, type VpObserver, VpTransportMux } from '@cohort/vpaxos';
import { SimClock } from '../clock.js';
import type { SimNetwork } from '../network.js';
import type { Scheduler } from '../scheduler.js';
import type { TraceHash } from '../trace.js';
import { type RequestIds, type SimFrame, SimTransport } from '../transport/sim-transport.js';
import { SimAcceptorStore, type VpMutations } from './sim-acceptor-store.js';
import { SimKv } from './sim-kv.js';
import { SimMetaPart, type VpMetaEnv } from './sim-meta-master.js';

/** The group every simulated Vertical Paxos replica runs. */
export const VP_GROUP = 'vp0';
/** The configuration master's node id on the simulated network. */
export const MASTER_ID = 'master';

/** What a simulated replica shares with its cluster. */
export interface VpNodeEnv {
  scheduler: Scheduler;
  network: SimNetwork<SimFrame>;
  ids: RequestIds;
  trace: TraceHash;
  observer: (id: NodeId) => VpObserver;
  leaseMs: number;
  heartbeatMs: number;
  /** Applied slots between acceptor compactions (0: never). */
  compactSlots: number;
  /** Bytes of held votes that trigger a compaction too (0: slots alone). */
  compactBytes: number;
  diskLatency: () => number;
  mutations: VpMutations;
  /** The group the replicas run (the meta group's master names it `p0`, its partition 0). */
  group: string;
  /** With it, every replica also runs the meta group and the configuration master on it (as the binary does). */
  meta?: VpMetaEnv;
}

/**
 * One simulated replica: the production {@link VPaxosHost} over a simulated
 * clock (possibly drifting), transport and acceptor store. A crash halts the
 * clock and transport and loses the store's writes in flight; the state
 * machine restarts from its image as of the last durable write, and replays
 * the chosen values after it.
 */
export class SimVpNode {
  up = false;
  incarnation = 0;
  readonly store: SimAcceptorStore;
  host: VPaxosHost<string> | undefined;
  machine = new SimKv();
  private clock: SimClock | undefined;
  private transport: SimTransport | undefined;
  /** The node's meta group replica and master, when the master runs on the meta group. */
  metaPart: SimMetaPart | undefined;
  /** The node's store of the meta group (its log and state), kept across restarts. */
  private readonly metaStore: MemoryNodeStore;

  constructor(
    readonly id: NodeId,
    private readonly env: VpNodeEnv,
    private readonly clockRate: number,
    private readonly random?: SeededRandom,
  ) {
    this.store = new SimAcceptorStore(env.scheduler, env.diskLatency, env.mutations);
    this.metaStore = new MemoryNodeStore({ autoSync: false, name: `${id}.meta.mem`, chunkBytes: 4096 });
  }

  async start(): Promise<void> {
    this.incarnation++;
    this.up = true;
    this.machine = new SimKv(this.store.durableImage);
    const machine = this.machine;
    this.store.machineImage = () => machine.image();
    const env = this.env;
    const clock = new SimClock(env.scheduler, { rate: this.clockRate });
    const transport = new SimTransport(this.id, env.network, clock, env.ids, {
      onDeliver: (from, f) => {
        if (f.kind === 'frame') env.trace.mix3(from.length, f.bytes.length, f.bytes[f.bytes.length - 1] ?? 0);
      },
    });
    this.clock = clock;
    this.transport = transport;
    let master: NodeId | (() => NodeId | undefined) = MASTER_ID;
    let groupTransport: SimTransport | ReturnType<VpTransportMux['forGroup']> = transport;
    if (env.meta !== undefined) {
      if (this.random === undefined) throw new Error('a replica running the meta group needs a random source');
      // As the binary: the replica and the master share the node's transport through the mux.
      const mux = new VpTransportMux(transport);
      groupTransport = mux.forGroup(env.group);
      const part = new SimMetaPart(this.id, this.metaStore, clock, transport, mux, this.random.fork(), env.meta);
      this.metaPart = part;
      master = () => part.meta.leader() || undefined;
    }
    this.host = new VPaxosHost<string>({
      group: env.group,
      transport: groupTransport,
      clock,
      store: this.store,
      machine: this.machine,
      master,
      // Master frames carry what the meta group committed: any member may relay them (as in the binary).
      ...(env.meta !== undefined ? { acceptMasterFrom: () => true } : {}),
      incarnation: this.incarnation,
      heartbeatMs: env.heartbeatMs,
      requestTimeoutMs: 1_000,
      leaseMs: env.leaseMs,
      compactSlots: env.compactSlots,
      compactBytes: env.compactBytes,
      // Small chunks and margins: a snapshot streams in several requests, and compaction runs often.
      compactMarginSlots: Math.floor(env.compactSlots / 2),
      snapshot: { chunkBytes: 64, timeoutMs: 5_000, maxRetries: 5 },
      observer: env.observer(this.id),
      addressOf: (id) => `${id}.sim:7000`,
    });
    await this.host.start();
    this.metaPart?.start();
  }

  crash(): void {
    if (!this.up) return;
    this.up = false;
    this.clock?.halt();
    this.transport?.crash();
    this.host?.stop();
    this.metaPart?.crash();
    this.metaPart = undefined;
    this.store.crash();
  }
}
