import type {
  ClientSession,
  ExpireFlag,
  Expiry,
  KvClientRequest,
  KvClientWrite,
  KvReadOp,
  KvResponse,
} from '@cohort/kv';
import type { KvApi } from '../kv-api.js';
import { NIL, OK, type Reply, errorReply } from './reply.js';

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
}

/**
 * What a command comes to: its reply at once (PING, a syntax error, CLIENT
 * SETNAME), or a request for the KV service and how its answer becomes the
 * reply.
 */
export type Planned = { reply: Reply } | { request: KvClientRequest; answer: (res: KvResponse) => Reply };

type Handler = (args: Buffer[], api: KvApi, session: Session) => Reply | Planned;

interface Spec {
  /** Redis arity: n > 0 exactly n words (command included), n < 0 at least -n. */
  arity: number;
  run: Handler;
}

const SYNTAX = errorReply('ERR syntax error');
const NOT_INTEGER = errorReply('ERR value is not an integer or out of range');

/** A KV answer as a RESP reply. */
export function toReply(res: KvResponse): Reply {
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
    case 'array':
      return { t: 'array', items: res.values.map((v) => ({ t: 'bulk', v })) };
    case 'failure':
      // The first word of a RESP error is its code, as in `-NOT_LEADER ...`.
      return errorReply(`${res.code} ${res.message}`);
    case 'cond':
    case 'range':
      // Answers of the HTTP API's conditional writes and range reads, which no RESP command sends.
      return errorReply(`ERR ${res.type} answers have no RESP form`);
    default: {
      const never: never = res;
      throw new Error(`unknown response ${String(never)}`);
    }
  }
}

/** `write` as the connection's next write in its session. */
function write(_api: KvApi, session: Session, write: KvClientWrite): Planned {
  const s = session.writes;
  s.seq++;
  return { request: { kind: 'write', write, session: { ...s } }, answer: toReply };
}

function parseInteger(arg: Buffer): bigint | undefined {
  const s = arg.toString('latin1');
  if (!/^-?(0|[1-9][0-9]{0,18})$/.test(s)) return undefined;
  const n = BigInt(s);
  return n >= -(2n ** 63n) && n < 2n ** 63n ? n : undefined;
}

function incrBy(sign: bigint, fixed?: bigint): Handler {
  return (args, api, session) => {
    const delta = fixed ?? parseInteger(args[2]!);
    if (delta === undefined) return NOT_INTEGER;
    return write(api, session, { op: 'incr', key: args[1]!, delta: sign * delta });
  };
}

const INVALID_SET_EXPIRE = errorReply("ERR invalid expire time in 'set' command");

function setCommand(args: Buffer[], api: KvApi, session: Session): Reply | Planned {
  let condition: 'always' | 'nx' | 'xx' = 'always';
  let expiry: Expiry = { kind: 'none' };
  let keepTtl = false;
  let returnOld = false;
  for (let i = 3; i < args.length; i++) {
    const opt = args[i]!.toString('latin1').toUpperCase();
    if (opt === 'NX' && condition === 'always') condition = 'nx';
    else if (opt === 'XX' && condition === 'always') condition = 'xx';
    else if (opt === 'GET') returnOld = true;
    else if (opt === 'KEEPTTL' && expiry.kind === 'none' && !keepTtl) keepTtl = true;
    else if (['EX', 'PX', 'EXAT', 'PXAT'].includes(opt) && expiry.kind === 'none' && !keepTtl && i + 1 < args.length) {
      const n = parseInteger(args[++i]!);
      if (n === undefined) return NOT_INTEGER;
      // Redis 7: a time of 0 or less, or one whose milliseconds overflow, is an invalid expire time.
      if (n <= 0n) return INVALID_SET_EXPIRE;
      const ms = opt === 'EX' || opt === 'EXAT' ? n * 1000n : n;
      if (ms > BigInt(Number.MAX_SAFE_INTEGER)) return INVALID_SET_EXPIRE;
      expiry = opt === 'EX' || opt === 'PX' ? { kind: 'in', ms: Number(ms) } : { kind: 'at', ms: Number(ms) };
    } else return SYNTAX;
  }
  return write(api, session, {
    op: 'set',
    key: args[1]!,
    value: args[2]!,
    condition,
    expiry: keepTtl ? { kind: 'keep' } : expiry,
    returnOld,
  });
}

/**
 * EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT with Redis 7's NX, XX, GT and LT:
 * `unit` is the milliseconds of one unit, `absolute` whether the time is a
 * Unix time rather than a time from now.
 */
function expireCommand(name: string, unit: 1n | 1000n, absolute: boolean): Handler {
  return (args, api, session) => {
    // Redis 7 reads the options before the time.
    const seen = new Set<ExpireFlag>();
    for (const arg of args.slice(3)) {
      const opt = arg.toString('latin1').toUpperCase();
      const flag = ({ NX: 'nx', XX: 'xx', GT: 'gt', LT: 'lt' } as const)[opt as 'NX' | 'XX' | 'GT' | 'LT'];
      if (flag === undefined) return errorReply(`ERR Unsupported option ${arg.toString()}`);
      seen.add(flag);
    }
    if (seen.has('nx') && seen.size > 1) {
      return errorReply('ERR NX and XX, GT or LT options at the same time are not compatible');
    }
    if (seen.has('gt') && seen.has('lt'))
      return errorReply('ERR GT and LT options at the same time are not compatible');
    // GT already implies XX (a key without expiry counts as an infinite deadline); XX with LT needs both checks.
    if (seen.has('xx') && seen.has('lt')) return errorReply('ERR XX and LT together are not supported by this server');
    const flag: ExpireFlag = seen.has('gt') ? 'gt' : ([...seen][0] ?? 'always');
    const n = parseInteger(args[2]!);
    if (n === undefined) return NOT_INTEGER;
    const ms = n * unit;
    // Redis 7: a time whose milliseconds overflow is an invalid expire time (the bound here: a safe JS integer).
    if (ms > BigInt(Number.MAX_SAFE_INTEGER) || ms < -BigInt(Number.MAX_SAFE_INTEGER)) {
      return errorReply(`ERR invalid expire time in '${name}' command`);
    }
    return write(api, session, {
      op: 'expire',
      key: args[1]!,
      deadline: { kind: absolute ? 'at' : 'in', ms: Number(ms) },
      flag,
      command: name,
    });
  };
}

function read(op: KvReadOp, keys: Buffer[], answer: (res: KvResponse) => Reply = toReply): Planned {
  return { request: { kind: 'read', op, keys }, answer };
}

function info(api: KvApi): Reply {
  const s = api.status();
  const lines = [
    '# Server',
    'redis_version:7.0.0',
    'cohort_version:0.1.0',
    `cohort_node_id:${s.id}`,
    '',
    '# Persistence',
    'loading:0',
    '',
    '# Replication',
    `role:${s.role === 'leader' ? 'master' : 'slave'}`,
    `raft_role:${s.role}`,
    `raft_leader:${s.leader}`,
    `raft_term:${s.term}`,
    `raft_commit_index:${s.commit}`,
    `raft_applied_index:${s.applied}`,
    '',
  ];
  return { t: 'bulk', v: lines.join('\r\n') };
}

const COMMANDS: Record<string, Spec> = {
  ping: {
    arity: -1,
    run: (args) =>
      args.length > 2
        ? errorReply("ERR wrong number of arguments for 'ping' command")
        : args[1]
          ? { t: 'bulk', v: args[1] }
          : { t: 'simple', s: 'PONG' },
  },
  echo: { arity: 2, run: (args) => ({ t: 'bulk', v: args[1]! }) },
  get: { arity: 2, run: (args) => read('get', [args[1]!]) },
  mget: { arity: -2, run: (args) => read('mget', args.slice(1)) },
  exists: { arity: -2, run: (args) => read('exists', args.slice(1)) },
  pttl: { arity: 2, run: (args) => read('pttl', [args[1]!]) },
  ttl: {
    arity: 2,
    run: (args) =>
      read('pttl', [args[1]!], (res) => {
        const r = toReply(res);
        if (r.t !== 'int' || Number(r.n) < 0) return r;
        return { t: 'int', n: Math.round(Number(r.n) / 1000) };
      }),
  },
  set: { arity: -3, run: setCommand },
  del: { arity: -2, run: (args, api, session) => write(api, session, { op: 'del', keys: args.slice(1) }) },
  mset: {
    arity: -3,
    run: (args, api, session) => {
      if (args.length % 2 === 0) return errorReply("ERR wrong number of arguments for 'mset' command");
      const keys = args.filter((_, i) => i % 2 === 1);
      const values = args.filter((_, i) => i > 0 && i % 2 === 0);
      return write(api, session, { op: 'mset', keys, values });
    },
  },
  expire: { arity: -3, run: expireCommand('expire', 1000n, false) },
  pexpire: { arity: -3, run: expireCommand('pexpire', 1n, false) },
  expireat: { arity: -3, run: expireCommand('expireat', 1000n, true) },
  pexpireat: { arity: -3, run: expireCommand('pexpireat', 1n, true) },
  persist: { arity: 2, run: (args, api, session) => write(api, session, { op: 'persist', key: args[1]! }) },
  incr: { arity: 2, run: incrBy(1n, 1n) },
  decr: { arity: 2, run: incrBy(-1n, 1n) },
  incrby: { arity: 3, run: incrBy(1n) },
  decrby: { arity: 3, run: incrBy(-1n) },
  // redis-cli asks for command docs at start; an empty list keeps it happy.
  command: { arity: -1, run: () => ({ t: 'array', items: [] }) },
  quit: {
    arity: -1,
    run: (_args, _api, session) => {
      session.closing = true;
      return OK;
    },
  },
  select: { arity: 2, run: (args) => (args[1]!.toString() === '0' ? OK : errorReply('ERR DB index is out of range')) },
  hello: {
    arity: -1,
    run: (args, api) => {
      const version = args[1]?.toString();
      if (version !== undefined && version !== '2')
        return errorReply('NOPROTO sorry, this protocol version is not supported');
      const s = api.status();
      const pairs: [string, Reply][] = [
        ['server', { t: 'bulk', v: 'cohort' }],
        ['version', { t: 'bulk', v: '0.1.0' }],
        ['proto', { t: 'int', n: 2 }],
        ['id', { t: 'bulk', v: s.id }],
        ['mode', { t: 'bulk', v: 'standalone' }],
        ['role', { t: 'bulk', v: s.role === 'leader' ? 'master' : 'replica' }],
        ['modules', { t: 'array', items: [] }],
      ];
      return { t: 'array', items: pairs.flatMap(([k, v]) => [{ t: 'bulk', v: k }, v]) };
    },
  },
  client: {
    arity: -2,
    run: (args, _api, session) => {
      const sub = args[1]!.toString().toLowerCase();
      if (sub === 'setname' && args.length === 3) {
        session.name = args[2]!.toString();
        return OK;
      }
      if (sub === 'getname') return session.name ? { t: 'bulk', v: session.name } : NIL;
      if (sub === 'setinfo' || sub === 'no-evict' || sub === 'no-touch') return OK;
      return errorReply(`ERR unknown subcommand '${sub}'. Try CLIENT HELP.`);
    },
  },
  info: { arity: -1, run: (_args, api) => info(api) },
};

/** The names of the commands this server answers. */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMANDS);

/**
 * What one command comes to (see {@link Planned}). Commands are planned in
 * the connection's order: a write takes its session's next sequence number
 * here, and QUIT or CLIENT SETNAME change the session here. Never throws:
 * a bad command plans its error reply.
 */
export function planCommand(args: Buffer[], api: KvApi, session: Session): Planned {
  const name = args[0]!.toString().toLowerCase();
  const spec = COMMANDS[name];
  if (spec === undefined) {
    const rest = args
      .slice(1, 21)
      .map((a) => `'${a.toString().slice(0, 128)}' `)
      .join('');
    return {
      reply: errorReply(
        `ERR unknown command '${args[0]!.toString().slice(0, 128)}', with args beginning with: ${rest}`,
      ),
    };
  }
  if ((spec.arity > 0 && args.length !== spec.arity) || (spec.arity < 0 && args.length < -spec.arity)) {
    return { reply: errorReply(`ERR wrong number of arguments for '${name}' command`) };
  }
  try {
    const planned = spec.run(args, api, session);
    return 't' in planned ? { reply: planned } : planned;
  } catch (err) {
    return { reply: errorOf(err) };
  }
}

/** An exception as an error reply: its code word when it has one. */
export function errorOf(err: unknown): Reply {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'ERR';
  return errorReply(`${code} ${String(e.message ?? err)}`);
}
