import { randomBytes } from 'node:crypto';
import { type Server, type Socket, createServer } from 'node:net';
import type { Logger } from '@cohort/core';
import type { KvApi } from '../kv-api.js';
import { type Session, runCommand } from './commands.js';
import { type RespLimits, RespParser } from './parser.js';
import { encodeReply, errorReply } from './reply.js';

/** Options of {@link RespServer}. */
export interface RespServerOptions {
  api: KvApi;
  logger: Logger;
  limits?: Partial<RespLimits>;
}

/**
 * The Redis-protocol front end. Each connection parses its bytes as they
 * come, runs commands one after another (so a pipelined read sees the writes
 * before it) and writes the replies in order; a protocol error closes that
 * connection only.
 */
export class RespServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private connections = 0;

  constructor(private readonly options: RespServerOptions) {
    this.server = createServer((socket) => this.accept(socket));
  }

  /** Starts listening; resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  /** Total connections accepted since start. */
  get accepted(): number {
    return this.connections;
  }

  /** Stops accepting, lets in-flight replies go out, then closes every connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.end();
    const deadline = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, 2000);
    await closed;
    clearTimeout(deadline);
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const log = this.options.logger.child({ client: `${socket.remoteAddress}:${socket.remotePort}` });
    const parser = new RespParser(this.options.limits);
    const session: Session = {
      name: '',
      closing: false,
      // A random 128-bit id: a connection's writes are one session, apart from every other connection's.
      writes: { clientId: randomBytes(16).toString('hex'), seq: 0, lowWater: 0 },
    };
    let queue: Buffer[][] = [];
    let running: Promise<void> | null = null;
    let broken = false;

    const drain = async (): Promise<void> => {
      while (queue.length > 0 && !socket.destroyed) {
        const batch = queue;
        queue = [];
        for (const args of batch) {
          const reply = await runCommand(args, this.options.api, session);
          if (socket.destroyed) return;
          socket.write(encodeReply(reply));
          if (session.closing) {
            socket.end();
            return;
          }
        }
      }
    };
    const kick = (): void => {
      if (running !== null || queue.length === 0) return;
      // Reading pauses while a batch runs: a client cannot queue unbounded work.
      socket.pause();
      running = drain().finally(() => {
        running = null;
        if (socket.destroyed || session.closing || broken) return;
        socket.resume();
        kick();
      });
    };

    socket.on('data', (chunk: Buffer) => {
      if (session.closing || broken) return;
      const { commands, error } = parser.push(chunk);
      queue.push(...commands);
      if (error) {
        log.debug('protocol error', { err: error.message });
        broken = true;
        socket.pause();
        // Replies to the commands before the bad bytes still go out first.
        void (async () => {
          if (running) await running;
          await drain();
          if (!socket.destroyed) socket.end(encodeReply(errorReply(`ERR Protocol error: ${error.message}`)));
        })();
        return;
      }
      kick();
    });
    socket.on('error', (err) => log.debug('connection error', { err: err.message }));
    socket.on('close', () => this.sockets.delete(socket));
  }
}
