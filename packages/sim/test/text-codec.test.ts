import { describe, expect, it } from 'vitest';
import { decodeText, encodeText } from '../src/text-codec.js';

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
