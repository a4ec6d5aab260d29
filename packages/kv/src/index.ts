/** The replicated key-value state machine and client API of Cohort: commands, exactly-once sessions, linearizable reads, partition routing. */
export const PACKAGE = '@cohort/kv';
