import { ConfigError, type NodeId } from '@cohort/core';

/** A member to join through: its id and the address its transport listens on. */
export interface Seed {
  readonly id: NodeId;
  readonly address: string;
}

/** Parses `id@host:port` (the form CLI flags and config files use). */
export function parseSeed(text: string): Seed {
  const at = text.indexOf('@');
  const id = text.slice(0, at);
  const address = text.slice(at + 1);
  if (at <= 0 || !/^[^\s@]+:\d{1,5}$/.test(address)) {
    throw new ConfigError(`bad seed "${text}": expected id@host:port, e.g. n1@127.0.0.1:7001`);
  }
  return { id, address };
}

/** Formats a seed as `id@address`. */
export function formatSeed(seed: Seed): string {
  return `${seed.id}@${seed.address}`;
}
