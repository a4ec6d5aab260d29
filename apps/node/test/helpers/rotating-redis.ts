import { Redis } from 'ioredis';
import type { ProcNode } from './processes.js';

/** A RESP connection that moves to the next node when its node fails. */
export class Rotating {
  private at: number;
  r: Redis;
  constructor(
    private readonly nodes: ProcNode[],
    start: number,
  ) {
    this.at = start;
    this.r = this.open();
  }
  private open(): Redis {
    const node = this.nodes[this.at % this.nodes.length]!;
    const r = new Redis({
      port: node.resp,
      host: '127.0.0.1',
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      commandTimeout: 8000,
    });
    r.on('error', () => {});
    return r;
  }
  rotate(): void {
    this.r.disconnect();
    this.at++;
    this.r = this.open();
  }
  close(): void {
    this.r.disconnect();
  }
}
