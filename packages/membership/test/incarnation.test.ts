import { describe, expect, it } from 'vitest';
import { supersedes } from '../src/incarnation.js';

describe('incarnation precedence', () => {
  it('a higher incarnation wins whatever the states', () => {
    expect(supersedes({ incarnation: 2, state: 'alive' }, { incarnation: 1, state: 'dead' })).toBe(true);
    expect(supersedes({ incarnation: 1, state: 'dead' }, { incarnation: 2, state: 'alive' })).toBe(false);
  });

  it('at equal incarnation dead > suspect > alive', () => {
    expect(supersedes({ incarnation: 3, state: 'suspect' }, { incarnation: 3, state: 'alive' })).toBe(true);
    expect(supersedes({ incarnation: 3, state: 'dead' }, { incarnation: 3, state: 'suspect' })).toBe(true);
    expect(supersedes({ incarnation: 3, state: 'alive' }, { incarnation: 3, state: 'suspect' })).toBe(false);
    expect(supersedes({ incarnation: 3, state: 'suspect' }, { incarnation: 3, state: 'dead' })).toBe(false);
  });

  it('the same fact does not supersede itself', () => {
    expect(supersedes({ incarnation: 3, state: 'alive' }, { incarnation: 3, state: 'alive' })).toBe(false);
  });
});
