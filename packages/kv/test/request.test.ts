import { CodecError } from '@cohort/core';
import { describe, expect, it } from 'vitest';
import {
  type KvRequest,
  type KvResponse,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '../src/index.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('forwarded KV requests and responses', () => {
  it('round-trip every request kind', () => {
    const reqs: KvRequest[] = [
      { kind: 'write', command: { op: 'del', keys: [b('a')], now: 5 } },
      { kind: 'read', op: 'get', keys: [b('a')], now: 9 },
      { kind: 'read', op: 'mget', keys: [b('a'), b('b')], now: 9 },
      { kind: 'read', op: 'exists', keys: [b('a')], now: 0 },
      { kind: 'read', op: 'pttl', keys: [b('a')], now: 1 },
    ];
    for (const req of reqs) expect(decodeRequest(encodeRequest(req))).toEqual(req);
  });

  it('round-trip every response type, nils in arrays included', () => {
    const responses: KvResponse[] = [
      { type: 'ok' },
      { type: 'nil' },
      { type: 'int', value: -7n },
      { type: 'bulk', value: b('v') },
      { type: 'bulk', value: new Uint8Array() },
      { type: 'error', message: 'ERR value is not an integer or out of range' },
      { type: 'array', values: [b('x'), null, new Uint8Array()] },
      { type: 'failure', code: 'NOT_LEADER', message: 'not the leader', leaderId: 'n2' },
      { type: 'failure', code: 'TIMEOUT', message: 'timed out' },
    ];
    for (const res of responses) expect(decodeResponse(encodeResponse(res))).toEqual(res);
  });

  it('refuse malformed frames with a CodecError', () => {
    expect(() => decodeRequest(new Uint8Array([0x0a, 0xff]))).toThrow(CodecError);
    expect(() => decodeResponse(new Uint8Array([0x08, 0x63]))).toThrow(CodecError);
  });
});
