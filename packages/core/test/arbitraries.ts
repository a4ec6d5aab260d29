import fc from 'fast-check';
import type { ConfChange, ConfState, Entry, Message, MessageType, Snapshot } from '../src/index.js';

const messageTypes: MessageType[] = [
  'app',
  'appResp',
  'vote',
  'voteResp',
  'preVote',
  'preVoteResp',
  'snap',
  'snapResp',
  'heartbeat',
  'heartbeatResp',
  'timeoutNow',
  'transferLeader',
  'readIndex',
  'readIndexResp',
  'prop',
];

/** Node ids, including the empty "no node" and non-ASCII ones. */
export const nodeId = fc.oneof(fc.constant(''), fc.string({ maxLength: 12 }), fc.constantFrom('n1', 'n2', 'nœud-3'));
const num = fc.oneof(fc.constant(0), fc.nat(1000), fc.maxSafeNat());
const bytes = fc.uint8Array({ maxLength: 64 });

export const entry: fc.Arbitrary<Entry> = fc.record({
  term: num,
  index: num,
  type: fc.constantFrom('normal' as const, 'confChange' as const),
  data: bytes,
});

export const confState: fc.Arbitrary<ConfState> = fc.record({
  voters: fc.array(nodeId, { maxLength: 5 }),
  learners: fc.array(nodeId, { maxLength: 3 }),
  votersOutgoing: fc.array(nodeId, { maxLength: 5 }),
  learnersNext: fc.array(nodeId, { maxLength: 3 }),
  autoLeave: fc.boolean(),
});

export const snapshot: fc.Arbitrary<Snapshot> = fc.record({
  meta: fc.record({ index: num, term: num, confState }),
  data: bytes,
});

export const message: fc.Arbitrary<Message> = fc
  .tuple(
    fc.record({
      type: fc.constantFrom(...messageTypes),
      from: nodeId,
      to: nodeId,
      term: num,
      logTerm: num,
      index: num,
      entries: fc.array(entry, { maxLength: 4 }),
      commit: num,
      reject: fc.boolean(),
      rejectHint: num,
      rejectTerm: num,
      snapOffset: num,
      snapDone: fc.boolean(),
      context: bytes,
    }),
    fc.option(snapshot, { nil: undefined }),
  )
  .map(([m, snap]) => (snap === undefined ? m : { ...m, snapshot: snap }));

export const confChange: fc.Arbitrary<ConfChange> = fc.record({
  transition: fc.constantFrom('auto' as const, 'joint' as const, 'explicit' as const),
  changes: fc.array(
    fc.record({ type: fc.constantFrom('addVoter' as const, 'addLearner' as const, 'removeNode' as const), nodeId }),
    { maxLength: 4 },
  ),
  context: bytes,
});

export const groupId = fc.oneof(
  fc.constant('meta'),
  fc.nat(64).map((n) => `p${n}`),
);
