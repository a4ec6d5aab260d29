import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '@cohort/core';
import { globMatch } from '@cohort/kv';

/**
 * Users, their passwords and what they may run, as Redis 7's ACL holds them:
 * RESP clients authenticate with `AUTH [user] password`, HTTP clients with a
 * bearer token of a user. Passwords and tokens are kept as SHA-256 digests
 * only (Redis' `#<hex>` form); a user's commands are `+name`, `-name` and the
 * categories `@all`, `@read`, `@write`, `@admin` and `@dangerous`, its keys
 * glob patterns (`~app:*`).
 */
export interface AclUser {
  name: string;
  enabled: boolean;
  /** Authenticates with any password (the default user of a server without `requirepass`). */
  nopass: boolean;
  /** SHA-256 digests (hex) of the user's passwords. */
  passwords: Set<string>;
  /** SHA-256 digests (hex) of the user's HTTP bearer tokens. */
  tokens: Set<string>;
  /** The command rules in the order given (`+@all`, `-flushall`, ...), as ACL LIST prints them. */
  rules: string[];
  /** Key patterns the user may access; `*` for every key (`allkeys`). */
  keys: string[];
  /** Whether ACL LIST shows `&*` (allchannels) rather than `resetchannels`; Cohort has no Pub/Sub. */
  allChannels: boolean;
}

/** A user as the config file states it (`security.users[]`). */
export interface AclUserConfig {
  name: string;
  /** `on` unless false. */
  enabled?: boolean;
  /** Passwords: plain text, or `#<sha256 hex>`. */
  passwords?: string[];
  /** HTTP bearer tokens: plain text, or `#<sha256 hex>`. */
  tokens?: string[];
  /** Command rules, e.g. `["+@read", "+set"]`. @default ["+@all"] */
  commands?: string[];
  /** Key patterns, e.g. `["app:*"]`. @default ["*"] */
  keys?: string[];
}

/** Commands in the `@admin` and `@dangerous` categories (CONFIG, CLIENT KILL and the like, FLUSHALL). */
const ADMIN = new Set(['acl', 'config', 'client', 'debug', 'flushall', 'flushdb', 'shutdown', 'monitor', 'cluster']);
const DANGEROUS = new Set([...ADMIN, 'keys']);

/** What a command is, for the ACL: its name, its flags from the command table. */
export interface CommandClass {
  name: string;
  flags: readonly string[];
}

function inCategory(category: string, c: CommandClass): boolean {
  switch (category) {
    case 'all':
      return true;
    case 'read':
      return c.flags.includes('readonly');
    case 'write':
      return c.flags.includes('write');
    case 'admin':
      return ADMIN.has(c.name);
    case 'dangerous':
      return DANGEROUS.has(c.name);
    default:
      return false;
  }
}

const CATEGORIES = new Set(['all', 'read', 'write', 'admin', 'dangerous']);

/** The SHA-256 digest (hex) of a secret, as ACL LIST shows a password. */
export function digest(secret: string | Buffer): string {
  return createHash('sha256').update(secret).digest('hex');
}

function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

function secretDigest(s: string): string {
  return s.startsWith('#') && /^#[0-9a-f]{64}$/.test(s) ? s.slice(1) : digest(s);
}

/** The ACL of one node: its users by name. `default` always exists. */
export class Acl {
  readonly users = new Map<string, AclUser>();

  constructor(opts: { requirepass?: string; users?: AclUserConfig[] } = {}) {
    const def = newUser('default');
    def.enabled = true;
    def.allChannels = true;
    def.rules = ['+@all'];
    def.keys = ['*'];
    if (opts.requirepass !== undefined && opts.requirepass !== '') def.passwords.add(digest(opts.requirepass));
    else def.nopass = true;
    this.users.set('default', def);
    for (const u of opts.users ?? []) {
      if (!/^[^\s]+$/.test(u.name)) throw new ConfigError(`security.users: '${u.name}' is not a valid user name`);
      const user = this.users.get(u.name) ?? newUser(u.name);
      user.enabled = u.enabled !== false;
      user.nopass = false;
      user.passwords = new Set((u.passwords ?? []).map(secretDigest));
      user.tokens = new Set((u.tokens ?? []).map(secretDigest));
      user.rules = [];
      for (const r of u.commands ?? ['+@all']) {
        const err = applyRule(user, r);
        if (err) throw new ConfigError(`security.users ${u.name}: ${err}`);
      }
      user.keys = [...(u.keys ?? ['*'])];
      this.users.set(u.name, user);
    }
  }

  /** Whether a connection must AUTH before running commands (the default user has a password or is off). */
  get authRequired(): boolean {
    const def = this.users.get('default')!;
    return !def.enabled || !def.nopass;
  }

  /** Whether any user has an HTTP token: the HTTP API then requires one. */
  get tokensRequired(): boolean {
    for (const u of this.users.values()) if (u.tokens.size > 0) return true;
    return false;
  }

  /** The user `name` if `password` is one of its passwords (or it is nopass) and it is on. */
  authenticate(name: string, password: Buffer): AclUser | undefined {
    const user = this.users.get(name);
    if (user === undefined || !user.enabled) return undefined;
    if (user.nopass) return user;
    const d = digest(password);
    for (const p of user.passwords) if (sameDigest(p, d)) return user;
    return undefined;
  }

  /** The user whose HTTP bearer token `token` is, if it is on. */
  byToken(token: string): AclUser | undefined {
    const d = digest(token);
    for (const u of this.users.values()) {
      if (!u.enabled) continue;
      for (const t of u.tokens) if (sameDigest(t, d)) return u;
    }
    return undefined;
  }

  /** ACL SETUSER: creates or changes `name` by Redis rules; returns the error text of the first bad rule. */
  setUser(name: string, rules: string[]): string | undefined {
    const existing = this.users.get(name);
    const user = existing ? cloneUser(existing) : newUser(name);
    for (const r of rules) {
      const err = applyRule(user, r);
      if (err) return `ERR Error in ACL SETUSER modifier '${r}': ${err}`;
    }
    this.users.set(name, user);
    return undefined;
  }

  /** ACL DELUSER: how many of `names` were deleted (`default` cannot be). */
  delUsers(names: string[]): number {
    let n = 0;
    for (const name of names) if (name !== 'default' && this.users.delete(name)) n++;
    return n;
  }

  /** ACL LIST's line for `user`, as Redis 7 prints it. */
  describe(user: AclUser): string {
    const parts = ['user', user.name, user.enabled ? 'on' : 'off'];
    if (user.nopass) parts.push('nopass');
    for (const p of user.passwords) parts.push(`#${p}`);
    if (user.keys.includes('*')) parts.push('~*');
    else for (const k of user.keys) parts.push(`~${k}`);
    parts.push(user.allChannels ? '&*' : 'resetchannels');
    parts.push(...(user.rules[0] === '+@all' ? user.rules : ['-@all', ...user.rules]));
    return parts.join(' ');
  }
}

/** Whether `user`'s rules are `+@all` alone (the default user's): every command, with nothing to work out. */
export function runsEverything(user: AclUser): boolean {
  return user.rules.length === 1 && user.rules[0] === '+@all';
}

/** Whether `user` may run command `c`: its rules, applied in order, last match wins. */
export function mayRun(user: AclUser, c: CommandClass): boolean {
  if (runsEverything(user)) return true;
  let allowed = false;
  for (const r of user.rules) {
    const plus = r[0] === '+';
    const body = r.slice(1).toLowerCase();
    if (body.startsWith('@') ? inCategory(body.slice(1), c) : body === c.name) allowed = plus;
  }
  return allowed;
}

/** Whether `user` may access every one of `keys`. */
export function mayAccess(user: AclUser, keys: readonly Uint8Array[]): boolean {
  if (user.keys.includes('*')) return true;
  return keys.every((k) => user.keys.some((p) => globMatch(Buffer.from(p), k)));
}

function newUser(name: string): AclUser {
  return {
    name,
    enabled: false,
    nopass: false,
    passwords: new Set(),
    tokens: new Set(),
    rules: [],
    keys: [],
    allChannels: false,
  };
}

function cloneUser(u: AclUser): AclUser {
  return { ...u, passwords: new Set(u.passwords), tokens: new Set(u.tokens), rules: [...u.rules], keys: [...u.keys] };
}

/** Applies one Redis ACL rule to `user`; returns why it is refused, if it is. */
function applyRule(user: AclUser, rule: string): string | undefined {
  const lower = rule.toLowerCase();
  switch (lower) {
    case 'on':
      user.enabled = true;
      return undefined;
    case 'off':
      user.enabled = false;
      return undefined;
    case 'nopass':
      user.nopass = true;
      user.passwords.clear();
      return undefined;
    case 'resetpass':
      user.nopass = false;
      user.passwords.clear();
      return undefined;
    case 'allkeys':
      user.keys = ['*'];
      return undefined;
    case 'resetkeys':
      user.keys = [];
      return undefined;
    case 'allcommands':
      user.rules = ['+@all'];
      return undefined;
    case 'nocommands':
      user.rules = [];
      return undefined;
    case 'allchannels':
      user.allChannels = true;
      return undefined;
    case 'resetchannels':
      user.allChannels = false;
      return undefined;
    case 'reset':
      Object.assign(user, newUser(user.name));
      return undefined;
  }
  const head = rule[0];
  const body = rule.slice(1);
  switch (head) {
    case '>':
      user.passwords.add(digest(body));
      user.nopass = false;
      return undefined;
    case '<':
      user.passwords.delete(digest(body));
      return undefined;
    case '#':
    case '!':
      if (!/^[0-9a-f]{64}$/.test(body))
        return 'The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters';
      if (head === '#') {
        user.passwords.add(body);
        user.nopass = false;
      } else user.passwords.delete(body);
      return undefined;
    case '~':
      if (body === '*') user.keys = ['*'];
      else if (!user.keys.includes('*')) user.keys.push(body);
      return undefined;
    case '&':
      if (body === '*') user.allChannels = true;
      return undefined;
    case '+':
    case '-': {
      if (body.length === 0) return 'Syntax error';
      if (body.startsWith('@') && !CATEGORIES.has(body.slice(1).toLowerCase()))
        return 'Unknown command or category name in ACL';
      if (lower === '+@all') user.rules = ['+@all'];
      else if (lower === '-@all') user.rules = [];
      else user.rules.push(`${head}${body.toLowerCase()}`);
      return undefined;
    }
    default:
      return 'Syntax error';
  }
}
