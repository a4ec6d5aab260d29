/**
 * Cluster membership: SWIM with Lifeguard, phi-accrual failure detection, incarnations, prioritized gossip,
 * tags, partition detection and an event stream; a pure core (`Swim`) plus a host (`MembershipHost`).
 * The engine's parts (gossip queue, suspicion timers, local health, phi detector) are internal.
 */
export { decodeSwim, encodeSwim, SWIM_MAX_FRAME_BYTES, SWIM_WIRE_VERSION } from './codec.js';
export { defaultSwimConfig, resolveSwimConfig, type SwimConfig } from './config.js';
export { NoSeedsReachableError } from './errors.js';
export {
  type ChannelItem,
  EVENT_CHANNEL_CAPACITY,
  type EventChannel,
  type MembershipEvent,
  type Subscription,
} from './events.js';
export type { JoinBackoffOptions } from './join-backoff.js';
export type {
  AckMessage,
  GossipMessage,
  NackMessage,
  PingMessage,
  PingReqMessage,
  PushPullMessage,
  SwimMessage,
} from './messages.js';
export type { PartitionOptions, PartitionStatus } from './partition-detector.js';
export type { PhiAccrualOptions } from './phi-accrual.js';
export { type Outgoing, type StateChange, Swim, type SwimOptions, type SwimOutput, type SwimStats } from './swim.js';
export { filterByAllTags, filterByTag, type TagLimits, validateTags } from './tags.js';
export type { Member, MemberState, MemberUpdate, Tags } from './types.js';
export { MembershipHost, type MembershipHostOptions } from './membership-host.js';
export { formatSeed, parseSeed, type Seed } from './seeds.js';
