import type { KvApi } from '../kv-api.js';
import { NOT_INTEGER, parseInteger } from './args.js';
import type { Handler } from './plan.js';
import { NIL, OK, type Reply, errorReply } from './reply.js';

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

/** Connection and server commands: name, Redis arity, handler; `control` ones are never queued by MULTI. */
export const ADMIN_COMMANDS: Record<string, { arity: number; run: Handler; control?: boolean }> = {
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
  // redis-cli asks for command docs at start; an empty list keeps it happy.
  command: { arity: -1, run: () => ({ t: 'array', items: [] }) },
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
      return errorReply(`ERR unknown subcommand '${args[1]!.toString()}'. Try CLIENT HELP.`);
    },
  },
  info: { arity: -1, run: (_args, api) => info(api) },
};
