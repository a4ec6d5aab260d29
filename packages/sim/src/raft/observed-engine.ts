import { type GroupId, type Message, type NodeId, type RaftLogReader, StorageError } from '@cohort/core';
import { type EngineFactory, type RaftOptions, RawNode, type Ready, rawNodeEngine } from '@cohort/raft';

/** What a node's engine did in one Ready, reported before the host persists and applies it. */
export interface ReadyObserver {
  /** The engine was created (at start or restart); the simulator drives membership changes through it. */
  onEngine(rn: RawNode, group: GroupId): void;
  onReady(rd: Ready, group: GroupId): void;
}

/**
 * Deliberate bugs at the host's engine seam (a mutation test): a correct run
 * sets none; a test turns one on to show the checks catch such a host. The
 * host's own test-only switches (`RaftHostOptions.faults`) cover reads
 * without ReadIndex and applying before commit.
 */
export interface EngineMutations {
  /** A corrupt entry met while stepping a message is ignored, as if the host logged it and ran on. @default false */
  ignoreCorruptReads?: boolean;
}

/**
 * The production engine factory (RawNode, bootstrapped when the group is
 * new) with the seed's engine options, reporting each Ready to `observer`:
 * the invariant checks see exactly what the host is asked to do.
 */
export function observedEngineFactory(
  raft: Omit<RaftOptions, 'id' | 'random' | 'applied'>,
  observer: ReadyObserver,
  mutations: EngineMutations = {},
): EngineFactory {
  return (options: RaftOptions, storage: RaftLogReader, bootstrapPeers?: NodeId[], group = '') => {
    // The host's own options (id, ticks, random, applied) win over the seed's.
    const opts: RaftOptions = { ...raft, ...options };
    const rn = bootstrapPeers ? RawNode.bootstrap(opts, storage, bootstrapPeers) : new RawNode(opts, storage);
    observer.onEngine(rn, group);
    const engine = rawNodeEngine(rn);
    return {
      ...engine,
      step(m: Message): void {
        try {
          rn.step(m);
        } catch (err) {
          if (!(mutations.ignoreCorruptReads && err instanceof StorageError)) throw err;
        }
      },
      ready(): Ready {
        const rd = rn.ready();
        observer.onReady(rd, group);
        return rd;
      },
    };
  };
}
