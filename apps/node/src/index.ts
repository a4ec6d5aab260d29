/** The cohort binary: composes the Cohort packages, serves RESP and HTTP/JSON, and runs local clusters. */
export const PACKAGE = '@cohort/node';
export { HARNESS_RUNTIME_FLAGS, NODE_RUNTIME_FLAGS } from './runtime-flags.js';
export { CohortNode, type NodeAddresses, splitHostPort } from './cohort-node.js';
export { type StartFlags, loadNodeOptions, parsePeers } from './config.js';
export { type HttpServerOptions, createHttpServer } from './http-server.js';
export type { KvApi, NodeStatus } from './kv-api.js';
export { type LogLevel, createLogger } from './logger.js';
export { NodeMetrics } from './metrics.js';
export { KV_GROUP, type NodeOptions } from './node-config.js';
export { DEFAULT_RESP_LIMITS, type RespLimits, RespParser, RespProtocolError } from './resp/parser.js';
export { type Reply, encodeReply } from './resp/reply.js';
export { RespServer, type RespServerOptions } from './resp/server.js';
