import type { NodeId } from '@cohort/core';
import type { MetaState } from '@cohort/kv';
import type { FastifyInstance } from 'fastify';

/** What a node asks a member when it joins (`POST /v1/cluster/join`). */
export interface JoinRequest {
  id: NodeId;
  /** The joining node's libp2p peer id: the registry pins it, and peers accept only that identity for `id`. */
  peerId: string;
  peerAddress: string;
  http: string;
  resp: string;
  tags: Record<string, string>;
  startedAt: number;
  /** When the cluster has a secret: proof that the joining node holds it (see join-proof.ts). */
  proof?: string;
}

/** What a member answers a node it admitted. */
export interface JoinAnswer {
  clusterId: string;
  partitions: number;
  replicationFactor: number;
  /** Per partition, its voters now (the joining node records them as its layout). */
  replicas: NodeId[][];
  /** Every registered node, to dial and to gossip with. */
  members: { id: NodeId; peerAddress: string; peerId?: string }[];
}

/** The meta group's operations as the HTTP front end exposes them. */
export interface MetaApi {
  state(): Readonly<MetaState>;
  /** The meta group's leader and term as this node sees them (no leader: undefined). */
  leader(): { leader: NodeId | undefined; term: number };
  join(req: JoinRequest): Promise<JoinAnswer>;
  leave(id: NodeId): Promise<{ node: NodeId; replicas: number }>;
}

const idPattern = '^[A-Za-z0-9._-]{1,64}$';
const addressPattern = '^(\\[[^\\]]+\\]|[^\\s:/\\[\\]]+):[0-9]{1,5}$';

const joinBody = {
  type: 'object',
  properties: {
    id: { type: 'string', pattern: idPattern },
    peerId: { type: 'string', pattern: '^[A-Za-z0-9]{16,128}$' },
    peerAddress: { type: 'string', pattern: addressPattern },
    http: { type: 'string', maxLength: 300 },
    resp: { type: 'string', maxLength: 300 },
    tags: { type: 'object', additionalProperties: { type: 'string', maxLength: 256 }, maxProperties: 32 },
    startedAt: { type: 'number', minimum: 0 },
    proof: { type: 'string', pattern: '^[0-9a-f]{64}$' },
  },
  required: ['id', 'peerId', 'peerAddress', 'http', 'resp', 'tags', 'startedAt'],
  additionalProperties: false,
} as const;

/**
 * `GET /v1/meta` (the registry and the partition map with epochs, as this
 * node applied them), `POST /v1/cluster/join` (a new node registers through
 * any member) and `POST /v1/cluster/leave` (a node is decommissioned: its
 * replicas move away).
 */
export function registerMetaRoutes(app: FastifyInstance, meta: MetaApi): void {
  app.get(
    '/v1/meta',
    {
      schema: {
        summary:
          "The node registry and the partition map (replicas, roles, epochs) from the meta group, with the meta group's leader and term as this node sees them",
      },
    },
    async () => {
      const { leader, term } = meta.leader();
      return { ...meta.state(), ...(leader !== undefined ? { leader } : {}), term };
    },
  );
  app.post<{ Body: JoinRequest }>(
    '/v1/cluster/join',
    { schema: { summary: 'Registers a new node in the cluster (cohort start --join)', body: joinBody } },
    async (req) => meta.join(req.body),
  );
  app.post<{ Body: { node: NodeId } }>(
    '/v1/cluster/leave',
    {
      schema: {
        summary: 'Decommissions a node: its replicas and leaderships move to other nodes (cohort leave)',
        body: {
          type: 'object',
          properties: { node: { type: 'string', pattern: idPattern } },
          required: ['node'],
          additionalProperties: false,
        },
      },
    },
    async (req) => meta.leave(req.body.node),
  );
}
