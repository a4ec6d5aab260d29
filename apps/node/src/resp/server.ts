import { randomBytes } from 'node:crypto';
import { type Server, type Socket, createServer } from 'node:net';
import type { Logger } from '@cohort/core';
import type { KvApi, ReadApi } from '../kv-api.js';
import { type ClientEntry, type ServerState, newServerState } from './clients.js';
import type { ClusterView } from './cluster-commands.js';
import { DEFAULT_RESP_LIMITS, type RespLimits, RespParser } from './parser.js';
import { Pipeline, type PipelineLimits } from './pipeline.js';
import { newSession } from './plan.js';
import { encodeReply, errorReply } from './reply.js';

/** Options of {@link RespServer}. */
export interface RespServerOptions {
  api: KvApi;
  logger: Logger;
  limits?: Partial<RespLimits>;
  /** Bounds of each connection's pipeline (see {@link Pipeline}). */
  pipeline?: Partial<PipelineLimits>;
  /** Stale reads (READONLY) and lease reads; without it every read is linearizable. */
  reads?: ReadApi;
  /** Whether the leader serves reads under its lease (`raft.leaseReads`). @default false */
  leaseReads?: boolean;
  /** The cluster's layout and leaders, for the CLUSTER commands and MOVED redirects. */
  cluster?: ClusterView;
}

/**
 * The Redis-protocol front end. Each connection parses its bytes as they
 * come and hands its commands to a {@link Pipeline}, which runs them in order
 * (a pipeline's writes sharing Raft rounds, each read seeing exactly the
 * writes before it) and writes the replies in order; a protocol error closes
 * that connection only.
 */
export class RespServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private connections = 0;
  private readonly state: ServerState;

  constructor(private readonly options: RespServerOptions) {
    this.server = createServer((socket) => this.accept(socket));
    this.state = newServerState({
      databases: '1',
      'proto-max-bulk-len': String({ ...DEFAULT_RESP_LIMITS, ...options.limits }.maxBulkBytes),
    });
    if (options.cluster) this.state.cluster = options.cluster;
  }

  /** Starts listening; resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const addr = this.server.address();
        if (typeof addr === 'object' && addr) {
          this.state.config.port = String(addr.port);
          this.state.config.bind = addr.address;
        }
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
    // A random 128-bit id: a connection's writes are one session, apart from every other connection's.
    const session = newSession(this.state, randomBytes(16).toString('hex'));
    const now = Date.now();
    const client: ClientEntry = {
      session,
      addr: `${socket.remoteAddress}:${socket.remotePort}`,
      laddr: `${socket.localAddress}:${socket.localPort}`,
      created: now,
      lastActive: now,
      kill: () => socket.destroy(),
    };
    this.state.clients.add(client);
    let broken = false;
    const pipeline = new Pipeline({
      api: this.options.api,
      session,
      limits: this.options.pipeline ?? {},
      ...(this.options.reads ? { reads: this.options.reads } : {}),
      leaseReads: this.options.leaseReads ?? false,
      reply: (replies, protos) => {
        if (socket.destroyed) return;
        client.lastActive = Date.now();
        socket.cork();
        replies.forEach((r, i) => socket.write(encodeReply(r, protos[i])));
        socket.uncork();
      },
      pause: (paused) => {
        if (paused) socket.pause();
        else if (!broken && !session.closing) socket.resume();
      },
      // A client that does not read its replies gets no more work done until it does.
      writable: () => !socket.writableNeedDrain,
      close: () => socket.end(),
    });

    socket.on('data', (chunk: Buffer) => {
      if (session.closing || broken) return;
      const { commands, error } = parser.push(chunk);
      for (const args of commands) pipeline.push(args);
      if (error) {
        log.debug('protocol error', { err: error.message });
        broken = true;
        socket.pause();
        // Replies to the commands before the bad bytes still go out first.
        void pipeline.drained().then(() => {
          if (!socket.destroyed && !session.closing)
            socket.end(encodeReply(errorReply(`ERR Protocol error: ${error.message}`)));
        });
      }
    });
    socket.on('drain', () => pipeline.kick());
    socket.on('error', (err) => log.debug('connection error', { err: err.message }));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.state.clients.remove(session.id);
      pipeline.stop();
    });
  }
}
