import type { CoalescedHeartbeat, CoalescedHeartbeatResponse, NodeId } from '@cohort/core';
import { newMessage } from '../message.js';
import type { Message } from '../types.js';

/** The heartbeat message one entry of a coalesced frame from `from` to `to` stands for. */
export function heartbeatMessage(from: NodeId, to: NodeId, hb: CoalescedHeartbeat): Message {
  return newMessage({
    type: 'heartbeat',
    from,
    to,
    term: hb.term,
    commit: hb.commit,
    index: hb.tick,
    context: hb.context,
  });
}

/** The heartbeat answer one entry of a coalesced frame from `from` to `to` stands for. */
export function heartbeatResponseMessage(from: NodeId, to: NodeId, r: CoalescedHeartbeatResponse): Message {
  return newMessage({
    type: 'heartbeatResp',
    from,
    to,
    term: r.term,
    index: r.tick,
    reject: r.reject,
    rejectHint: r.rejectHint,
    context: r.context,
  });
}
