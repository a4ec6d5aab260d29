/**
 * Redis' glob-style pattern match (`stringmatchlen` of Redis 7, case
 * sensitive), byte for byte: `*`, `?`, `[...]` with `^` and ranges, and `\`
 * escapes; `*` matches any bytes, `/` included. Ported rather than taken from
 * a glob library because those match paths (`/` is special, `**`, braces)
 * and KEYS, SCAN MATCH must answer what Redis answers.
 */
export function globMatch(pattern: Uint8Array, key: Uint8Array): boolean {
  return match(pattern, 0, key, 0, { skipLonger: false }, 0);
}

/** Bytes compared as C's signed `char`, as Redis' ranges are. */
function signed(b: number): number {
  return b > 127 ? b - 256 : b;
}

const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const CARET = 0x5e;
const BACKSLASH = 0x5c;
const DASH = 0x2d;

function match(
  p: Uint8Array,
  pi: number,
  s: Uint8Array,
  si: number,
  state: { skipLonger: boolean },
  nesting: number,
): boolean {
  // Redis: protection against abusive patterns.
  if (nesting > 1000) return false;
  // Past the end reads as C's terminating NUL.
  const at = (i: number): number => p[i] ?? 0;
  while (pi < p.length && si < s.length) {
    switch (p[pi]) {
      case STAR:
        while (pi + 1 < p.length && p[pi + 1] === STAR) pi++;
        if (pi === p.length - 1) return true;
        while (si < s.length) {
          if (match(p, pi + 1, s, si, state, nesting + 1)) return true;
          if (state.skipLonger) return false;
          si++;
        }
        // No match for the rest of the pattern from anywhere in the rest of the string: no longer match can help.
        state.skipLonger = true;
        return false;
      case QUESTION:
        si++;
        break;
      case OPEN: {
        pi++;
        const not = at(pi) === CARET;
        if (not) pi++;
        let matched = false;
        const c = s[si] as number;
        for (;;) {
          if (at(pi) === BACKSLASH && p.length - pi >= 2) {
            pi++;
            if (at(pi) === c) matched = true;
          } else if (at(pi) === CLOSE) {
            break;
          } else if (pi >= p.length) {
            pi--;
            break;
          } else if (p.length - pi >= 3 && at(pi + 1) === DASH) {
            let start = signed(at(pi));
            let end = signed(at(pi + 2));
            if (start > end) [start, end] = [end, start];
            pi += 2;
            if (signed(c) >= start && signed(c) <= end) matched = true;
          } else if (at(pi) === c) {
            matched = true;
          }
          pi++;
        }
        if (not) matched = !matched;
        if (!matched) return false;
        si++;
        break;
      }
      case BACKSLASH:
        if (p.length - pi >= 2) pi++;
        if (at(pi) !== s[si]) return false;
        si++;
        break;
      default:
        if (p[pi] !== s[si]) return false;
        si++;
        break;
    }
    pi++;
    if (si === s.length) {
      while (at(pi) === STAR) pi++;
      break;
    }
  }
  return pi >= p.length && si === s.length;
}
