import { createServiceLogger, type Logger } from '../contract/runtime.js';

export type { Logger };

/** The media node's logger: JSON lines on stdout (the contract's format), children per component. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return createServiceLogger('rtccdn-media-node', level, bindings);
}
