import { silentLogger } from '@cohort/core';
import { WatchError, createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespServer } from '../src/resp/server.js';
import { LocalKv } from './helpers/local-kv.js';
import { RawClient } from './helpers/raw-resp.js';

let server: RespServer;
let port: number;

beforeAll(async () => {
  server = new RespServer({ api: new LocalKv(), logger: silentLogger });
  port = await server.listen(0, '127.0.0.1');
});
afterAll(async () => {
  await server.close();
});

function client(resp: 2 | 3) {
  return createClient({
    socket: { host: '127.0.0.1', port, connectTimeout: 2000, reconnectStrategy: false },
    RESP: resp,
  });
}

describe('RESP3 (HELLO 3) with node-redis', () => {
  it('negotiates RESP3 and answers maps, nulls and verbatim strings a RESP3 client decodes', async () => {
    const c = client(3);
    await c.connect();
    try {
      expect(await c.set('a', '1')).toBe('OK');
      expect(await c.get('missing')).toBeNull();
      expect(await c.mGet(['a', 'missing'])).toEqual(['1', null]);
      const hello = (await c.sendCommand(['HELLO', '3'])) as Record<string, unknown>;
      expect(hello.proto).toBe(3);
      expect(hello.server).toBe('redis');
      expect(await c.configGet('databases')).toEqual({ databases: '1' });
      expect(await c.info('server')).toMatch(/^# Server\r\nredis_version:7\./);
      expect(await c.clientId()).toBeTypeOf('number');
      expect(await c.incrByFloat('f', 0.1)).toBe('0.1');
    } finally {
      c.destroy();
    }
  });

  it('runs MULTI/EXEC and aborts it when a WATCHed key changed', async () => {
    const c = client(3);
    const other = client(3);
    await c.connect();
    await other.connect();
    try {
      expect(await c.multi().set('t', 'v').incr('n3').get('t').exec()).toEqual(['OK', 1, 'v']);
      await c.watch('t');
      await other.set('t', 'changed');
      await expect(c.multi().set('t', 'mine').exec()).rejects.toBeInstanceOf(WatchError);
      expect(await c.get('t')).toBe('changed');
    } finally {
      c.destroy();
      other.destroy();
    }
  });

  it('iterates every key with SCAN, lists and kills clients', async () => {
    const c = client(3);
    const victim = client(2);
    await c.connect();
    await victim.connect();
    try {
      const keys = Array.from({ length: 25 }, (_, i) => `scan:${i}`);
      await c.mSet(keys.map((k) => [k, 'x'] as [string, string]));
      const seen: string[] = [];
      for await (const page of c.scanIterator({ MATCH: 'scan:*', COUNT: 4 })) seen.push(...page);
      expect(seen.sort()).toEqual([...keys].sort());
      const victimId = await victim.clientId();
      const list = await c.clientList();
      expect(list.map((l) => l.id)).toContain(victimId);
      expect(list.find((l) => l.id === victimId)?.resp).toBe(2);
      expect(await c.sendCommand(['CLIENT', 'KILL', 'ID', String(victimId)])).toBe(1);
    } finally {
      c.destroy();
      if (victim.isOpen) victim.destroy();
    }
  });

  it('serves WATCH, MULTI and EXEC pipelined in one write: EXEC waits for the revisions its WATCH reads', async () => {
    const raw = await RawClient.connect(port);
    const fresh = await RawClient.connect(port);
    try {
      const served = await raw.pipeline([['SET', 'pw', '1'], ['WATCH', 'pw'], ['MULTI'], ['INCR', 'pw'], ['EXEC']]);
      expect(served.map(String)).toEqual(['+OK\r\n', '+OK\r\n', '+OK\r\n', '+QUEUED\r\n', '*1\r\n:2\r\n']);
      const aborted = await fresh.pipeline([
        ['WATCH', 'pw'],
        ['SET', 'pw', '9'],
        ['MULTI'],
        ['INCR', 'pw'],
        ['EXEC'],
        ['GET', 'pw'],
      ]);
      expect(aborted.map(String)).toEqual(['+OK\r\n', '+OK\r\n', '+OK\r\n', '+QUEUED\r\n', '*-1\r\n', '$1\r\n9\r\n']);
    } finally {
      raw.close();
      fresh.close();
    }
  });

  it('writes each reply in the protocol in force when its command ran, in one pipelined write', async () => {
    const raw = await RawClient.connect(port);
    try {
      const [before, hello, after, back, last] = (await raw.pipeline([
        ['GET', 'missing'],
        ['HELLO', '3'],
        ['GET', 'missing'],
        ['HELLO', '2'],
        ['GET', 'missing'],
      ])) as [Buffer, Buffer, Buffer, Buffer, Buffer];
      expect(before.toString()).toBe('$-1\r\n');
      expect(hello.toString()).toMatch(/^%7\r\n/);
      expect(after.toString()).toBe('_\r\n');
      expect(back.toString()).toMatch(/^\*14\r\n/);
      expect(last.toString()).toBe('$-1\r\n');
    } finally {
      raw.close();
    }
  });
});
