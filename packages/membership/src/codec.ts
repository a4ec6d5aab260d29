import { CodecError } from '@cohort/core';
import type { SwimMessage } from './messages.js';
import type { MemberState, MemberUpdate, Tags } from './types.js';

/** The wire version this codec writes and accepts. */
export const SWIM_WIRE_VERSION = 1;
/** Frames larger than this are refused on decode. */
export const SWIM_MAX_FRAME_BYTES = 4 * 1024 * 1024;

const TYPE_CODES = ['ping', 'ack', 'nack', 'ping-req', 'gossip', 'push-pull'] as const;
const STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left'];
const encoder = new TextEncoder();

/** Exact encoded bytes of one update inside a message (its separator included). */
export function wireSize(u: MemberUpdate): number {
  return Buffer.byteLength(JSON.stringify(updateToWire(u))) + 1;
}
const decoder = new TextDecoder('utf-8', { fatal: true });

/** An update on the wire: id, address, incarnation, state code, then tags and accuser when present. */
export type WireUpdate = [string, string, number, number, Record<string, string>?, string?];

/** The positional wire form of one update. */
export function updateToWire(u: MemberUpdate): WireUpdate {
  const w: WireUpdate = [u.id, u.address, u.incarnation, STATES.indexOf(u.state)];
  const hasTags = Object.keys(u.tags).length > 0;
  if (hasTags || u.by !== undefined) w.push(u.tags as Record<string, string>);
  if (u.by !== undefined) w.push(u.by);
  return w;
}

/**
 * Encodes a SWIM message: one version byte, then a compact JSON array
 * (type code first, updates as positional tuples).
 */
export function encodeSwim(m: SwimMessage): Uint8Array {
  let body: unknown[];
  switch (m.type) {
    case 'ping':
      body = [0, m.seq, m.target, m.gossip.map(updateToWire)];
      break;
    case 'ack':
      body = [1, m.seq, m.gossip.map(updateToWire)];
      break;
    case 'nack':
      body = [2, m.seq, m.gossip.map(updateToWire)];
      break;
    case 'ping-req':
      body = [3, m.seq, m.target, m.targetAddress, m.gossip.map(updateToWire)];
      break;
    case 'gossip':
      body = [4, m.gossip.map(updateToWire)];
      break;
    case 'push-pull':
      body = [5, m.reply ? 1 : 0, m.join ? 1 : 0, m.members.map(updateToWire)];
      break;
    default: {
      const never: never = m;
      throw new Error(`unknown swim message ${String(never)}`);
    }
  }
  const json = encoder.encode(JSON.stringify(body));
  const out = new Uint8Array(json.length + 1);
  out[0] = SWIM_WIRE_VERSION;
  out.set(json, 1);
  return out;
}

function fail(why: string): never {
  throw new CodecError(`bad swim frame: ${why}`);
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length > 1024) fail(`${what} must be a string of at most 1024 chars`);
  return v;
}

function uint(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${what} must be a non-negative integer`);
  return v;
}

function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) fail(`${what} must be an array`);
  return v;
}

function tags(v: unknown): Tags {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('tags must be an object');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) out[k] = str(val, `tag ${k}`);
  return out;
}

function updateFromWire(v: unknown): MemberUpdate {
  const a = arr(v, 'update');
  if (a.length < 4 || a.length > 6) fail('update must have 4 to 6 fields');
  const state = STATES[uint(a[3], 'state')];
  if (state === undefined) fail(`unknown member state ${String(a[3])}`);
  const base = { id: str(a[0], 'id'), address: str(a[1], 'address'), incarnation: uint(a[2], 'incarnation'), state };
  const t = tags(a[4]);
  return a[5] === undefined ? { ...base, tags: t } : { ...base, tags: t, by: str(a[5], 'accuser') };
}

function updates(v: unknown): MemberUpdate[] {
  return arr(v, 'updates').map(updateFromWire);
}

/** Decodes and validates a SWIM frame; any malformed input throws CodecError. */
export function decodeSwim(frame: Uint8Array): SwimMessage {
  if (frame.length < 2) fail('frame too short');
  if (frame.length > SWIM_MAX_FRAME_BYTES) fail(`frame of ${frame.length} bytes exceeds ${SWIM_MAX_FRAME_BYTES}`);
  if (frame[0] !== SWIM_WIRE_VERSION) fail(`unsupported version ${frame[0]} (this node speaks ${SWIM_WIRE_VERSION})`);
  let body: unknown;
  try {
    body = JSON.parse(decoder.decode(frame.subarray(1)));
  } catch {
    fail('body is not valid UTF-8 JSON');
  }
  const a = arr(body, 'body');
  const type = TYPE_CODES[uint(a[0], 'type')];
  const need = (n: number): void => {
    if (a.length !== n) fail(`${type} must have ${n} fields, got ${a.length}`);
  };
  switch (type) {
    case 'ping':
      need(4);
      return { type, seq: uint(a[1], 'seq'), target: str(a[2], 'target'), gossip: updates(a[3]) };
    case 'ack':
    case 'nack':
      need(3);
      return { type, seq: uint(a[1], 'seq'), gossip: updates(a[2]) };
    case 'ping-req':
      need(5);
      return {
        type,
        seq: uint(a[1], 'seq'),
        target: str(a[2], 'target'),
        targetAddress: str(a[3], 'target address'),
        gossip: updates(a[4]),
      };
    case 'gossip':
      need(2);
      return { type, gossip: updates(a[1]) };
    case 'push-pull':
      need(4);
      return { type, reply: uint(a[1], 'reply') === 1, join: uint(a[2], 'join') === 1, members: updates(a[3]) };
    default:
      return fail(`unknown message type ${String(a[0])}`);
  }
}
