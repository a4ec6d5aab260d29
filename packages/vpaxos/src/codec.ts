import { CodecError, type GroupId, type NodeId } from '@cohort/core';
import type { Ballot, Message, Proposal, Vote } from './types.js';

/** The wire version of Vertical Paxos frames; a frame of another version is refused. */
export const VP_WIRE_VERSION = 1;

/** Protocol id of replica-to-replica frames. */
export const VP_PROTOCOL = '/cohort/vpaxos/1';
/** Protocol id of frames between replicas and the configuration master. */
export const VP_MASTER_PROTOCOL = '/cohort/vpaxos-master/1';

/** What the configuration master and the replicas tell each other. */
export type MasterMessage =
  /** Master to the chosen primary: lead `ballot` (VP's newBallot). */
  | {
      type: 'newBallot';
      ballot: Ballot;
      prevBallot: Ballot;
      prevAcceptors: NodeId[];
      acceptors: NodeId[];
    }
  /** Primary to master: Phase 1 and the Phase 2 of the safe values are done. */
  | { type: 'complete'; ballot: Ballot }
  /**
   * Master to the replicas: `ballot` is active with this primary and acceptors.
   * `leaseMs`: the read lease the master granted the primary (the one it waits
   * out before activating another primary); absent or 0: no lease reads.
   */
  | { type: 'activated'; ballot: Ballot; primary: NodeId; acceptors: NodeId[]; leaseMs?: number }
  /** Replica to master: alive, in this incarnation (a restart changes it), primary of `ballot` when active (else 0). */
  | { type: 'alive'; incarnation: number; activeBallot: Ballot };

const TYPES: Message['type'][] = ['p1a', 'p1b', 'p2a', 'p2b', 'reject', 'catchUpReq', 'catchUpResp'];
const MASTER_TYPES: MasterMessage['type'][] = ['newBallot', 'complete', 'activated', 'alive'];

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.pos++] = v;
  }
  /** A non-negative integer below 2^53. */
  num(v: number): void {
    this.room(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.num(b.length);
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  str(s: string): void {
    this.bytes(new TextEncoder().encode(s));
  }
  strs(list: string[]): void {
    this.num(list.length);
    for (const s of list) this.str(s);
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

class Reader {
  private readonly view: DataView;
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length)
      throw new CodecError(`vpaxos frame truncated at byte ${this.pos} (${this.buf.length} bytes)`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }
  num(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    if (!Number.isSafeInteger(v) || v < 0)
      throw new CodecError(`vpaxos frame: bad integer ${v} at byte ${this.pos - 8}`);
    return v;
  }
  bytes(): Uint8Array {
    const n = this.num();
    this.need(n);
    const b = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  str(): string {
    return new TextDecoder('utf-8', { fatal: true }).decode(this.bytes());
  }
  strs(): string[] {
    const n = this.num();
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.str());
    return out;
  }
  atEnd(): boolean {
    return this.pos === this.buf.length;
  }
  end(): void {
    if (this.pos !== this.buf.length)
      throw new CodecError(`vpaxos frame: ${this.buf.length - this.pos} trailing bytes`);
  }
}

function writeVotes(w: Writer, votes: Vote[]): void {
  w.num(votes.length);
  for (const v of votes) {
    w.num(v.slot);
    w.num(v.ballot);
    w.u8(v.chosen ? 1 : 0);
    w.bytes(v.value);
  }
}

function readVotes(r: Reader): Vote[] {
  const n = r.num();
  const out: Vote[] = [];
  for (let i = 0; i < n; i++) {
    const slot = r.num();
    const ballot = r.num();
    const chosen = r.u8() === 1;
    out.push({ slot, ballot, chosen, value: r.bytes() });
  }
  return out;
}

function writeProposals(w: Writer, entries: Proposal[]): void {
  w.num(entries.length);
  for (const e of entries) {
    w.num(e.slot);
    w.bytes(e.value);
  }
}

function readProposals(r: Reader): Proposal[] {
  const n = r.num();
  const out: Proposal[] = [];
  for (let i = 0; i < n; i++) {
    const slot = r.num();
    out.push({ slot, value: r.bytes() });
  }
  return out;
}

/** Encodes a replica message of `group`. */
export function encodeMessage(group: GroupId, m: Message): Uint8Array {
  const w = new Writer();
  w.u8(VP_WIRE_VERSION);
  w.str(group);
  w.u8(TYPES.indexOf(m.type));
  w.num(m.ballot);
  switch (m.type) {
    case 'p1a':
      w.num(m.prevBallot);
      w.num(m.from);
      break;
    case 'p1b':
      writeVotes(w, m.votes);
      // A trailing field: a frame without it (nothing compacted) reads as before.
      if (m.compacted > 0) w.num(m.compacted);
      break;
    case 'p2a':
      writeProposals(w, m.entries);
      w.num(m.commit);
      w.num(m.round);
      break;
    case 'p2b':
      w.num(m.match);
      w.num(m.round);
      break;
    case 'reject':
      w.num(m.maxBallot);
      break;
    case 'catchUpReq':
      w.num(m.from);
      break;
    case 'catchUpResp':
      writeVotes(w, m.votes);
      break;
  }
  return w.done();
}

function version(r: Reader): void {
  const v = r.u8();
  if (v !== VP_WIRE_VERSION)
    throw new CodecError(`vpaxos frame of wire version ${v}; this build speaks ${VP_WIRE_VERSION}`);
}

/** Decodes a replica message; throws `CodecError` on a malformed frame. */
export function decodeMessage(frame: Uint8Array): { group: GroupId; msg: Message } {
  const r = new Reader(frame);
  version(r);
  const group = r.str();
  const type = TYPES[r.u8()];
  if (type === undefined) throw new CodecError('vpaxos frame: unknown message type');
  const ballot = r.num();
  let msg: Message;
  switch (type) {
    case 'p1a': {
      const prevBallot = r.num();
      msg = { type, ballot, prevBallot, from: r.num() };
      break;
    }
    case 'p1b': {
      const votes = readVotes(r);
      msg = { type, ballot, votes, compacted: r.atEnd() ? 0 : r.num() };
      break;
    }
    case 'p2a': {
      const entries = readProposals(r);
      const commit = r.num();
      msg = { type, ballot, entries, commit, round: r.num() };
      break;
    }
    case 'p2b': {
      const match = r.num();
      msg = { type, ballot, match, round: r.num() };
      break;
    }
    case 'reject':
      msg = { type, ballot, maxBallot: r.num() };
      break;
    case 'catchUpReq':
      msg = { type, ballot, from: r.num() };
      break;
    case 'catchUpResp':
      msg = { type, ballot, votes: readVotes(r) };
      break;
  }
  r.end();
  return { group, msg };
}

/** Encodes a message between a replica and the configuration master. */
export function encodeMasterMessage(group: GroupId, m: MasterMessage): Uint8Array {
  const w = new Writer();
  w.u8(VP_WIRE_VERSION);
  w.str(group);
  w.u8(MASTER_TYPES.indexOf(m.type));
  switch (m.type) {
    case 'newBallot':
      w.num(m.ballot);
      w.num(m.prevBallot);
      w.strs(m.prevAcceptors);
      w.strs(m.acceptors);
      break;
    case 'complete':
      w.num(m.ballot);
      break;
    case 'activated':
      w.num(m.ballot);
      w.str(m.primary);
      w.strs(m.acceptors);
      // A trailing field: a frame without it (no lease granted) reads as before.
      if (m.leaseMs !== undefined && m.leaseMs > 0) w.num(m.leaseMs);
      break;
    case 'alive':
      w.num(m.incarnation);
      w.num(m.activeBallot);
      break;
  }
  return w.done();
}

/** Decodes a master message; throws `CodecError` on a malformed frame. */
export function decodeMasterMessage(frame: Uint8Array): { group: GroupId; msg: MasterMessage } {
  const r = new Reader(frame);
  version(r);
  const group = r.str();
  const type = MASTER_TYPES[r.u8()];
  if (type === undefined) throw new CodecError('vpaxos master frame: unknown message type');
  let msg: MasterMessage;
  switch (type) {
    case 'newBallot': {
      const ballot = r.num();
      const prevBallot = r.num();
      const prevAcceptors = r.strs();
      msg = { type, ballot, prevBallot, prevAcceptors, acceptors: r.strs() };
      break;
    }
    case 'complete':
      msg = { type, ballot: r.num() };
      break;
    case 'activated': {
      const ballot = r.num();
      const primary = r.str();
      const acceptors = r.strs();
      const leaseMs = r.atEnd() ? undefined : r.num();
      msg = { type, ballot, primary, acceptors, ...(leaseMs !== undefined ? { leaseMs } : {}) };
      break;
    }
    case 'alive': {
      const incarnation = r.num();
      msg = { type, incarnation, activeBallot: r.num() };
      break;
    }
  }
  r.end();
  return { group, msg };
}

/**
 * The group a replica or master frame belongs to, read from its header alone
 * (a node serving several groups routes each frame to its group's replica).
 * Throws `CodecError` on a frame of another version or too short.
 */
export function peekGroup(frame: Uint8Array): GroupId {
  const r = new Reader(frame);
  const version = r.u8();
  if (version !== VP_WIRE_VERSION)
    throw new CodecError(`vpaxos frame of version ${version}, expected ${VP_WIRE_VERSION}`);
  return r.str();
}
