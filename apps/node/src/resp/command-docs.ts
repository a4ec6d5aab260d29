import { COLLECTION_DOCS } from './collection-docs.js';
import { ALL, NONE, ONE, R, RF, W, WF, doc } from './doc-helpers.js';
import { READ_MODE_DOCS } from './read-modes.js';

/**
 * What COMMAND INFO and COMMAND DOCS say of each command, as Redis 7 says
 * it: flags, the key positions (first, last, step; 0 0 0 for none; a
 * negative last counts from the end), the group, the version that added it
 * and a summary. Key specifications are not described (an empty array).
 */
export interface CommandDoc {
  flags: string[];
  keys: [number, number, number];
  group: string;
  since: string;
  summary: string;
}

export const COMMAND_DOCS: Record<string, CommandDoc> = {
  ...COLLECTION_DOCS,
  ...READ_MODE_DOCS,
  get: doc(RF, ONE, 'string', '1.0.0', 'Returns the string value of a key.'),
  set: doc(
    W,
    ONE,
    'string',
    '1.0.0',
    'Sets the string value of a key, ignoring its type. The key is created if it does not exist.',
  ),
  setnx: doc(WF, ONE, 'string', '1.0.0', 'Set the string value of a key only when the key does not exist.'),
  setex: doc(
    W,
    ONE,
    'string',
    '2.0.0',
    'Sets the string value and expiration time of a key. Creates the key if it does not exist.',
  ),
  psetex: doc(W, ONE, 'string', '2.6.0', 'Sets both string value and expiration time in milliseconds of a key.'),
  getset: doc(
    WF,
    ONE,
    'string',
    '1.0.0',
    'Returns the previous string value of a key after setting it to a new value.',
  ),
  getdel: doc(['write', 'fast'], ONE, 'string', '6.2.0', 'Returns the string value of a key after deleting the key.'),
  getex: doc(
    ['write', 'fast'],
    ONE,
    'string',
    '6.2.0',
    'Returns the string value of a key after setting its expiration time.',
  ),
  mget: doc(RF, ALL, 'string', '1.0.0', 'Atomically returns the string values of one or more keys.'),
  mset: doc(W, [1, -1, 2], 'string', '1.0.1', 'Atomically creates or modifies the string values of one or more keys.'),
  msetnx: doc(
    W,
    [1, -1, 2],
    'string',
    '1.0.1',
    "Atomically modifies the string values of one or more keys only when all keys don't exist.",
  ),
  append: doc(
    WF,
    ONE,
    'string',
    '2.0.0',
    "Appends a string to the value of a key. Creates the key if it doesn't exist.",
  ),
  strlen: doc(RF, ONE, 'string', '2.2.0', 'Returns the length of a string value.'),
  getrange: doc(R, ONE, 'string', '2.4.0', 'Returns a substring of the string stored at a key.'),
  substr: doc(R, ONE, 'string', '1.0.0', 'Returns a substring from a string value.'),
  setrange: doc(
    W,
    ONE,
    'string',
    '2.2.0',
    "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
  ),
  incr: doc(
    WF,
    ONE,
    'string',
    '1.0.0',
    "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
  ),
  decr: doc(
    WF,
    ONE,
    'string',
    '1.0.0',
    "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
  ),
  incrby: doc(
    WF,
    ONE,
    'string',
    '1.0.0',
    "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
  ),
  decrby: doc(
    WF,
    ONE,
    'string',
    '1.0.0',
    "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
  ),
  incrbyfloat: doc(
    WF,
    ONE,
    'string',
    '2.6.0',
    "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
  ),
  del: doc(['write'], ALL, 'generic', '1.0.0', 'Deletes one or more keys.'),
  unlink: doc(['write', 'fast'], ALL, 'generic', '4.0.0', 'Asynchronously deletes one or more keys.'),
  exists: doc(RF, ALL, 'generic', '1.0.0', 'Determines whether one or more keys exist.'),
  type: doc(RF, ONE, 'generic', '1.0.0', 'Determines the type of value stored at a key.'),
  rename: doc(['write'], [1, 2, 1], 'generic', '1.0.0', 'Renames a key and overwrites the destination.'),
  renamenx: doc(
    ['write', 'fast'],
    [1, 2, 1],
    'generic',
    '1.0.0',
    "Renames a key only when the target key name doesn't exist.",
  ),
  copy: doc(W, [1, 2, 1], 'generic', '6.2.0', 'Copies the value of a key to a new key.'),
  expire: doc(['write', 'fast'], ONE, 'generic', '1.0.0', 'Sets the expiration time of a key in seconds.'),
  pexpire: doc(['write', 'fast'], ONE, 'generic', '2.6.0', 'Sets the expiration time of a key in milliseconds.'),
  expireat: doc(['write', 'fast'], ONE, 'generic', '1.2.0', 'Sets the expiration time of a key to a Unix timestamp.'),
  pexpireat: doc(
    ['write', 'fast'],
    ONE,
    'generic',
    '2.6.0',
    'Sets the expiration time of a key to a Unix milliseconds timestamp.',
  ),
  persist: doc(['write', 'fast'], ONE, 'generic', '2.2.0', 'Removes the expiration time of a key.'),
  ttl: doc(RF, ONE, 'generic', '1.0.0', 'Returns the expiration time in seconds of a key.'),
  pttl: doc(RF, ONE, 'generic', '2.6.0', 'Returns the expiration time in milliseconds of a key.'),
  expiretime: doc(RF, ONE, 'generic', '7.0.0', 'Returns the expiration time of a key as a Unix timestamp.'),
  pexpiretime: doc(
    RF,
    ONE,
    'generic',
    '7.0.0',
    'Returns the expiration time of a key as a Unix milliseconds timestamp.',
  ),
  keys: doc(R, NONE, 'generic', '1.0.0', 'Returns all key names that match a pattern.'),
  scan: doc(R, NONE, 'generic', '2.8.0', 'Iterates over the key names in the database.'),
  dbsize: doc(RF, NONE, 'server', '1.0.0', 'Returns the number of keys in the database.'),
  randomkey: doc(R, NONE, 'generic', '1.0.0', 'Returns a random key name from the database.'),
  flushdb: doc(['write'], NONE, 'server', '1.0.0', 'Remove all keys from the current database.'),
  multi: doc(
    ['noscript', 'loading', 'stale', 'fast', 'allow_busy'],
    NONE,
    'transactions',
    '1.2.0',
    'Starts a transaction.',
  ),
  exec: doc(
    ['noscript', 'loading', 'stale', 'skip_slowlog'],
    NONE,
    'transactions',
    '1.2.0',
    'Executes all commands in a transaction.',
  ),
  discard: doc(
    ['noscript', 'loading', 'stale', 'fast', 'allow_busy'],
    NONE,
    'transactions',
    '2.0.0',
    'Discards a transaction.',
  ),
  watch: doc(
    ['noscript', 'loading', 'stale', 'fast', 'allow_busy'],
    ALL,
    'transactions',
    '2.2.0',
    'Monitors changes to keys to determine the execution of a transaction.',
  ),
  unwatch: doc(
    ['noscript', 'loading', 'stale', 'fast', 'allow_busy'],
    NONE,
    'transactions',
    '2.2.0',
    'Forgets about watched keys of a transaction.',
  ),
  auth: doc(
    ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
    NONE,
    'connection',
    '1.0.0',
    'Authenticates the connection.',
  ),
  acl: doc([], NONE, 'server', '6.0.0', 'A container for Access List Control commands.'),
  ping: doc(['fast'], NONE, 'connection', '1.0.0', "Returns the server's liveliness response."),
  echo: doc(['fast'], NONE, 'connection', '1.0.0', 'Returns the given string.'),
  select: doc(['loading', 'stale', 'fast'], NONE, 'connection', '1.0.0', 'Changes the selected database.'),
  quit: doc(
    ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
    NONE,
    'connection',
    '1.0.0',
    'Closes the connection.',
  ),
  hello: doc(
    ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
    NONE,
    'connection',
    '6.0.0',
    'Handshakes with the Redis server.',
  ),
  client: doc([], NONE, 'connection', '2.4.0', 'A container for client connection commands.'),
  command: doc(['loading', 'stale'], NONE, 'server', '2.8.13', 'Returns detailed information about all commands.'),
  config: doc([], NONE, 'server', '2.0.0', 'A container for server configuration commands.'),
  info: doc(['loading', 'stale'], NONE, 'server', '1.0.0', 'Returns information and statistics about the server.'),
  cluster: doc([], NONE, 'cluster', '3.0.0', 'A container for Redis Cluster commands.'),
};
