import type { CommandDoc } from './command-docs.js';
import { ONE, R, RF, TWO, W, WF, WR, WRF, doc } from './doc-helpers.js';

/** Blocking writes (BLPOP ...), and those that may grow a list (BLMOVE ...). */
const B = ['write', 'noscript', 'blocking'];
const BD = ['write', 'denyoom', 'noscript', 'blocking'];

/** COMMAND INFO and COMMAND DOCS of the hash and list commands, as Redis 7 describes them. */

export const COLLECTION_DOCS: Record<string, CommandDoc> = {
  hset: doc(WF, ONE, 'hash', '2.0.0', 'Creates or modifies the value of a field in a hash.'),
  hmset: doc(WF, ONE, 'hash', '2.0.0', 'Sets the values of multiple fields.'),
  hsetnx: doc(WF, ONE, 'hash', '2.0.0', 'Sets the value of a field in a hash only when the field does not exist.'),
  hget: doc(RF, ONE, 'hash', '2.0.0', 'Returns the value of a field in a hash.'),
  hmget: doc(RF, ONE, 'hash', '2.0.0', 'Returns the values of all fields in a hash.'),
  hdel: doc(WRF, ONE, 'hash', '2.0.0', 'Deletes one or more fields and their values from a hash.'),
  hgetall: doc(R, ONE, 'hash', '2.0.0', 'Returns all fields and values in a hash.'),
  hkeys: doc(R, ONE, 'hash', '2.0.0', 'Returns all fields in a hash.'),
  hvals: doc(R, ONE, 'hash', '2.0.0', 'Returns all values in a hash.'),
  hlen: doc(RF, ONE, 'hash', '2.0.0', 'Returns the number of fields in a hash.'),
  hexists: doc(RF, ONE, 'hash', '2.0.0', 'Determines whether a field exists in a hash.'),
  hstrlen: doc(RF, ONE, 'hash', '3.2.0', 'Returns the length of the value of a field.'),
  hincrby: doc(WF, ONE, 'hash', '2.0.0', 'Increments the integer value of a field in a hash by a number.'),
  hincrbyfloat: doc(WF, ONE, 'hash', '2.6.0', 'Increments the floating point value of a field by a number.'),
  hrandfield: doc(R, ONE, 'hash', '6.2.0', 'Returns one or more random fields from a hash.'),
  hscan: doc(R, ONE, 'hash', '2.8.0', 'Iterates over fields and values of a hash.'),
  lpush: doc(
    WF,
    ONE,
    'list',
    '1.0.0',
    'Prepends one or more elements to a list. Creates the key if it does not exist.',
  ),
  rpush: doc(WF, ONE, 'list', '1.0.0', 'Appends one or more elements to a list. Creates the key if it does not exist.'),
  lpushx: doc(WF, ONE, 'list', '2.2.0', 'Prepends one or more elements to a list only when the list exists.'),
  rpushx: doc(WF, ONE, 'list', '2.2.0', 'Appends an element to a list only when the list exists.'),
  lpop: doc(WRF, ONE, 'list', '1.0.0', 'Returns the first elements in a list after removing it.'),
  rpop: doc(WRF, ONE, 'list', '1.0.0', 'Returns and removes the last elements of a list.'),
  llen: doc(RF, ONE, 'list', '1.0.0', 'Returns the length of a list.'),
  lindex: doc(R, ONE, 'list', '1.0.0', 'Returns an element from a list by its index.'),
  lrange: doc(R, ONE, 'list', '1.0.0', 'Returns a range of elements from a list.'),
  lset: doc(W, ONE, 'list', '1.0.0', 'Sets the value of an element in a list by its index.'),
  lrem: doc(WR, ONE, 'list', '1.0.0', 'Removes elements from a list.'),
  ltrim: doc(WR, ONE, 'list', '1.0.0', 'Removes elements from both ends a list.'),
  linsert: doc(W, ONE, 'list', '2.2.0', 'Inserts an element before or after another element in a list.'),
  lpos: doc(R, ONE, 'list', '6.0.6', 'Returns the index of matching elements in a list.'),
  lmove: doc(W, TWO, 'list', '6.2.0', 'Returns an element after popping it from one list and pushing it to another.'),
  lmpop: doc(
    ['write', 'movablekeys'],
    [0, 0, 0],
    'list',
    '7.0.0',
    'Returns multiple elements from a list after removing them.',
  ),
  blpop: doc(
    B,
    [1, -2, 1],
    'list',
    '2.0.0',
    'Removes and returns the first element in a list. Blocks until an element is available otherwise.',
  ),
  brpop: doc(
    B,
    [1, -2, 1],
    'list',
    '2.0.0',
    'Removes and returns the last element in a list. Blocks until an element is available otherwise.',
  ),
  blmpop: doc(
    ['write', 'blocking', 'movablekeys'],
    [0, 0, 0],
    'list',
    '7.0.0',
    'Pops the first element from one of multiple lists. Blocks until an element is available otherwise.',
  ),
  blmove: doc(
    BD,
    TWO,
    'list',
    '6.2.0',
    'Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.',
  ),
  brpoplpush: doc(
    BD,
    TWO,
    'list',
    '2.2.0',
    'Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise.',
  ),
  rpoplpush: doc(
    W,
    TWO,
    'list',
    '1.2.0',
    'Returns the last element of a list after removing and pushing it to another list.',
  ),
};
