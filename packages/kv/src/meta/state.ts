/**
 * The meta group's replicated state, as pure data and pure transitions: the
 * node registry and the partition map. Every node runs the meta group (up to
 * 3 or 5 of them as voters, the others as learners) and follows the map: a
 * node hosts a partition's group while the map lists it as a replica.
 *
 * Commands carry a type tag and the state a format version, so other
 * control-plane state (a configuration master) can be added as new command
 * types and an `ext` section without breaking stored snapshots.
 */
import type { NodeId } from '@cohort/core';

/** The snapshot format this code writes; older ones are upgraded on load. */
export const META_FORMAT = 1;

/** One node of the cluster as it registered. */
export interface NodeRecord {
  id: NodeId;
  /** The node's libp2p peer id, when known. */
  peerId?: string;
  /** Where peers reach it (host:port). */
  peerAddress: string;
  /** Its HTTP admin/API address and RESP address, when it serves them. */
  http?: string;
  resp?: string;
  /** Operator tags (`--tag key=value`), e.g. zone. */
  tags: Record<string, string>;
  /** When the node's process started, ms since the epoch (0 until it registered): the longest-running node wins ties. */
  startedAt: number;
  /** Set once the node asked to leave: placement moves its replicas away. */
  leaving?: boolean;
}

/** One replica of a partition. */
export interface Replica {
  node: NodeId;
  role: 'voter' | 'learner';
}

/**
 * How a partition is replicated: `raft` (majority quorum, 2f+1 replicas) or
 * `vpaxos` (Vertical Paxos II primary-backup, f+1 replicas, reconfigured by
 * the configuration master on the meta group).
 */
export type PartitionEngine = 'raft' | 'vpaxos';

/** One partition of the map. */
export interface PartitionEntry {
  /** Its replication engine, chosen when the cluster was created. Absent: raft. */
  engine?: PartitionEngine;
  replicas: Replica[];
  /** Bumped by every reconfiguration of the partition (each replica added, promoted or removed). */
  epoch: number;
  /** The last leader reported, a hint only. */
  leader?: NodeId;
  /** The voter an operator asked to lead the partition (`cohort partitions transfer`): leader balancing keeps it there. */
  preferredLeader?: NodeId;
  /** A replica move an operator asked for (`cohort partitions move`), until the placement controller completed it. */
  move?: { from: NodeId; to: NodeId };
}

/** The whole meta state. */
export interface MetaState {
  format: number;
  /** Empty until the bootstrap command applied. */
  clusterId: string;
  replicationFactor: number;
  nodes: Record<NodeId, NodeRecord>;
  partitions: PartitionEntry[];
  /** Sections of other control-plane users, by name (kept and snapshotted as they are). */
  ext: Record<string, unknown>;
}

/** The commands of the meta group. */
export type MetaCommand =
  | {
      type: 'bootstrap';
      clusterId: string;
      replicationFactor: number;
      nodes: NodeRecord[];
      /** Per partition, its voters. */
      partitions: NodeId[][];
      /** Per partition, its engine (absent, or absent entries: raft). */
      engines?: PartitionEngine[];
    }
  | { type: 'register'; node: NodeRecord }
  | { type: 'deregister'; id: NodeId }
  | { type: 'setLeaving'; id: NodeId }
  | {
      type: 'reconfigure';
      partition: number;
      /** The epoch the change was planned against: the command fails if the partition moved on. */
      epoch: number;
      replicas: Replica[];
    }
  | { type: 'leaderHint'; partition: number; leader: NodeId }
  /** Records the voter that should lead `partition`. */
  | { type: 'preferLeader'; partition: number; node: NodeId }
  /** Records the intent to move `partition`'s replica from `from` to `to` (learner, promote, remove). */
  | { type: 'move'; partition: number; from: NodeId; to: NodeId }
  | { type: 'ext'; section: string; value: unknown }
  /** A command of the control-plane extension owning `section` (see {@link MetaExtension}). */
  | { type: 'extCommand'; section: string; command: unknown };

/**
 * A control-plane user of the meta group (the Vertical Paxos configuration
 * master): applies its own commands to the state, its `ext[section]` and
 * whatever else its commands own (a vpaxos partition's replicas), in place,
 * deterministically, and answers like any command. A refusal changes nothing.
 */
export type MetaExtension = (state: MetaState, command: unknown) => MetaResult;

/** What applying a command answers its proposer. */
export type MetaResult = { ok: true; epoch?: number } | { ok: false; reason: string };

/** A state with nothing in it: a meta group not bootstrapped yet. */
export function emptyMeta(): MetaState {
  return { format: META_FORMAT, clusterId: '', replicationFactor: 0, nodes: {}, partitions: [], ext: {} };
}

const fail = (reason: string): MetaResult => ({ ok: false, reason });

/**
 * Applies `cmd` to `state` in place (deterministic: no clock, no random)
 * and says how it went. A refused command changes nothing.
 */
export function applyMeta(
  state: MetaState,
  cmd: MetaCommand,
  extensions: ReadonlyMap<string, MetaExtension> = new Map(),
): MetaResult {
  switch (cmd.type) {
    case 'bootstrap': {
      if (state.clusterId !== '') return fail(`the cluster is already bootstrapped as ${state.clusterId}`);
      state.clusterId = cmd.clusterId;
      state.replicationFactor = cmd.replicationFactor;
      for (const n of cmd.nodes) state.nodes[n.id] = { ...n, tags: { ...n.tags } };
      state.partitions = cmd.partitions.map((voters, i) => ({
        replicas: voters.map((node) => ({ node, role: 'voter' as const })),
        epoch: 1,
        ...(cmd.engines?.[i] === 'vpaxos' ? { engine: 'vpaxos' as const } : {}),
      }));
      return { ok: true };
    }
    case 'register': {
      const old = state.nodes[cmd.node.id];
      if (
        old !== undefined &&
        old.peerId !== undefined &&
        cmd.node.peerId !== undefined &&
        old.peerId !== cmd.node.peerId
      ) {
        return fail(`node id ${cmd.node.id} is already in use by another node (peer id ${old.peerId})`);
      }
      // A restart re-registers: its addresses, tags and start time (how long it has been running) change.
      state.nodes[cmd.node.id] = {
        ...cmd.node,
        // A registration without a peer id (an older node) keeps the pinned one.
        ...(cmd.node.peerId === undefined && old?.peerId !== undefined ? { peerId: old.peerId } : {}),
        tags: { ...cmd.node.tags },
        ...(old?.leaving ? { leaving: true } : {}),
      };
      return { ok: true };
    }
    case 'deregister': {
      if (state.nodes[cmd.id] === undefined) return fail(`${cmd.id} is not registered`);
      const holds = state.partitions.findIndex((p) => p.replicas.some((r) => r.node === cmd.id));
      if (holds >= 0) return fail(`${cmd.id} still holds a replica of partition ${holds}`);
      delete state.nodes[cmd.id];
      return { ok: true };
    }
    case 'setLeaving': {
      const n = state.nodes[cmd.id];
      if (n === undefined) return fail(`${cmd.id} is not registered`);
      n.leaving = true;
      return { ok: true };
    }
    case 'reconfigure': {
      const p = state.partitions[cmd.partition];
      if (p === undefined) return fail(`no partition ${cmd.partition}`);
      if (p.epoch !== cmd.epoch) return fail(`stale epoch ${cmd.epoch}: partition ${cmd.partition} is at ${p.epoch}`);
      if (!cmd.replicas.some((r) => r.role === 'voter')) return fail('a partition needs a voter');
      if (p.engine === 'vpaxos') {
        return fail(
          `partition ${cmd.partition} is replicated by Vertical Paxos: its configuration master changes its replicas`,
        );
      }
      const replicas = cmd.replicas.map((r) => ({ ...r }));
      // The leader hint stays while its node is still a replica, the preferred leader while it is a voter.
      const keep = p.leader !== undefined && replicas.some((r) => r.node === p.leader);
      const prefer =
        p.preferredLeader !== undefined && replicas.some((r) => r.node === p.preferredLeader && r.role === 'voter');
      // A move stays until its target is a voter and its source is gone (or both are gone: nothing left to do).
      const has = (id: NodeId) => replicas.some((r) => r.node === id);
      const moved =
        p.move !== undefined &&
        ((!has(p.move.from) && replicas.some((r) => r.node === p.move!.to && r.role === 'voter')) ||
          (!has(p.move.from) && !has(p.move.to)));
      state.partitions[cmd.partition] = {
        replicas,
        epoch: p.epoch + 1,
        ...(keep ? { leader: p.leader } : {}),
        ...(prefer ? { preferredLeader: p.preferredLeader } : {}),
        ...(p.move !== undefined && !moved ? { move: { ...p.move } } : {}),
      };
      return { ok: true, epoch: p.epoch + 1 };
    }
    case 'leaderHint': {
      const p = state.partitions[cmd.partition];
      if (p === undefined) return fail(`no partition ${cmd.partition}`);
      p.leader = cmd.leader;
      return { ok: true };
    }
    case 'preferLeader': {
      const p = state.partitions[cmd.partition];
      if (p === undefined) return fail(`no partition ${cmd.partition}`);
      if (!votersOf(p).includes(cmd.node)) {
        return fail(`${cmd.node} is not a voter of partition ${cmd.partition} (voters: ${votersOf(p).join(', ')})`);
      }
      p.preferredLeader = cmd.node;
      return { ok: true, epoch: p.epoch };
    }
    case 'move': {
      const p = state.partitions[cmd.partition];
      if (p === undefined) return fail(`no partition ${cmd.partition}`);
      const refusal = moveRefusal(state, cmd.partition, cmd.from, cmd.to);
      if (refusal !== undefined) return fail(refusal);
      p.move = { from: cmd.from, to: cmd.to };
      return { ok: true, epoch: p.epoch };
    }
    case 'ext':
      state.ext[cmd.section] = cmd.value;
      return { ok: true };
    case 'extCommand': {
      const ext = extensions.get(cmd.section);
      if (ext === undefined) return fail(`no control-plane extension ${cmd.section} on this node`);
      return ext(state, cmd.command);
    }
    default: {
      const unknown = cmd as { type?: unknown };
      return fail(`unknown meta command type ${String(unknown.type)}`);
    }
  }
}

/**
 * Why moving partition `partition`'s replica from `from` to `to` is refused
 * by the map alone (liveness aside), or undefined when it may be recorded.
 */
export function moveRefusal(state: MetaState, partition: number, from: NodeId, to: NodeId): string | undefined {
  const p = state.partitions[partition];
  if (p === undefined) return `no partition ${partition}: the cluster has ${state.partitions.length}`;
  const voters = votersOf(p);
  if (!voters.includes(from)) return `${from} is not a voter of partition ${partition} (voters: ${voters.join(', ')})`;
  if (state.nodes[to] === undefined) return `${to} is not a registered node`;
  if (state.nodes[to]!.leaving) return `${to} is leaving the cluster`;
  if (p.replicas.some((r) => r.node === to)) return `${to} already holds a replica of partition ${partition}`;
  if (p.engine === 'vpaxos')
    return `partition ${partition} is replicated by Vertical Paxos: its configuration master places its replicas`;
  if (p.move !== undefined)
    return `a move of partition ${partition} from ${p.move.from} to ${p.move.to} is under way; wait for it (cohort partitions)`;
  const learner = p.replicas.find((r) => r.role === 'learner');
  if (learner !== undefined)
    return `partition ${partition} is being reconfigured (learner ${learner.node}); retry once it settled`;
  return undefined;
}

/** A state read from a snapshot or the store, upgraded to the current format; throws on a newer one. */
export function upgradeMeta(raw: unknown): MetaState {
  const s = raw as Partial<MetaState>;
  if (typeof s !== 'object' || s === null || typeof s.format !== 'number') throw new Error('not a meta state');
  if (s.format > META_FORMAT) {
    throw new Error(`meta state format ${s.format} is newer than this binary reads (${META_FORMAT}): upgrade the node`);
  }
  return {
    format: META_FORMAT,
    clusterId: s.clusterId ?? '',
    replicationFactor: s.replicationFactor ?? 0,
    nodes: s.nodes ?? {},
    partitions: s.partitions ?? [],
    ext: s.ext ?? {},
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A command as log entry bytes (JSON with its type tag). */
export function encodeMetaCommand(cmd: MetaCommand): Uint8Array {
  return enc.encode(JSON.stringify(cmd));
}

/** Log entry bytes as a command; throws on bytes that are not one. */
export function decodeMetaCommand(data: Uint8Array): MetaCommand {
  const v = JSON.parse(dec.decode(data)) as MetaCommand;
  if (typeof v !== 'object' || v === null || typeof v.type !== 'string') throw new Error('not a meta command');
  return v;
}

/** The voters of a partition. */
export function votersOf(p: PartitionEntry): NodeId[] {
  return p.replicas.filter((r) => r.role === 'voter').map((r) => r.node);
}

/** The nodes of a partition, voters and learners. */
export function replicaNodes(p: PartitionEntry): NodeId[] {
  return p.replicas.map((r) => r.node);
}
