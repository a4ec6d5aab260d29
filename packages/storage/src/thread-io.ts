import { readFileSync } from 'node:fs';

/** A counter of the calling thread's I/O (a field of Linux's `/proc/thread-self/io`); undefined where unknown. */
function threadIo(field: 'read_bytes' | 'syscr'): number | undefined {
  try {
    const m = new RegExp(`^${field}: (\\d+)$`, 'm').exec(readFileSync('/proc/thread-self/io', 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The bytes the calling thread has caused to be read from storage (`read_bytes`: page cache misses, not reads
 * served from memory); undefined where unknown.
 */
export function threadReadBytes(): number | undefined {
  return threadIo('read_bytes');
}

/**
 * Reads of the file system the calling thread made so far (`syscr`: read system calls, served from the page
 * cache or not), or undefined where the kernel does not count them per thread. SQLite reads a page with one
 * (no memory mapping here) when its connection's page cache does not hold it.
 */
export function threadReads(): number | undefined {
  return threadIo('syscr');
}
