import {
  createServiceLogger,
  LOG_LEVELS,
  type Logger,
  type LogLevel,
} from '../../media-node/contract/runtime.js';

export { LOG_LEVELS, type Logger, type LogLevel };

/** The operator's logger: JSON lines on stdout; children per controller carry `controller` and the object key. */
export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return createServiceLogger('rtccdn-operator', level, bindings);
}
