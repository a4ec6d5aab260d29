/**
 * @cohort/core/testing: test doubles for code built on @cohort/core, kept out
 * of the main entry point. {@link MemoryHub} connects in-process transports, for
 * tests and for running several nodes in one process.
 *
 * @module
 */
export { MemoryHub, MemoryTransport } from './memory-transport.js';
