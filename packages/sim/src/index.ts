/** Deterministic simulation for Cohort: whole clusters from a seed with simulated time, network faults, crashes and disk faults; invariant checks and a linearizability checker. */
export const PACKAGE = '@cohort/sim';
