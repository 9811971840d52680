import { type Logger, pino } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Structured JSON logs on stdout, one per line, as both programs write them: `service` names the
 * program (rtccdn-media-node, rtccdn-operator); children carry the component.
 */
export function createServiceLogger(
  service: string,
  level: string,
  bindings: Record<string, unknown> = {},
): Logger {
  return pino({ level, base: { service, ...bindings } });
}
