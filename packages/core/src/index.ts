/**
 * @cohort/core: the ids, errors, configuration, wire codec and host
 * interfaces (Clock, Random, Transport, Logger) that every Cohort package shares.
 */
export * from './clock.js';
export * from './codec/index.js';
export * from './config.js';
export { checkDataDirWritable } from './config-data-dir.js';
export type { ConfigIssue } from './config-rules.js';
export * from './errors.js';
export * from './ids.js';
export * from './log-store.js';
export * from './logger.js';
export * from './raft-types.js';
export * from './replicated-group.js';
export * from './random.js';
export * from './snapshot-pacer.js';
export * from './transport.js';
