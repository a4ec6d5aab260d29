import type { NodeId } from '@cohort/core';
import type { PartitionStatus } from './partition-detector.js';
import type { Member, Tags } from './types.js';

/** Membership changes as seen by the local node. */
export type MembershipEvent =
  | { readonly type: 'NodeJoined'; readonly member: Member }
  | { readonly type: 'NodeLeft'; readonly id: NodeId }
  | { readonly type: 'NodeFailed'; readonly id: NodeId; readonly incarnation: number }
  | { readonly type: 'NodeRecovered'; readonly id: NodeId; readonly incarnation: number }
  | { readonly type: 'TagsUpdated'; readonly id: NodeId; readonly tags: Tags }
  | { readonly type: 'PartitionDetected'; readonly status: PartitionStatus };

/** What a subscriber receives: an event, or how many it lost because it read too slowly. */
export type ChannelItem<E> = E | { readonly type: 'EventsDropped'; readonly count: number };

/** The default per-subscriber buffer. */
export const EVENT_CHANNEL_CAPACITY = 1000;

/**
 * One reader of an {@link EventChannel}. Reading is pull-based: `poll` never
 * waits, `next` waits for the next item (undefined once the channel closed).
 */
export class Subscription<E> {
  private readonly buffer: E[] = [];
  private lost = 0;
  private totalLost = 0;
  private waiter: ((item: ChannelItem<E> | undefined) => void) | undefined;
  private closed = false;

  constructor(
    private readonly capacity: number,
    private readonly onClose: (s: Subscription<E>) => void,
  ) {}

  /** Events lost so far by this subscriber. */
  get droppedCount(): number {
    return this.totalLost;
  }

  /** @internal delivers one event; drops the oldest when full. */
  push(event: E): void {
    if (this.closed) return;
    if (this.waiter) {
      // A waiter only exists while the buffer is empty and nothing was lost.
      const w = this.waiter;
      this.waiter = undefined;
      w(event);
      return;
    }
    this.enqueue(event);
  }

  private enqueue(event: E): void {
    this.buffer.push(event);
    if (this.buffer.length > this.capacity) {
      this.buffer.shift();
      this.lost += 1;
      this.totalLost += 1;
    }
  }

  private takeOrDropped(): ChannelItem<E> | undefined {
    if (this.lost > 0) {
      const count = this.lost;
      this.lost = 0;
      return { type: 'EventsDropped', count };
    }
    return this.buffer.shift();
  }

  /** The next item without waiting: first an EventsDropped notice if any were lost. */
  poll(): ChannelItem<E> | undefined {
    return this.takeOrDropped();
  }

  /** Waits for the next item; undefined after the subscription or channel closed. */
  next(): Promise<ChannelItem<E> | undefined> {
    const item = this.takeOrDropped();
    if (item !== undefined || this.closed) return Promise.resolve(item);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Stops receiving. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    const w = this.waiter;
    this.waiter = undefined;
    w?.(undefined);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ChannelItem<E>> {
    for (;;) {
      const item = await this.next();
      if (item === undefined) return;
      yield item;
    }
  }
}

/**
 * A broadcast channel with a bounded buffer per subscriber. Publishing never
 * blocks: a subscriber that falls behind loses its oldest events and is told
 * how many with an EventsDropped item.
 */
export class EventChannel<E> {
  private readonly subs = new Set<Subscription<E>>();

  /** @param capacity buffered events per subscriber. @default 1000 */
  constructor(private readonly capacity = EVENT_CHANNEL_CAPACITY) {}

  /** Starts a new subscriber that sees events published from now on. */
  subscribe(): Subscription<E> {
    const s = new Subscription<E>(this.capacity, (x) => this.subs.delete(x));
    this.subs.add(s);
    return s;
  }

  /** Delivers `event` to every subscriber. */
  publish(event: E): void {
    for (const s of this.subs) s.push(event);
  }

  /** Number of live subscribers. */
  get subscriberCount(): number {
    return this.subs.size;
  }

  /** Ends every subscription. */
  close(): void {
    for (const s of [...this.subs]) s.close();
  }
}
