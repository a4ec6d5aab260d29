import type { Acl } from '../auth.js';
import type { ClusterView } from './cluster-commands.js';
import type { Session } from './plan.js';
import { ScanCursors } from './scan-cursors.js';

/** One connection as CLIENT LIST and CLIENT KILL see it. */
export interface ClientEntry {
  session: Session;
  /** The peer's `ip:port`, and this server's. */
  addr: string;
  laddr: string;
  /** Unix ms: when the connection was accepted, and when it last got a reply. */
  created: number;
  lastActive: number;
  /** Closes the connection (CLIENT KILL). */
  kill(): void;
}

/** What the connections of one RESP server share: its SCAN cursors, its clients, what CONFIG GET reports. */
export interface ServerState {
  cursors: ScanCursors;
  clients: ClientRegistry;
  /** CONFIG GET's parameters, by Redis name, with their values as strings. */
  config: Record<string, string>;
  /** Unix ms when the server started (INFO uptime). */
  startedAt: number;
  /** The cluster's layout and leaders (CLUSTER commands, MOVED), when the server runs in a node. */
  cluster?: ClusterView;
  /** The users connections authenticate as (AUTH, ACL); absent: everyone is `default` with every permission. */
  acl?: Acl;
}

/** The connections of a RESP server by client id (ids grow from 1, as Redis numbers them). */
export class ClientRegistry {
  private next = 1;
  readonly byId = new Map<number, ClientEntry>();

  /** The id of the next connection. */
  nextId(): number {
    return this.next++;
  }

  add(entry: ClientEntry): void {
    this.byId.set(entry.session.id, entry);
  }

  remove(id: number): void {
    this.byId.delete(id);
  }
}

/** A CLIENT LIST line for `c` at `now`, in Redis 7's field order (fields Cohort does not track are 0). */
export function clientLine(c: ClientEntry, now: number): string {
  const s = c.session;
  const flags = s.multi ? 'x' : 'N';
  const fields: [string, string | number][] = [
    ['id', s.id],
    ['addr', c.addr],
    ['laddr', c.laddr],
    ['fd', -1],
    ['name', s.name],
    ['age', Math.floor((now - c.created) / 1000)],
    ['idle', Math.floor((now - c.lastActive) / 1000)],
    ['flags', flags],
    ['db', 0],
    ['sub', 0],
    ['psub', 0],
    ['ssub', 0],
    ['multi', s.multi ? s.multi.queued.length : -1],
    ['qbuf', 0],
    ['qbuf-free', 0],
    ['argv-mem', 0],
    ['multi-mem', 0],
    ['rbs', 0],
    ['rbp', 0],
    ['obl', 0],
    ['oll', 0],
    ['omem', 0],
    ['tot-mem', 0],
    ['events', 'r'],
    ['cmd', s.lastCommand || 'NULL'],
    ['user', s.user],
    ['redir', -1],
    ['resp', s.proto],
  ];
  return fields.map(([k, v]) => `${k}=${v}`).join(' ');
}

/** A fresh server state with `config` as CONFIG GET's parameters. */
export function newServerState(config: Record<string, string> = {}): ServerState {
  return { cursors: new ScanCursors(), clients: new ClientRegistry(), config, startedAt: Date.now() };
}
