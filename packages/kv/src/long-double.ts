/**
 * INCRBYFLOAT's arithmetic as Redis does it: x87 `long double` (a 64-bit
 * mantissa, round-half-even), parsed as `strtold` and printed as `%.17Lf`
 * with trailing zeros trimmed. Emulated exactly with BigInt, so every replica
 * (and every platform) stores the same bytes Redis would.
 */

/** A finite value `sign * m * 2^e` with `m` below 2^64 (0 for zero), or an infinity. */
type LongDouble = { sign: 1 | -1; m: bigint; e: number } | { sign: 1 | -1; inf: true };

const MANTISSA_BITS = 64;
/** Beyond these binary exponents `strtold` reports ERANGE (overflow, or underflow to zero), which Redis refuses. */
const MAX_EXP = 16384;
const MIN_EXP = -16445;
const DECIMAL = /^([+-]?)(\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?$/;
const INFINITY = /^([+-]?)(inf|infinity)$/i;

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

/** `num / den` (both positive) rounded half-even to a 64-bit mantissa. */
function round(sign: 1 | -1, num: bigint, den: bigint): LongDouble {
  if (num === 0n) return { sign, m: 0n, e: 0 };
  let e = bitLength(num) - bitLength(den) - MANTISSA_BITS;
  for (;;) {
    const n = e < 0 ? num << BigInt(-e) : num;
    const d = e > 0 ? den << BigInt(e) : den;
    let q = n / d;
    if (q >= 1n << BigInt(MANTISSA_BITS)) {
      e++;
      continue;
    }
    if (q < 1n << BigInt(MANTISSA_BITS - 1)) {
      e--;
      continue;
    }
    const r2 = (n - q * d) * 2n;
    if (r2 > d || (r2 === d && (q & 1n) === 1n)) q++;
    if (q === 1n << BigInt(MANTISSA_BITS)) return { sign, m: q >> 1n, e: e + 1 };
    return { sign, m: q, e };
  }
}

/** What Redis' `string2ld` accepts: a decimal or an infinity, no spaces; undefined otherwise. */
export function parseLongDouble(text: string): LongDouble | undefined {
  const inf = INFINITY.exec(text);
  if (inf) return { sign: inf[1] === '-' ? -1 : 1, inf: true };
  const d = DECIMAL.exec(text);
  if (!d) return undefined;
  const sign = d[1] === '-' ? -1 : 1;
  const [int = '', frac = ''] = (d[2] as string).split('.');
  const exp = BigInt(d[3] ?? '0') - BigInt(frac.length);
  const digits = BigInt(`0${int}${frac}`);
  if (digits === 0n) return { sign, m: 0n, e: 0 };
  // Decimal exponents far out of range over- or underflow whatever the digits (which are few).
  if (exp > 6000n || exp < -6000n - BigInt(int.length + frac.length)) return undefined;
  const x = exp >= 0n ? round(sign, digits * 10n ** exp, 1n) : round(sign, digits, 10n ** -exp);
  if ('inf' in x || x.m === 0n) return x;
  const top = x.e + MANTISSA_BITS;
  return top > MAX_EXP || top < MIN_EXP ? undefined : x;
}

/** `a + b` rounded to a long double; undefined when the result is not finite (Redis refuses it). */
export function addLongDouble(a: LongDouble, b: LongDouble): LongDouble | undefined {
  if ('inf' in a || 'inf' in b) return undefined;
  const e = Math.min(a.e, b.e);
  const sum = BigInt(a.sign) * (a.m << BigInt(a.e - e)) + BigInt(b.sign) * (b.m << BigInt(b.e - e));
  // An exact zero sum is +0 in round-to-nearest, unless both were -0.
  const sign: 1 | -1 = sum < 0n || (sum === 0n && a.sign === -1 && b.sign === -1) ? -1 : 1;
  const abs = sum < 0n ? -sum : sum;
  const x = e >= 0 ? round(sign, abs << BigInt(e), 1n) : round(sign, abs, 1n << BigInt(-e));
  return 'inf' in x || x.m === 0n || x.e + MANTISSA_BITS <= MAX_EXP ? x : undefined;
}

/** `x` as Redis prints it: `%.17Lf` (exact, half-even), trailing zeros and a bare point removed, -0 as 0. */
export function formatLongDouble(x: LongDouble): string {
  if ('inf' in x) return x.sign < 0 ? '-inf' : 'inf';
  const scale = 10n ** 17n;
  let n: bigint;
  if (x.e >= 0) n = (x.m << BigInt(x.e)) * scale;
  else {
    const num = x.m * scale;
    const den = 1n << BigInt(-x.e);
    n = num / den;
    const r2 = (num - n * den) * 2n;
    if (r2 > den || (r2 === den && (n & 1n) === 1n)) n++;
  }
  const int = (n / scale).toString();
  const frac = (n % scale).toString().padStart(17, '0').replace(/0+$/, '');
  const text = `${x.sign < 0 ? '-' : ''}${int}${frac === '' ? '' : `.${frac}`}`;
  return text === '-0' ? '0' : text;
}
