import { describe, expect, it } from 'vitest';
import { PACKAGE } from '../src/index.js';

describe('@cohort/raft', () => {
  it('names itself', () => {
    expect(PACKAGE).toBe('@cohort/raft');
  });
});
