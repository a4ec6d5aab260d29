import { type ConfChangeSingle, ConfigError, type LogIndex, type NodeId } from '@cohort/core';
import { type TrackerConfig, cloneTrackerConfig } from '../tracker/progress-tracker.js';
import { Progress } from '../tracker/progress.js';

/** The outcome of a configuration change: the new membership and progress map. */
export interface ChangeResult {
  config: TrackerConfig;
  progress: Map<NodeId, Progress>;
}

/** Computes configuration transitions without touching the live tracker (so a failed change leaves no trace). */
export class Changer {
  constructor(
    private readonly config: TrackerConfig,
    private readonly progress: ReadonlyMap<NodeId, Progress>,
    private readonly lastIndex: LogIndex,
    private readonly maxInflightMsgs: number,
    private readonly maxInflightBytes: number,
  ) {}

  /** Enters a joint configuration: the current voters become outgoing, `changes` apply to incoming. */
  enterJoint(autoLeave: boolean, changes: ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.voters.outgoing.size > 0) throw new ConfigError('configuration is already joint; leave it first');
    if (config.voters.incoming.size === 0)
      throw new ConfigError('cannot enter a joint configuration from an empty one');
    config.voters.outgoing = new Set(config.voters.incoming);
    this.apply(config, progress, changes);
    config.autoLeave = autoLeave;
    this.check(config, progress);
    return { config, progress };
  }

  /** Leaves the joint configuration: outgoing voters drop out, `learnersNext` become learners. */
  leaveJoint(): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.voters.outgoing.size === 0) throw new ConfigError('configuration is not joint; nothing to leave');
    for (const id of config.learnersNext) {
      config.learners.add(id);
    }
    config.learnersNext.clear();
    for (const id of config.voters.outgoing) {
      if (!config.voters.incoming.has(id) && !config.learners.has(id)) progress.delete(id);
    }
    config.voters.outgoing.clear();
    config.autoLeave = false;
    this.check(config, progress);
    return { config, progress };
  }

  /** Applies at most one voter change directly (§4.1: single-server changes keep majorities overlapping). */
  simple(changes: ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.voters.outgoing.size > 0) throw new ConfigError('cannot apply a simple change in a joint configuration');
    const before = config.voters.incoming;
    const beforeCopy = new Set(before);
    this.apply(config, progress, changes);
    const after = config.voters.incoming;
    let diff = 0;
    for (const id of after) if (!beforeCopy.has(id)) diff++;
    for (const id of beforeCopy) if (!after.has(id)) diff++;
    if (diff > 1) throw new ConfigError('more than one voter changed without joint consensus; use a joint transition');
    this.check(config, progress);
    return { config, progress };
  }

  private apply(config: TrackerConfig, progress: Map<NodeId, Progress>, changes: ConfChangeSingle[]): void {
    for (const cc of changes) {
      if (cc.nodeId === '') throw new ConfigError('a conf change names an empty node id');
      switch (cc.type) {
        case 'addVoter':
          this.makeVoter(config, progress, cc.nodeId);
          break;
        case 'addLearner':
          this.makeLearner(config, progress, cc.nodeId);
          break;
        case 'removeNode':
          this.remove(config, progress, cc.nodeId);
          break;
        default: {
          const never: never = cc.type;
          throw new ConfigError(`unknown conf change type ${String(never)}`);
        }
      }
    }
    if (config.voters.incoming.size === 0) throw new ConfigError('removed all voters; a group needs at least one');
  }

  private initProgress(progress: Map<NodeId, Progress>, id: NodeId, isLearner: boolean): void {
    // A new peer starts probing at our last index; the leader backs off from there.
    progress.set(id, new Progress(Math.max(this.lastIndex, 1), this.maxInflightMsgs, this.maxInflightBytes, isLearner));
  }

  private makeVoter(config: TrackerConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
    const pr = progress.get(id);
    if (!pr) this.initProgress(progress, id, false);
    config.learners.delete(id);
    config.learnersNext.delete(id);
    config.voters.incoming.add(id);
  }

  private makeLearner(config: TrackerConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
    const pr = progress.get(id);
    if (!pr) {
      this.initProgress(progress, id, true);
      config.learners.add(id);
      return;
    }
    if (config.learners.has(id)) return;
    // Demoting a voter: it drops out of incoming now; if it is still an outgoing
    // voter it can only become a learner once the joint config is left.
    config.voters.incoming.delete(id);
    if (config.voters.outgoing.has(id)) {
      config.learnersNext.add(id);
    } else {
      config.learners.add(id);
    }
  }

  private remove(config: TrackerConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
    if (!progress.has(id)) return;
    config.voters.incoming.delete(id);
    config.learners.delete(id);
    config.learnersNext.delete(id);
    // An outgoing voter keeps its progress until the joint config is left.
    if (!config.voters.outgoing.has(id)) progress.delete(id);
  }

  private checkAndCopy(): ChangeResult {
    const config = cloneTrackerConfig(this.config);
    const progress = new Map<NodeId, Progress>();
    for (const [id, pr] of this.progress) {
      // Progress objects are shared and never mutated here (the caller sets
      // `isLearner` once the change is accepted): a kept peer keeps its replication state.
      progress.set(id, pr);
    }
    this.check(config, progress);
    return { config, progress };
  }

  private check(config: TrackerConfig, progress: Map<NodeId, Progress>): void {
    const all = [...config.voters.incoming, ...config.voters.outgoing, ...config.learners, ...config.learnersNext];
    for (const id of all) if (!progress.has(id)) throw new ConfigError(`no progress for ${id}`);
    for (const id of config.learnersNext) {
      if (!config.voters.outgoing.has(id)) throw new ConfigError(`${id} is in learnersNext but not an outgoing voter`);
    }
    for (const id of config.learners) {
      if (config.voters.incoming.has(id) || config.voters.outgoing.has(id)) {
        throw new ConfigError(`${id} is both a learner and a voter`);
      }
    }
    if (config.voters.outgoing.size === 0 && config.autoLeave)
      throw new ConfigError('autoLeave set outside a joint config');
  }
}
