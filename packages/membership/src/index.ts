/** Cluster membership: SWIM with Lifeguard, phi-accrual failure detection, incarnations, prioritized gossip, tags, partition detection and an event stream; a pure core plus a host. */
export const PACKAGE = '@cohort/membership';
