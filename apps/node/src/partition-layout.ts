import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type NodeId } from '@cohort/core';
import { type PartitionEngine, partitionGroup, vpaxosReplicas } from '@cohort/kv';

/**
 * How a cluster's key space is laid out, fixed when the cluster is created:
 * P partitions, and for each the nodes that replicate it (its founding
 * voters, the first being the node meant to lead it).
 */
export interface PartitionLayout {
  partitions: number;
  replicationFactor: number;
  /** Per partition, its replicas; the first is its preferred leader. */
  replicas: NodeId[][];
  /** The cluster a node that joined (`--join`) belongs to. */
  clusterId?: string;
  /** Per partition, its replication engine (absent: every partition is raft). */
  engines?: PartitionEngine[];
}

/** The file in the data directory that records the layout the data was created with. */
export const LAYOUT_FILE = 'partitions.json';

/**
 * Places `partitions` partitions of `replicationFactor` replicas over the
 * founding `members`, deterministically: members sorted by id, partition
 * `p` on the `replicationFactor` members from position `p` on (round-robin),
 * so replicas and preferred leaders spread evenly. One partition is
 * replicated by every founding member, as a cluster without partitions is.
 */
export function placePartitions(members: readonly NodeId[], partitions: number, replicationFactor: number): NodeId[][] {
  const ids = [...members].sort();
  if (partitions === 1) return [ids];
  const r = Math.min(replicationFactor, ids.length);
  return Array.from({ length: partitions }, (_, p) => Array.from({ length: r }, (_, k) => ids[(p + k) % ids.length]!));
}

/**
 * The layout of the data in `dataDir`: the one recorded there, which must
 * have `partitions` partitions (a cluster keeps the partition count it was
 * created with: refused with a ConfigError otherwise); or, in a data
 * directory that holds no record, the placement of `partitions` over the
 * founding `members`, recorded now. A data directory written before layouts
 * were recorded (`hadData`) holds one partition.
 */
export function loadLayout(
  dataDir: string,
  members: readonly NodeId[],
  partitions: number,
  replicationFactor: number,
  hadData: boolean,
  engines?: PartitionEngine[],
): PartitionLayout {
  const file = join(dataDir, LAYOUT_FILE);
  let layout: PartitionLayout;
  if (existsSync(file)) {
    try {
      layout = JSON.parse(readFileSync(file, 'utf8')) as PartitionLayout;
    } catch (err) {
      throw new ConfigError(`${file} cannot be read: ${(err as Error).message}; restore it from a backup of the node`);
    }
    if (!Number.isSafeInteger(layout.partitions) || !Array.isArray(layout.replicas)) {
      throw new ConfigError(`${file} does not hold a partition layout; restore it from a backup of the node`);
    }
  } else {
    // Data from before layouts were recorded: one group, p0.
    const p = hadData ? 1 : partitions;
    layout = { partitions: p, replicationFactor, replicas: placePartitions(members, p, replicationFactor) };
    if (!hadData && engines?.includes('vpaxos')) {
      if (p === 1) {
        throw new ConfigError(
          'a vpaxos partition needs a cluster of several partitions (--partitions 2 or more): its configuration master lives on the meta group',
        );
      }
      layout.engines = engines;
      // A vpaxos partition has f+1 replicas where a raft one has 2f+1: the first f+1 of its placement.
      layout.replicas = layout.replicas.map((r, i) =>
        engines[i] === 'vpaxos' ? r.slice(0, vpaxosReplicas(replicationFactor)) : r,
      );
    }
  }
  if (layout.partitions !== partitions) {
    throw new ConfigError(
      `the data in ${dataDir} was created with ${layout.partitions} partition(s), not ${partitions}: ` +
        `the partition count is fixed when a cluster is created; start with --partitions ${layout.partitions} ` +
        '(or cluster.partitions in the config file), or with an empty data directory for a new cluster',
    );
  }
  if (!existsSync(file)) writeDurably(dataDir, file, `${JSON.stringify(layout, null, 2)}\n`);
  return layout;
}

/**
 * Writes `text` to `file` durably before the store is created: a temporary
 * file fsynced, renamed, and the directory fsynced, so a data directory
 * never holds a store without the layout it was created with (which would
 * read as data from before layouts, one partition).
 */
function writeDurably(dir: string, file: string, text: string): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/**
 * Records the layout a joining node got from the member that admitted it
 * (the meta group's map at that time), durably; returns it.
 */
export function recordLayout(dataDir: string, layout: PartitionLayout): PartitionLayout {
  writeDurably(dataDir, join(dataDir, LAYOUT_FILE), `${JSON.stringify(layout, null, 2)}\n`);
  return layout;
}

/** The layout recorded in `dataDir`, if any (a node restarting after it joined). */
export function readLayout(dataDir: string): PartitionLayout | undefined {
  const file = join(dataDir, LAYOUT_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as PartitionLayout;
  } catch (err) {
    throw new ConfigError(`${file} cannot be read: ${(err as Error).message}; restore it from a backup of the node`);
  }
}

/** The group ids of a layout's partitions. */
export function partitionGroups(layout: PartitionLayout): string[] {
  return Array.from({ length: layout.partitions }, (_, p) => partitionGroup(p));
}
