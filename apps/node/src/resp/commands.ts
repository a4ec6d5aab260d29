import { CROSSSLOT_MESSAGE, type KvClientWrite, type KvResponse, routeKeys } from '@cohort/kv';
import type { KvApi } from '../kv-api.js';
import { ADMIN_COMMANDS, describeCommands } from './admin-commands.js';
import { AUTH_COMMANDS, refusal } from './auth-commands.js';
import { CLUSTER_COMMANDS } from './cluster-commands.js';
import { COMMAND_DOCS } from './command-docs.js';
import { HASH_COMMANDS } from './hash-commands.js';
import { KEYSPACE_COMMANDS } from './keyspace-commands.js';
import { LIST_COMMANDS } from './list-commands.js';
import { type Handler, type Planned, type Queued, type Session, crossSlotAllowed, toReply } from './plan.js';
import { READ_MODE_COMMANDS } from './read-modes.js';
import { NIL, OK, type Reply, errorReply } from './reply.js';
import { STRING_COMMANDS } from './string-commands.js';

export { type Planned, type Session, toReply } from './plan.js';

/** A command: its Redis arity (n words exactly, command included; -n at least n) and handler. */
export interface CommandSpec {
  arity: number;
  run: Handler;
  /** Answered at once even inside MULTI (EXEC, DISCARD, WATCH, ...): never queued. */
  control?: boolean;
}

const QUEUED: Reply = { t: 'simple', s: 'QUEUED' };

/** MULTI, EXEC, DISCARD, WATCH, UNWATCH (Redis 7's replies and errors). */
const TRANSACTION_COMMANDS: Record<string, CommandSpec> = {
  multi: {
    arity: 1,
    control: true,
    run: (_args, _api, session) => {
      if (session.multi) return errorReply('ERR MULTI calls can not be nested');
      session.multi = { queued: [], failed: false };
      return OK;
    },
  },
  discard: {
    arity: 1,
    control: true,
    run: (_args, _api, session) => {
      if (!session.multi) return errorReply('ERR DISCARD without MULTI');
      session.multi = undefined;
      session.watched = [];
      return OK;
    },
  },
  watch: {
    arity: -2,
    control: true,
    run: (args, _api, session) => {
      if (session.multi) return errorReply('ERR WATCH inside MULTI is not allowed');
      const keys = args.slice(1);
      session.watching++;
      return {
        request: { kind: 'read', op: 'revisions', keys },
        answer: (res) => {
          session.watching--;
          if (res.type !== 'array') return toReply(res);
          keys.forEach((key, i) => {
            if (!session.watched.some((w) => Buffer.compare(w.key, key) === 0)) {
              session.watched.push({ key, revision: Number(Buffer.from(res.values[i] ?? '0').toString()) });
            }
          });
          return OK;
        },
      };
    },
  },
  unwatch: {
    arity: 1,
    control: true,
    run: (_args, _api, session) => {
      session.watched = [];
      return OK;
    },
  },
  exec: { arity: 1, control: true, run: exec },
};

/**
 * EXEC: the queued commands as one replicated entry (one `exec` write in
 * the connection's session), so they apply atomically on every replica, or
 * EXECABORT when one was refused while queued. Each answer becomes the reply
 * its command would have had; a watched key that changed answers a nil array.
 */
function exec(_args: Buffer[], _api: KvApi, session: Session): Reply | Planned {
  const multi = session.multi;
  if (!multi) return errorReply('ERR EXEC without MULTI');
  const watch = session.watched;
  session.multi = undefined;
  session.watched = [];
  if (multi.failed) return errorReply('EXECABORT Transaction discarded because of previous errors.');
  const writes: KvClientWrite[] = [];
  for (const q of multi.queued) if ('write' in q) writes.push(q.write);
  if (writes.length === 0 && watch.length === 0) {
    return { t: 'array', items: multi.queued.map((q) => ('reply' in q ? q.reply : NIL)) };
  }
  return {
    request: { kind: 'write', write: { op: 'exec', writes, watch } },
    answer: (res: KvResponse): Reply => {
      if (res.type !== 'list') return toReply(res);
      if (res.items === null) return { t: 'array', items: null };
      let k = 0;
      return {
        t: 'array',
        items: multi.queued.map((q) => {
          if ('reply' in q) return q.reply;
          const r = res.items![k++]!;
          // A string or keyspace read's list is the array it answers outside EXEC; a hash or list command's is its reply.
          const valuesRead = q.write.op === 'read' && q.write.read !== 'collection';
          return q.answer(r.type === 'list' && valuesRead ? asArray(r.items ?? []) : r);
        }),
      };
    },
  };
}

/** A read's list of values inside an EXEC, as the array its command's answer takes outside one. */
function asArray(items: { type: string; value?: unknown }[]): KvResponse {
  return { type: 'array', values: items.map((r) => (r.type === 'bulk' ? (r.value as Uint8Array) : null)) };
}

const COMMANDS: Record<string, CommandSpec> = {
  ...STRING_COMMANDS,
  ...KEYSPACE_COMMANDS,
  ...HASH_COMMANDS,
  ...LIST_COMMANDS,
  ...READ_MODE_COMMANDS,
  ...TRANSACTION_COMMANDS,
  ...ADMIN_COMMANDS,
  ...CLUSTER_COMMANDS,
  ...AUTH_COMMANDS,
};

/** The names of the commands this server answers. */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMANDS);

/** The command table (COMMAND INFO and COMMAND DOCS read it). */
export function commandSpec(name: string): CommandSpec | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
}

describeCommands(
  (name) => commandSpec(name)?.arity,
  () => COMMAND_NAMES,
);

/** Commands that may block (outside MULTI): each runs in a batch of its own. */
const BLOCKING = new Set(['blpop', 'brpop', 'blmpop', 'blmove', 'brpoplpush']);

/**
 * Whether `args` must wait for the replies before it: an EXEC while a
 * WATCH's revisions are being read, or a command that may block.
 */
export function needsBarrier(args: Buffer[], session: Session): boolean {
  const name = args[0]!.toString('latin1').toLowerCase();
  return (session.watching > 0 && name === 'exec') || (BLOCKING.has(name) && !session.multi);
}

/** The keys of `args` by the command's key positions (COMMAND INFO's first, last, step); LMPOP's after numkeys. */
function commandKeys(name: string, args: Buffer[]): Buffer[] {
  if (name === 'lmpop' || name === 'blmpop') {
    const at = name === 'lmpop' ? 1 : 2;
    const n = Number(args[at]?.toString('latin1'));
    return Number.isSafeInteger(n) && n > 0 ? args.slice(at + 1, at + 1 + n) : [];
  }
  const doc = COMMAND_DOCS[name];
  if (doc === undefined || doc.keys[0] === 0) return [];
  const [first, lastSpec, step] = doc.keys;
  const last = lastSpec < 0 ? args.length + lastSpec : Math.min(lastSpec, args.length - 1);
  const keys: Buffer[] = [];
  for (let i = first; i <= last; i += step) keys.push(args[i]!);
  return keys;
}

/**
 * Multi-key commands whose keys may span slots on a connection allowed to
 * (see `crossSlotAllowed`): reads the node splits over the partitions and
 * merges, writes it runs as one transaction across the partitions.
 */
const CROSS_SLOT_COMMANDS = new Set(['mget', 'exists', 'watch', 'mset', 'msetnx', 'del', 'unlink']);

/**
 * Commands over the whole key space: a cluster-aware client (one that asked
 * for the slot map) gets this node's part, as from a Redis Cluster node, and
 * asks every node; a plain client gets the whole cluster's.
 */
const KEYSPACE_WIDE = new Set(['scan', 'keys', 'dbsize', 'randomkey', 'flushdb']);

/**
 * Multi-key commands whose keys may span partitions inside MULTI: a
 * transaction across partitions splits each into one per partition (MSETNX's
 * all-or-nothing check cannot be split).
 */
const SPLIT_IN_MULTI = new Set(['mget', 'exists', 'mset', 'del', 'unlink']);

/**
 * Why a command of a connection allowed to span slots may not, or undefined:
 * a command outside {@link CROSS_SLOT_COMMANDS} (RENAME, LMOVE, ...) keeps
 * its keys in one slot; inside MULTI a command outside
 * {@link SPLIT_IN_MULTI} keeps them in one partition (the transaction as a
 * whole may span several).
 */
function crossSlotRefusal(name: string, keys: Buffer[], session: Session): string | undefined {
  if (name === 'exec') return undefined;
  const own = routeKeys(keys, session.server.cluster?.slots);
  if (!('crossSlot' in own)) return undefined;
  if (!CROSS_SLOT_COMMANDS.has(name)) return CROSSSLOT_MESSAGE;
  if (session.multi && own.splits.length > 1 && !SPLIT_IN_MULTI.has(name)) {
    return `ERR ${name.toUpperCase()} inside MULTI has keys in ${own.splits.length} partitions; inside a transaction its keys must be in one partition (use a {hash tag}), while the transaction may span partitions`;
  }
  return undefined;
}

function refuse(session: Session, reply: Reply): Planned {
  // Redis: an error found while queueing aborts the transaction at EXEC.
  if (session.multi) session.multi.failed = true;
  return { reply };
}

/**
 * What one command comes to (see {@link Planned}). Commands are planned in
 * the connection's order: a write takes its session's next sequence number
 * here; inside MULTI a command is queued (its reply `QUEUED`) and runs at
 * EXEC. Never throws: a bad command plans its error reply.
 */
export function planCommand(args: Buffer[], api: KvApi, session: Session): Planned {
  const name = args[0]!.toString().toLowerCase();
  // ASKING holds for the one command after it (ASKING itself sets it again).
  const asking = session.asking === true;
  session.asking = false;
  const spec = commandSpec(name);
  session.lastCommand = spec === undefined ? session.lastCommand : name;
  if (spec === undefined) {
    const rest = args
      .slice(1, 21)
      .map((a) => `'${a.toString().slice(0, 128)}' `)
      .join('');
    return refuse(
      session,
      errorReply(`ERR unknown command '${args[0]!.toString().slice(0, 128)}', with args beginning with: ${rest}`),
    );
  }
  if ((spec.arity > 0 && args.length !== spec.arity) || (spec.arity < 0 && args.length < -spec.arity)) {
    const message = `wrong number of arguments for '${name}' command`;
    if (name === 'exec') {
      // Redis: an EXEC refused discards the transaction (if any) and says why.
      session.multi = undefined;
      session.watched = [];
      return { reply: errorReply(`EXECABORT Transaction discarded because of: ${message}`) };
    }
    return refuse(session, errorReply(`ERR ${message}`));
  }
  // Keys of a multi-key command or transaction share a slot, or span slots where the connection allows it.
  const keys = commandKeys(name, args);
  const denied = refusal(session, name, keys);
  if (denied !== undefined) return refuse(session, denied);
  const txKeys = session.multi && !spec.control ? (session.multi.keys ?? []) : [];
  const cluster = session.server.cluster;
  const route = routeKeys(
    name === 'exec' ? [...(session.multi?.keys ?? []), ...session.watched.map((w) => w.key)] : [...txKeys, ...keys],
    cluster?.slots,
  );
  if ('crossSlot' in route) {
    const crossing = crossSlotAllowed(session) ? crossSlotRefusal(name, keys, session) : CROSSSLOT_MESSAGE;
    if (crossing !== undefined) {
      if (name !== 'exec') return refuse(session, errorReply(crossing));
      session.multi = undefined;
      session.watched = [];
      return { reply: errorReply(`EXECABORT Transaction discarded because of: ${crossing}`) };
    }
  } else if (
    session.cluster &&
    cluster &&
    route.slot !== undefined &&
    name !== 'exec' &&
    !asking &&
    !(session.readOnly && COMMAND_DOCS[name]?.flags.includes('readonly'))
  ) {
    // A cluster-aware client goes to the partition's leader itself; after READONLY, its reads are this
    // replica's to serve (see read-modes.ts), as a Redis Cluster replica serves them.
    const to = cluster.redirect(route.group);
    if (typeof to === 'string') return refuse(session, errorReply(`MOVED ${route.slot} ${to}`));
    // This node leads but hands the leadership over: a one-time redirect to where it is going (the client
    // sends ASKING there, which serves it, forwarding it here until the transfer is done). Slots never
    // move between partitions, so the client's slot table stays right: MOVED would be wrong. Inside MULTI
    // the command is queued: EXEC reaches the new leader by forwarding.
    if (to !== undefined && !session.multi) return { reply: errorReply(`ASK ${route.slot} ${to.ask}`) };
  }
  if (session.multi && !spec.control) session.multi.keys = [...txKeys, ...keys];
  let planned: Planned;
  try {
    const p = spec.run(args, api, session);
    planned = 't' in p ? { reply: p } : p;
  } catch (err) {
    planned = { reply: errorOf(err) };
  }
  if (session.multi && !spec.control) {
    session.multi.queued.push(queued(planned));
    return { reply: QUEUED };
  }
  if (session.cluster && 'request' in planned && KEYSPACE_WIDE.has(name)) {
    planned = { ...planned, request: { ...planned.request, scope: 'node' } };
  }
  if ('request' in planned && planned.request.kind === 'write') {
    const s = session.writes;
    s.seq++;
    return { ...planned, request: { ...planned.request, session: { ...s } } };
  }
  return planned;
}

function queued(planned: Planned): Queued {
  if ('reply' in planned) return planned;
  const req = planned.request;
  if (req.kind === 'write') return { write: req.write, answer: planned.answer };
  // No RESP command queues a WATCH's revisions, a range or a transaction record read.
  const op = req.op as Exclude<typeof req.op, 'revisions' | 'range' | 'txnRecord'>;
  const read: KvClientWrite =
    req.args === undefined
      ? { op: 'read', read: op, keys: req.keys }
      : { op: 'read', read: op, keys: req.keys, args: req.args };
  return { write: read, answer: planned.answer };
}

/** An exception as an error reply: its code word when it has one. */
export function errorOf(err: unknown): Reply {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'ERR';
  return errorReply(`${code} ${String(e.message ?? err)}`);
}
