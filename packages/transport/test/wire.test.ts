import { CodecError, ConfigError } from '@cohort/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeHello, encodeHello } from '../src/hello.js';
import { toHostPort, toMultiaddr } from '../src/index.js';

describe('addresses', () => {
  it('turns host:port into TCP multiaddrs and back', () => {
    expect(toMultiaddr('127.0.0.1:7000', 'f').toString()).toBe('/ip4/127.0.0.1/tcp/7000');
    expect(toMultiaddr('[::1]:7000', 'f').toString()).toBe('/ip6/::1/tcp/7000');
    expect(toMultiaddr('node-1.local:7000', 'f').toString()).toBe('/dns/node-1.local/tcp/7000');
    for (const a of ['127.0.0.1:7000', '[::1]:7000', 'node-1.local:7000'])
      expect(toHostPort(toMultiaddr(a, 'f'))).toBe(a);
  });

  it('refuses malformed addresses naming the setting', () => {
    for (const bad of ['127.0.0.1', ':7000', '127.0.0.1:99999', 'a:b', '::1:7000', '/not/a/multiaddr']) {
      expect(() => toMultiaddr(bad, 'peerAddress')).toThrow(ConfigError);
      expect(() => toMultiaddr(bad, 'peerAddress')).toThrow(/peerAddress/);
    }
  });
});

describe('stream hello', () => {
  it('round-trips any pair of node ids', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('frames' as const, 'request' as const),
        fc.string(),
        fc.string(),
        (mode, from, to) => {
          expect(decodeHello(encodeHello({ mode, from, to }))).toEqual({ mode, from, to });
        },
      ),
    );
  });

  it('answers garbage with a CodecError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          decodeHello(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError);
        }
      }),
    );
    expect(() => decodeHello(Uint8Array.of(2, 0, 0))).toThrow(/version 2/);
    expect(() => decodeHello(Uint8Array.of(1, 0, 9, 65))).toThrow(CodecError);
  });
});
