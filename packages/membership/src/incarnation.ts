import type { MemberState } from './types.js';

const RANK: Readonly<Record<MemberState, number>> = { alive: 0, suspect: 1, dead: 2, left: 3 };

/** The precedence of a state at equal incarnation: left > dead > suspect > alive. */
export function stateRank(state: MemberState): number {
  return RANK[state];
}

/**
 * Whether update `a` overrides what is known as `b`: a higher incarnation wins;
 * at equal incarnation the stronger state wins (SWIM §4.2: dead > suspect > alive).
 */
export function supersedes(
  a: { readonly incarnation: number; readonly state: MemberState },
  b: { readonly incarnation: number; readonly state: MemberState },
): boolean {
  if (a.incarnation !== b.incarnation) return a.incarnation > b.incarnation;
  return stateRank(a.state) > stateRank(b.state);
}
