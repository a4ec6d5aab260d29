/**
 * A reply, in RESP3's terms; {@link encodeReply} writes it in the protocol
 * the connection speaks (RESP2 folds maps into arrays, verbatim strings into
 * bulk strings, and has two nulls where RESP3 has one).
 */
export type Reply =
  | { t: 'simple'; s: string }
  | { t: 'error'; s: string }
  | { t: 'int'; n: number | bigint }
  | { t: 'bulk'; v: Uint8Array | string | null }
  | { t: 'array'; items: Reply[] | null }
  | { t: 'map'; entries: [Reply, Reply][] }
  | { t: 'set'; items: Reply[] }
  /** A verbatim string (INFO, CLIENT LIST): `format` is three letters, `txt` for plain text. */
  | { t: 'verbatim'; format: string; s: string };

/** The protocol a connection speaks (HELLO negotiates it). */
export type Protocol = 2 | 3;

/** `+OK`. */
export const OK: Reply = { t: 'simple', s: 'OK' };
/** The null bulk string (RESP2 `$-1`, RESP3 `_`). */
export const NIL: Reply = { t: 'bulk', v: null };

/** An error reply; `message` starts with its code word (`ERR`, `WRONGTYPE`, ...). */
export function errorReply(message: string): Reply {
  return { t: 'error', s: message };
}

/** Serializes a reply to RESP2 (the default) or RESP3 bytes. */
export function encodeReply(reply: Reply, proto: Protocol = 2): Buffer {
  const parts: Buffer[] = [];
  write(reply, parts, proto);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function bulk(body: Buffer, parts: Buffer[], head = '$'): void {
  parts.push(Buffer.from(`${head}${body.length}\r\n`), body, Buffer.from('\r\n'));
}

function write(reply: Reply, parts: Buffer[], proto: Protocol): void {
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
        parts.push(Buffer.from(proto === 3 ? '_\r\n' : '$-1\r\n'));
        return;
      }
      bulk(
        typeof reply.v === 'string'
          ? Buffer.from(reply.v)
          : Buffer.from(reply.v.buffer, reply.v.byteOffset, reply.v.byteLength),
        parts,
      );
      return;
    }
    case 'array':
    case 'set':
      if (reply.items === null) {
        parts.push(Buffer.from(proto === 3 ? '_\r\n' : '*-1\r\n'));
        return;
      }
      parts.push(Buffer.from(`${reply.t === 'set' && proto === 3 ? '~' : '*'}${reply.items.length}\r\n`));
      for (const item of reply.items) write(item, parts, proto);
      return;
    case 'map':
      parts.push(Buffer.from(proto === 3 ? `%${reply.entries.length}\r\n` : `*${reply.entries.length * 2}\r\n`));
      for (const [k, v] of reply.entries) {
        write(k, parts, proto);
        write(v, parts, proto);
      }
      return;
    case 'verbatim':
      if (proto === 3) bulk(Buffer.from(`${reply.format}:${reply.s}`), parts, '=');
      else bulk(Buffer.from(reply.s), parts);
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
