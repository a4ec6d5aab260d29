import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import type { Logger, NodeId } from '@cohort/core';
import type { FaultHook } from '@cohort/transport';

/**
 * Fault injection for fault tests on real processes (tools/chaos), off unless
 * this variable names a control file. The file holds JSON that the harness
 * rewrites while the node runs (read again within {@link POLL_MS}):
 * `{"dropTo": ["n2"], "diskFull": true}`: every message this node sends to
 * n2 is lost (the transport's per-message fault hook; both directions cut is
 * a partition, one a one-way cut), and the node's disk counts as full. A
 * missing or unreadable file means no faults.
 */
export const FAULT_FILE_ENV = 'COHORT_FAULT_FILE';

/**
 * A test-only switch that breaks the node on purpose: with it set to 1, every
 * read is served from this replica's state as it stands, without a ReadIndex
 * round or a lease (a deposed or partitioned leader, or a lagging follower,
 * answers stale values). The chaos harness sets it to prove its checker
 * catches stale reads. Never set in production.
 */
export const STALE_READS_ENV = 'COHORT_TEST_STALE_READS';

const POLL_MS = 50;

/** The faults a node's control file asks for now. */
export interface NodeFaults extends FaultHook {
  /** Whether the node's disk counts as full (see {@link DiskGuard}). */
  diskFull(): boolean;
  stop(): void;
}

interface FaultState {
  dropTo: Set<string>;
  diskFull: boolean;
}

/** The faults in `file`, read again whenever its modification time changes. */
export function watchFaultFile(file: string, logger: Logger): NodeFaults {
  logger.warn('fault injection is on: messages and disk follow the control file', { file });
  let state: FaultState = { dropTo: new Set(), diskFull: false };
  // The file's inode and modification time when last read: the harness replaces it by a rename.
  let seen = '';
  const read = (): void => {
    let version: string;
    try {
      const st = statSync(file);
      version = `${st.ino}:${st.mtimeMs}`;
    } catch {
      if (seen !== 'absent') state = { dropTo: new Set(), diskFull: false };
      seen = 'absent';
      return;
    }
    if (version === seen) return;
    try {
      const v = JSON.parse(readFileSync(file, 'utf8')) as { dropTo?: unknown; diskFull?: unknown };
      state = {
        dropTo: new Set(Array.isArray(v.dropTo) ? v.dropTo.filter((x): x is string => typeof x === 'string') : []),
        diskFull: v.diskFull === true,
      };
      seen = version;
      logger.info('fault injection changed', { dropTo: [...state.dropTo], diskFull: state.diskFull });
    } catch {
      // Caught mid-write: read it again at the next poll.
    }
  };
  read();
  const timer = setInterval(read, POLL_MS);
  timer.unref();
  return {
    dropsTo: (peer: NodeId) => state.dropTo.has(peer),
    diskFull: () => state.diskFull,
    stop: () => clearInterval(timer),
  };
}

/** The faults of this process, from {@link FAULT_FILE_ENV}; undefined (no hook at all) when it is not set. */
export function faultsFromEnv(logger: Logger): NodeFaults | undefined {
  const file = process.env[FAULT_FILE_ENV];
  return file ? watchFaultFile(file, logger) : undefined;
}

/** Whether the planted stale-read fault ({@link STALE_READS_ENV}) is on. */
export function staleReadsPlanted(): boolean {
  return process.env[STALE_READS_ENV] === '1';
}

/**
 * A test-only switch (end-to-end tests of the configuration master): naming a
 * marker file, the meta leader SIGKILLs itself right after the meta group
 * committed a failover ballot it takes no part in, before anyone was told of
 * it, once across the nodes sharing the marker (the first to create it; the
 * test arms the switch by removing the file). The next meta leader
 * must carry the failover on from the log. Never set in production.
 */
export const CRASH_AFTER_FAILOVER_ENV = 'COHORT_TEST_CRASH_AFTER_FAILOVER_BALLOT';

/** Whether this node should crash now, after a failover ballot (see {@link CRASH_AFTER_FAILOVER_ENV}); true once. */
export function crashAfterFailoverBallot(): boolean {
  const marker = process.env[CRASH_AFTER_FAILOVER_ENV];
  if (marker === undefined || marker === '') return false;
  try {
    closeSync(openSync(marker, 'wx'));
    return true;
  } catch {
    return false;
  }
}
