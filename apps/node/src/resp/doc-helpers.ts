import type { CommandDoc } from './command-docs.js';

// The flag sets and key positions the command tables share, and the one way they build an entry.
export const W = ['write', 'denyoom'];
export const WF = ['write', 'denyoom', 'fast'];
export const WR = ['write'];
export const WRF = ['write', 'fast'];
export const R = ['readonly'];
export const RF = ['readonly', 'fast'];
/** Key positions (first, last, step): the first argument only. */
export const ONE: [number, number, number] = [1, 1, 1];
/** The first two arguments. */
export const TWO: [number, number, number] = [1, 2, 1];
/** Every argument. */
export const ALL: [number, number, number] = [1, -1, 1];
/** No keys. */
export const NONE: [number, number, number] = [0, 0, 0];

/** One command's entry. */
export const doc = (
  flags: string[],
  keys: [number, number, number],
  group: string,
  since: string,
  summary: string,
): CommandDoc => ({ flags, keys, group, since, summary });
