import { createHash } from 'node:crypto';
import type { KvView } from '@cohort/storage';

/** Rows or sessions read from the view per page. */
const PAGE = 256;

/**
 * SHA-256 over a view's applied index, then every row (key, value,
 * revisions, expiry, type) in key order, then every session with its responses,
 * each field length-prefixed. Replicas at the same applied index agree on it
 * exactly when their states agree. Reads the view page by page.
 */
export function digestView(view: KvView): string {
  const steps = digestSteps(view);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * {@link digestView} one page at a time: each `next()` reads and hashes one
 * page; the last returns the digest. Lets a caller spread a large digest
 * over many turns of the event loop.
 */
export function* digestSteps(view: KvView): Generator<void, string, void> {
  const h = createHash('sha256');
  const num = (n: number): void => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(n);
    h.update(b);
  };
  const bytes = (b: Uint8Array): void => {
    num(b.length);
    h.update(b);
  };
  num(view.applied.index);
  let afterKey: Uint8Array | undefined;
  for (;;) {
    const page = view.rows(afterKey, PAGE);
    for (const r of page) {
      bytes(r.key);
      bytes(r.value);
      num(r.createRevision);
      num(r.modifyRevision);
      num(r.version);
      num(r.expiresAt ?? -1);
      // A string adds nothing, so a string-only state digests as before types existed.
      if (r.type !== undefined) bytes(Buffer.from(r.type));
    }
    const last = page.at(-1);
    if (!last || page.length < PAGE) break;
    afterKey = last.key;
    yield;
  }
  h.update('sessions');
  let afterClient: string | undefined;
  for (;;) {
    const page = view.sessions(afterClient, PAGE);
    for (const s of page) {
      bytes(Buffer.from(s.clientId));
      num(s.lowWater);
      num(s.lastActive);
      num(s.responses.length);
      for (const r of s.responses) {
        num(r.seq);
        bytes(r.response);
      }
    }
    const last = page.at(-1);
    if (!last || page.length < PAGE) break;
    afterClient = last.clientId;
    yield;
  }
  return h.digest('hex');
}
