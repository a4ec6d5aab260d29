import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CodecError,
  type SnapshotAck,
  type SnapshotChunk,
  decodeConfChange,
  decodeForwardRequest,
  decodeForwardResponse,
  decodeRaftBatch,
  decodeRaftFrame,
  decodeRaftHeartbeats,
  decodeRaftMessage,
  decodeSnapshotAck,
  decodeSnapshotChunk,
  encodeConfChange,
  encodeForwardRequest,
  encodeForwardResponse,
  encodeRaftBatch,
  encodeRaftHeartbeats,
  encodeRaftMessage,
  encodeSnapshotAck,
  encodeSnapshotChunk,
  openEnvelope,
} from '../src/index.js';
import { confChange, confState, groupId, message, nodeId } from './arbitraries.js';

/**
 * Damage done to a valid frame: a byte overwritten, bytes cut off the end or
 * cut out of the middle, or garbage inserted, several times over.
 */
type Mutation = { at: number; kind: 'set' | 'truncate' | 'cut' | 'insert'; bytes: Uint8Array };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('set', 'truncate', 'cut', 'insert'),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
});

function mutate(frame: Uint8Array, ms: Mutation[]): Uint8Array {
  let out = Uint8Array.from(frame);
  for (const m of ms) {
    const at = out.length === 0 ? 0 : m.at % out.length;
    if (m.kind === 'set' && out.length > 0) out[at] = m.bytes[0]!;
    else if (m.kind === 'truncate') out = out.slice(0, at);
    else if (m.kind === 'cut') out = Uint8Array.from([...out.slice(0, at), ...out.slice(at + m.bytes.length)]);
    else out = Uint8Array.from([...out.slice(0, at), ...m.bytes, ...out.slice(at)]);
  }
  return out;
}

/** `decode(bytes)` returns a value or throws a CodecError: never another exception. */
function decodesOrRefuses(decode: (b: Uint8Array) => unknown, bytes: Uint8Array): void {
  try {
    decode(bytes);
  } catch (err) {
    if (!(err instanceof CodecError)) {
      throw new Error(`decoding ${Buffer.from(bytes).toString('hex')} threw ${String(err)}, not a CodecError`);
    }
  }
}

/** Fuzzes `decode` with garbage and with damaged frames that `valid` produces. */
function fuzz(decode: (b: Uint8Array) => unknown, valid: fc.Arbitrary<Uint8Array>): void {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (garbage) => decodesOrRefuses(decode, garbage)),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(valid, fc.array(mutation, { minLength: 1, maxLength: 4 }), (frame, ms) =>
      decodesOrRefuses(decode, mutate(frame, ms)),
    ),
    { numRuns: 300 },
  );
}

const u32 = fc.nat({ max: 2 ** 32 - 1 });
const raftMessage = fc.tuple(groupId, message).map(([g, m]) => encodeRaftMessage(g, m));
const raftBatch = fc
  .array(fc.record({ group: groupId, message }), { maxLength: 4 })
  .map((batch) => encodeRaftBatch(batch));
const heartbeats = fc
  .record({
    heartbeats: fc.array(
      fc.record({
        group: groupId,
        term: u32,
        commit: u32,
        tick: u32,
        context: fc.uint8Array({ maxLength: 8 }),
        quiesce: fc.boolean(),
      }),
      { maxLength: 5 },
    ),
    responses: fc.array(
      fc.record({
        group: groupId,
        term: u32,
        tick: u32,
        reject: fc.boolean(),
        rejectHint: u32,
        context: fc.uint8Array({ maxLength: 8 }),
      }),
      { maxLength: 5 },
    ),
  })
  .map((h) => encodeRaftHeartbeats(h));
const chunk: fc.Arbitrary<SnapshotChunk> = fc.record(
  {
    group: fc.string({ minLength: 1, maxLength: 8 }),
    leader: fc.string({ minLength: 1, maxLength: 8 }),
    term: u32,
    index: u32,
    seq: fc.integer({ min: 1, max: 1000 }),
    data: fc.uint8Array({ maxLength: 64 }),
    last: fc.boolean(),
    meta: fc.record({ index: u32, term: u32, confState }),
  },
  { requiredKeys: ['group', 'leader', 'term', 'index', 'seq', 'data', 'last'] },
);
const ack: fc.Arbitrary<SnapshotAck> = fc.oneof(
  u32.map((nextSeq): SnapshotAck => ({ status: 'next', nextSeq })),
  fc.constant<SnapshotAck>({ status: 'installed' }),
  fc.constant<SnapshotAck>({ status: 'unknownTransfer' }),
  fc.string({ maxLength: 20 }).map((reason): SnapshotAck => ({ status: 'refused', reason })),
);

describe('every wire decoder refuses garbage and damaged frames with a CodecError and nothing else', () => {
  it('raft messages, batches and coalesced heartbeats, through every reader', () => {
    for (const decode of [decodeRaftMessage, decodeRaftBatch, decodeRaftHeartbeats, decodeRaftFrame]) {
      fuzz(decode, fc.oneof(raftMessage, raftBatch, heartbeats));
    }
  });

  it('membership changes', () => {
    fuzz(
      decodeConfChange,
      confChange.map((cc) => encodeConfChange(cc)),
    );
  });

  it('forwarded requests and their answers', () => {
    fuzz(
      decodeForwardRequest,
      fc
        .record({ group: groupId, op: fc.uint8Array({ maxLength: 64 }), hops: fc.nat(5) })
        .map((r) => encodeForwardRequest(r)),
    );
    fuzz(
      decodeForwardResponse,
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }).map((result) => encodeForwardResponse({ ok: true, result })),
        fc
          .record({ message: fc.string({ maxLength: 20 }), leaderId: nodeId })
          .map((e) => encodeForwardResponse({ ok: false, code: 'NOT_LEADER', ...e })),
      ),
    );
  });

  it('snapshot chunks and their acknowledgements', () => {
    fuzz(
      decodeSnapshotChunk,
      chunk.map((c) => encodeSnapshotChunk(c)),
    );
    fuzz(
      decodeSnapshotAck,
      ack.map((a) => encodeSnapshotAck(a)),
    );
  });

  it('the envelope itself', () => {
    fuzz(openEnvelope, fc.oneof(raftMessage, heartbeats));
  });

  it('a damaged frame never decodes into a message that cannot be re-encoded', () => {
    // What a decoder accepts must be a value the rest of the node can handle: encode it again.
    fc.assert(
      fc.property(raftMessage, fc.array(mutation, { minLength: 1, maxLength: 3 }), (frame, ms) => {
        let decoded: ReturnType<typeof decodeRaftMessage>;
        try {
          decoded = decodeRaftMessage(mutate(frame, ms));
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError);
          return;
        }
        try {
          encodeRaftMessage(decoded.group, decoded.message);
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
