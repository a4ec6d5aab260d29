import { describe, expect, it } from 'vitest';
import { PACKAGE } from '../src/index.js';

describe('@cohort/kv', () => {
  it('names itself', () => {
    expect(PACKAGE).toBe('@cohort/kv');
  });
});
