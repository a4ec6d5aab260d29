import {
  CorruptStateError,
  type Entry,
  ErrorCode,
  type Logger,
  NotLeaderError,
  UnavailableError,
  checkDataDirWritable,
  systemClock,
  systemRandom,
} from '@cohort/core';
import { type KvClientRequest, KvService, KvStateMachine, WatchHub } from '@cohort/kv';
import type { MembershipHost } from '@cohort/membership';
import { RaftHost } from '@cohort/raft';
import type { DurableNodeStore } from '@cohort/storage';
import { type Libp2pTransport, createLibp2pTransport } from '@cohort/transport';
import type { FastifyInstance } from 'fastify';
import { createHttpServer } from './http-server.js';
import { WatchSource } from './http-watch.js';
import { instrumentKv } from './instrumented-kv.js';
import type { KvApi, NodeStatus, ReadApi } from './kv-api.js';
import { type KvMaintenance, startKvMaintenance } from './kv-maintenance.js';
import { memberViews, startMembership } from './membership-service.js';
import { NodeMetrics } from './metrics.js';
import { KV_GROUP, type NodeOptions } from './node-config.js';
import { RestoreRefusedError } from './ops-routes.js';
import { hostSettings } from './raft-settings.js';
import { RespServer } from './resp/server.js';
import { type RestoreRow, restoreFailure, restoreWrite } from './restore-write.js';

/** Splits `host:port`; the host may be a bracketed IPv6 address. */
export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`address '${address}' is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

const enc = new TextEncoder();

/** The peer address a membership change carries in its context (`{"address": "host:port"}`), if any. */
function memberAddress(context: Uint8Array): string | undefined {
  if (context.length === 0) return undefined;
  try {
    const v = JSON.parse(new TextDecoder().decode(context)) as { address?: unknown };
    return typeof v.address === 'string' ? v.address : undefined;
  } catch {
    return undefined;
  }
}

/** Keys written per pipeline while restoring a backup (one Raft round each). */
const RESTORE_BATCH = 256;

/**
 * Writes a backup's rows through the log on the leader, a pipeline of
 * RESTORE_BATCH sets at a time. Refused when the group holds keys, unless
 * `force` (the backup's keys then replace theirs; other keys stay). Keys
 * whose deadline passed are skipped; the others keep their deadline.
 */
async function restoreRows(
  host: RaftHost,
  sm: KvStateMachine,
  service: KvService,
  rows: AsyncIterable<RestoreRow[]>,
  force: boolean,
): Promise<{ keys: number; expired: number }> {
  const s = host.status(KV_GROUP);
  if (s.role !== 'leader') throw new NotLeaderError(s.leader || undefined);
  await host.readIndex(KV_GROUP);
  if (sm.size > 0 && !force) {
    throw new RestoreRefusedError(
      `the cluster holds ${sm.size} keys: restore into a new, empty cluster, or pass --force to write the backup's keys over the existing ones (keys not in the backup stay)`,
    );
  }
  let keys = 0;
  let expired = 0;
  let batch: KvClientRequest[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const res = await service.executeAll(batch);
    const bad = restoreFailure(res);
    if (bad) {
      const why =
        bad.type === 'failure'
          ? `${bad.code} ${bad.message}`
          : bad.type === 'error'
            ? bad.message
            : 'a hash or list was refused';
      throw new UnavailableError(
        `restore stopped after ${keys} keys: ${why}; once the cluster is healthy, run the restore again with --force (writing a key twice is harmless)`,
      );
    }
    keys += batch.length;
    batch = [];
  };
  try {
    for await (const chunk of rows) {
      const now = Date.now();
      for (const r of chunk) {
        if (r.expiresAt !== undefined && r.expiresAt <= now) {
          expired++;
          continue;
        }
        batch.push(restoreWrite(r));
        if (batch.length >= RESTORE_BATCH) await flush();
      }
    }
    await flush();
  } catch (err) {
    if (keys > 0 && err instanceof Error && !(err instanceof UnavailableError)) {
      err.message = `${err.message} (${keys} keys were written before; run the restore again with --force once fixed)`;
    }
    throw err;
  }
  return { keys, expired };
}

/** The addresses a started node actually listens on. */
export interface NodeAddresses {
  peer: string[];
  resp: string;
  http: string;
}

/**
 * One cohort node: SQLite store, libp2p transport, a Raft host with the KV
 * state machine, and the RESP and HTTP front ends.
 */
export class CohortNode {
  private host: RaftHost | undefined;
  private transport: Libp2pTransport | undefined;
  private resp: RespServer | undefined;
  private http: FastifyInstance | undefined;
  private membership: MembershipHost | undefined;
  private stopping: Promise<void> | undefined;
  /**
   * Called once the node stopped serving because its storage failed (a
   * failed write, or an entry, row or chunk failing its checksum). The
   * binary exits on it; the data directory must not be served again.
   */
  onFatal: ((err: Error) => void) | undefined;

  constructor(
    readonly options: NodeOptions,
    private readonly openStore: (dataDir: string) => DurableNodeStore,
    private readonly log: Logger,
  ) {}

  private store: DurableNodeStore | undefined;
  private machine: KvStateMachine | undefined;
  private maintenance: KvMaintenance | undefined;

  status(): NodeStatus {
    const s = this.host!.status(KV_GROUP);
    return {
      id: this.options.config.node.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      commit: s.commit,
      applied: s.applied,
      repairing: s.repairing,
      keys: s.repairing ? 0 : (this.machine?.size ?? 0),
      ...(this.maintenance ? { consistency: this.maintenance.consistency() } : {}),
      quorum: s.quorum,
      voters: s.voters,
      learners: s.learners,
      votersOutgoing: s.votersOutgoing,
    };
  }

  async start(): Promise<NodeAddresses> {
    const { node, cluster, raft } = this.options.config;
    const { requestTimeoutMs } = this.options;
    checkDataDirWritable(node.dataDir);
    this.store = this.openStore(node.dataDir);
    const store = this.store;
    const transport = createLibp2pTransport({
      self: node.id,
      listen: node.peerAddress,
      dataDir: node.dataDir,
      requestTimeoutMs,
      logger: this.log.child({ component: 'transport' }),
    });
    this.transport = transport;
    for (const m of cluster.initialMembers) if (m.id !== node.id) transport.addPeer(m.id, m.peerAddress);
    const host = new RaftHost({
      id: node.id,
      store: this.store,
      transport,
      clock: systemClock,
      random: systemRandom,
      logger: this.log.child({ component: 'raft' }),
      ...hostSettings(raft),
      requestTimeoutMs,
    });
    this.host = host;
    host.onFatal = (err) => {
      this.log.error('the node stops serving: its storage cannot be trusted', {
        err: err.message,
        dataDir: node.dataDir,
        recovery:
          'stop this node, move its data directory aside and start it again with an empty one: it catches up from the healthy replicas by snapshot',
      });
      this.onFatal?.(err);
    };
    // The group's rows live in the node's store, next to its log.
    // Digests for the consistency checker are hashed a slice per turn, so a large partition never stalls the node.
    const sm = new KvStateMachine(this.store, KV_GROUP, { defer: (fn) => systemClock.defer(fn) });
    this.machine = sm;
    // Watches see every change this replica applies from now on, and a bounded history of them.
    const hub = new WatchHub({ applied: sm.appliedIndex });
    sm.setEventListener(hub);
    // A node joining an existing cluster starts without founding voters and waits to be added.
    host.addGroup(KV_GROUP, sm, cluster.bootstrap ? cluster.initialMembers.map((m) => m.id) : []);
    const service = new KvService({
      group: host.replicated(KV_GROUP),
      machine: sm,
      transport,
      clock: systemClock,
      logger: this.log.child({ component: 'kv' }),
      requestTimeoutMs,
      onStorageFailure: (err) =>
        err instanceof CorruptStateError ? host.repair(KV_GROUP, err) : host.fail('serving a read', err),
    });
    service.start();
    await transport.start();
    host.start();
    this.membership = startMembership({
      transport,
      address: node.advertiseAddress ?? node.peerAddress,
      seeds: cluster.initialMembers.map((m) => ({ id: m.id, address: m.peerAddress })),
      logger: this.log,
      // Other nodes and the CLI find a member's HTTP API (the leader's, for admin operations) by this tag.
      tags: { http: node.httpAddress },
      // Quiescent groups send no heartbeats: a failed peer is known from the failure detector.
      onLiveness: (id, up) => (up ? host.peerUp(id) : host.peerDown(id)),
    });
    const membership = this.membership;

    const api: KvApi = {
      execute: (req) => service.execute(req),
      executeAll: (reqs) => service.executeAll(reqs),
      status: () => this.status(),
    };
    const metrics = new NodeMetrics(
      () => this.status(),
      () => host.stats(),
    );
    host.onProposalTiming = (_group, t) => metrics.observeProposal(t);
    host.onConfChange = (_group, cc) => {
      const address = memberAddress(cc.context);
      for (const c of cc.changes) {
        if (c.type !== 'removeNode' && address !== undefined && c.nodeId !== node.id)
          transport.addPeer(c.nodeId, address);
      }
      this.log.info('membership changed', { changes: cc.changes, ...(address ? { address } : {}) });
    };
    let leading = false;
    host.onLeaderChange = (group, _leader, role) => {
      if (group === KV_GROUP) leading = role === 'leader';
    };
    const isLeading = (): boolean => leading;
    const reads: ReadApi = {
      // A replica restoring its corrupt copy has nothing trustworthy to serve, even stale.
      stale: (req) =>
        host.status(KV_GROUP).repairing
          ? {
              type: 'failure',
              code: ErrorCode.Unavailable,
              message: 'this replica is restoring its copy of the data from a healthy replica; read from another node',
            }
          : service.readLocal(req),
      lease: (req) => service.leaseRead(req),
    };
    this.resp = new RespServer({
      api: instrumentKv(api, metrics, 'resp', isLeading),
      logger: this.log.child({ component: 'resp' }),
      reads,
      leaseReads: raft.leaseReads,
    });
    const r = splitHostPort(node.clientAddress);
    const respPort = await this.resp.listen(r.port, r.host);
    this.maintenance = startKvMaintenance({
      group: host.replicated(KV_GROUP),
      service,
      sm,
      transport,
      clock: systemClock,
      metrics,
      logger: this.log.child({ component: 'kv' }),
      replicas: () => {
        const s = host.status(KV_GROUP);
        return [...s.voters, ...s.learners];
      },
      consistencyCheckMs: this.options.consistencyCheckMs,
    });
    this.http = createHttpServer({
      api: instrumentKv(api, metrics, 'http', isLeading),
      reads,
      watch: new WatchSource(hub, (lo, hi) => readLog(store, lo, hi)),
      admin: this.maintenance.admin,
      metrics,
      members: () => memberViews(membership),
      ops: {
        status: () => this.status(),
        members: () => memberViews(membership),
        changeMembership: (change, address) => {
          if (address === undefined) return host.changeMembership(KV_GROUP, change);
          // The leader dials the new member at once; the others learn its address as they apply the change.
          transport.addPeer(change.node, address);
          return host.changeMembership(KV_GROUP, change, enc.encode(JSON.stringify({ address })));
        },
        transferLeadership: (to) => host.transferLeadership(KV_GROUP, to),
        openBackup: async () => {
          const s = host.status(KV_GROUP);
          if (s.role !== 'leader') throw new NotLeaderError(s.leader || undefined);
          // Confirmed leadership, and everything committed before it applied here: the view holds every acknowledged write.
          await host.readIndex(KV_GROUP);
          return { group: KV_GROUP, reader: sm.openSnapshot() };
        },
        restore: (rows, force) => restoreRows(host, sm, service, rows, force),
      },
      logger: this.log.child({ component: 'http' }),
    });
    const h = splitHostPort(node.httpAddress);
    await this.http.listen({ port: h.port, host: h.host });
    const httpAddr = this.http.server.address();
    const httpPort = typeof httpAddr === 'object' && httpAddr ? httpAddr.port : h.port;
    const addresses = {
      peer: transport.listenAddresses(),
      resp: `${r.host}:${respPort}`,
      http: `${h.host}:${httpPort}`,
    };
    this.log.info('node started', { id: node.id, ...addresses, members: cluster.initialMembers });
    return addresses;
  }

  /** Stops accepting clients, lets in-flight replies finish, then stops Raft, the transport and the store. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.allSettled([this.resp?.close(), this.http?.close()]);
      this.maintenance?.stop();
      await this.membership?.leave();
      this.host?.stop();
      await this.transport?.stop().catch((err: Error) => this.log.warn('transport stop failed', { err: err.message }));
      this.store?.close();
      this.log.info('node stopped', { id: this.options.config.node.id });
    })();
    return this.stopping;
  }
}

/** The KV group's log entries in `[lo, hi)`, or undefined when the log no longer (or not yet) holds them all. */
function readLog(store: DurableNodeStore, lo: number, hi: number): Entry[] | undefined {
  const log = store.group(KV_GROUP);
  if (lo < log.firstIndex() || hi - 1 > log.lastIndex()) return undefined;
  const out: Entry[] = [];
  try {
    for (let at = lo; at < hi; at = (out.at(-1)?.index ?? at) + 1) out.push(...log.entries(at, hi, 1 << 20));
  } catch {
    return undefined; // Compacted meanwhile.
  }
  return out;
}
