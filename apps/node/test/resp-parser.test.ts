import { describe, expect, it } from 'vitest';
import { RespParser, RespProtocolError } from '../src/resp/parser.js';

const strs = (cmds: Buffer[][]): string[][] => cmds.map((c) => c.map((a) => a.toString()));

/** Feeds bytes and returns the commands, throwing the protocol error if any. */
function feed(p: RespParser, bytes: Uint8Array): Buffer[][] {
  const { commands, error } = p.push(bytes);
  if (error) throw error;
  return commands;
}

describe('RespParser', () => {
  it('parses a multibulk command', () => {
    const p = new RespParser();
    expect(strs(feed(p, Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n')))).toEqual([['SET', 'a', '1']]);
    expect(p.buffered).toBe(0);
  });

  it('parses the same bytes identically whatever the fragmentation, one byte at a time included', () => {
    const wire = Buffer.from(
      '*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n',
    );
    const expected = [['GET', 'hello'], ['PING'], ['PING'], ['ECHO', '']];
    for (const size of [1, 2, 3, 5, 7, 64]) {
      const p = new RespParser();
      const got: Buffer[][] = [];
      for (let i = 0; i < wire.length; i += size) got.push(...feed(p, wire.subarray(i, i + size)));
      expect(strs(got), `chunk size ${size}`).toEqual(expected);
    }
  });

  it('returns every pipelined command of one chunk, in order', () => {
    const p = new RespParser();
    const wire = Array.from({ length: 100 }, (_, i) => `*2\r\n$3\r\nGET\r\n$${String(i).length}\r\n${i}\r\n`).join('');
    const cmds = strs(feed(p, Buffer.from(wire)));
    expect(cmds).toHaveLength(100);
    expect(cmds[99]).toEqual(['GET', '99']);
  });

  it('keeps binary-safe bulk strings intact', () => {
    const p = new RespParser();
    const value = Buffer.from([0, 13, 10, 255, 36, 42]);
    const wire = Buffer.concat([Buffer.from('*2\r\n$4\r\nECHO\r\n$6\r\n'), value, Buffer.from('\r\n')]);
    expect(feed(p, wire)[0]![1]).toEqual(value);
  });

  it('parses inline commands with quotes, as telnet and redis-cli send them', () => {
    const p = new RespParser();
    expect(strs(feed(p, Buffer.from('set  a "hello world"\r\nget a\n\r\n')))).toEqual([
      ['set', 'a', 'hello world'],
      ['get', 'a'],
    ]);
  });

  it('returns the commands before a malformed one together with the error', () => {
    const { commands, error } = new RespParser().push(Buffer.from('PING\r\n*1\r\n$x\r\n'));
    expect(strs(commands)).toEqual([['PING']]);
    expect(error).toBeInstanceOf(RespProtocolError);
  });

  it('reads lengths with leading zeros, and a negative array length as an empty array', () => {
    expect(strs(feed(new RespParser(), Buffer.from('*-1\r\n*002\r\n$004\r\nPING\r\n$0\r\n\r\n')))).toEqual([
      ['PING', ''],
    ]);
  });

  it('ignores empty arrays like Redis', () => {
    expect(strs(feed(new RespParser(), Buffer.from('*0\r\n*1\r\n$4\r\nPING\r\n')))).toEqual([['PING']]);
  });

  it.each([
    ['*x\r\n', /invalid multibulk length/],
    ['*1\r\n+PING\r\n', /expected '\$', got '\+'/],
    ['*1\r\n$-5\r\n', /invalid bulk length/],
    ['*\r\n', /invalid multibulk length/],
    ['*-\r\n', /invalid multibulk length/],
    ['*+1\r\n', /invalid multibulk length/],
    ['*1a\r\n', /invalid multibulk length/],
    ['*1 \r\n', /invalid multibulk length/],
    ['*1234567890123456789\r\n', /invalid multibulk length/],
    ['*1\r\n$\r\n', /invalid bulk length/],
    ['*1\r\n$3x\r\n', /invalid bulk length/],
    ['*1\r\n$2\r\nabcd\r\n', /not terminated/],
    ['set a "unterminated\r\n', /unbalanced quotes/],
  ])('rejects malformed input %j with a protocol error', (wire, message) => {
    expect(() => feed(new RespParser(), Buffer.from(wire))).toThrow(message);
  });

  it('enforces the bulk, array and inline limits', () => {
    const limits = { maxBulkBytes: 10, maxArrayLength: 3, maxInlineBytes: 32 };
    expect(() => feed(new RespParser(limits), Buffer.from('*1\r\n$11\r\n'))).toThrow(/invalid bulk length/);
    expect(() => feed(new RespParser(limits), Buffer.from('*4\r\n'))).toThrow(/invalid multibulk length/);
    expect(() => feed(new RespParser(limits), Buffer.from('x'.repeat(33)))).toThrow(RespProtocolError);
    // At the limits, all is well.
    expect(strs(feed(new RespParser(limits), Buffer.from('*1\r\n$10\r\n0123456789\r\n')))).toEqual([['0123456789']]);
  });

  it('waits for a large bulk string without holding partial commands', () => {
    const p = new RespParser();
    const big = 'v'.repeat(100_000);
    const wire = Buffer.from(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${big.length}\r\n${big}\r\n`);
    const got: Buffer[][] = [];
    for (let i = 0; i < wire.length; i += 1000) got.push(...feed(p, wire.subarray(i, i + 1000)));
    expect(got).toHaveLength(1);
    expect(got[0]![2]!.length).toBe(100_000);
  });
});
