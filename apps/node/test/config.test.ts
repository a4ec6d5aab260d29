import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, type NodeStore, silentLogger } from '@cohort/core';
import { DEFAULT_PAGE_CACHE_BYTES, type SqliteNodeStore } from '@cohort/storage';
import { describe, expect, it } from 'vitest';
import { loadNodeOptions, parsePeers } from '../src/config.js';
import { DEFAULT_ROW_CACHE_BYTES, openStore } from '../src/open-store.js';
import { hostSettings, storeLimits } from '../src/raft-settings.js';
import { CLI } from './helpers/processes.js';

const PEERS = 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003';

describe('cohort start configuration', () => {
  it('takes the partition engines and min-replicas-to-write, and refuses what is not one with the example', () => {
    const base = { id: 'n1', dataDir: '/tmp/x', peers: PEERS };
    const o = loadNodeOptions({
      ...base,
      partitionEngine: 'raft',
      partitionEngines: '1=vpaxos, 3=vpaxos',
      minReplicasToWrite: '2',
    });
    expect(o).toMatchObject({
      partitionEngine: 'raft',
      partitionEngines: { 1: 'vpaxos', 3: 'vpaxos' },
      minReplicasToWrite: 2,
    });
    expect(() => loadNodeOptions({ ...base, partitionEngine: 'paxos' })).toThrow(/raft or vpaxos/);
    expect(() => loadNodeOptions({ ...base, partitionEngines: '1:vpaxos' })).toThrow(
      /example: --partition-engines 1=vpaxos/,
    );
    expect(() => loadNodeOptions({ ...base, minReplicasToWrite: '0' })).toThrow(/1 or above/);
  });

  it('takes the vpaxos compaction threshold (0: never), default unset (the host keeps 10000), and refuses a negative one', () => {
    const base = { id: 'n1', dataDir: '/tmp/x', peers: PEERS };
    expect(loadNodeOptions(base).vpaxosCompactSlots).toBeUndefined();
    expect(loadNodeOptions({ ...base, vpaxosCompactSlots: '20' }).vpaxosCompactSlots).toBe(20);
    expect(loadNodeOptions({ ...base, vpaxosCompactSlots: '0' }).vpaxosCompactSlots).toBe(0);
    expect(() => loadNodeOptions({ ...base, vpaxosCompactSlots: '-1' })).toThrow(/--vpaxos-compact-slots/);
    expect(loadNodeOptions(base).vpaxosCompactBytes).toBeUndefined();
    expect(loadNodeOptions({ ...base, vpaxosCompactBytes: '1048576' }).vpaxosCompactBytes).toBe(1_048_576);
    expect(loadNodeOptions({ ...base, vpaxosCompactBytes: '0' }).vpaxosCompactBytes).toBe(0);
    expect(() => loadNodeOptions({ ...base, vpaxosCompactBytes: '-1' })).toThrow(/--vpaxos-compact-bytes/);
  });

  it('takes the read-ahead mode, default unset (the store reads ahead while its reads go to the disk), reaches the store, and refuses a bad one', () => {
    const base = { id: 'n1', dataDir: '/tmp/x', peers: PEERS };
    expect(loadNodeOptions(base).readAhead).toBeUndefined();
    for (const mode of ['auto', 'on', 'off'] as const) {
      expect(loadNodeOptions({ ...base, readAhead: mode }).readAhead).toBe(mode);
    }
    expect(() => loadNodeOptions({ ...base, readAhead: 'always' })).toThrow(
      /--read-ahead must be one of auto, on, off, got always/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'cohort-read-ahead-'));
    try {
      const dflt = openStore(dir, silentLogger, {}) as SqliteNodeStore;
      expect(dflt.readAhead?.on()).toBe(false);
      dflt.close();
      const on = openStore(dir, silentLogger, {}, { readAhead: 'on' }) as SqliteNodeStore;
      expect(on.readAhead?.on()).toBe(true);
      on.close();
      const off = openStore(dir, silentLogger, {}, { readAhead: 'off' }) as SqliteNodeStore;
      expect(off.readAhead?.on()).toBe(false);
      off.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes the row cache size (0: none), 16 MiB unless given, reaches the store, and refuses a bad one', () => {
    const base = { id: 'n1', dataDir: '/tmp/x', peers: PEERS };
    expect(loadNodeOptions(base).rowCacheBytes).toBeUndefined();
    expect(loadNodeOptions({ ...base, rowCacheBytes: '1048576' }).rowCacheBytes).toBe(1_048_576);
    expect(loadNodeOptions({ ...base, rowCacheBytes: '0' }).rowCacheBytes).toBe(0);
    expect(() => loadNodeOptions({ ...base, rowCacheBytes: '-1' })).toThrow(
      /--row-cache-bytes must be 0 \(none\) or above/,
    );
    expect(() => loadNodeOptions({ ...base, rowCacheBytes: 'lots' })).toThrow(/--row-cache-bytes/);
    const dir = mkdtempSync(join(tmpdir(), 'cohort-row-cache-'));
    try {
      const enc = new TextEncoder();
      const store = openStore(dir, silentLogger, {}, { rowCacheBytes: 1_048_576 }) as SqliteNodeStore;
      expect(store.rowCache?.budgetBytes).toBe(1_048_576);
      const kv = store.kv('p1');
      kv.put(enc.encode('k'), enc.encode('v'), { revision: 1 });
      store.flush();
      // Read twice (another read between), a row is answered from memory: changed behind the store's back, it
      // reads as before.
      for (const key of ['k', 'absent', 'k']) kv.get(enc.encode(key));
      store.database.prepare("UPDATE kv SET value = x'00'").run();
      expect(kv.get(enc.encode('absent'))).toBeUndefined();
      expect(kv.get(enc.encode('k'))?.value).toEqual(enc.encode('v'));
      store.close();
      const byDefault = openStore(dir, silentLogger, {}) as SqliteNodeStore;
      expect(byDefault.rowCache?.budgetBytes).toBe(DEFAULT_ROW_CACHE_BYTES);
      byDefault.close();
      // Without one, the same reads go to the file, whose checksum fails now.
      const plain = openStore(dir, silentLogger, {}, { rowCacheBytes: 0 }) as SqliteNodeStore;
      expect(plain.rowCache).toBeUndefined();
      expect(() => plain.kv('p1').get(enc.encode('k'))).toThrow(/corrupt/);
      plain.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("takes the writer thread's apply hold, and refuses one out of range", () => {
    const base = { id: 'n1', dataDir: '/tmp/x', peers: PEERS };
    expect(loadNodeOptions(base).writerApplyBatchMs).toBeUndefined();
    expect(loadNodeOptions({ ...base, writerApplyBatchMs: '0' }).writerApplyBatchMs).toBe(0);
    expect(loadNodeOptions({ ...base, writerApplyBatchMs: '20' }).writerApplyBatchMs).toBe(20);
    expect(() => loadNodeOptions({ ...base, writerApplyBatchMs: '-1' })).toThrow(
      /--writer-apply-batch-ms must be from 0 \(no holding\) to 1000, got -1/,
    );
    expect(() => loadNodeOptions({ ...base, writerApplyBatchMs: '5000' })).toThrow(/--writer-apply-batch-ms/);
  });

  it("takes SQLite's page cache size, 4 MiB unless given, reaches the store's connection, and refuses a bad one", () => {
    const base = { id: 'n1', dataDir: '/tmp/x', peers: PEERS };
    expect(loadNodeOptions(base).pageCacheBytes).toBeUndefined();
    expect(loadNodeOptions({ ...base, pageCacheBytes: '1048576' }).pageCacheBytes).toBe(1_048_576);
    expect(() => loadNodeOptions({ ...base, pageCacheBytes: '4096' })).toThrow(
      /--page-cache-bytes must be at least 65536 \(SQLite keeps at least 10 pages\), got 4096/,
    );
    expect(() => loadNodeOptions({ ...base, pageCacheBytes: 'lots' })).toThrow(/--page-cache-bytes/);
    const dir = mkdtempSync(join(tmpdir(), 'cohort-page-cache-'));
    try {
      // PRAGMA cache_size answers in KiB, negated.
      const given = openStore(dir, silentLogger, {}, { pageCacheBytes: 1_048_576 }) as SqliteNodeStore;
      expect(given.database.pragma('cache_size', { simple: true })).toBe(-1024);
      given.close();
      const byDefault = openStore(dir, silentLogger, {}) as SqliteNodeStore;
      expect(byDefault.database.pragma('cache_size', { simple: true })).toBe(-DEFAULT_PAGE_CACHE_BYTES / 1024);
      byDefault.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes the vpaxos read lease from the config file or its flags (flags win), off by default, and refuses a bad one with the fix', () => {
    const base = { id: 'n1', dataDir: '/tmp/x', peers: PEERS };
    expect(loadNodeOptions(base).vpaxosLease).toBeUndefined();
    expect(loadNodeOptions({ ...base, vpaxosReadLeaseMs: '2000' }).vpaxosLease).toEqual({
      readLeaseMs: 2000,
      maxDriftMs: 200,
    });
    expect(loadNodeOptions({ ...base, vpaxosReadLeaseMs: '300' }).vpaxosLease?.maxDriftMs).toBe(50);
    const dir = mkdtempSync(join(tmpdir(), 'cohort-config-'));
    try {
      const file = join(dir, 'cohort.json');
      writeFileSync(file, JSON.stringify({ node: { id: 'n1' }, vpaxos: { readLeaseMs: 1000, maxDriftMs: 30 } }));
      expect(loadNodeOptions({ config: file, dataDir: '/tmp/x' }).vpaxosLease).toEqual({
        readLeaseMs: 1000,
        maxDriftMs: 30,
      });
      expect(loadNodeOptions({ config: file, dataDir: '/tmp/x', vpaxosLeaseMaxDriftMs: '80' }).vpaxosLease).toEqual({
        readLeaseMs: 1000,
        maxDriftMs: 80,
      });
      writeFileSync(file, JSON.stringify({ node: { id: 'n1' }, vpaxos: { readLease: 1000 } }));
      expect(() => loadNodeOptions({ config: file, dataDir: '/tmp/x' })).toThrow(/unknown field 'readLease'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => loadNodeOptions({ ...base, vpaxosReadLeaseMs: '20' })).toThrow(/0 \(off\) or 100 to 60000 ms/);
    expect(() => loadNodeOptions({ ...base, vpaxosReadLeaseMs: 'soon' })).toThrow(/whole number of milliseconds/);
    expect(() => loadNodeOptions({ ...base, vpaxosLeaseMaxDriftMs: '10' })).toThrow(/without a read lease/);
  });

  it('maps flags onto the core configuration, listening where --peers places this node', () => {
    const o = loadNodeOptions({
      id: 'n2',
      dataDir: '/tmp/x',
      peers: PEERS,
      resp: '127.0.0.1:6390',
      heartbeatMs: '50',
      electionTimeoutMs: '300',
    });
    expect(o.config.node).toMatchObject({
      id: 'n2',
      peerAddress: '127.0.0.1:7002',
      clientAddress: '127.0.0.1:6390',
      dataDir: '/tmp/x',
    });
    expect(o.config.cluster.initialMembers.map((m) => m.id)).toEqual(['n1', 'n2', 'n3']);
    expect(o.config.raft).toMatchObject({
      heartbeatIntervalMs: 50,
      electionTimeoutMinMs: 300,
      electionTimeoutMaxMs: 600,
    });
    expect(o.requestTimeoutMs).toBe(5000);
  });

  it('reads a JSON file and lets flags override it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-config-'));
    try {
      const file = join(dir, 'n1.json');
      writeFileSync(
        file,
        JSON.stringify({ node: { id: 'n1', httpAddress: '127.0.0.1:9000' }, raft: { heartbeatIntervalMs: 20 } }),
      );
      const o = loadNodeOptions({ config: file, http: '127.0.0.1:9001' });
      expect(o.config.node.httpAddress).toBe('127.0.0.1:9001');
      expect(o.config.raft.heartbeatIntervalMs).toBe(20);
      expect(o.config.cluster.initialMembers).toEqual([{ id: 'n1', peerAddress: '127.0.0.1:7000' }]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('refuses bad input with a ConfigError naming the field', () => {
    expect(() => parsePeers('n1')).toThrow(/id=host:port/);
    expect(() => loadNodeOptions({ id: 'n1', heartbeatMs: 'fast' })).toThrow(/--heartbeat-ms must be a whole number/);
    expect(() => loadNodeOptions({ id: 'n1', peers: 'n1=127.0.0.1:1,n2=127.0.0.1:2' })).toThrow(ConfigError);
    expect(() => loadNodeOptions({ config: '/nonexistent/cohort.json' })).toThrow(/cannot be read/);
  });

  it('refuses a member list holding something other than members with a ConfigError, not a TypeError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-config-'));
    try {
      const file = join(dir, 'bad.json');
      writeFileSync(file, JSON.stringify({ node: { id: 'n1' }, cluster: { initialMembers: [null, 7] } }));
      expect(() => loadNodeOptions({ config: file })).toThrow(ConfigError);
      expect(() => loadNodeOptions({ config: file })).toThrow(/initialMembers/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('the binary prints configuration errors and exits with status 2', () => {
    const res = spawnSync(process.execPath, [CLI, 'start', '--id', 'n1', '--resp', 'nope'], { encoding: 'utf8' });
    expect(res.status).toBe(2);
    expect(res.stderr).toMatch(/node\.clientAddress/);
    const usage = spawnSync(process.execPath, [CLI, 'start', '--no-such-flag'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/unknown option/);
  });

  it('honours every raft field: snapshot triggers and the log bound reach the store, timing the host', async () => {
    const o = loadNodeOptions({
      id: 'n1',
      heartbeatMs: '50',
      electionTimeoutMs: '300',
      snapshotEntries: '20',
      snapshotBytes: '4096',
      maxLogBytes: '8192',
      maxAppendBytes: '65536',
      maxInflightAppends: '32',
      maxInflightBytes: '1048576',
      snapshotRate: '0',
      commitNoticeDelayMs: '0',
      readIndexHedgeMs: '0',
    });
    expect(storeLimits(o.config.raft)).toEqual({ snapshotEntries: 20, snapshotBytes: 4096, maxLogBytes: 8192 });
    expect(hostSettings(o.config.raft)).toEqual({
      tickMs: 50,
      electionTicks: 6,
      electionTicksMax: 12,
      snapshotEntries: 20,
      snapshotBytes: 4096,
      maxLogBytes: 8192,
      maxAppendBytes: 65536,
      maxInflightAppends: 32,
      maxInflightBytes: 1048576,
      // A follower catching up: at most maxInflightBytes in flight, applied in batches of an append at most.
      maxCatchUpInflightBytes: 1048576,
      maxApplyBytes: 65536,
      snapshotBytesPerSec: 0,
      snapshotMinBytesPerSec: 1048576,
      leaseReads: false,
      quiesce: false,
      commitNoticeDelayMs: 0,
      readIndexHedgeMs: 0,
      maxOutstandingReadies: 4,
    });
    // Appends are bounded by default, as etcd's are.
    expect(hostSettings(loadNodeOptions({ id: 'n1' }).config.raft)).toMatchObject({
      maxAppendBytes: 1024 * 1024,
      maxInflightAppends: 256,
      maxInflightBytes: 32 * 1024 * 1024,
      maxCatchUpInflightBytes: 4 * 1024 * 1024,
      // Applied in batches of 256 KiB: about 70 ms on the event loop at 1M keys.
      maxApplyBytes: 256 * 1024,
      snapshotBytesPerSec: 16 * 1024 * 1024,
      snapshotMinBytesPerSec: 1024 * 1024,
    });
    expect(hostSettings(loadNodeOptions({ id: 'n1', snapshotRateMin: '4194304' }).config.raft)).toMatchObject({
      snapshotMinBytesPerSec: 4 * 1024 * 1024,
    });
    expect(() => loadNodeOptions({ id: 'n1', snapshotRate: '-1' })).toThrow(
      /raft.snapshotRateBytes.*must be 0 \(no limit\) or above/,
    );
    expect(() => loadNodeOptions({ id: 'n1', maxAppendBytes: '4096', maxInflightBytes: '1024' })).toThrow(
      /raft.maxInflightBytes: 1024 is less than maxAppendBytes \(4096\)/,
    );
    // The maximum election timeout is its own field, not twice the minimum.
    const range = loadNodeOptions({
      id: 'n1',
      heartbeatMs: '50',
      electionTimeoutMs: '300',
      electionTimeoutMaxMs: '450',
    });
    expect(range.config.raft).toMatchObject({ electionTimeoutMinMs: 300, electionTimeoutMaxMs: 450 });
    expect(hostSettings(range.config.raft)).toMatchObject({ electionTicks: 6, electionTicksMax: 9 });
    expect(() => loadNodeOptions({ id: 'n1', electionTimeoutMs: '600', electionTimeoutMaxMs: '500' })).toThrow(
      /raft.electionTimeoutMaxMs: 500 is less than electionTimeoutMinMs \(600\)/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'cohort-limits-'));
    const store: NodeStore = openStore(dir, silentLogger, storeLimits(o.config.raft));
    try {
      const entry = (index: number) => ({ index, term: 1, type: 'normal' as const, data: new Uint8Array(3000) });
      // Two entries of 3000 bytes: past the 4096-byte snapshot trigger, under the 8192-byte bound.
      await store.write([{ group: 'p0', hardState: { term: 1, vote: '', commit: 0 }, entries: [entry(1), entry(2)] }]);
      expect(store.stats?.('p0')).toMatchObject({ shouldSnapshot: true, overLimit: false });
      expect(() => store.admitProposal?.('p0', 3000)).toThrow(/max log size of 8192/);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the limits, security and shutdown sections and their flags, and refuses limits past the frame size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-sec-config-'));
    try {
      const secret = join(dir, 'secret');
      writeFileSync(secret, 'a cluster secret of some length\n');
      const file = join(dir, 'n1.json');
      writeFileSync(
        file,
        JSON.stringify({
          node: { id: 'n1' },
          limits: { maxValueBytes: 2048, maxClients: 5 },
          security: { clusterSecretFile: secret, users: [{ name: 'app', passwords: ['p'], keys: ['app:*'] }] },
          shutdown: { timeoutMs: 3000 },
        }),
      );
      const o = loadNodeOptions({ config: file, maxKeyBytes: '100', requirepass: 'pw' });
      expect(o.limits).toMatchObject({
        maxKeyBytes: 100,
        maxValueBytes: 2048,
        maxClients: 5,
        maxCommandBytes: 8388608,
      });
      expect(o.security.clusterSecret).toBeInstanceOf(Uint8Array);
      expect(o.security.requirepass).toBe('pw');
      expect(o.security.users.map((u) => u.name)).toEqual(['app']);
      expect(o.shutdownTimeoutMs).toBe(3000);
      expect(loadNodeOptions({ id: 'n1' })).toMatchObject({
        shutdownTimeoutMs: 10000,
        limits: { maxQueryBytes: 33554432 },
      });
      expect(() => loadNodeOptions({ id: 'n1', maxCommandBytes: String(16 * 1024 * 1024) })).toThrow(
        /must stay below the transport frame size/,
      );
      expect(() => loadNodeOptions({ id: 'n1', maxValueBytes: 'big' })).toThrow(
        /--max-value-bytes must be a whole number/,
      );
      expect(() => loadNodeOptions({ id: 'n1', tlsCert: file })).toThrow(/--tls-cert and --tls-key/);
      writeFileSync(file, JSON.stringify({ node: { id: 'n1' }, security: { requirepas: 'x' } }));
      expect(() => loadNodeOptions({ config: file })).toThrow(/security: unknown field 'requirepas'/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
