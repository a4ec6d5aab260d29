/**
 * A running 32-bit FNV-1a style hash over what a run did (deliveries,
 * applies, faults): two runs of one seed must end with the same value.
 */
export class TraceHash {
  private h = 0x811c9dc5;
  /** Items mixed in so far. */
  count = 0;

  /** Mixes integers into the trace. */
  mix(...xs: number[]): void {
    let h = this.h;
    for (const x of xs) h = mixInt(h, x);
    this.h = h >>> 0;
    this.count++;
  }

  /** Same as `mix(a, b, c)` without the rest-argument array (called for every delivery and apply). */
  mix3(a: number, b: number, c: number): void {
    this.h = mixInt(mixInt(mixInt(this.h, a), b), c) >>> 0;
    this.count++;
  }

  /** Same as `mix(a, b, c, d)` without the rest-argument array. */
  mix4(a: number, b: number, c: number, d: number): void {
    this.h = mixInt(mixInt(mixInt(mixInt(this.h, a), b), c), d) >>> 0;
    this.count++;
  }

  /** Mixes a string into the trace. */
  mixString(s: string): void {
    let h = this.h;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    this.h = h >>> 0;
    this.count++;
  }

  /** The hash as 8 hex digits. */
  digest(): string {
    return this.h.toString(16).padStart(8, '0');
  }
}

function mixInt(h: number, x: number): number {
  return Math.imul(Math.imul(h ^ (x & 0xffff), 0x01000193) ^ ((x >>> 16) & 0xffff), 0x01000193);
}

/** A 53-bit hash of bytes plus a few integers (two independent 32-bit lanes). */
export function hashBytes(data: Uint8Array, ...xs: number[]): number {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (const x of xs) {
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b ^ x, 0x5bd1e995);
    b ^= b >>> 15;
  }
  for (let i = 0; i < data.length; i++) {
    const c = data[i] as number;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}
