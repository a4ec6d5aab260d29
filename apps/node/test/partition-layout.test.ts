import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@cohort/core';
import { afterEach, describe, expect, it } from 'vitest';
import { LAYOUT_FILE, loadLayout } from '../src/partition-layout.js';

describe('partition layout with engines', () => {
  const dirs: string[] = [];
  const dir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'cohort-layout-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('gives a vpaxos partition f+1 replicas where a raft one has 2f+1, and records the engines', () => {
    const d = dir();
    const layout = loadLayout(d, ['n1', 'n2', 'n3'], 2, 3, false, ['raft', 'vpaxos']);
    expect(layout.replicas).toEqual([
      ['n1', 'n2', 'n3'],
      ['n2', 'n3'],
    ]);
    expect(JSON.parse(readFileSync(join(d, LAYOUT_FILE), 'utf8')).engines).toEqual(['raft', 'vpaxos']);
    // A restart reads the recorded layout: the engines stay what the cluster was created with.
    expect(loadLayout(d, ['n1', 'n2', 'n3'], 2, 3, true).engines).toEqual(['raft', 'vpaxos']);
  });

  it('refuses a vpaxos partition in a cluster of one partition, saying why', () => {
    expect(() => loadLayout(dir(), ['n1', 'n2', 'n3'], 1, 3, false, ['vpaxos'])).toThrow(ConfigError);
    expect(() => loadLayout(dir(), ['n1', 'n2', 'n3'], 1, 3, false, ['vpaxos'])).toThrow(/--partitions 2 or more/);
  });
});
