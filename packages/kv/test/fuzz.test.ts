import { CodecError, StorageError } from '@cohort/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeItems, encodeItems } from '../src/collections.js';
import {
  decodeDigestRequest,
  decodeDigestResponse,
  encodeDigestRequest,
  encodeDigestResponse,
} from '../src/consistency-check.js';
import {
  type KvCommand,
  type KvRequest,
  type KvResponse,
  decodeBatchResponse,
  decodeChunk,
  decodeCommand,
  decodeForwardedRequest,
  decodeRecord,
  decodeRequest,
  decodeResponse,
  encodeBatchRequest,
  encodeBatchResponse,
  encodeCommand,
  encodeRecord,
  encodeRequest,
  encodeResponse,
} from '../src/index.js';
import { encodeChunk } from '../src/snapshot-codec.js';
import { type MachineHarness, memoryMachine, sqliteMachine } from './harness.js';

const te = new TextEncoder();
const b = (s: string): Uint8Array => te.encode(s);

type Mutation = { at: number; kind: 'set' | 'truncate' | 'cut' | 'insert'; bytes: Uint8Array };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('set', 'truncate', 'cut', 'insert'),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
});

/** A valid frame damaged: bytes overwritten, cut off, cut out or inserted. */
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

const damaged = (valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([f, ms]) => mutate(f, ms)),
  );

function decodesOrRefuses(decode: (b: Uint8Array) => unknown, bytes: Uint8Array): void {
  try {
    decode(bytes);
  } catch (err) {
    if (!(err instanceof CodecError)) {
      throw new Error(`decoding ${Buffer.from(bytes).toString('hex')} threw ${String(err)}, not a CodecError`);
    }
  }
}

/** Commands of every kind a client can send, to damage. */
const session = { clientId: 'c1', seq: 3, lowWater: 1 };
const commands: KvCommand[] = [
  { op: 'set', key: b('k'), value: b('v'), condition: 'always', expiresAt: 0, returnOld: false, now: 1000 },
  { op: 'set', key: b('k'), value: b('v'), condition: 'nx', expiresAt: 5000, returnOld: true, now: 1000, session },
  { op: 'del', keys: [b('a'), b('b')], now: 1000 },
  { op: 'incr', key: b('n'), delta: 5n, now: 1000 },
  { op: 'mset', keys: [b('a'), b('b')], values: [b('1'), b('2')], now: 1000 },
  { op: 'append', key: b('k'), value: b('more'), now: 1000 },
  { op: 'setrange', key: b('k'), offset: 3, value: b('xy'), now: 1000 },
  { op: 'getdel', key: b('k'), now: 1000 },
  { op: 'getex', key: b('k'), expiry: 'at', deadline: 9000, now: 1000 },
  { op: 'incrbyfloat', key: b('f'), increment: b('1.5'), now: 1000 },
  { op: 'rename', key: b('a'), dest: b('b'), nx: false, now: 1000 },
  { op: 'copy', key: b('a'), dest: b('c'), replace: true, now: 1000 },
  { op: 'expire', key: b('k'), deadline: 9000, flag: 'gt', now: 1000 },
  { op: 'persist', key: b('k'), now: 1000 },
  { op: 'delExpired', keys: [b('k')], now: 1000 },
  {
    op: 'cond',
    key: b('k'),
    compare: { kind: 'value', value: b('v') },
    action: { kind: 'put', value: b('w'), expiresAt: 0 },
    now: 1000,
  },
  { op: 'collection', name: 'hset', keys: [b('h')], args: [b('f'), b('v')], now: 1000 },
  { op: 'collection', name: 'rpush', keys: [b('l')], args: [b('x'), b('y')], now: 1000 },
  {
    op: 'exec',
    ops: [
      { op: 'set', key: b('e'), value: b('1'), condition: 'always', expiresAt: 0, returnOld: false, now: 1000 },
      { op: 'read', read: 'get', keys: [b('e')], args: [], now: 1000 },
    ],
    watch: [{ key: b('e'), revision: 0 }],
    now: 1000,
  },
];
const command = fc.constantFrom(...commands).map((c) => encodeCommand(c));

const requests: KvRequest[] = [
  { kind: 'write', command: commands[0]! },
  { kind: 'read', op: 'get', keys: [b('k')], now: 1000 },
  { kind: 'read', op: 'mget', keys: [b('a'), b('b')], now: 1000 },
  { kind: 'read', op: 'range', keys: [b('a'), b('z')], now: 1000, limit: 10 },
];
const request = fc.oneof(
  fc.constantFrom(...requests).map((r) => encodeRequest(r)),
  fc.constant(encodeBatchRequest(requests)),
);
const responses: KvResponse[] = [
  { type: 'ok' },
  { type: 'nil' },
  { type: 'int', value: 42n },
  { type: 'bulk', value: b('v') },
  { type: 'failure', code: 'NOT_LEADER', message: 'not the leader', leaderId: 'n2' },
];
const response = fc.constantFrom(...responses).map((r) => encodeResponse(r));

describe('the KV codecs refuse garbage and damaged frames with a CodecError and nothing else', () => {
  it('commands (what a log entry holds)', () => {
    fc.assert(
      fc.property(damaged(command), (bytes) => decodesOrRefuses(decodeCommand, bytes)),
      { numRuns: 2000 },
    );
  });

  it('forwarded requests, pipelines and their answers', () => {
    fc.assert(
      fc.property(damaged(request), (bytes) => {
        decodesOrRefuses(decodeRequest, bytes);
        decodesOrRefuses(decodeForwardedRequest, bytes);
      }),
      { numRuns: 1000 },
    );
    const batch = encodeBatchResponse(responses);
    fc.assert(
      fc.property(damaged(fc.oneof(response, fc.constant(batch))), (bytes) => {
        decodesOrRefuses(decodeResponse, bytes);
        decodesOrRefuses((x) => decodeBatchResponse(x, responses.length), bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it('snapshot chunks, stored records and collections', () => {
    const chunk = encodeChunk({
      rows: [
        { key: b('k'), value: b('v'), createRevision: 1, modifyRevision: 2, version: 2 },
        {
          key: b('h'),
          value: encodeItems([b('f'), b('v')]),
          createRevision: 3,
          modifyRevision: 3,
          version: 1,
          type: 'hash',
        },
      ],
      sessions: [{ clientId: 'c1', lowWater: 1, lastActive: 1000, responses: [{ seq: 2, response: b('x') }] }],
      logTime: 1000,
    });
    fc.assert(
      fc.property(damaged(fc.constant(chunk)), (bytes) => decodesOrRefuses((x) => decodeChunk('p0', 1, x), bytes)),
      { numRuns: 1000 },
    );
    const record = encodeRecord({ key: b('k'), value: b('v'), createRevision: 1, modifyRevision: 2, version: 2 });
    fc.assert(fc.property(damaged(fc.constant(record)), (bytes) => decodesOrRefuses(decodeRecord, bytes)));
    const items = encodeItems([b('a'), b(''), b('ccc')]);
    fc.assert(fc.property(damaged(fc.constant(items)), (bytes) => decodesOrRefuses(decodeItems, bytes)));
  });

  it('consistency-check digests', () => {
    fc.assert(
      fc.property(damaged(fc.constant(encodeDigestRequest('p0', 12, 500))), (bytes) =>
        decodesOrRefuses(decodeDigestRequest, bytes),
      ),
    );
    fc.assert(
      fc.property(damaged(fc.constant(encodeDigestResponse('abc', ''))), (bytes) =>
        decodesOrRefuses(decodeDigestResponse, bytes),
      ),
    );
  });
});

describe.each([
  ['MemoryNodeStore', memoryMachine],
  ['SqliteNodeStore', sqliteMachine],
])('a damaged log entry on %s', (_name, make) => {
  let h: MachineHarness | undefined;
  afterEach(() => h?.cleanup());

  it('is refused with a CodecError or applied as the command it decodes to, and leaves earlier keys intact', () => {
    h = make();
    const sm = h.sm;
    sm.apply(1, encodeCommand(commands[0]!));
    let index = 2;
    fc.assert(
      // An empty entry is the no-op a new leader appends: not a command.
      fc.property(
        damaged(command).filter((x) => x.length > 0),
        (bytes) => {
          try {
            sm.apply(index++, bytes);
          } catch (err) {
            // Bytes that are no command are refused; a storage failure would stop the node and is a bug here.
            expect(err).toBeInstanceOf(CodecError);
            expect(err).not.toBeInstanceOf(StorageError);
          }
        },
      ),
      { numRuns: 400 },
    );
    // The state machine still serves and writes.
    sm.apply(index, encodeCommand({ ...(commands[0] as Extract<KvCommand, { op: 'set' }>), key: b('after') }));
    expect(sm.get(b('after'), 1000)).toEqual(b('v'));
  });
});
