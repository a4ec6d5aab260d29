/** A RESP2 reply. */
export type Reply =
  | { t: 'simple'; s: string }
  | { t: 'error'; s: string }
  | { t: 'int'; n: number | bigint }
  | { t: 'bulk'; v: Uint8Array | string | null }
  | { t: 'array'; items: Reply[] | null };

/** `+OK`. */
export const OK: Reply = { t: 'simple', s: 'OK' };
/** `$-1`, the null bulk string. */
export const NIL: Reply = { t: 'bulk', v: null };

/** An error reply; `message` starts with its code word (`ERR`, `WRONGTYPE`, ...). */
export function errorReply(message: string): Reply {
  return { t: 'error', s: message };
}

/** Serializes a reply to RESP2 bytes. */
export function encodeReply(reply: Reply): Buffer {
  const parts: Buffer[] = [];
  write(reply, parts);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function write(reply: Reply, parts: Buffer[]): void {
  switch (reply.t) {
    case 'simple':
      parts.push(Buffer.from(`+${oneLine(reply.s)}\r\n`));
      return;
    case 'error':
      parts.push(Buffer.from(`-${oneLine(reply.s)}\r\n`));
      return;
    case 'int':
      parts.push(Buffer.from(`:${reply.n}\r\n`));
      return;
    case 'bulk': {
      if (reply.v === null) {
        parts.push(Buffer.from('$-1\r\n'));
        return;
      }
      const body =
        typeof reply.v === 'string'
          ? Buffer.from(reply.v)
          : Buffer.from(reply.v.buffer, reply.v.byteOffset, reply.v.byteLength);
      parts.push(Buffer.from(`$${body.length}\r\n`), body, Buffer.from('\r\n'));
      return;
    }
    case 'array':
      if (reply.items === null) {
        parts.push(Buffer.from('*-1\r\n'));
        return;
      }
      parts.push(Buffer.from(`*${reply.items.length}\r\n`));
      for (const item of reply.items) write(item, parts);
      return;
    default: {
      const never: never = reply;
      throw new Error(`unknown reply ${String(never)}`);
    }
  }
}

/** Simple strings and errors cannot hold CR or LF. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}
