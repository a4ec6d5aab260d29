import { type ConfState, ConfigError, type LogIndex, type NodeId } from '@cohort/core';
import type { TrackerConfig } from '../tracker/progress-tracker.js';
import { Progress } from '../tracker/progress.js';
import type { ChangeResult } from './changer.js';

/** Builds membership and fresh progress from a persisted {@link ConfState} (restart or snapshot). */
export function restoreConfig(
  cs: ConfState,
  lastIndex: LogIndex,
  maxInflightMsgs: number,
  maxInflightBytes: number,
): ChangeResult {
  const config: TrackerConfig = {
    voters: { incoming: new Set(cs.voters), outgoing: new Set(cs.votersOutgoing) },
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
  for (const id of config.learners) {
    if (config.voters.incoming.has(id) || config.voters.outgoing.has(id)) {
      throw new ConfigError(`conf state lists ${id} as both learner and voter`);
    }
  }
  for (const id of config.learnersNext) {
    if (!config.voters.outgoing.has(id)) throw new ConfigError(`conf state lists ${id} in learnersNext, not outgoing`);
  }
  if (config.voters.outgoing.size === 0 && config.autoLeave) {
    throw new ConfigError('conf state sets autoLeave outside a joint configuration');
  }
  const progress = new Map<NodeId, Progress>();
  const ids = [...config.voters.incoming, ...config.voters.outgoing, ...config.learners, ...config.learnersNext];
  for (const id of ids) {
    if (!progress.has(id)) {
      progress.set(
        id,
        new Progress(Math.max(lastIndex, 1), maxInflightMsgs, maxInflightBytes, config.learners.has(id)),
      );
    }
  }
  return { config, progress };
}
