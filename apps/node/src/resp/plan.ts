import { ErrorCode } from '@cohort/core';
import type { ClientSession, KvClientRequest, KvClientWrite, KvReadOp, KvResponse, KvResult } from '@cohort/kv';
import type { KvApi } from '../kv-api.js';
import type { ServerState } from './clients.js';
import { NIL, OK, type Protocol, type Reply, errorReply } from './reply.js';

/** A command queued between MULTI and EXEC: its reply as it stands (PING, a syntax error), or its KV write or read and how its answer becomes its reply. */
export type Queued = { reply: Reply } | { write: KvClientWrite; answer: (res: KvResponse) => Reply };

/** Per-connection state the commands may change. */
export interface Session {
  name: string;
  /** Set by QUIT: close once the reply is written, and run nothing after it. */
  closing: boolean;
  /**
   * The connection's session for exactly-once writes: each write takes the
   * next `seq`; `lowWater` is the highest seq whose reply (and every one
   * before it) came back, which whoever runs the requests raises.
   */
  writes: ClientSession;
  /** The connection's client id (CLIENT ID, HELLO). */
  id: number;
  /** The protocol replies are written in: 2 until HELLO 3. */
  proto: Protocol;
  /** The last command run, for CLIENT LIST ('' before any). */
  lastCommand: string;
  /** What the server's connections share: SCAN cursors, the client list, the config. */
  server: ServerState;
  /** Between MULTI and EXEC: the queued commands, and whether one was refused (EXEC then aborts). */
  multi: { queued: Queued[]; failed: boolean; keys?: Buffer[] } | undefined;
  /** WATCHed keys and the revision each had when watched (0: absent), in WATCH order. */
  watched: { key: Uint8Array; revision: number }[];
  /** WATCHes whose revisions are still being read: an EXEC waits for them in a batch of its own. */
  watching: number;
  /** Set by READONLY, cleared by READWRITE: this node serves the connection's reads from its own state (see read-modes.ts). */
  readOnly?: boolean;
  /**
   * Whether the connection is cluster-aware: it asked for the cluster's
   * layout (CLUSTER SLOTS, SHARDS or NODES). It then gets
   * `MOVED` for a key whose partition another node leads, and CROSSSLOT for
   * every multi-key command spanning slots (see `planCommand`).
   */
  cluster: boolean;
  /** Set by ASKING for the next command only: it is served here (forwarded if need be), never answered MOVED or ASK. */
  asking?: boolean;
  /**
   * Set by `CLIENT CROSSSLOT ALLOW|REFUSE`: whether this connection's
   * multi-key commands and transactions may span slots (atomic across
   * partitions) whether or not it is cluster-aware; undefined: the default,
   * allowed on a plain connection, CROSSSLOT on a cluster-aware one.
   */
  crossSlot?: boolean | undefined;
  /** The ACL user the connection runs as (`default` until AUTH). */
  user: string;
  /** Whether the connection may run commands: false until AUTH when the server requires it. */
  authenticated: boolean;
}

/**
 * What a command comes to: its reply at once (PING, a syntax error, CLIENT
 * SETNAME), or a request for the KV service and how its answer becomes the
 * reply. A handler's write has no session yet: {@link planCommand} gives it
 * the connection's next one, or queues it inside MULTI.
 */
export type Planned =
  | { reply: Reply }
  | { request: KvClientRequest; answer: (res: KvResponse) => Reply; block?: Blocking };

/**
 * A blocking command (BLPOP and its kin) outside MULTI: while its request
 * answers nil it waits for a change to one of `keys` and runs again, until
 * `deadline` (`performance.now()` ms; Infinity: no timeout); it then answers
 * its nil. It runs alone, after the commands before it were answered, and
 * the connection's later commands wait for it, as in Redis.
 */
export interface Blocking {
  keys: Buffer[];
  deadline: number;
}

/** A command's handler: its arguments (name first), already checked against its arity. */
export type Handler = (args: Buffer[], api: KvApi, session: Session) => Reply | Planned;

/** A result of a command (inside EXEC, too) as a RESP reply. */
export function resultReply(res: KvResult): Reply {
  switch (res.type) {
    case 'ok':
      return OK;
    case 'nil':
      return NIL;
    case 'int':
      return { t: 'int', n: res.value };
    case 'bulk':
      return { t: 'bulk', v: res.value };
    case 'error':
      return errorReply(res.message);
    case 'list':
      return { t: 'array', items: res.items === null ? null : res.items.map(resultReply) };
    case 'cond':
      // The answer of the HTTP API's conditional writes, which no RESP command sends.
      return errorReply('ERR cond answers have no RESP form');
    case 'txn':
    case 'locked':
      // Steps of the commit protocol between nodes; KvService resolves a lock before answering a client.
      return errorReply(`ERR ${res.type} answers have no RESP form`);
    default: {
      const never: never = res;
      throw new Error(`unknown result ${String(never)}`);
    }
  }
}

/** A KV answer as a RESP reply. */
export function toReply(res: KvResponse): Reply {
  switch (res.type) {
    case 'array':
      return { t: 'array', items: res.values.map((v) => ({ t: 'bulk', v })) };
    case 'failure':
      // A request refused unserved because its partition's configuration changed while it was routed, still
      // so when the node gave up retrying: Redis Cluster's TRYAGAIN (nothing applied, retry).
      if (res.code === ErrorCode.StaleEpoch) {
        return errorReply(
          `TRYAGAIN the configuration of this key's partition changed while the request was routed (${res.message}); nothing was applied: retry`,
        );
      }
      // The first word of a RESP error is its code, as in `-NOT_LEADER ...`.
      return errorReply(`${res.code} ${res.message}`);
    case 'range':
      // The answer of the HTTP API's range reads, which no RESP command sends.
      return errorReply('ERR range answers have no RESP form');
    default:
      return resultReply(res);
  }
}

/** `answer` applied to a successful result; a failure (no leader, a timeout) stays the failure's error. */
export function onResult(answer: (res: KvResult) => Reply): (res: KvResponse) => Reply {
  return (res) => (res.type === 'failure' || res.type === 'array' || res.type === 'range' ? toReply(res) : answer(res));
}

/** A write, answered by `answer`. */
export function write(_session: Session, w: KvClientWrite, answer: (res: KvResponse) => Reply = toReply): Planned {
  return { request: { kind: 'write', write: w }, answer };
}

/** A linearizable read. */
export function read(
  op: KvReadOp,
  keys: Buffer[],
  answer: (res: KvResponse) => Reply = toReply,
  args?: Uint8Array[],
): Planned {
  return { request: args === undefined ? { kind: 'read', op, keys } : { kind: 'read', op, keys, args }, answer };
}

/** Whether `session` may send multi-key commands and transactions spanning slots (see `Session.crossSlot`). */
export function crossSlotAllowed(session: Session): boolean {
  return session.crossSlot ?? !session.cluster;
}

/** What begins the exactly-once session id of every RESP connection (see {@link isConnectionSession}). */
export const RESP_SESSION_PREFIX = 'resp:';

/**
 * Whether `session` is a RESP connection's: the node numbers its writes and
 * nobody sends one of them again once answered (a client that reconnects gets
 * a new session), so a write of it may share an entry in another session.
 */
export function isConnectionSession(session: ClientSession): boolean {
  return session.clientId.startsWith(RESP_SESSION_PREFIX);
}

/** A new connection's session on `server`, with `clientId` as its exactly-once session id. */
export function newSession(server: ServerState, clientId: string): Session {
  return {
    id: server.clients.nextId(),
    name: '',
    closing: false,
    writes: { clientId, seq: 0, lowWater: 0 },
    proto: 2,
    lastCommand: '',
    server,
    multi: undefined,
    watched: [],
    watching: 0,
    cluster: false,
    user: 'default',
    authenticated: server.acl === undefined || !server.acl.authRequired,
  };
}
