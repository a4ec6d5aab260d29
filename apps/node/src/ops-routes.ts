import { Readable } from 'node:stream';
import {
  ClusterDownError,
  CohortError,
  type ConfState,
  ErrorCode,
  type NodeId,
  NotLeaderError,
  describeQuorumLoss,
} from '@cohort/core';
import type { RecoveryPlan, RecoveryRefusal } from '@cohort/kv';
import { type CatchUp, type MembershipChange, MembershipRefusedError, type SnapshotReader } from '@cohort/raft';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { BACKUP_CONTENT_TYPE, BackupFormatError, backupFrame, backupHeader, readBackup } from './backup-format.js';
import type { NodeStatus } from './kv-api.js';
import type { MemberView } from './membership-service.js';
import type { RecoveryDone } from './partition-recovery.js';
import type { RestoreRow } from './restore-write.js';

/** The node's operations as the HTTP front end exposes them (`/readyz`, `/v1/cluster`, `/v1/admin/cluster/*`). */
export interface OpsApi {
  status(): NodeStatus;
  /** The members SWIM knows, with their tags (`http`: the member's HTTP address). */
  members(): MemberView[];
  /** `address`: a new member's peer address, which every replica learns with the change. */
  changeMembership(change: MembershipChange, address?: string): Promise<ConfState>;
  transferLeadership(to: NodeId): Promise<NodeId>;
  /**
   * Moves partition `partition`'s leadership to its voter `to`, on the partition's leader (elsewhere
   * NotLeaderError naming it); refused (OperationRefusedError) for a target that is not a live voter.
   */
  transferPartitionLeadership(partition: number, to: NodeId): Promise<{ partition: number; leader: NodeId }>;
  /**
   * On the partition's leader: makes its replica on `node` catch up now (a snapshot streamed when the
   * leader's log no longer holds its next entry, else its appends resent); NotLeaderError elsewhere.
   */
  catchUpReplica(partition: number, node: NodeId): Promise<{ partition: number } & CatchUp>;
  /**
   * Records in the meta group the move of partition `partition`'s replica from `from` to `to`, which
   * the placement controller carries out; refused when the target holds it or a quorum would be lost.
   * Without `to`, a replacement is forced: the node picks the target as placement would (a live node
   * holding no replica of the partition, in an unused zone, least loaded), without waiting for a
   * grace period to pass.
   */
  movePartitionReplica(
    partition: number,
    from: NodeId,
    to: NodeId | undefined,
  ): Promise<{ partition: number; from: NodeId; to: NodeId; epoch: number }>;
  /**
   * Plans the unsafe recovery of a Raft partition that lost its quorum for good from what its live
   * replicas report (the most up-to-date one, or `from`); RecoveryRefusedError when refused.
   */
  planPartitionRecovery(partition: number, from: NodeId | undefined, authorization?: string): Promise<RecoveryPlan>;
  /** On the plan's survivor: carries the recovery out (forced membership, then the map's record). */
  recoverPartitionHere(plan: RecoveryPlan): Promise<RecoveryDone>;
  /**
   * Replaces this node's own tags until it restarts: gossiped at once, and recorded in the meta
   * registry of a partitioned cluster (placement reads zones there). OperationRefusedError for a tag
   * the node sets itself or tags over the limits.
   */
  setTags(tags: Record<string, string>): Promise<{ id: NodeId; tags: Record<string, string> }>;
  /** On the leader, once it confirmed its leadership: a consistent view of the whole dataset. */
  openBackup(partition?: number): Promise<{ group: string; reader: SnapshotReader }>;
  /**
   * On the leader: writes the backup's keys through the log (values, and expiry deadlines not yet
   * passed). Refused with RestoreRefusedError when the group holds keys and `force` is not set.
   * Resolves with how many keys were written, and how many skipped because they had expired.
   */
  restore(rows: AsyncIterable<RestoreRow[]>, force: boolean): Promise<{ keys: number; expired: number }>;
}

/** A restore refused before anything was written: the message says why and what to do. */
export class RestoreRefusedError extends Error {
  override readonly name = 'RestoreRefusedError';
}

/** An admin operation refused as unsafe or impossible; nothing changed. The message says why. */
export class OperationRefusedError extends Error {
  override readonly name = 'OperationRefusedError';
}

/** An unsafe recovery refused; `reason` is its closed code (see `RecoveryRefusal`), sent as `error.reason`. */
export class RecoveryRefusedError extends OperationRefusedError {
  constructor(
    readonly reason: RecoveryRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** Why this node cannot serve linearizable requests now, or undefined when it can. */
export function notReady(s: NodeStatus): { code: string; message: string } | undefined {
  if (s.repairing) {
    return { code: ErrorCode.Unavailable, message: 'this replica is restoring its data from a healthy replica' };
  }
  const q = s.quorum;
  if (q === undefined || q.state === 'ok') return undefined;
  if (q.voters.length === 0) {
    return {
      code: ErrorCode.Unavailable,
      message: `node ${s.id} is not a member of the group yet: add it from a member (cohort cluster add ${s.id})`,
    };
  }
  if (q.state === 'lost') return { code: ErrorCode.ClusterDown, message: describeQuorumLoss(q) };
  const reach = q.voters.filter((v) => !q.unreachable.includes(v));
  return {
    code: ErrorCode.NotLeader,
    message: `no leader is known for ${q.leaderlessMs} ms: an election is under way (reachable voters ${reach.join(', ')}; a quorum needs ${q.needed})`,
  };
}

const nodeBody = {
  type: 'object',
  properties: { node: { type: 'string', minLength: 1, maxLength: 256 } },
  required: ['node'],
  additionalProperties: false,
} as const;

const addBody = {
  type: 'object',
  properties: {
    node: { type: 'string', minLength: 1, maxLength: 256 },
    address: { type: 'string', pattern: '^(\\[[^\\]]+\\]|[^\\s:/\\[\\]]+):[0-9]{1,5}$' },
  },
  required: ['node'],
  additionalProperties: false,
} as const;

/** The HTTP address (`host:port`) of member `id`, from its SWIM tags. */
function httpOf(ops: OpsApi, id: NodeId): string | undefined {
  return ops.members().find((m) => m.id === id)?.tags.http;
}

/** The body of a per-partition operation on one node (transfer-leader, catch-up). */
const partitionNodeBody = {
  type: 'object',
  properties: {
    partition: { type: 'integer', minimum: 0 },
    node: { type: 'string', minLength: 1, maxLength: 256 },
  },
  required: ['partition', 'node'],
  additionalProperties: false,
} as const;

function fail(reply: FastifyReply, ops: OpsApi, err: unknown): FastifyReply {
  if (
    err instanceof MembershipRefusedError ||
    err instanceof RestoreRefusedError ||
    err instanceof OperationRefusedError
  ) {
    return reply.code(409).send({
      error: {
        code: 'REFUSED',
        message: err.message,
        ...(err instanceof RecoveryRefusedError ? { reason: err.reason } : {}),
      },
    });
  }
  if (err instanceof NotLeaderError) {
    const leader = err.leaderId;
    const leaderHttp = leader ? httpOf(ops, leader) : undefined;
    return reply.code(503).send({
      error: {
        code: ErrorCode.NotLeader,
        message: leader
          ? `this node does not lead the group; send it to the leader ${leader}${leaderHttp ? ` at ${leaderHttp}` : ''}`
          : 'no leader is known: an election is under way; retry in a moment',
        ...(leader ? { leader } : {}),
        ...(leaderHttp ? { leaderHttp } : {}),
      },
    });
  }
  if (err instanceof ClusterDownError) {
    return reply.code(503).send({ error: { code: err.code, message: err.message } });
  }
  if (err instanceof CohortError) {
    const status = err.code === ErrorCode.Timeout || err.code === ErrorCode.Unavailable ? 503 : 500;
    return reply.code(status).send({ error: { code: err.code, message: err.message } });
  }
  return reply.code(500).send({ error: { code: ErrorCode.Internal, message: String((err as Error)?.message ?? err) } });
}

/** The membership of the group with each member's addresses, as `/v1/cluster` and the admin operations answer it. */
function clusterView(ops: OpsApi): Record<string, unknown> {
  const s = ops.status();
  const swim = new Map(ops.members().map((m) => [m.id, m]));
  const describe = (id: NodeId, role: string) => {
    const m = swim.get(id);
    return {
      id,
      role,
      ...(id === s.leader ? { leader: true } : {}),
      ...(m ? { state: m.state, peer: m.address, ...(m.tags.http ? { http: m.tags.http } : {}) } : {}),
      ...(s.quorum ? { reachable: !s.quorum.unreachable.includes(id) } : {}),
    };
  };
  return {
    id: s.id,
    role: s.role,
    leader: s.leader,
    ...(s.leader && httpOf(ops, s.leader) ? { leaderHttp: httpOf(ops, s.leader) } : {}),
    term: s.term,
    commit: s.commit,
    applied: s.applied,
    voters: s.voters ?? [],
    learners: s.learners ?? [],
    members: [
      ...(s.voters ?? []).map((id) => describe(id, 'voter')),
      ...(s.learners ?? []).map((id) => describe(id, 'learner')),
    ],
    ...(s.votersOutgoing && s.votersOutgoing.length > 0 ? { votersOutgoing: s.votersOutgoing } : {}),
    ...(s.quorum ? { quorum: s.quorum } : {}),
  };
}

/** What `GET /v1/cluster` answers, as the API document says it. */
export const CLUSTER_SUMMARY = 'The group: this node, the leader, term, commit and applied indexes, members and quorum';

/**
 * Registers the operations routes:
 * - `GET /readyz`: 200 when this node can serve linearizable requests now (a
 *   leader is known and reachable, and the leader reaches a quorum); else 503
 *   with why not (`CLUSTERDOWN` naming the unreachable voters, an election
 *   under way, a replica restoring its data, a node not yet added).
 * - `GET /v1/cluster`: the group's voters and learners with their addresses,
 *   the leader and the quorum as this node sees it.
 * - `POST /v1/admin/cluster/{add,promote,remove,transfer-leader}` with
 *   `{"node": "<id>"}`: add a learner, promote a learner to voter, remove a
 *   member, move the leadership. On the leader only: another node answers 503
 *   NOT_LEADER naming the leader and its HTTP address. A change that would
 *   leave fewer reachable voters than a quorum answers 409 REFUSED with why.
 * - `POST /v1/admin/partitions/transfer-leader` with `{"partition": p, "node": "<id>"}`:
 *   moves partition p's leadership (any node: one that does not lead p
 *   answers 503 NOT_LEADER naming p's leader and its HTTP address).
 * - `POST /v1/admin/partitions/move` with `{"partition": p, "from": "<id>", "to": "<id>"}`:
 *   records a replica move in the meta group (any node); the placement
 *   controller adds `to` as a learner, then promotes it and removes `from` in
 *   one joint change.
 */
export function registerOpsRoutes(app: FastifyInstance, ops: OpsApi): void {
  app.get(
    '/readyz',
    { schema: { summary: 'Readiness: 200 when this node serves linearizable requests now, else 503 with why' } },
    async (_req, reply) => {
      const s = ops.status();
      const why = notReady(s);
      if (why === undefined) return { ready: true, id: s.id, role: s.role, leader: s.leader };
      return reply.code(503).send({ ready: false, id: s.id, role: s.role, leader: s.leader, error: why });
    },
  );

  app.get('/v1/cluster', { schema: { summary: CLUSTER_SUMMARY } }, async () => clusterView(ops));

  app.get<{ Querystring: { partition?: number } }>(
    '/v1/admin/backup',
    {
      schema: {
        summary:
          "A consistent backup of the whole dataset, streamed (on the leader); with several partitions, of one partition (?partition=p, on that partition's leader)",
        querystring: {
          type: 'object',
          properties: { partition: { type: 'integer', minimum: 0 } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      let opened: Awaited<ReturnType<OpsApi['openBackup']>>;
      try {
        opened = await ops.openBackup(req.query.partition);
      } catch (err) {
        return fail(reply, ops, err);
      }
      const { group, reader } = opened;
      const id = ops.status().id;
      async function* body(): AsyncGenerator<Uint8Array> {
        try {
          yield backupHeader(group, reader.meta, id);
          for (;;) {
            const chunk = await reader.next(1024 * 1024);
            if (chunk === undefined) break;
            yield backupFrame(chunk);
            // Let the socket drain and the node serve others between chunks.
            await new Promise((r) => setImmediate(r));
          }
          yield backupFrame(new Uint8Array(0));
        } finally {
          reader.close();
        }
      }
      reply.header('content-type', BACKUP_CONTENT_TYPE);
      reply.header('x-cohort-backup-index', String(reader.meta.index));
      return reply.send(Readable.from(body()));
    },
  );

  // The backup arrives as a stream: it is read chunk by chunk, never whole.
  app.addContentTypeParser(BACKUP_CONTENT_TYPE, (_req, payload, done) => done(null, payload));
  app.post<{ Querystring: { force?: string } }>(
    '/v1/admin/restore',
    {
      schema: {
        summary: "Writes a backup's keys through the log (on the leader; ?force=true over existing keys)",
        querystring: { type: 'object', properties: { force: { type: 'string', enum: ['true', 'false'] } } },
      },
    },
    async (req, reply) => {
      if (req.headers['content-type'] !== BACKUP_CONTENT_TYPE) {
        return reply.code(400).send({
          error: {
            code: 'BAD_REQUEST',
            message: `send the backup file as ${BACKUP_CONTENT_TYPE} (cohort restore <file>)`,
          },
        });
      }
      const stream = req.body as AsyncIterable<Uint8Array>;
      async function* rows(): AsyncGenerator<RestoreRow[]> {
        for await (const item of readBackup(stream)) if (item.type === 'chunk') yield item.chunk.rows;
      }
      try {
        return { restored: await ops.restore(rows(), req.query.force === 'true') };
      } catch (err) {
        if (err instanceof BackupFormatError) {
          return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: err.message } });
        }
        return fail(reply, ops, err);
      }
    },
  );

  const change = (op: MembershipChange['op']) => async (req: { body: unknown }, reply: FastifyReply) => {
    const { node, address } = req.body as { node: string; address?: string };
    let peer = address;
    if (op === 'addLearner' && peer === undefined) {
      // Without an address, the membership must know the node already.
      const m = ops.members().find((x) => x.id === node);
      if (m?.state !== 'alive') {
        return reply.code(409).send({
          error: {
            code: 'REFUSED',
            message: `${node} is ${m ? m.state : 'unknown'} to the cluster's membership: start it with \`cohort start --id ${node} --join --peers <a member>,${node}=<host:port> ...\` and pass its peer address (cohort cluster add ${node} --address <host:port>)`,
          },
        });
      }
      peer = m.address;
    }
    try {
      await ops.changeMembership({ op, node } as MembershipChange, op === 'addLearner' ? peer : undefined);
      return clusterView(ops);
    } catch (err) {
      return fail(reply, ops, err);
    }
  };
  app.post(
    '/v1/admin/cluster/add',
    { schema: { summary: 'Adds a node as a learner', body: addBody } },
    change('addLearner'),
  );
  app.post(
    '/v1/admin/cluster/promote',
    { schema: { summary: 'Promotes a caught-up learner to voter', body: nodeBody } },
    change('promote'),
  );
  app.post('/v1/admin/cluster/remove', { schema: { summary: 'Removes a member', body: nodeBody } }, change('remove'));
  app.post(
    '/v1/admin/cluster/transfer-leader',
    { schema: { summary: 'Moves the leadership to a voter', body: nodeBody } },
    async (req, reply) => {
      try {
        const leader = await ops.transferLeadership((req.body as { node: string }).node);
        return { ...clusterView(ops), leader };
      } catch (err) {
        return fail(reply, ops, err);
      }
    },
  );

  app.post<{ Body: { partition: number; node: string }; Querystring: { follow?: 'true' | 'false' } }>(
    '/v1/admin/partitions/transfer-leader',
    {
      schema: {
        summary:
          "Moves a partition's leadership to one of its voters (on the partition's leader; others answer NOT_LEADER naming it, or with ?follow=true send it on to the leader once)",
        querystring: {
          type: 'object',
          properties: { follow: { type: 'string', enum: ['true', 'false'] } },
          additionalProperties: false,
        },
        body: partitionNodeBody,
      },
    },
    async (req, reply) => {
      try {
        return await ops.transferPartitionLeadership(req.body.partition, req.body.node);
      } catch (err) {
        const leaderHttp = err instanceof NotLeaderError && err.leaderId ? httpOf(ops, err.leaderId) : undefined;
        if (req.query.follow !== 'true' || leaderHttp === undefined) return fail(reply, ops, err);
        // One hop: the request goes on without ?follow, with the caller's token, and its answer comes back as it is.
        try {
          const res = await fetch(`${req.protocol}://${leaderHttp}/v1/admin/partitions/transfer-leader`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              ...(typeof req.headers.authorization === 'string' ? { authorization: req.headers.authorization } : {}),
            },
            body: JSON.stringify(req.body),
            signal: AbortSignal.timeout(15_000),
          });
          return reply
            .code(res.status)
            .header('content-type', 'application/json')
            .send(await res.text());
        } catch {
          return fail(reply, ops, err);
        }
      }
    },
  );
  app.post<{ Body: { partition: number; node: string } }>(
    '/v1/admin/partitions/catch-up',
    {
      schema: {
        summary:
          "Makes a partition's replica on a node catch up now: a snapshot when the leader's log no longer holds its next entry, else its appends resent (on the partition's leader; others answer NOT_LEADER naming it)",
        body: partitionNodeBody,
      },
    },
    async (req, reply) => {
      try {
        return await ops.catchUpReplica(req.body.partition, req.body.node);
      } catch (err) {
        return fail(reply, ops, err);
      }
    },
  );
  app.put<{ Body: { tags: Record<string, string> } }>(
    '/v1/admin/tags',
    {
      schema: {
        summary:
          "Replaces this node's own tags (zone, rack, role...) until it restarts (put them in the config file to keep them): gossiped at once and recorded in the meta registry, where placement reads zones",
        body: {
          type: 'object',
          properties: {
            tags: { type: 'object', additionalProperties: { type: 'string' }, maxProperties: 16 },
          },
          required: ['tags'],
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      try {
        return await ops.setTags(req.body.tags);
      } catch (err) {
        return fail(reply, ops, err);
      }
    },
  );
  app.post<{ Body: { partition: number; from?: string; confirm?: boolean } }>(
    '/v1/admin/partitions/recover',
    {
      schema: {
        summary:
          "UNSAFE: rebuilds a Raft partition that lost its quorum for good from its most up-to-date live replica (or `from`), which becomes its only voter; placement then adds replicas back. Writes the lost replicas acknowledged past the survivor's log are gone. Without `confirm: true`, answers the plan and changes nothing",
        body: {
          type: 'object',
          properties: {
            partition: { type: 'integer', minimum: 0 },
            from: { type: 'string', minLength: 1, maxLength: 256 },
            confirm: { type: 'boolean' },
          },
          required: ['partition'],
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const auth = typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined;
      try {
        const plan = await ops.planPartitionRecovery(req.body.partition, req.body.from, auth);
        if (req.body.confirm !== true) return { done: false, plan };
        const survivor = plan.survivor.node;
        if (survivor === ops.status().id) return await ops.recoverPartitionHere(plan);
        // Carried out by the survivor, which plans again from what it sees.
        const http = httpOf(ops, survivor);
        if (http === undefined) {
          return reply.code(503).send({
            error: {
              code: ErrorCode.Unavailable,
              message: `the HTTP address of ${survivor} is not known here; ask it directly`,
            },
          });
        }
        const res = await fetch(`${req.protocol}://${http}/v1/admin/partitions/recover`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(auth !== undefined ? { authorization: auth } : {}) },
          body: JSON.stringify({ partition: req.body.partition, from: survivor, confirm: true }),
          signal: AbortSignal.timeout(30_000),
        });
        return reply
          .code(res.status)
          .header('content-type', 'application/json')
          .send(await res.text());
      } catch (err) {
        return fail(reply, ops, err);
      }
    },
  );
  app.post<{ Body: { partition: number; from: string; to?: string } }>(
    '/v1/admin/partitions/move',
    {
      schema: {
        summary:
          "Moves a partition's replica from one node to another (recorded in the meta group; placement adds a learner, then promotes it and removes the source in one joint change); without `to`, forces the replacement of `from`'s replica on a node placement picks",
        body: {
          type: 'object',
          properties: {
            partition: { type: 'integer', minimum: 0 },
            from: { type: 'string', minLength: 1, maxLength: 256 },
            to: { type: 'string', minLength: 1, maxLength: 256 },
          },
          required: ['partition', 'from'],
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      try {
        return await ops.movePartitionReplica(req.body.partition, req.body.from, req.body.to);
      } catch (err) {
        return fail(reply, ops, err);
      }
    },
  );
}
