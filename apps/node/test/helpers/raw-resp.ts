import { type Socket, connect } from 'node:net';

/** One command as RESP bytes: an array of bulk strings. */
export function encodeCommand(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * The length of the first complete RESP2 or RESP3 reply in `buf` from
 * `at`, or undefined when it is not all there yet. Only frames replies: the
 * test compares their bytes as they are.
 */
export function replyLength(buf: Buffer, at = 0): number | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at]!);
  const head = buf.toString('latin1', at + 1, eol);
  const line = eol + 2 - at;
  switch (type) {
    case '+':
    case '-':
    case ':':
    case '_':
    case ',':
    case '#':
    case '(':
      return line;
    case '$':
    case '!':
    case '=': {
      const n = Number(head);
      if (n < 0) return line;
      return buf.length >= eol + 2 + n + 2 ? line + n + 2 : undefined;
    }
    case '*':
    case '~':
    case '>':
    case '%': {
      const n = Number(head) * (type === '%' ? 2 : 1);
      let len = line;
      for (let i = 0; i < n; i++) {
        const item = replyLength(buf, at + len);
        if (item === undefined) return undefined;
        len += item;
      }
      return len;
    }
    default:
      throw new Error(`not a RESP reply at byte ${at}: ${JSON.stringify(buf.toString('latin1', at, at + 40))}`);
  }
}

/** A connection that sends commands and answers each with its reply's raw bytes. */
export class RawClient {
  private buf = Buffer.alloc(0);
  private waiting: { resolve: (b: Buffer) => void; reject: (e: Error) => void }[] = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        const w = this.waiting[0];
        if (!w) return;
        const len = replyLength(this.buf);
        if (len === undefined) return;
        this.waiting.shift();
        w.resolve(this.buf.subarray(0, len));
        this.buf = this.buf.subarray(len);
      }
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w.reject(new Error('connection closed'));
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        s.off('error', reject);
        s.setNoDelay(true);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Sends `args` and resolves with the reply's bytes, failing after `ms`. */
  call(args: (string | Buffer)[], ms = 10_000): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${args.join(' ').slice(0, 80)} in ${ms} ms`)), ms);
      this.waiting.push({
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(encodeCommand(args));
    });
  }

  /** Sends `cmds` in one write (so the server reads them together) and resolves with their replies. */
  pipeline(cmds: (string | Buffer)[][], ms = 10_000): Promise<Buffer[]> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const replies = cmds.map(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          this.waiting.push({ resolve, reject });
        }),
    );
    const timer = setTimeout(() => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`no reply to a pipeline in ${ms} ms`));
    }, ms);
    this.socket.write(Buffer.concat(cmds.map(encodeCommand)));
    return Promise.all(replies).finally(() => clearTimeout(timer));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A reply as a value, for the comparisons that are not byte for byte. */
export type Value = string | bigint | Buffer | null | { error: string } | Value[];

/** Parses one complete reply (RESP2, and RESP3's scalars and aggregates). */
export function parseReply(buf: Buffer): Value {
  const [v] = parseAt(buf, 0);
  return v;
}

function parseAt(buf: Buffer, at: number): [Value, number] {
  const eol = buf.indexOf('\r\n', at);
  const type = String.fromCharCode(buf[at]!);
  const head = buf.toString('latin1', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
    case ',':
    case '(':
      return [head, next];
    case '-':
      return [{ error: head }, next];
    case ':':
      return [BigInt(head), next];
    case '_':
      return [null, next];
    case '#':
      return [head, next];
    case '$':
    case '=':
    case '!': {
      const n = Number(head);
      if (n < 0) return [null, next];
      return [buf.subarray(next, next + n), next + n + 2];
    }
    default: {
      const n = Number(head) * (type === '%' ? 2 : 1);
      if (n < 0) return [null, next];
      const items: Value[] = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const [v, p] = parseAt(buf, pos);
        items.push(v);
        pos = p;
      }
      return [items, pos];
    }
  }
}
