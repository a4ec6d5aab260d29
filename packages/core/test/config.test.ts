import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type CohortConfig,
  ConfigError,
  DEFAULT_RAFT_CONFIG,
  checkDataDirWritable,
  parseConfig,
} from '../src/index.js';

const three = {
  node: { id: 'n1', peerAddress: '127.0.0.1:7001', clientAddress: '127.0.0.1:6381', httpAddress: '127.0.0.1:8081' },
  cluster: {
    initialMembers: [
      { id: 'n1', peerAddress: '127.0.0.1:7001' },
      { id: 'n2', peerAddress: '127.0.0.1:7002' },
      { id: 'n3', peerAddress: '127.0.0.1:7003' },
    ],
  },
};

function errorOf(input: unknown): string {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

function withRaft(raft: Record<string, unknown>): Record<string, unknown> {
  return { ...three, raft };
}

describe('parseConfig defaults', () => {
  it('fills the seed defaults for Raft: 100 ms heartbeat, 500-1000 ms elections, 10,000 entries / 100 MB, 500 MB log, bounded appends, paced snapshots, no lease reads', () => {
    const c = parseConfig(three);
    expect(c.raft).toEqual({
      heartbeatIntervalMs: 100,
      electionTimeoutMinMs: 500,
      electionTimeoutMaxMs: 1000,
      snapshotIntervalEntries: 10_000,
      snapshotIntervalBytes: 100 * 1024 * 1024,
      maxLogSizeBytes: 500 * 1024 * 1024,
      maxAppendBytes: 1024 * 1024,
      maxInflightAppends: 256,
      maxInflightBytes: 32 * 1024 * 1024,
      snapshotRateBytes: 16 * 1024 * 1024,
      snapshotRateMinBytes: 1024 * 1024,
      commitNoticeDelayMs: 5,
      readIndexHedgeMs: 5,
      leaseReads: false,
      quiesce: false,
    });
    expect(c.raft).toEqual(DEFAULT_RAFT_CONFIG);
    expect(c.cluster.bootstrap).toBe(true);
    expect(c.cluster.replicationFactor).toBe(3);
    expect(c.node.dataDir).toBe('data/n1');
  });

  it('makes a single-node cluster of just an id', () => {
    const c: CohortConfig = parseConfig({ node: { id: 'solo' } });
    expect(c.node).toEqual({
      id: 'solo',
      clientAddress: '127.0.0.1:6379',
      httpAddress: '127.0.0.1:8080',
      peerAddress: '127.0.0.1:7000',
      dataDir: 'data/solo',
    });
    expect(c.cluster.initialMembers).toEqual([{ id: 'solo', peerAddress: '127.0.0.1:7000' }]);
    expect(c.cluster.replicationFactor).toBe(1);
  });

  it('keeps given values and lists the advertised address for a default single member', () => {
    const c = parseConfig({
      node: { id: 'a', peerAddress: '0.0.0.0:7000', advertiseAddress: '10.0.0.5:7000', dataDir: '/var/lib/cohort' },
      raft: { heartbeatIntervalMs: 50, electionTimeoutMinMs: 100, electionTimeoutMaxMs: 100 },
    });
    expect(c.node.dataDir).toBe('/var/lib/cohort');
    expect(c.cluster.initialMembers).toEqual([{ id: 'a', peerAddress: '10.0.0.5:7000' }]);
    expect(c.raft.electionTimeoutMaxMs).toBe(100);
    expect(c.raft.snapshotIntervalEntries).toBe(10_000);
  });
});

describe('parseConfig validation', () => {
  it('refuses an election timeout under twice the heartbeat, naming field, value and fix', () => {
    const msg = errorOf(withRaft({ heartbeatIntervalMs: 100, electionTimeoutMinMs: 150 }));
    expect(msg).toContain('raft.electionTimeoutMinMs');
    expect(msg).toContain('150');
    expect(msg).toContain('at least 200');
    expect(() => parseConfig(withRaft({ heartbeatIntervalMs: 100, electionTimeoutMinMs: 200 }))).not.toThrow();
  });

  it('refuses a maximum election timeout below the minimum', () => {
    const msg = errorOf(withRaft({ electionTimeoutMinMs: 800, electionTimeoutMaxMs: 700 }));
    expect(msg).toContain('raft.electionTimeoutMaxMs');
    expect(msg).toContain('700');
    expect(msg).toContain('at least 800');
  });

  it('refuses an append bound over a frame, and an in-flight byte bound below one append', () => {
    const big = errorOf(withRaft({ maxAppendBytes: 9 * 1024 * 1024, maxInflightBytes: 64 * 1024 * 1024 }));
    expect(big).toContain('raft.maxAppendBytes');
    expect(big).toContain('8 MiB');
    const low = errorOf(withRaft({ maxAppendBytes: 2048, maxInflightBytes: 1024 }));
    expect(low).toContain('raft.maxInflightBytes');
    expect(low).toContain('at least 2048');
    expect(() => parseConfig(withRaft({ maxAppendBytes: 2048, maxInflightBytes: 2048 }))).not.toThrow();
  });

  it('refuses a negative or fractional commit notice delay, and one past a second', () => {
    expect(errorOf(withRaft({ commitNoticeDelayMs: -1 }))).toMatch(/raft\.commitNoticeDelayMs.*0 \(send at once\)/);
    expect(errorOf(withRaft({ commitNoticeDelayMs: 2.5 }))).toMatch(/raft\.commitNoticeDelayMs.*whole number/);
    expect(errorOf(withRaft({ commitNoticeDelayMs: 5000 }))).toMatch(/raft\.commitNoticeDelayMs.*at most 1000/);
    expect(parseConfig(withRaft({ commitNoticeDelayMs: 0 })).raft.commitNoticeDelayMs).toBe(0);
    expect(errorOf(withRaft({ readIndexHedgeMs: -1 }))).toMatch(/raft\.readIndexHedgeMs.*0 \(ask every follower/);
    expect(errorOf(withRaft({ readIndexHedgeMs: 1.5 }))).toMatch(/raft\.readIndexHedgeMs.*whole number/);
    expect(errorOf(withRaft({ readIndexHedgeMs: 2000 }))).toMatch(/raft\.readIndexHedgeMs.*at most 1000/);
    expect(parseConfig(withRaft({ readIndexHedgeMs: 0 })).raft.readIndexHedgeMs).toBe(0);
  });

  it('refuses non-numeric, fractional and non-positive timings', () => {
    expect(errorOf(withRaft({ heartbeatIntervalMs: '100' }))).toMatch(/raft\.heartbeatIntervalMs.*"100"/);
    expect(errorOf(withRaft({ heartbeatIntervalMs: 1.5 }))).toMatch(
      /raft\.heartbeatIntervalMs: must be a whole number/,
    );
    expect(errorOf(withRaft({ snapshotIntervalEntries: 0 }))).toMatch(/raft\.snapshotIntervalEntries: must be above 0/);
  });

  it('refuses a two-node cluster and explains why', () => {
    const msg = errorOf({ ...three, cluster: { initialMembers: three.cluster.initialMembers.slice(0, 2) } });
    expect(msg).toContain('cluster.initialMembers');
    expect(msg).toContain('2 members');
    expect(msg).toMatch(/use 1 node, or 3 or more/);
  });

  it('accepts one member, three and five', () => {
    for (const n of [1, 3, 5]) {
      const initialMembers = Array.from({ length: n }, (_, i) => ({ id: `n${i + 1}`, peerAddress: `h${i}:7000` }));
      expect(parseConfig({ node: { id: 'n1' }, cluster: { initialMembers } }).cluster.initialMembers).toHaveLength(n);
    }
  });

  it('refuses an empty member list', () => {
    expect(errorOf({ ...three, cluster: { initialMembers: [] } })).toMatch(/cluster\.initialMembers: is empty/);
  });

  it('refuses duplicate member ids and addresses', () => {
    const [m1, m2, m3] = three.cluster.initialMembers;
    const dupId = errorOf({ ...three, cluster: { initialMembers: [m1, m2, { ...m3, id: 'n2' }] } });
    expect(dupId).toContain("cluster.initialMembers[2].id: 'n2' is already used by cluster.initialMembers[1].id");
    const dupAddr = errorOf({
      ...three,
      cluster: { initialMembers: [m1, m2, { ...m3, peerAddress: '127.0.0.1:7001' }] },
    });
    expect(dupAddr).toContain("cluster.initialMembers[2].peerAddress: '127.0.0.1:7001' is already used");
  });

  it('refuses a member list without this node', () => {
    const msg = errorOf({ ...three, node: { ...three.node, id: 'n9' } });
    expect(msg).toContain('cluster.initialMembers');
    expect(msg).toContain("does not include this node ('n9')");
  });

  it('refuses a replication factor above the member count', () => {
    expect(errorOf({ ...three, cluster: { ...three.cluster, replicationFactor: 5 } })).toMatch(
      /cluster\.replicationFactor: 5 is more than the 3 initial member/,
    );
  });

  it('refuses malformed ids and addresses, and listeners sharing a port', () => {
    expect(errorOf({ node: { id: '' } })).toMatch(/node\.id: must be 1-64 letters/);
    expect(errorOf({ node: { id: 'has space' } })).toMatch(/node\.id: .*"has space"/);
    expect(errorOf({ node: { id: 'a', peerAddress: 'localhost' } })).toMatch(
      /node\.peerAddress: 'localhost' is not host:port/,
    );
    expect(errorOf({ node: { id: 'a', clientAddress: 'h:70000' } })).toMatch(/node\.clientAddress: .*port 70000/);
    expect(errorOf({ node: { id: 'a', advertiseAddress: '0.0.0.0:7000' } })).toMatch(
      /node\.advertiseAddress: .*wildcard/,
    );
    expect(errorOf({ node: { id: 'a', httpAddress: '127.0.0.1:7000' } })).toMatch(
      /node\.peerAddress: '127.0.0.1:7000' is also node\.httpAddress/,
    );
  });

  it('refuses missing and unknown fields, pointing at the typo', () => {
    expect(errorOf({})).toMatch(/node: is required/);
    expect(errorOf({ node: { id: 'a' }, raft: { heartbeatMs: 10 } })).toMatch(/raft: unknown field\(s\) 'heartbeatMs'/);
  });

  it('lists every problem at once', () => {
    const msg = errorOf({ ...withRaft({ electionTimeoutMinMs: 100, electionTimeoutMaxMs: 50 }), node: { id: 'zz' } });
    expect(msg).toContain('raft.electionTimeoutMinMs');
    expect(msg).toContain('raft.electionTimeoutMaxMs');
    expect(msg).toContain("does not include this node ('zz')");
  });
});

describe('checkDataDirWritable', () => {
  const root = mkdtempSync(join(tmpdir(), 'cohort-config-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('creates a missing directory and leaves no probe behind', () => {
    const dir = join(root, 'a', 'b');
    checkDataDirWritable(dir);
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(existsSync(join(dir, `.write-probe-${process.pid}`))).toBe(false);
  });

  it('refuses a path that is a file, naming it', () => {
    const file = join(root, 'file');
    writeFileSync(file, 'x');
    expect(() => checkDataDirWritable(file)).toThrow(ConfigError);
    expect(() => checkDataDirWritable(join(file, 'sub'))).toThrow(/node\.dataDir: cannot create/);
  });

  it('refuses a directory it cannot write to', () => {
    // procfs refuses new files even to root, so this holds whoever runs the tests.
    expect(() => checkDataDirWritable('/proc')).toThrow(/node\.dataDir: '\/proc' is not writable/);
  });
});
