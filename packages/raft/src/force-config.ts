import {
  type ConfChange,
  type ConfChangeSingle,
  type ConfState,
  ConfigError,
  type Entry,
  type LogIndex,
  type NodeId,
  type Term,
} from '@cohort/core';
import type { ChangeResult } from './confchange/changer.js';
import { decodeConfChange, encodeConfChange } from './confchange/codec.js';
import { nextConfig } from './membership.js';
import { NONE } from './message.js';
import type { Raft } from './raft.js';
import { toConfState } from './tracker/progress-tracker.js';

/*
 * Unsafe recovery of a group that lost its quorum for good (etcd's
 * --force-new-cluster, for one group and online). The node rewrites the
 * membership to the given voters without consensus: it takes its whole log
 * as committed (its uncommitted tail included), appends the membership
 * changes that lead to the forced voters as entries committed by fiat, and
 * enters a new term. Nothing is installed in the tracker here: the entries go
 * through the host like any committed entries (persisted first, then
 * applied), so the forced membership is in the durable log and hard state
 * before it takes effect, and a restart replays it. The node may campaign
 * only once they are applied (`hup` refuses while committed conf changes wait).
 *
 * What is lost: entries the lost replicas committed past this node's log.
 */

/** What {@link forceConfiguration} did. */
export interface ForcedConfiguration {
  /** Whether the log gained forced entries (false: the membership already was the one asked for). */
  forced: boolean;
  /** The term the forced entries carry: one above the node's term, so no old replica's log compares as up to date. */
  term: Term;
  /** The commit index known before: entries after it, up to `previousLastIndex`, are committed by fiat too. */
  previousCommit: LogIndex;
  /** The log's last index before the forced entries: writes the lost replicas committed past it are gone. */
  previousLastIndex: LogIndex;
  /** Index of the last forced entry: the membership holds once the host applied it. */
  lastIndex: LogIndex;
  /** The membership the log led to before (its uncommitted tail included). */
  before: ConfState;
  /** The membership after the forced entries. */
  after: ConfState;
}

/**
 * Forces `voters` (which must include this node, and name only members of the
 * log's latest membership) as the group's only members, learners removed.
 * `applied`: the last entry whose membership change the tracker holds.
 * Throws `ConfigError` for a bad voter list, or a log whose tail holds a
 * membership change that cannot apply.
 */
export function forceConfiguration(r: Raft, voters: NodeId[], applied: LogIndex): ForcedConfiguration {
  if (voters.length === 0) throw new ConfigError('a forced configuration needs at least one voter');
  if (new Set(voters).size !== voters.length) throw new ConfigError(`forced voters contain duplicates: ${voters}`);
  if (!voters.includes(r.id)) {
    throw new ConfigError(
      `a forced configuration is made on one of its voters; ${r.id} is not in ${voters.join(', ')}`,
    );
  }
  const log = r.raftLog;
  const lastIndex = log.lastIndex();
  const opts = r.opts;
  // The membership the whole log leads to: the tracker holds what is applied; the rest of the log,
  // committed by fiat below, is applied before the forced entries.
  let cur: ChangeResult = { config: r.trk.config, progress: r.trk.progress };
  const tail = applied < lastIndex ? log.slice(applied + 1, lastIndex + 1, Number.MAX_SAFE_INTEGER) : [];
  for (const e of tail) {
    if (e.type !== 'confChange') continue;
    try {
      cur = nextConfig(cur, decodeConfChange(e.data), lastIndex, opts.maxInflightMsgs, opts.maxInflightBytes);
    } catch (err) {
      throw new ConfigError(
        `the log's membership change at ${e.index} cannot apply (${(err as Error).message}); cannot force a configuration over it`,
      );
    }
  }
  const before = toConfState(cur.config);
  const members = new Set([...before.voters, ...before.votersOutgoing, ...before.learners, ...before.learnersNext]);
  for (const v of voters) {
    if (!members.has(v)) {
      throw new ConfigError(`${v} is not a member of the group (members: ${[...members].sort().join(', ')})`);
    }
  }
  // One change per entry, each a simple change (§4.1), so every step applies like an ordinary one.
  const steps: ConfChange[] = [];
  const step = (changes: ConfChangeSingle[]): void => {
    steps.push({ transition: 'auto', changes, context: new Uint8Array(0) });
  };
  if (before.votersOutgoing.length > 0) step([]); // leave the joint configuration first
  const joint = new Set([...before.voters]);
  for (const v of voters) if (!joint.has(v)) step([{ type: 'addVoter', nodeId: v }]);
  for (const id of [...members].sort()) {
    if (!voters.includes(id) && (joint.has(id) || before.learners.includes(id) || before.learnersNext.includes(id))) {
      step([{ type: 'removeNode', nodeId: id }]);
    }
  }
  let after = cur;
  for (const cc of steps) after = nextConfig(after, cc, lastIndex, opts.maxInflightMsgs, opts.maxInflightBytes);
  const result: ForcedConfiguration = {
    forced: steps.length > 0,
    term: r.term,
    previousCommit: log.committed,
    previousLastIndex: lastIndex,
    lastIndex,
    before,
    after: toConfState(after.config),
  };
  if (steps.length === 0) return result;
  // A new term: the forced entries outrank every log the lost replicas hold (§5.4.1), and this node
  // forgets any vote and leader of the old one.
  const term = r.term + 1;
  r.becomeFollower(term, NONE);
  r.receipt = undefined;
  const ents: Entry[] = steps.map((cc, i) => ({
    term,
    index: lastIndex + 1 + i,
    type: 'confChange',
    data: encodeConfChange(cc),
  }));
  log.append(ents);
  // Committed by fiat: the whole log, its forced entries included, as etcd's --force-new-cluster does.
  log.commitTo(log.lastIndex());
  result.term = term;
  result.lastIndex = log.lastIndex();
  return result;
}
