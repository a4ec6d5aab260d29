/**
 * A transaction refused before anything was written (too large, a reserved
 * key, an operation whose keys span partitions, ...); the message is the
 * Redis-style error the client gets.
 */
export class TxnRefusedError extends Error {
  override readonly name = 'TxnRefusedError';
}
