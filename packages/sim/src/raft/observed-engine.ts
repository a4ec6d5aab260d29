import { type Entry, type LogIndex, type Message, type NodeId, type RaftLogReader, StorageError } from '@cohort/core';
import { type EngineFactory, type RaftOptions, RawNode, type ReadState, type Ready, rawNodeEngine } from '@cohort/raft';

/** What a node's engine did in one Ready, reported before the host persists and applies it. */
export interface ReadyObserver {
  /** The engine was created (at start or restart); the simulator drives membership changes through it. */
  onEngine(rn: RawNode): void;
  onReady(rd: Ready): void;
}

/**
 * Deliberate bugs in what the host is told (a mutation test of the host's
 * seam): a correct run sets none; tests turn one on to show the checks catch
 * a host that serves reads or applies entries too early.
 */
export interface EngineMutations {
  /** A leader confirms every ReadIndex round at once, at its commit index, without asking a quorum. @default false */
  readsWithoutReadIndex?: boolean;
  /** Entries are handed to the host to apply as soon as they are appended, before they commit. @default false */
  applyBeforeCommit?: boolean;
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
  return (options: RaftOptions, storage: RaftLogReader, bootstrapPeers?: NodeId[]) => {
    // The host's own options (id, ticks, random, applied) win over the seed's.
    const opts: RaftOptions = { ...raft, ...options };
    const rn = bootstrapPeers ? RawNode.bootstrap(opts, storage, bootstrapPeers) : new RawNode(opts, storage);
    observer.onEngine(rn);
    const engine = rawNodeEngine(rn);
    let fakeReads: ReadState[] = [];
    let inFlight = false;
    /** The last index handed to the host to apply. */
    let handed: LogIndex = options.applied ?? 0;
    return {
      ...engine,
      step(m: Message): void {
        try {
          rn.step(m);
        } catch (err) {
          if (!(mutations.ignoreCorruptReads && err instanceof StorageError)) throw err;
        }
      },
      readIndex(context: Uint8Array): void {
        const s = rn.status();
        if (mutations.readsWithoutReadIndex && s.role === 'leader') {
          fakeReads.push({ index: s.commit, context });
          return;
        }
        rn.readIndex(context);
      },
      hasReady: () => rn.hasReady() || (fakeReads.length > 0 && !inFlight),
      ready(): Ready {
        let rd = rn.ready();
        inFlight = true;
        if (fakeReads.length > 0) {
          rd = { ...rd, readStates: [...rd.readStates, ...fakeReads] };
          fakeReads = [];
        }
        if (rd.snapshot && rd.snapshot.meta.index > handed) handed = rd.snapshot.meta.index;
        for (const e of rd.committedEntries) if (e.index > handed) handed = e.index;
        if (mutations.applyBeforeCommit) {
          const early: Entry[] = [];
          for (const e of rd.entries) {
            if (e.index === handed + 1) {
              early.push(e);
              handed = e.index;
            }
          }
          if (early.length > 0) rd = { ...rd, committedEntries: [...rd.committedEntries, ...early] };
        }
        observer.onReady(rd);
        return rd;
      },
      advance(): void {
        inFlight = false;
        rn.advance();
      },
    };
  };
}
