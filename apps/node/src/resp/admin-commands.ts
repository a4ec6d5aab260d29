import { globMatch } from '@cohort/kv';
import type { KvApi } from '../kv-api.js';
import { NOT_INTEGER, SYNTAX, parseInteger, word } from './args.js';
import { authenticate } from './auth-commands.js';
import { clientLine } from './clients.js';
import { COMMAND_DOCS } from './command-docs.js';
import { type Handler, type Session, crossSlotAllowed } from './plan.js';
import { NIL, OK, type Reply, errorReply } from './reply.js';

type Spec = { arity: number; run: Handler; control?: boolean };

/** The version Cohort's RESP front end answers as (HELLO, INFO): the Redis it is tested against. */
export const REDIS_VERSION = '7.0.15';

const bulk = (v: string | Uint8Array): Reply => ({ t: 'bulk', v });
const int = (n: number | bigint): Reply => ({ t: 'int', n });

/**
 * A container command (CLIENT, COMMAND, CONFIG): its subcommands with their
 * own arity, errors worded as Redis 7 words them (`'client|setname'`).
 */
function container(name: string, subs: Record<string, { arity: number; run: Handler }>): Handler {
  return (args, api, session) => {
    const sub = args[1]!.toString();
    const spec = Object.hasOwn(subs, sub.toLowerCase()) ? subs[sub.toLowerCase()] : undefined;
    if (spec === undefined) return errorReply(`ERR unknown subcommand '${sub}'. Try ${name.toUpperCase()} HELP.`);
    if ((spec.arity > 0 && args.length !== spec.arity) || (spec.arity < 0 && args.length < -spec.arity)) {
      return errorReply(`ERR wrong number of arguments for '${name}|${sub.toLowerCase()}' command`);
    }
    return spec.run(args, api, session);
  };
}

/** Redis: a client name is printable ASCII without spaces. */
function validName(name: Buffer): boolean {
  return name.every((b) => b > 32 && b < 127);
}

const BAD_NAME = errorReply('ERR Client names cannot contain spaces, newlines or special characters.');

function hello(args: Buffer[], api: KvApi, session: Session): Reply {
  let proto = session.proto;
  let name: Buffer | undefined;
  if (args.length >= 2) {
    const v = parseInteger(args[1]!);
    if (v === undefined) return errorReply('ERR Protocol version is not an integer or out of range');
    if (v < 2n || v > 3n) return errorReply('NOPROTO unsupported protocol version');
    proto = Number(v) as 2 | 3;
  }
  for (let i = 2; i < args.length; i++) {
    const opt = word(args[i]);
    const more = args.length - 1 - i;
    if (opt === 'AUTH' && more >= 2) {
      const auth = authenticate(session, args[i + 1]!.toString(), args[i + 2]!);
      if (auth.t === 'error') return auth;
      i += 2;
    } else if (opt === 'SETNAME' && more >= 1) {
      name = args[++i]!;
      if (!validName(name) && name.length > 0) return BAD_NAME;
    } else return errorReply(`ERR Syntax error in HELLO option '${args[i]!.toString()}'`);
  }
  if (!session.authenticated) {
    return errorReply(
      'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
    );
  }
  if (name !== undefined) session.name = name.toString();
  session.proto = proto;
  const s = api.status();
  return {
    t: 'map',
    entries: [
      [bulk('server'), bulk('redis')],
      [bulk('version'), bulk(REDIS_VERSION)],
      [bulk('proto'), int(proto)],
      [bulk('id'), int(session.id)],
      [bulk('mode'), bulk('standalone')],
      [bulk('role'), bulk(s.role === 'leader' ? 'master' : 'replica')],
      [bulk('modules'), { t: 'array', items: [] }],
    ],
  };
}

function commandInfo(name: string): Reply {
  const d = COMMAND_DOCS[name];
  const spec = ADMIN_TABLE_ARITY(name);
  if (d === undefined || spec === undefined) return NIL;
  const category = d.flags.includes('write') ? '@write' : d.flags.includes('readonly') ? '@read' : '@connection';
  return {
    t: 'array',
    items: [
      bulk(name),
      int(spec),
      { t: 'set', items: d.flags.map((s) => ({ t: 'simple', s })) },
      int(d.keys[0]),
      int(d.keys[1]),
      int(d.keys[2]),
      { t: 'set', items: [category, `@${d.group}`].map((s) => ({ t: 'simple', s })) },
      { t: 'set', items: [] },
      { t: 'array', items: [] },
      { t: 'array', items: [] },
    ],
  };
}

function commandDocs(name: string): [Reply, Reply] | undefined {
  const d = COMMAND_DOCS[name];
  if (d === undefined) return undefined;
  return [
    bulk(name),
    {
      t: 'map',
      entries: [
        [bulk('summary'), bulk(d.summary)],
        [bulk('since'), bulk(d.since)],
        [bulk('group'), bulk(d.group)],
      ],
    },
  ];
}

/** The arity of a command of the table (set by the command module once the table is built). */
let ADMIN_TABLE_ARITY: (name: string) => number | undefined = () => undefined;

/** Lets COMMAND describe the whole table: `arity` answers a command's arity, `names` lists them. */
export function describeCommands(arity: (name: string) => number | undefined, names: () => readonly string[]): void {
  ADMIN_TABLE_ARITY = arity;
  COMMAND_NAMES_OF = names;
}
let COMMAND_NAMES_OF: () => readonly string[] = () => [];

const allInfo = (): Reply => ({ t: 'array', items: COMMAND_NAMES_OF().map(commandInfo) });

const COMMAND_SUBS: Record<string, { arity: number; run: Handler }> = {
  count: { arity: 2, run: () => int(COMMAND_NAMES_OF().length) },
  info: {
    arity: -2,
    run: (args) =>
      args.length === 2
        ? allInfo()
        : { t: 'array', items: args.slice(2).map((a) => commandInfo(a.toString().toLowerCase())) },
  },
  docs: {
    arity: -2,
    run: (args) => {
      const names = args.length === 2 ? COMMAND_NAMES_OF() : args.slice(2).map((a) => a.toString().toLowerCase());
      const entries = names.map(commandDocs).filter((e): e is [Reply, Reply] => e !== undefined);
      return { t: 'map', entries };
    },
  },
};

function clientKill(args: Buffer[], session: Session): Reply {
  const clients = session.server.clients;
  if (args.length === 3) {
    // The old form: CLIENT KILL addr:port.
    const addr = args[2]!.toString();
    const target = [...clients.byId.values()].find((c) => c.addr === addr);
    if (!target) return errorReply('ERR No such client');
    target.kill();
    return OK;
  }
  let id: number | undefined;
  let addr: string | undefined;
  let laddr: string | undefined;
  let skipMe = true;
  for (let i = 2; i < args.length; i += 2) {
    const opt = word(args[i]);
    const value = args[i + 1];
    if (value === undefined) return SYNTAX;
    if (opt === 'ID') {
      const n = parseInteger(value);
      if (n === undefined || n <= 0n) return errorReply('ERR client-id should be greater than 0');
      id = Number(n);
    } else if (opt === 'ADDR') addr = value.toString();
    else if (opt === 'LADDR') laddr = value.toString();
    else if (opt === 'SKIPME') {
      const v = word(value);
      if (v !== 'YES' && v !== 'NO') return SYNTAX;
      skipMe = v === 'YES';
    } else if (opt === 'TYPE') {
      if (!['NORMAL', 'MASTER', 'REPLICA', 'SLAVE', 'PUBSUB'].includes(word(value))) {
        return errorReply(`ERR Unknown client type '${value.toString()}'`);
      }
      // Every Cohort client is a normal one.
      if (word(value) !== 'NORMAL') return int(0);
    } else if (opt === 'USER') {
      if (value.toString() !== 'default') return errorReply(`ERR No such user '${value.toString()}'`);
    } else return SYNTAX;
  }
  let killed = 0;
  for (const c of [...clients.byId.values()]) {
    if (id !== undefined && c.session.id !== id) continue;
    if (addr !== undefined && c.addr !== addr) continue;
    if (laddr !== undefined && c.laddr !== laddr) continue;
    if (skipMe && c.session === session) continue;
    c.kill();
    killed++;
  }
  return int(killed);
}

const CLIENT_SUBS: Record<string, { arity: number; run: Handler }> = {
  id: { arity: 2, run: (_args, _api, session) => int(session.id) },
  getname: { arity: 2, run: (_args, _api, session) => (session.name ? bulk(session.name) : NIL) },
  setname: {
    arity: 3,
    run: (args, _api, session) => {
      if (!validName(args[2]!)) return BAD_NAME;
      session.name = args[2]!.toString();
      return OK;
    },
  },
  list: {
    arity: -2,
    run: (args, _api, session) => {
      let ids: Set<number> | undefined;
      let type = 'NORMAL';
      for (let i = 2; i < args.length; i++) {
        const opt = word(args[i]);
        if (opt === 'TYPE' && i + 1 < args.length) {
          type = word(args[++i]);
          if (!['NORMAL', 'MASTER', 'REPLICA', 'SLAVE', 'PUBSUB'].includes(type)) {
            return errorReply(`ERR Unknown client type '${args[i]!.toString()}'`);
          }
        } else if (opt === 'ID' && i + 1 < args.length) {
          ids = new Set();
          for (i++; i < args.length; i++) {
            const n = parseInteger(args[i]!);
            if (n === undefined || n <= 0n) return errorReply('ERR Invalid client ID');
            ids.add(Number(n));
          }
        } else return SYNTAX;
      }
      const now = Date.now();
      const lines = [...session.server.clients.byId.values()]
        .filter((c) => type === 'NORMAL' && (ids === undefined || ids.has(c.session.id)))
        .map((c) => `${clientLine(c, now)}\n`);
      return { t: 'verbatim', format: 'txt', s: lines.join('') };
    },
  },
  kill: { arity: -3, run: (args, _api, session) => clientKill(args, session) },
  // Cohort's own: whether this connection's multi-key commands and transactions may span slots (see plan.ts).
  crossslot: {
    arity: -2,
    run: (args, _api, session) => {
      if (args.length === 2) return bulk(crossSlotAllowed(session) ? 'allow' : 'refuse');
      if (args.length !== 3) return SYNTAX;
      const mode = word(args[2]);
      if (mode === 'ALLOW') session.crossSlot = true;
      else if (mode === 'REFUSE') session.crossSlot = false;
      else if (mode === 'DEFAULT') session.crossSlot = undefined;
      else return errorReply('ERR CLIENT CROSSSLOT takes ALLOW, REFUSE or DEFAULT');
      return OK;
    },
  },
  // Accepted for client libraries that send them on connect; Cohort keeps no such state.
  setinfo: { arity: 4, run: () => OK },
  'no-evict': { arity: 3, run: () => OK },
  'no-touch': { arity: 3, run: () => OK },
};

const CONFIG_SUBS: Record<string, { arity: number; run: Handler }> = {
  get: {
    arity: -3,
    run: (args, _api, session) => {
      const config = session.server.config;
      const names = Object.keys(config).filter((name) =>
        args.slice(2).some((p) => globMatch(Buffer.from(p.toString().toLowerCase()), Buffer.from(name))),
      );
      return { t: 'map', entries: names.map((n) => [bulk(n), bulk(config[n]!)]) };
    },
  },
};

const INFO_SECTIONS = ['server', 'clients', 'persistence', 'replication', 'keyspace'] as const;

function infoSection(name: (typeof INFO_SECTIONS)[number], api: KvApi, session: Session): string[] {
  const s = api.status();
  const uptime = Math.floor((Date.now() - session.server.startedAt) / 1000);
  switch (name) {
    case 'server':
      return [
        '# Server',
        `redis_version:${REDIS_VERSION}`,
        'redis_mode:standalone',
        `os:${process.platform} ${process.arch}`,
        'arch_bits:64',
        `process_id:${process.pid}`,
        `tcp_port:${session.server.config.port ?? ''}`,
        `uptime_in_seconds:${uptime}`,
        `uptime_in_days:${Math.floor(uptime / 86400)}`,
        'cohort_version:0.1.0',
        `cohort_node_id:${s.id}`,
      ];
    case 'clients':
      return ['# Clients', `connected_clients:${session.server.clients.byId.size}`, 'blocked_clients:0'];
    case 'persistence': {
      // As Redis says a failed append-only write: `err` while the disk is full (writes refused, reads served).
      const full = s.degraded?.includes('disk-full') === true;
      return [
        '# Persistence',
        'loading:0',
        `aof_last_write_status:${full ? 'err' : 'ok'}`,
        `cohort_degraded:${(s.degraded ?? []).join(',')}`,
      ];
    }
    case 'replication':
      return [
        '# Replication',
        `role:${s.role === 'leader' ? 'master' : 'slave'}`,
        `raft_role:${s.role}`,
        `raft_leader:${s.leader}`,
        `raft_term:${s.term}`,
        `raft_commit_index:${s.commit}`,
        `raft_applied_index:${s.applied}`,
      ];
    case 'keyspace':
      // Rows held, expired ones not yet swept included (as Redis counts keys not yet evicted).
      return ['# Keyspace', ...(s.keys ? [`db0:keys=${s.keys}`] : [])];
    default: {
      const never: never = name;
      throw new Error(`unknown section ${String(never)}`);
    }
  }
}

/** INFO [section ...]: no section, `default`, `all` or `everything` give every section Cohort has. */
function info(args: Buffer[], api: KvApi, session: Session): Reply {
  const asked = args.slice(1).map((a) => a.toString().toLowerCase());
  const every = asked.length === 0 || asked.some((a) => a === 'default' || a === 'all' || a === 'everything');
  const sections = INFO_SECTIONS.filter((s) => every || asked.includes(s));
  const text = sections.map((s) => `${infoSection(s, api, session).join('\r\n')}\r\n`).join('\r\n');
  return { t: 'verbatim', format: 'txt', s: text };
}

/** Connection and server commands: name, Redis arity, handler; `control` ones are never queued by MULTI. */
export const ADMIN_COMMANDS: Record<string, Spec> = {
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
  command: {
    arity: -1,
    run: (args, api, session) =>
      args.length === 1 ? allInfo() : container('command', COMMAND_SUBS)(args, api, session),
  },
  quit: {
    arity: -1,
    control: true,
    run: (_args, _api, session) => {
      session.closing = true;
      return OK;
    },
  },
  select: {
    arity: 2,
    run: (args) => {
      const db = parseInteger(args[1]!);
      if (db === undefined || db > 2147483647n || db < -2147483648n) return NOT_INTEGER;
      // One database, as in Redis Cluster.
      return db === 0n ? OK : errorReply('ERR DB index is out of range');
    },
  },
  hello: { arity: -1, run: hello },
  client: { arity: -2, run: container('client', CLIENT_SUBS) },
  config: { arity: -2, run: container('config', CONFIG_SUBS) },
  info: { arity: -1, run: info },
};
