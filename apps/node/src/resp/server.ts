import { randomBytes } from 'node:crypto';
import { type Server, type Socket, createServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from '@cohort/core';
import type { Acl } from '../auth.js';
import type { KvApi, ReadApi } from '../kv-api.js';
import { type ClientEntry, type ServerState, newServerState } from './clients.js';
import type { ClusterView } from './cluster-commands.js';
import { DEFAULT_RESP_LIMITS, type RespLimits, RespParser } from './parser.js';
import { Pipeline, type PipelineLimits } from './pipeline.js';
import { RESP_SESSION_PREFIX, newSession } from './plan.js';
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
  /** Wakes blocked commands (BLPOP ...) when their keys may have changed (see `PipelineOptions`). */
  waitForKeys?(keys: Buffer[], ms: number): Promise<void>;
  /** The cluster's layout and leaders, for the CLUSTER commands and MOVED redirects. */
  cluster?: ClusterView;
  /** The users clients authenticate as (AUTH, ACL); without it every connection may run every command. */
  acl?: Acl;
  /** Serve RESP over TLS with this certificate chain and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Most connections open at once; one more is answered `-ERR max number of clients reached` and closed. @default 10000 */
  maxClients?: number;
  /**
   * Output buffer limits (Redis' client-output-buffer-limit for normal
   * clients): a connection whose unsent replies exceed `hardBytes`, or stay
   * above `softBytes` for `softSeconds`, is closed; so is one whose commands
   * wait for it to read its replies for `softSeconds` (the server runs no more
   * of a connection's commands while its replies are unread, where Redis would
   * buffer their replies up to the hard limit). @default 256 MiB, 32 MiB or unread for 30 s
   */
  outputBuffer?: Partial<OutputBufferLimits>;
}

/** See {@link RespServerOptions.outputBuffer}. */
export interface OutputBufferLimits {
  hardBytes: number;
  softBytes: number;
  softSeconds: number;
}

export const DEFAULT_OUTPUT_BUFFER_LIMITS: OutputBufferLimits = {
  hardBytes: 256 * 1024 * 1024,
  softBytes: 32 * 1024 * 1024,
  softSeconds: 30,
};

/** The answer to the commands a connection read but had not started when the node began to stop. */
const SHUTTING_DOWN = errorReply(
  'UNAVAILABLE the node is shutting down; the command did not run, retry it on another node',
);

/** Redis' answer to a connection over `maxclients`. */
const MAX_CLIENTS_REPLY = '-ERR max number of clients reached\r\n';

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
  private readonly raw = new Set<Socket>();
  private connections = 0;
  private refusedConnections = 0;
  private outputLimitClosed = 0;
  private readonly state: ServerState;
  /** Set by {@link close}: connections read no more commands, answer those they have, then close. */
  private draining = false;
  /** Per connection: refuses its commands not started yet and resolves once every command it read is answered. */
  private readonly drains = new Map<Socket, () => Promise<void>>();
  private readonly maxClients: number;
  private readonly outputLimits: OutputBufferLimits;

  constructor(private readonly options: RespServerOptions) {
    this.server = options.tls
      ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, (socket) => this.accept(socket))
      : createServer((socket) => this.accept(socket));
    // Every connection, served or refused (and, over TLS, still in its handshake): closed at the deadline of close().
    this.server.on('connection', (socket: Socket) => {
      this.raw.add(socket);
      socket.once('close', () => this.raw.delete(socket));
    });
    this.maxClients = options.maxClients ?? 10_000;
    this.outputLimits = { ...DEFAULT_OUTPUT_BUFFER_LIMITS, ...options.outputBuffer };
    this.state = newServerState({
      databases: '1',
      'proto-max-bulk-len': String({ ...DEFAULT_RESP_LIMITS, ...options.limits }.maxBulkBytes),
    });
    this.state.config.maxclients = String(this.maxClients);
    const o = this.outputLimits;
    this.state.config['client-output-buffer-limit'] =
      `normal ${o.hardBytes} ${o.softBytes} ${o.softSeconds} replica 0 0 0 pubsub 0 0 0`;
    if (options.cluster) this.state.cluster = options.cluster;
    if (options.acl) {
      this.state.acl = options.acl;
      this.state.config.requirepass = options.acl.authRequired ? '********' : '';
    }
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

  /** Connections refused over `maxclients`, and closed for their output buffer, since start. */
  get refused(): { maxClients: number; outputBuffer: number } {
    return { maxClients: this.refusedConnections, outputBuffer: this.outputLimitClosed };
  }

  /**
   * Stops accepting connections; each connection reads no more commands,
   * answers the batch it is running, answers the commands it read but did
   * not start `-UNAVAILABLE` (they never run), flushes its replies and
   * closes. After `timeoutMs` the connections still open are closed as they are.
   */
  async close(timeoutMs = 2000): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const deadline = setTimeout(() => {
      this.options.logger.warn('closing RESP connections still open', {
        connections: this.sockets.size,
        sockets: this.raw.size,
      });
      for (const s of this.sockets) s.destroy();
      for (const s of this.raw) s.destroy();
    }, timeoutMs);
    deadline.unref();
    for (const s of this.sockets) {
      s.pause();
      const drained = this.drains.get(s);
      void (drained ? drained() : Promise.resolve()).then(() => {
        if (s.destroyed) return;
        s.end();
        // Read (and drop) to the client's end of the stream, so its close is seen and the socket freed.
        s.resume();
      });
    }
    await closed;
    clearTimeout(deadline);
  }

  private accept(socket: Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    if (this.sockets.size >= this.maxClients) {
      this.refusedConnections++;
      socket.on('error', () => {});
      socket.end(MAX_CLIENTS_REPLY);
      return;
    }
    this.connections++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const log = this.options.logger.child({ client: `${socket.remoteAddress}:${socket.remotePort}` });
    const parser = new RespParser(this.options.limits);
    // A random 128-bit id: a connection's writes are one session, apart from every other connection's.
    const session = newSession(this.state, `${RESP_SESSION_PREFIX}${randomBytes(16).toString('hex')}`);
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
    // When the unsent replies went over the soft limit (0: not over it).
    let overSoftSince = 0;
    let softTimer: ReturnType<typeof setTimeout> | undefined;
    const limits = this.outputLimits;
    const overLimit = (why: string): void => {
      this.outputLimitClosed++;
      log.warn('client closed for overcoming its output buffer limits', {
        why,
        pending: socket.writableLength,
        id: session.id,
      });
      socket.destroy();
    };
    // Commands wait while replies are unsent (see the pipeline's `writable`): a client that stopped reading
    // holds its work back, and is closed as one over the soft limit once that lasts `softSeconds`.
    let heldBack = false;
    const checkOutput = (): void => {
      const pending = socket.writableLength;
      if (pending > limits.hardBytes) {
        overLimit(`hard limit ${limits.hardBytes} bytes`);
        return;
      }
      if (pending <= limits.softBytes && !heldBack) {
        overSoftSince = 0;
        return;
      }
      if (overSoftSince === 0) {
        overSoftSince = Date.now();
        softTimer ??= setTimeout(() => {
          softTimer = undefined;
          if (overSoftSince !== 0 && (socket.writableLength > limits.softBytes || heldBack) && !socket.destroyed)
            overLimit(`soft limit ${limits.softBytes} bytes, or replies unread, for ${limits.softSeconds} s`);
        }, limits.softSeconds * 1000);
        softTimer.unref();
      }
    };
    const pipeline = new Pipeline({
      api: this.options.api,
      session,
      limits: this.options.pipeline ?? {},
      ...(this.options.reads ? { reads: this.options.reads } : {}),
      leaseReads: this.options.leaseReads ?? false,
      ...(this.options.waitForKeys ? { waitForKeys: this.options.waitForKeys } : {}),
      reply: (replies, protos) => {
        if (socket.destroyed) return;
        client.lastActive = Date.now();
        socket.cork();
        replies.forEach((r, i) => socket.write(encodeReply(r, protos[i])));
        socket.uncork();
        checkOutput();
      },
      pause: (paused) => {
        if (paused) socket.pause();
        else if (!broken && !session.closing && !this.draining) socket.resume();
      },
      // A client that does not read its replies gets no more work done until it does.
      writable: () => {
        if (!socket.writableNeedDrain) return true;
        if (!heldBack) {
          heldBack = true;
          checkOutput();
        }
        return false;
      },
      close: () => socket.end(),
    });

    this.drains.set(socket, () => {
      pipeline.refuseQueued(SHUTTING_DOWN);
      return pipeline.drained();
    });
    socket.on('data', (chunk: Buffer) => {
      if (session.closing || broken || this.draining) return;
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
          // Read and drop what the client still sends, so it sees the close; a client that keeps sending is cut.
          socket.resume();
          setTimeout(() => socket.destroy(), 1000).unref();
        });
      }
    });
    socket.on('drain', () => {
      overSoftSince = 0;
      heldBack = false;
      pipeline.kick();
    });
    socket.on('error', (err) => log.debug('connection error', { err: err.message }));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.drains.delete(socket);
      if (softTimer !== undefined) clearTimeout(softTimer);
      this.state.clients.remove(session.id);
      pipeline.stop();
    });
  }
}
