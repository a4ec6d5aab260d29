import { type SlotMap, slotOfKey } from '@cohort/kv';
import type { CommandSpec } from './commands.js';
import { type Reply, errorReply } from './reply.js';

/** One replica of a partition as the Redis Cluster commands show it. */
export interface ClusterReplica {
  /** The node's 40-hex-digit Redis Cluster id. */
  id: string;
  /** Its RESP address; '' when not known yet (it has not gossiped it). */
  host: string;
  port: number;
  /** Whether it leads the partition (a Redis Cluster master). */
  leader: boolean;
  /** Whether membership sees it alive. */
  alive: boolean;
  /** Its applied index, as far as this node knows (0 when not). */
  offset: number;
}

/** One node of the cluster as CLUSTER NODES shows it. */
export interface ClusterNode {
  id: string;
  host: string;
  port: number;
  /** Its cluster bus (peer) port. */
  busPort: number;
  self: boolean;
  alive: boolean;
}

/**
 * What the Redis Cluster commands know of the cluster: the slot map, and
 * per partition its replicas (its leader first; when no leader is known, its
 * preferred one stands as the master) and its term.
 */
export interface ClusterView {
  readonly slots: SlotMap;
  /** This node's Redis Cluster id (40 hex digits). */
  myId(): string;
  /**
   * Where a cluster-aware client should send a command of partition `p`: the RESP address
   * (`host:port`) of its leader when that is another node and known (MOVED); `{ ask }` while this node
   * leads it and hands the leadership to the voter at that address (ASK); undefined: here.
   */
  redirect(p: number): string | { ask: string } | undefined;
  replicas(p: number): ClusterReplica[];
  /** Partition `p`'s leader term (its Redis Cluster epoch). */
  epoch(p: number): number;
  nodes(): ClusterNode[];
}

const UNKNOWN = (sub: string): Reply => errorReply(`ERR unknown subcommand '${sub.slice(0, 128)}'. Try CLUSTER HELP.`);

const arityError = (sub: string): Reply =>
  errorReply(`ERR wrong number of arguments for 'cluster|${sub.toLowerCase()}' command`);

function bulk(s: string): Reply {
  return { t: 'bulk', v: s };
}

function int(n: number): Reply {
  return { t: 'int', n };
}

/** CLUSTER SLOTS: per partition, its slot range, then its master (the leader) and its replicas. */
function slots(view: ClusterView): Reply {
  const items: Reply[] = [];
  for (let p = 0; p < view.slots.partitions; p++) {
    const [lo, hi] = view.slots.slotRange(p);
    const nodes = view
      .replicas(p)
      .filter((r) => r.host !== '')
      .map((r): Reply => ({ t: 'array', items: [bulk(r.host), int(r.port), bulk(r.id)] }));
    items.push({ t: 'array', items: [int(lo), int(hi), ...nodes] });
  }
  return { t: 'array', items };
}

/** CLUSTER SHARDS: per partition, its slots and its nodes (role, offset, health), as Redis 7 answers it. */
function shards(view: ClusterView): Reply {
  const items: Reply[] = [];
  for (let p = 0; p < view.slots.partitions; p++) {
    const [lo, hi] = view.slots.slotRange(p);
    const nodes = view.replicas(p).map(
      (r): Reply => ({
        t: 'map',
        entries: [
          [bulk('id'), bulk(r.id)],
          [bulk('port'), int(r.port)],
          [bulk('ip'), bulk(r.host)],
          [bulk('endpoint'), bulk(r.host)],
          [bulk('role'), bulk(r.leader ? 'master' : 'replica')],
          [bulk('replication-offset'), int(r.offset)],
          [bulk('health'), bulk(r.alive ? 'online' : 'fail')],
        ],
      }),
    );
    items.push({
      t: 'map',
      entries: [
        [bulk('slots'), { t: 'array', items: [int(lo), int(hi)] }],
        [bulk('nodes'), { t: 'array', items: nodes }],
      ],
    });
  }
  return { t: 'array', items };
}

/**
 * CLUSTER NODES: one line per node. A node that leads partitions is a
 * master serving their slots; every node is shown as a master (a node
 * follows partitions led by several others, which Redis Cluster's
 * one-master-per-replica model cannot state), one leading none with no slots.
 */
function nodesText(view: ClusterView): string {
  const led = new Map<string, { ranges: string[]; epoch: number }>();
  for (let p = 0; p < view.slots.partitions; p++) {
    const master = view.replicas(p)[0];
    if (master === undefined) continue;
    const [lo, hi] = view.slots.slotRange(p);
    const entry = led.get(master.id) ?? { ranges: [], epoch: 0 };
    entry.ranges.push(lo === hi ? `${lo}` : `${lo}-${hi}`);
    entry.epoch = Math.max(entry.epoch, view.epoch(p));
    led.set(master.id, entry);
  }
  return view
    .nodes()
    .map((n) => {
      const flags = [n.self ? 'myself' : '', 'master', n.alive ? '' : 'fail'].filter(Boolean).join(',');
      const l = led.get(n.id);
      const link = n.self || n.alive ? 'connected' : 'disconnected';
      return [n.id, `${n.host}:${n.port}@${n.busPort}`, flags, '-', 0, 0, l?.epoch ?? 0, link, ...(l?.ranges ?? [])]
        .join(' ')
        .trimEnd();
    })
    .map((line) => `${line}\n`)
    .join('');
}

/** CLUSTER INFO: the cluster's state; slots whose partition has no live leader count as failed. */
function info(view: ClusterView): string {
  let ok = 0;
  let epoch = 0;
  const masters = new Set<string>();
  for (let p = 0; p < view.slots.partitions; p++) {
    const [lo, hi] = view.slots.slotRange(p);
    const leader = view.replicas(p).find((r) => r.leader && r.alive);
    if (leader) {
      ok += hi - lo + 1;
      masters.add(leader.id);
    }
    epoch = Math.max(epoch, view.epoch(p));
  }
  const mine = view.nodes().find((n) => n.self);
  let myEpoch = 0;
  for (let p = 0; p < view.slots.partitions; p++) {
    if (view.replicas(p)[0]?.id === mine?.id) myEpoch = Math.max(myEpoch, view.epoch(p));
  }
  const fields: [string, string | number][] = [
    ['cluster_enabled', 1],
    ['cluster_state', ok === 16384 ? 'ok' : 'fail'],
    ['cluster_slots_assigned', 16384],
    ['cluster_slots_ok', ok],
    ['cluster_slots_pfail', 0],
    ['cluster_slots_fail', 16384 - ok],
    ['cluster_known_nodes', view.nodes().length],
    ['cluster_size', masters.size],
    ['cluster_current_epoch', epoch],
    ['cluster_my_epoch', myEpoch],
    ['cluster_stats_messages_sent', 0],
    ['cluster_stats_messages_received', 0],
    ['total_cluster_links_buffer_limit_exceeded', 0],
  ];
  return fields.map(([k, v]) => `${k}:${v}\r\n`).join('');
}

/**
 * CLUSTER KEYSLOT, SLOTS, SHARDS, NODES, INFO and MYID. Asking for the
 * layout (SLOTS, SHARDS, NODES) makes a connection cluster-aware
 * (`Session.cluster`; see `planCommand`). Without a
 * cluster view (a server outside a node) only CLUSTER KEYSLOT answers.
 */
export const CLUSTER_COMMANDS: Record<string, CommandSpec> = {
  // Redis Cluster's ASKING: the next command is served here even if another node leads its partition
  // (forwarded, as for a plain connection), instead of answering MOVED (see planCommand).
  asking: {
    arity: 1,
    run: (_args, _api, session) => {
      session.asking = true;
      return { t: 'simple', s: 'OK' };
    },
  },
  cluster: {
    arity: -2,
    run: (args, _api, session) => {
      const sub = args[1]!.toString('latin1');
      const name = sub.toUpperCase();
      if (name === 'KEYSLOT') {
        if (args.length !== 3) return arityError(sub);
        return int(slotOfKey(args[2]!));
      }
      if (name === 'HELP') {
        return {
          t: 'array',
          items: [
            'CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
            'INFO',
            'KEYSLOT <key>',
            'MYID',
            'NODES',
            'SHARDS',
            'SLOTS',
          ].map((s): Reply => ({ t: 'simple', s })),
        };
      }
      const v = session.server.cluster;
      const known = ['SLOTS', 'SHARDS', 'NODES', 'INFO', 'MYID'];
      if (!known.includes(name)) return UNKNOWN(sub);
      if (args.length !== 2) return arityError(sub);
      if (v === undefined) return errorReply('ERR This instance has cluster support disabled');
      switch (name) {
        case 'SLOTS':
          session.cluster = true;
          return slots(v);
        case 'SHARDS':
          session.cluster = true;
          return shards(v);
        case 'NODES':
          session.cluster = true;
          return { t: 'verbatim', format: 'txt', s: nodesText(v) };
        case 'INFO':
          return { t: 'verbatim', format: 'txt', s: info(v) };
        default:
          return bulk(v.myId());
      }
    },
  },
};
