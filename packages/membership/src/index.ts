/** Cluster membership: SWIM with Lifeguard, phi-accrual failure detection, incarnations, prioritized gossip, tags, partition detection and an event stream; a pure core plus a host. */
export { decodeSwim, encodeSwim, SWIM_MAX_FRAME_BYTES, SWIM_WIRE_VERSION } from './codec.js';
export { defaultSwimConfig, resolveSwimConfig, type SwimConfig } from './config.js';
export { NoSeedsReachableError } from './errors.js';
export {
  type ChannelItem,
  EVENT_CHANNEL_CAPACITY,
  EventChannel,
  type MembershipEvent,
  Subscription,
} from './events.js';
export { GossipQueue, type GossipQueueOptions, Priority, retransmitLimit, updateSize } from './gossip-queue.js';
export { stateRank, supersedes } from './incarnation.js';
export { JOIN_MAX_ATTEMPTS, type JoinBackoffOptions, joinBackoffDelay } from './join-backoff.js';
export { LocalHealth } from './local-health.js';
export type { SwimMessage } from './messages.js';
export { PartitionDetector, type PartitionOptions, type PartitionStatus } from './partition-detector.js';
export { log10UpperTail, PhiAccrualDetector, type PhiAccrualOptions } from './phi-accrual.js';
export { Suspicion, suspicionBounds, suspicionTimeout } from './suspicion.js';
export { type Outgoing, type StateChange, Swim, type SwimOptions, type SwimOutput, type SwimStats } from './swim.js';
export { filterByAllTags, filterByTag, type TagLimits, validateTags } from './tags.js';
export type { Member, MemberState, MemberUpdate, Tags } from './types.js';
export { MembershipHost, type MembershipHostOptions } from './membership-host.js';
export { formatSeed, parseSeed, type Seed } from './seeds.js';
