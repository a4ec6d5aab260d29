import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogFields, Logger } from '@cohort/core';
import { type Libp2pTransport, type Libp2pTransportOptions, createLibp2pTransport } from '../src/index.js';

/** A logger that keeps every line, to assert on warnings. */
export class RecordingLogger implements Logger {
  readonly lines: { level: string; msg: string; fields?: LogFields }[] = [];
  debug(msg: string, fields?: LogFields): void {
    this.add('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.add('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.add('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.add('error', msg, fields);
  }
  child(): Logger {
    return this;
  }
  at(level: string): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.msg);
  }
  private add(level: string, msg: string, fields?: LogFields): void {
    this.lines.push(fields === undefined ? { level, msg } : { level, msg, fields });
  }
}

/** Polls `check` until it returns true, failing after `ms`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Creates transports in fresh temp dirs and tears all of them down. */
export class Cluster {
  private readonly transports: Libp2pTransport[] = [];
  private readonly dirs: string[] = [];

  async dir(): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'cohort-transport-'));
    this.dirs.push(d);
    return d;
  }

  async start(options: Partial<Libp2pTransportOptions> & { self: string }): Promise<Libp2pTransport> {
    const t = createLibp2pTransport({
      listen: '127.0.0.1:0',
      dataDir: options.dataDir ?? (await this.dir()),
      minRedialMs: 20,
      maxRedialMs: 200,
      ...options,
    });
    this.transports.push(t);
    await t.start();
    return t;
  }

  async close(): Promise<void> {
    await Promise.all(this.transports.map((t) => t.stop()));
    await Promise.all(this.dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** Makes every transport know every other one. */
export function meshAll(...ts: Libp2pTransport[]): void {
  for (const a of ts) for (const b of ts) if (a !== b) a.addPeer(b.self, addressOf(b));
}

export function addressOf(t: Libp2pTransport): string {
  const addr = t.listenAddresses()[0];
  if (addr === undefined) throw new Error(`${t.self} listens nowhere`);
  return addr;
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);
