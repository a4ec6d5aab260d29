import { ConfigError, type LogIndex, type Random } from '@cohort/core';
import type { RaftOptions } from './types.js';

/** {@link RaftOptions} with every default filled in. */
export interface ResolvedOptions {
  id: string;
  electionTick: number;
  electionTickMax: number;
  heartbeatTick: number;
  random: Random;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  /** 0: as `maxInflightBytes`. */
  maxCatchUpInflightBytes: number;
  maxUncommittedEntriesSize: number;
  preVote: boolean;
  checkQuorum: boolean;
  readOnlyOption: 'safe' | 'leaseBased' | 'leaseOnRequest';
  readIndexFanout: 'all' | 'quorum';
  asyncStorageWrites: boolean;
  deferCommitNotice: boolean;
  maxOutstandingReadies: number;
  /** 0: unbounded. */
  maxCommittedSizePerReady: number;
  snapshotChunkBytes: number;
  applied: LogIndex;
}

const MIB = 1024 * 1024;

function nonNegativeInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new ConfigError(`${name} must be a non-negative integer, got ${v}`);
  return v;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** Validates options and applies defaults; throws `ConfigError` naming the field to fix. */
export function resolveOptions(o: RaftOptions): ResolvedOptions {
  if (typeof o.id !== 'string' || o.id === '') throw new ConfigError('id must be a non-empty node id');
  const heartbeatTick = positiveInt('heartbeatTick', o.heartbeatTick ?? 1);
  const electionTick = positiveInt('electionTick', o.electionTick ?? 10);
  if (electionTick <= heartbeatTick) {
    throw new ConfigError(`electionTick (${electionTick}) must be greater than heartbeatTick (${heartbeatTick})`);
  }
  const electionTickMax = positiveInt('electionTickMax', o.electionTickMax ?? 2 * electionTick - 1);
  if (electionTickMax < electionTick) {
    throw new ConfigError(`electionTickMax (${electionTickMax}) must be at least electionTick (${electionTick})`);
  }
  if (!o.random) throw new ConfigError('random is required (inject a SeededRandom in tests, systemRandom in hosts)');
  const checkQuorum = o.checkQuorum ?? true;
  const readOnlyOption = o.readOnlyOption ?? 'safe';
  if (readOnlyOption !== 'safe' && readOnlyOption !== 'leaseBased' && readOnlyOption !== 'leaseOnRequest') {
    throw new ConfigError(
      `readOnlyOption must be 'safe', 'leaseBased' or 'leaseOnRequest', got ${String(readOnlyOption)}`,
    );
  }
  if (readOnlyOption !== 'safe' && !checkQuorum) {
    throw new ConfigError(`readOnlyOption '${readOnlyOption}' needs checkQuorum: true (the lease rests on it)`);
  }
  const readIndexFanout = o.readIndexFanout ?? 'all';
  if (readIndexFanout !== 'all' && readIndexFanout !== 'quorum') {
    throw new ConfigError(`readIndexFanout must be 'all' or 'quorum', got ${String(readIndexFanout)}`);
  }
  const maxOutstandingReadies = positiveInt('maxOutstandingReadies', o.maxOutstandingReadies ?? 1);
  if (maxOutstandingReadies > 1 && !o.asyncStorageWrites) {
    throw new ConfigError(
      `maxOutstandingReadies (${maxOutstandingReadies}) above 1 needs asyncStorageWrites: true (the leader must count itself only once durable)`,
    );
  }
  return {
    id: o.id,
    electionTick,
    electionTickMax,
    heartbeatTick,
    random: o.random,
    maxSizePerMsg: nonNegativeInt('maxSizePerMsg', o.maxSizePerMsg ?? MIB),
    maxInflightMsgs: positiveInt('maxInflightMsgs', o.maxInflightMsgs ?? 256),
    maxInflightBytes: nonNegativeInt('maxInflightBytes', o.maxInflightBytes ?? 0),
    maxCatchUpInflightBytes: nonNegativeInt('maxCatchUpInflightBytes', o.maxCatchUpInflightBytes ?? 0),
    maxUncommittedEntriesSize: nonNegativeInt('maxUncommittedEntriesSize', o.maxUncommittedEntriesSize ?? 0),
    preVote: o.preVote ?? true,
    checkQuorum,
    readOnlyOption,
    readIndexFanout,
    asyncStorageWrites: o.asyncStorageWrites ?? false,
    deferCommitNotice: o.deferCommitNotice ?? false,
    maxOutstandingReadies,
    maxCommittedSizePerReady: nonNegativeInt('maxCommittedSizePerReady', o.maxCommittedSizePerReady ?? 0),
    snapshotChunkBytes: positiveInt('snapshotChunkBytes', o.snapshotChunkBytes ?? MIB),
    applied: nonNegativeInt('applied', o.applied ?? 0),
  };
}
