import type { PartitionKv } from '@cohort/storage';
import { applyOp } from './apply-op.js';
import type { KvCommand, KvOp } from './command.js';
import { decodeResponse, encodeResponse } from './request.js';
import type { KvResult } from './result.js';

/** The answer to a retry of a request whose response the client already acknowledged (and we forgot). */
export const DUPLICATE_ACKNOWLEDGED: KvResult = {
  type: 'error',
  message: 'ERR duplicate request already acknowledged',
};

/**
 * Applies a command exactly once per `(clientId, seq)`: a retry returns the
 * stored response; a sequence number at or below the client's low-water mark
 * without a stored response is refused. Then raises the low-water mark.
 */
export function applySessionCommand(
  kv: PartitionKv,
  cmd: KvCommand,
  index: number,
  now: number,
  apply: (kv: PartitionKv, op: KvOp, index: number, now: number) => KvResult = applyOp,
): KvResult {
  const s = cmd.session;
  if (!s) return apply(kv, cmd, index, now);
  const mark = kv.session(s.clientId)?.lowWater ?? 0;
  // Responses are kept only above the mark: at or below it, the client has its answer.
  const stored = s.seq > mark ? kv.response(s.clientId, s.seq) : undefined;
  let result: KvResult;
  if (stored) {
    result = decodeResponse(stored) as KvResult;
  } else if (s.seq <= mark) {
    result = DUPLICATE_ACKNOWLEDGED;
  } else {
    result = apply(kv, cmd, index, now);
    // A command that met a transaction's intent did nothing: its retry applies afresh.
    if (result.type === 'locked') {
      if (s.lowWater > mark) kv.raiseLowWater(s.clientId, s.lowWater, now);
      return result;
    }
    kv.saveResponse(s.clientId, s.seq, encodeResponse(result), now, s.lowWater);
    return result;
  }
  if (s.lowWater > mark) kv.raiseLowWater(s.clientId, s.lowWater, now);
  return result;
}

/** Drops up to `limit` sessions whose last write is older than `before` (log time): deterministic on every replica. */
export function sweepIdleSessions(kv: PartitionKv, before: number, limit: number): void {
  for (const clientId of kv.idleSessions(before, limit)) kv.dropSession(clientId);
}
