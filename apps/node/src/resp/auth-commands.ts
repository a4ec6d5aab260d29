import { type Acl, mayAccess, mayRun, runsEverything } from '../auth.js';
import { COMMAND_DOCS } from './command-docs.js';
import type { CommandSpec } from './commands.js';
import type { Session } from './plan.js';
import { OK, type Reply, errorReply } from './reply.js';

export const NOAUTH = errorReply('NOAUTH Authentication required.');
export const WRONGPASS = errorReply('WRONGPASS invalid username-password pair or user is disabled.');
const NO_DEFAULT_PASSWORD = errorReply(
  'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
);

/** Commands a connection may run before it authenticates (Redis: AUTH, HELLO with AUTH, QUIT). */
const BEFORE_AUTH = new Set(['auth', 'hello', 'quit']);

/**
 * Why `session` may not run `name` on `keys`, as Redis 7 answers it
 * (NOAUTH, NOPERM), or undefined when it may.
 */
export function refusal(session: Session, name: string, keys: readonly Uint8Array[]): Reply | undefined {
  const acl = session.server.acl;
  if (acl === undefined) return undefined;
  if (!session.authenticated) return BEFORE_AUTH.has(name) ? undefined : NOAUTH;
  const user = acl.users.get(session.user);
  if (BEFORE_AUTH.has(name)) return undefined;
  // Every command of every connection comes here: a user of every command is let through without its class.
  if (
    user === undefined ||
    !user.enabled ||
    (!runsEverything(user) && !mayRun(user, { name, flags: COMMAND_DOCS[name]?.flags ?? [] }))
  ) {
    return errorReply(`NOPERM User ${session.user} has no permissions to run the '${name}' command`);
  }
  if (keys.length > 0 && !mayAccess(user, keys)) return errorReply('NOPERM No permissions to access a key');
  return undefined;
}

/** Authenticates `session` as `user`; the reply of AUTH (and of HELLO's AUTH option when it fails). */
export function authenticate(session: Session, user: string | undefined, password: Buffer): Reply {
  const acl = session.server.acl;
  if (user === undefined && (acl === undefined || !acl.authRequired)) return NO_DEFAULT_PASSWORD;
  if (acl === undefined) return user === 'default' ? OK : WRONGPASS;
  const found = acl.authenticate(user ?? 'default', password);
  if (found === undefined) return WRONGPASS;
  session.user = found.name;
  session.authenticated = true;
  return OK;
}

const bulk = (s: string): Reply => ({ t: 'bulk', v: Buffer.from(s) });

function aclOf(session: Session): Acl | undefined {
  return session.server.acl;
}

function acl(args: Buffer[], _api: unknown, session: Session): Reply {
  const sub = args[1]!.toString().toLowerCase();
  const a = aclOf(session);
  const wrongArgs = errorReply(`ERR wrong number of arguments for 'acl|${sub}' command`);
  switch (sub) {
    case 'whoami':
      return args.length === 2 ? bulk(session.user) : wrongArgs;
    case 'users':
      if (args.length !== 2) return wrongArgs;
      return { t: 'array', items: [...(a?.users.keys() ?? ['default'])].sort().map(bulk) };
    case 'list':
      if (args.length !== 2) return wrongArgs;
      if (a === undefined) return { t: 'array', items: [bulk('user default on nopass ~* &* +@all')] };
      return {
        t: 'array',
        items: [...a.users.values()].sort((x, y) => x.name.localeCompare(y.name)).map((u) => bulk(a.describe(u))),
      };
    case 'setuser': {
      if (args.length < 3) return wrongArgs;
      if (a === undefined)
        return errorReply('ERR ACL users are not enabled on this node (start it with security.users or --requirepass)');
      const err = a.setUser(
        args[2]!.toString(),
        args.slice(3).map((r) => r.toString()),
      );
      return err === undefined ? OK : errorReply(err);
    }
    case 'deluser':
      if (args.length < 3) return wrongArgs;
      if (args.slice(2).some((n) => n.toString() === 'default'))
        return errorReply("ERR The 'default' user cannot be removed");
      if (a === undefined) return { t: 'int', n: 0 };
      return { t: 'int', n: a.delUsers(args.slice(2).map((n) => n.toString())) };
    default:
      return errorReply(`ERR unknown subcommand '${args[1]!.toString()}'. Try ACL HELP.`);
  }
}

/** AUTH and ACL (WHOAMI, USERS, LIST, SETUSER, DELUSER). */
export const AUTH_COMMANDS: Record<string, CommandSpec> = {
  auth: {
    arity: -2,
    run: (args, _api, session) => {
      if (args.length > 3) return errorReply('ERR syntax error');
      return args.length === 2
        ? authenticate(session, undefined, args[1]!)
        : authenticate(session, args[1]!.toString(), args[2]!);
    },
  },
  acl: { arity: -2, run: acl },
};
