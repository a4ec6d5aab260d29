import type { LogFields, Logger } from '@cohort/core';
import { type Logger as Pino, destination, pino } from 'pino';

/** Log levels the node accepts. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** Core's {@link Logger} over pino, writing JSON lines to stderr (stdout stays free for command output). */
export function createLogger(level: LogLevel, base: LogFields = {}): Logger {
  return wrap(pino({ level, base }, destination({ fd: 2, sync: true })));
}

function wrap(p: Pino): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (fields) => wrap(p.child(fields)),
  };
}
