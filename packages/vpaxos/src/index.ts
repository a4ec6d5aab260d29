/** Vertical Paxos II for primary-backup partitions: acceptor, primary, configuration master, leases, catch-up; a pure engine like @cohort/raft. */
export const PACKAGE = '@cohort/vpaxos';
