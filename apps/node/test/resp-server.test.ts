import { type Socket, connect } from 'node:net';
import { silentLogger } from '@cohort/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespServer } from '../src/resp/server.js';
import { LocalKv } from './helpers/local-kv.js';

let server: RespServer;
let port: number;
const kv = new LocalKv();

beforeAll(async () => {
  server = new RespServer({ api: kv, logger: silentLogger, limits: { maxBulkBytes: 1024 } });
  port = await server.listen(0, '127.0.0.1');
});
afterAll(async () => {
  await server.close();
});

/** Sends raw bytes and collects the reply until the server closes or `until` matches. */
function raw(bytes: string, until?: RegExp): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply; got ${JSON.stringify(text)}`));
    }, 5000);
    socket.on('data', (d) => {
      text += d.toString();
      if (until?.test(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ text, closed: false });
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on('error', reject);
    socket.write(bytes);
  });
}

describe('RESP server', () => {
  it('serves SET/GET/DEL/EXISTS/INCR/MGET/MSET to ioredis', async () => {
    const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe('PONG');
      expect(await redis.set('a', '1')).toBe('OK');
      expect(await redis.get('a')).toBe('1');
      expect(await redis.get('missing')).toBeNull();
      expect(await redis.set('a', '2', 'NX')).toBeNull();
      expect(await redis.incr('n')).toBe(1);
      expect(await redis.incrby('n', 41)).toBe(42);
      expect(await redis.mset('x', 'X', 'y', 'Y')).toBe('OK');
      expect(await redis.mget('x', 'nope', 'y')).toEqual(['X', null, 'Y']);
      expect(await redis.exists('a', 'x', 'nope')).toBe(2);
      expect(await redis.del('a', 'x', 'nope')).toBe(2);
      expect(await redis.set('t', 'v', 'EX', 100)).toBe('OK');
      expect(await redis.ttl('t')).toBe(100);
    } finally {
      redis.disconnect();
    }
  });

  it('answers pipelined commands in order, a read seeing the writes before it', async () => {
    const redis = new Redis({ port, host: '127.0.0.1' });
    try {
      await redis.ping();
      const from = kv.pipelines.length;
      const p = redis.pipeline();
      for (let i = 0; i < 200; i++) p.set(`p${i}`, `${i}`).get(`p${i}`);
      const results = await p.exec();
      expect(results).toHaveLength(400);
      for (let i = 0; i < 200; i++) expect(results![2 * i + 1]).toEqual([null, `${i}`]);
      // The pipeline reached the KV service in batches, not one command at a time.
      const sizes = kv.pipelines.slice(from);
      expect(sizes.reduce((a, n) => a + n, 0)).toBe(400);
      expect(sizes.length).toBeLessThan(40);
    } finally {
      redis.disconnect();
    }
  });

  it('replies like Redis to unknown commands and wrong arity', async () => {
    const { text } = await raw('FOO bar baz\r\nGET\r\nGET a b\r\n', /\r\n.*\r\n.*\r\n/);
    expect(text).toBe(
      "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n" +
        "-ERR wrong number of arguments for 'get' command\r\n" +
        "-ERR wrong number of arguments for 'get' command\r\n",
    );
  });

  it('answers a protocol error and closes that connection only', async () => {
    const redis = new Redis({ port, host: '127.0.0.1' });
    try {
      await redis.set('survivor', 'yes');
      const { text, closed } = await raw('PING\r\n*1\r\n$99999\r\n');
      expect(text).toBe('+PONG\r\n-ERR Protocol error: invalid bulk length\r\n');
      expect(closed).toBe(true);
      expect(await redis.get('survivor')).toBe('yes');
    } finally {
      redis.disconnect();
    }
  });

  it('answers INFO, HELLO and COMMAND the way client libraries expect', async () => {
    const redis = new Redis({ port, host: '127.0.0.1' });
    try {
      const info = await redis.info();
      expect(info).toMatch(/^role:master$/m);
      expect(info).toMatch(/^raft_leader:n1$/m);
      expect(info).toMatch(/^loading:0$/m);
      expect(info).toMatch(/^aof_last_write_status:ok\r?$/m);
      // Cohort answers as the Redis version its differential test runs against.
      const hello = (await redis.call('HELLO', '2')) as unknown[];
      expect(hello.slice(0, 6)).toEqual(['server', 'redis', 'version', '7.0.15', 'proto', 2]);
      await expect(redis.call('HELLO', '4')).rejects.toThrow(/NOPROTO/);
      const docs = (await redis.call('COMMAND', 'DOCS', 'get')) as unknown[];
      expect(docs[0]).toBe('get');
      expect(await redis.call('COMMAND', 'COUNT')).toBeGreaterThan(50);
    } finally {
      redis.disconnect();
    }
  });

  it('closes after QUIT and tolerates the handshake commands of clients', async () => {
    const { text, closed } = await raw(
      'CLIENT SETNAME app\r\nCLIENT GETNAME\r\nSELECT 0\r\nSELECT 1\r\nQUIT\r\nPING\r\n',
    );
    expect(text).toBe('+OK\r\n$3\r\napp\r\n+OK\r\n-ERR DB index is out of range\r\n+OK\r\n');
    expect(closed).toBe(true);
  });

  it('gives each connection its own session, each write the next seq, acknowledging the replies it sent', async () => {
    const a = new Redis({ port, host: '127.0.0.1' });
    const b = new Redis({ port, host: '127.0.0.1' });
    try {
      const from = kv.requests.length;
      await a.set('s1', '1');
      await a.get('s1');
      await a.incr('s2');
      await b.del('s1');
      const writes = kv.requests.slice(from).flatMap((r) => (r.kind === 'write' && r.session ? [r.session] : []));
      expect(writes).toHaveLength(3);
      const [w1, w2, w3] = writes;
      expect(w1!.clientId).toMatch(/^resp:[0-9a-f]{32}$/);
      expect(w2!.clientId).toBe(w1!.clientId);
      expect(w3!.clientId).not.toBe(w1!.clientId);
      expect([w1!.seq, w1!.lowWater, w2!.seq, w2!.lowWater]).toEqual([1, 0, 2, 1]);
      expect([w3!.seq, w3!.lowWater]).toEqual([1, 0]);
    } finally {
      a.disconnect();
      b.disconnect();
    }
  });

  it('parses SET expiry options as Redis 7 does', async () => {
    const r = new Redis({ port, host: '127.0.0.1' });
    try {
      expect(await r.set('e1', 'v', 'EX', 100)).toBe('OK');
      expect(await r.ttl('e1')).toBe(100);
      expect(await r.set('e2', 'v', 'PXAT', Date.now() + 50_000)).toBe('OK');
      expect(await r.pttl('e2')).toBeGreaterThan(40_000);
      await expect(r.set('e3', 'v', 'EX', 0)).rejects.toThrow("ERR invalid expire time in 'set' command");
      await expect(r.set('e3', 'v', 'EX', '9223372036854775')).rejects.toThrow(
        "ERR invalid expire time in 'set' command",
      );
      await expect(r.set('e3', 'v', 'EX', 'soon')).rejects.toThrow('ERR value is not an integer or out of range');
      await expect(r.call('set', 'e3', 'v', 'KEEPTTL', 'EX', '10')).rejects.toThrow('ERR syntax error');
      await expect(r.call('set', 'e3', 'v', 'PX', '10', 'KEEPTTL')).rejects.toThrow('ERR syntax error');
      await expect(r.call('set', 'e3', 'v', 'EX', '10', 'PX', '10')).rejects.toThrow('ERR syntax error');
    } finally {
      r.disconnect();
    }
  });

  it('answers EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, PERSIST and KEEPTTL as Redis 7 does', async () => {
    const r = new Redis({ port, host: '127.0.0.1' });
    try {
      await r.set('x', '1');
      expect(await r.expire('x', 100)).toBe(1);
      expect(await r.ttl('x')).toBe(100);
      expect(await r.call('expire', 'x', '50', 'GT')).toBe(0);
      expect(await r.call('expire', 'x', '50', 'LT')).toBe(1);
      expect(await r.call('expire', 'x', '500', 'NX')).toBe(0);
      expect(await r.pexpire('x', 200_000)).toBe(1);
      expect(await r.pttl('x')).toBeGreaterThan(199_000);
      expect(await r.set('x', '2', 'KEEPTTL')).toBe('OK');
      expect(await r.pttl('x')).toBeGreaterThan(199_000);
      expect(await r.persist('x')).toBe(1);
      expect(await r.persist('x')).toBe(0);
      expect(await r.ttl('x')).toBe(-1);
      expect(await r.expireat('x', Math.floor(Date.now() / 1000) + 1000)).toBe(1);
      expect(await r.ttl('x')).toBeGreaterThan(990);
      // A deadline already past deletes the key.
      expect(await r.pexpireat('x', Date.now() - 1)).toBe(1);
      expect(await r.exists('x')).toBe(0);
      expect(await r.expire('missing', 10)).toBe(0);
      await expect(r.call('expire', 'x', '10', 'NX', 'XX')).rejects.toThrow(
        'ERR NX and XX, GT or LT options at the same time are not compatible',
      );
      await expect(r.call('expire', 'x', '10', 'GT', 'LT')).rejects.toThrow(
        'ERR GT and LT options at the same time are not compatible',
      );
      await expect(r.call('expire', 'x', '10', 'SOON')).rejects.toThrow('ERR Unsupported option SOON');
      await expect(r.call('expire', 'x', 'ten')).rejects.toThrow('ERR value is not an integer or out of range');
      await expect(r.call('expire', 'x', '9223372036854775')).rejects.toThrow(
        "ERR invalid expire time in 'expire' command",
      );
    } finally {
      r.disconnect();
    }
  });
});
