import { describe, expect, it } from 'vitest';
import { type KvCommand, decodeCommand, encodeCommand } from '../src/raft/kv-machine.js';
import { decodeText, encodeText } from '../src/text-codec.js';

describe('KV command codec', () => {
  const commands: KvCommand[] = [
    { client: 1, seq: 1, input: { op: 'get', key: 'a' } },
    { client: 3, seq: 4_294_967_295, input: { op: 'put', key: 'b', value: '[3.17]' } },
    { client: 12, seq: 7, input: { op: 'append', key: 'c', value: '' } },
    { client: 2, seq: 9, input: { op: 'put', key: 'clé', value: 'värde ✓ 🚀' } },
  ];

  it('decodes what it encoded, ASCII or not', () => {
    for (const c of commands) expect(decodeCommand(encodeCommand(c))).toEqual(c);
  });

  it('writes UTF-8 bytes, so the ASCII fast path and the text encoder agree', () => {
    const text = new TextEncoder();
    expect(encodeCommand({ client: 1, seq: 2, input: { op: 'put', key: 'k', value: 'v' } })).toEqual(
      text.encode('1\x1f2\x1fput\x1fk\x1fv'),
    );
    expect(encodeCommand({ client: 1, seq: 2, input: { op: 'put', key: 'k', value: 'é' } })).toEqual(
      text.encode('1\x1f2\x1fput\x1fk\x1fé'),
    );
  });
});

describe('text codec', () => {
  it('matches the platform UTF-8 codec for short, long, ASCII and non-ASCII text', () => {
    const platform = new TextEncoder();
    for (const s of ['', 'n1:0:17', 'x'.repeat(300), 'é', `${'y'.repeat(300)}€`, 'a\u0000b']) {
      const bytes = encodeText(s);
      expect(bytes).toEqual(platform.encode(s));
      expect(decodeText(bytes)).toBe(s);
    }
  });
});
