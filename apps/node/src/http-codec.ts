import { decodeItems } from '@cohort/kv';
import type { KvRecord } from '@cohort/storage';

/** How keys and values travel in JSON: UTF-8 text (the default) or base64 (`?encoding=base64`). */
export type Encoding = 'utf8' | 'base64';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX = /^[0-9A-Fa-f]{2}$/;

/** A request the API refuses, with the status and code of its answer. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BAD_REQUEST', message);
}

/** Bytes as JSON text in `encoding`. UTF-8 text of bytes that are not UTF-8 is lossy: ask for base64. */
export function toText(bytes: Uint8Array, encoding: Encoding): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding);
}

/** JSON text in `encoding` as bytes; `what` names the field in the error. */
export function fromText(text: string, encoding: Encoding, what: string): Uint8Array {
  if (encoding === 'utf8') return new TextEncoder().encode(text);
  if (!BASE64.test(text))
    throw badRequest(`${what} is not valid base64 (standard alphabet, padded), as ?encoding=base64 asks`);
  return new Uint8Array(Buffer.from(text, 'base64'));
}

const UTF8 = new TextEncoder();

/**
 * The key bytes of a request path after `prefix`: percent-escapes decoded to
 * bytes (any bytes, `%2F` and a literal `/` alike), other characters as
 * UTF-8; the query string is not part of it.
 */
export function keyFromPath(url: string, prefix: string): Uint8Array {
  const q = url.indexOf('?');
  const path = (q < 0 ? url : url.slice(0, q)).slice(prefix.length);
  if (path.length === 0) throw badRequest('the key is empty: address a key as /v1/kv/<key>, percent-encoded');
  // A key without escapes (most) is its text's UTF-8, encoded in one call: every request reads its key here.
  let pct = path.indexOf('%');
  if (pct < 0) return UTF8.encode(path);
  // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair's two, 4), an escape's three characters 1.
  const out = new Uint8Array(path.length * 3);
  let n = 0;
  for (let i = 0; ; ) {
    // The text before the escape ('%' is ASCII: never inside a surrogate pair).
    if (pct > i) n += UTF8.encodeInto(path.slice(i, pct), out.subarray(n)).written;
    if (pct === path.length) break;
    const hex = path.slice(pct + 1, pct + 3);
    if (!HEX.test(hex)) throw badRequest(`the key's escape '%${hex}' at byte ${pct} is not % and two hex digits`);
    out[n++] = Number.parseInt(hex, 16);
    i = pct + 3;
    pct = path.indexOf('%', i);
    if (pct < 0) pct = path.length;
  }
  return out.slice(0, n);
}

/**
 * The JSON form of a key's record; `ttlMs` counted from `now` when the key
 * expires. A hash (written over RESP) has `kind: "hash"` and its `fields` as
 * [field, value] pairs in order instead of a value; a list `kind: "list"`
 * and its `items` (`kind`, not `type`: a watch event's `type` is put or delete).
 */
export function recordJson(r: KvRecord, encoding: Encoding, now: number): Record<string, unknown> {
  const out: Record<string, unknown> = { key: toText(r.key, encoding) };
  if (r.type === undefined) out.value = toText(r.value, encoding);
  else {
    out.kind = r.type;
    const items = decodeItems(r.value).map((i) => toText(i, encoding));
    if (r.type === 'list') out.items = items;
    else out.fields = items.flatMap((f, i) => (i % 2 === 0 ? [[f, items[i + 1]]] : []));
  }
  Object.assign(out, { createRevision: r.createRevision, modRevision: r.modifyRevision, version: r.version });
  if (r.expiresAt !== undefined) out.ttlMs = Math.max(0, r.expiresAt - now);
  return out;
}

/** What a write's answer carries, as a `Prefer: return=...` header asks (RFC 7240 §4.2). */
export type ReturnPreference = 'minimal' | 'representation';

/**
 * The `return` preference of a `Prefer` header (RFC 7240): `minimal` or
 * `representation`, undefined when the header names neither. Preferences are
 * separated by commas (several `Prefer` lines arrive joined so), their names
 * compared without case, their values optionally quoted and followed by
 * `;` parameters; only the first `return` counts (RFC 7240 §2).
 */
export function returnPreference(header: string | string[] | undefined): ReturnPreference | undefined {
  if (header === undefined) return undefined;
  for (const line of typeof header === 'string' ? [header] : header) {
    for (const pref of line.split(',')) {
      const [name, value = ''] = (pref.split(';', 1)[0] as string).split('=', 2).map((s) => s.trim().toLowerCase());
      if (name !== 'return') continue;
      const unquoted = value.replace(/^"(.*)"$/, '$1');
      return unquoted === 'minimal' || unquoted === 'representation' ? unquoted : undefined;
    }
  }
  return undefined;
}

/** The first key after every key starting with `prefix` (undefined: no such key, the prefix is all 0xff). */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.slice(0, i + 1);
    }
  }
  return undefined;
}

/** The smallest key after `key` in byte order. */
export function successor(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/** Byte order of keys. */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}
