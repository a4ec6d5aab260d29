/** Limits that bound the memory one client connection can make the server hold. */
export interface RespLimits {
  /** Largest bulk string accepted, in bytes. @default 16 MiB */
  maxBulkBytes: number;
  /** Most elements in one command array. @default 1 048 576 */
  maxArrayLength: number;
  /** Longest inline command or header line, in bytes. @default 64 KiB */
  maxInlineBytes: number;
  /**
   * Most argument bytes of one command (Redis' client-query-buffer-limit):
   * a client sending more is answered a protocol error and closed, so
   * repeated large arguments are never buffered without bound. @default 32 MiB
   */
  maxCommandBytes: number;
}

/** Defaults of {@link RespLimits}: smaller than Redis' 512 MB bulk limit, which few deployments need. */
export const DEFAULT_RESP_LIMITS: RespLimits = {
  maxBulkBytes: 16 * 1024 * 1024,
  maxArrayLength: 1024 * 1024,
  maxInlineBytes: 64 * 1024,
  maxCommandBytes: 32 * 1024 * 1024,
};

/** The client broke the RESP protocol; the connection is answered `-ERR Protocol error: ...` and closed. */
export class RespProtocolError extends Error {
  override readonly name = 'RespProtocolError';
}

const CR = 13;
const LF = 10;
const STAR = 42;
const DOLLAR = 36;
const MINUS = 45;
const ZERO = 48;

/**
 * A streaming RESP2 request parser: feed it bytes as they arrive, in any
 * fragmentation, and it returns each complete command (an array of
 * arguments). Understands multibulk arrays and inline commands (telnet).
 */
export class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes needed before parsing can make progress; avoids re-scanning a large bulk arriving in pieces. */
  private need = 0;
  private args: Buffer[] | null = null;
  /** Argument bytes of the command being read, its complete arguments only. */
  private argBytes = 0;
  private remaining = 0;
  private readonly limits: RespLimits;

  constructor(limits: Partial<RespLimits> = {}) {
    this.limits = { ...DEFAULT_RESP_LIMITS, ...limits };
  }

  /** Bytes received but not yet part of a complete command. */
  get buffered(): number {
    return this.buf.length + this.pendingBytes;
  }

  /**
   * Feeds `chunk`; returns the commands it completed and, on malformed input,
   * the {@link RespProtocolError} met after them (the parser is then unusable).
   */
  push(chunk: Uint8Array): { commands: Buffer[][]; error?: RespProtocolError } {
    this.pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.pendingBytes += chunk.byteLength;
    if (this.buf.length + this.pendingBytes < this.need) return { commands: [] };
    this.buf =
      this.buf.length === 0 && this.pending.length === 1
        ? this.pending[0]!
        : Buffer.concat([this.buf, ...this.pending]);
    this.pending = [];
    this.pendingBytes = 0;
    this.need = 0;
    const out: Buffer[][] = [];
    let pos = 0;
    try {
      for (;;) {
        const next = this.args === null ? this.parseStart(pos, out) : this.parseBulk(pos);
        if (next < 0) break;
        pos = next;
        if (this.args !== null && this.remaining === 0) {
          out.push(this.args);
          this.args = null;
          this.argBytes = 0;
        }
      }
    } catch (err) {
      if (!(err instanceof RespProtocolError)) throw err;
      return { commands: out, error: err };
    } finally {
      this.buf = this.buf.subarray(pos);
    }
    return { commands: out };
  }

  /** Finds the CRLF ending a line starting at `from`; -1 when incomplete (checked against the line limit). */
  private lineEnd(from: number): number {
    const i = this.buf.indexOf(LF, from);
    if (i < 0) {
      if (this.buf.length - from > this.limits.maxInlineBytes) {
        throw new RespProtocolError(
          this.buf[from] === STAR || this.buf[from] === DOLLAR
            ? 'too big mbulk count string'
            : 'too big inline request',
        );
      }
      return -1;
    }
    if (i - from > this.limits.maxInlineBytes) throw new RespProtocolError('too big inline request');
    return i;
  }

  /** The decimal `-?[0-9]{1,18}` in bytes `from` to `to`, read in place (no string made for each header). */
  private parseInt(from: number, to: number, what: string): number {
    const buf = this.buf;
    const negative = buf[from] === MINUS;
    let i = negative ? from + 1 : from;
    if (to - i < 1 || to - i > 18) throw new RespProtocolError(`invalid ${what} length`);
    let n = 0;
    for (; i < to; i++) {
      const d = (buf[i] as number) - ZERO;
      if (d < 0 || d > 9) throw new RespProtocolError(`invalid ${what} length`);
      n = n * 10 + d;
    }
    return negative ? -n : n;
  }

  /** Parses an array header or an inline command at `pos`; returns the new position or -1 for more input. */
  private parseStart(pos: number, out: Buffer[][]): number {
    if (pos >= this.buf.length) return -1;
    const lf = this.lineEnd(pos);
    if (lf < 0) return -1;
    if (this.buf[pos] === STAR) {
      if (this.buf[lf - 1] !== CR) throw new RespProtocolError('invalid multibulk length');
      const n = this.parseInt(pos + 1, lf - 1, 'multibulk');
      if (n > this.limits.maxArrayLength) throw new RespProtocolError('invalid multibulk length');
      // Redis ignores empty and null arrays.
      if (n > 0) {
        this.args = [];
        this.remaining = n;
      }
      return lf + 1;
    }
    const end = this.buf[lf - 1] === CR ? lf - 1 : lf;
    const args = splitInline(this.buf.toString('latin1', pos, end));
    if (args.length > 0) out.push(args.map((a) => Buffer.from(a, 'latin1')));
    return lf + 1;
  }

  /** Parses one `$<len>\r\n<bytes>\r\n` element at `pos`; returns the new position or -1 for more input. */
  private parseBulk(pos: number): number {
    if (pos >= this.buf.length) return -1;
    if (this.buf[pos] !== DOLLAR) {
      throw new RespProtocolError(`expected '$', got '${String.fromCharCode(this.buf[pos]!)}'`);
    }
    const lf = this.lineEnd(pos);
    if (lf < 0) return -1;
    if (this.buf[lf - 1] !== CR) throw new RespProtocolError('invalid bulk length');
    const len = this.parseInt(pos + 1, lf - 1, 'bulk');
    if (len < 0 || len > this.limits.maxBulkBytes) throw new RespProtocolError('invalid bulk length');
    if (this.argBytes + len > this.limits.maxCommandBytes) {
      throw new RespProtocolError(
        `command of more than ${this.limits.maxCommandBytes} bytes (client-query-buffer-limit)`,
      );
    }
    const start = lf + 1;
    const end = start + len;
    if (this.buf.length < end + 2) {
      this.need = end + 2 - pos;
      return -1;
    }
    if (this.buf[end] !== CR || this.buf[end + 1] !== LF)
      throw new RespProtocolError('bulk string not terminated by CRLF');
    // Copy, so a small argument does not pin a large input chunk in memory.
    this.args!.push(Buffer.from(this.buf.subarray(start, end)));
    this.argBytes += len;
    this.remaining--;
    return end + 2;
  }
}

/** Splits an inline command on blanks, honouring "double" (with \-escapes) and 'single' quotes like redis-cli. */
function splitInline(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && (line[i] === ' ' || line[i] === '\t')) i++;
    if (i >= line.length) break;
    let arg = '';
    const quote = line[i] === '"' || line[i] === "'" ? line[i] : undefined;
    if (quote) {
      i++;
      for (;;) {
        if (i >= line.length) throw new RespProtocolError('unbalanced quotes in request');
        const c = line[i]!;
        if (c === quote) {
          i++;
          break;
        }
        if (c === '\\' && quote === '"' && i + 1 < line.length) {
          const e = line[i + 1]!;
          arg += e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : e;
          i += 2;
          continue;
        }
        arg += c;
        i++;
      }
      if (i < line.length && line[i] !== ' ' && line[i] !== '\t')
        throw new RespProtocolError('unbalanced quotes in request');
    } else {
      while (i < line.length && line[i] !== ' ' && line[i] !== '\t') arg += line[i++];
    }
    args.push(arg);
  }
  return args;
}
