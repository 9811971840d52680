import os from 'node:os';
import { z } from 'zod';

/**
 * The media node's container contract: every setting comes from the environment and is
 * validated here, once, at start. A bad value is reported naming the variable.
 */

const port = z.coerce
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');

const optionalNonEmpty = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const EnvSchema = z
  .object({
    ROLE: z
      .enum(['all'], { error: 'must be "all" (origin/edge/transcoder roles arrive with the multi-node CDN)' })
      .default('all'),
    HOST: z.string().min(1).default('0.0.0.0'),
    PORT: port.default(8080),
    RTC_PORT: port.default(40000),
    RTC_LISTEN_IP: z.ipv4({ error: 'must be an IPv4 address' }).or(z.ipv6()).default('0.0.0.0'),
    ANNOUNCED_IP: optionalNonEmpty,
    WORKERS: z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(1, 'must be at least 1')
      .max(64, 'must be at most 64')
      .optional(),
    PUBLISH_TOKEN: optionalNonEmpty,
    LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    /** How long a WHIP/WHEP session may take to complete ICE+DTLS before it is reclaimed. */
    CONNECT_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
    /** How long a per-worker fan-out pipe outlives its last viewer (viewers churn). */
    FANOUT_LINGER_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
    /** How long SIGTERM waits for sessions to close before exiting anyway. */
    SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
    /** Serve the demo page at `/`. */
    DEMO_PAGE: z
      .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
      .default('true')
      .transform((value) => value === 'true' || value === '1'),
  })
  .refine((env) => env.RTC_PORT + (env.WORKERS ?? 1) - 1 <= 65535, {
    message: 'RTC_PORT + WORKERS - 1 must not exceed 65535',
    path: ['RTC_PORT'],
  });

export interface MediaNodeConfig {
  role: 'all';
  host: string;
  httpPort: number;
  rtcPort: number;
  rtcListenIp: string;
  announcedAddress: string;
  workers: number;
  publishToken: string | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  connectTimeoutMs: number;
  fanoutLingerMs: number;
  shutdownTimeoutMs: number;
  demoPage: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment; throws ConfigError with a one-line message naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): MediaNodeConfig {
  const result = EnvSchema.safeParse(env);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    const raw = env[variable];
    const shown = raw === undefined ? '' : ` (got ${JSON.stringify(raw)})`;
    throw new ConfigError(`invalid configuration: ${variable} ${issue.message}${shown}`);
  }
  const parsed = result.data;
  return {
    role: parsed.ROLE,
    host: parsed.HOST,
    httpPort: parsed.PORT,
    rtcPort: parsed.RTC_PORT,
    rtcListenIp: parsed.RTC_LISTEN_IP,
    announcedAddress: parsed.ANNOUNCED_IP ?? defaultAnnouncedAddress(parsed.RTC_LISTEN_IP),
    workers: parsed.WORKERS ?? Math.max(1, os.availableParallelism()),
    publishToken: parsed.PUBLISH_TOKEN,
    logLevel: parsed.LOG_LEVEL,
    connectTimeoutMs: parsed.CONNECT_TIMEOUT_MS,
    fanoutLingerMs: parsed.FANOUT_LINGER_MS,
    shutdownTimeoutMs: parsed.SHUTDOWN_TIMEOUT_MS,
    demoPage: parsed.DEMO_PAGE,
  };
}

/**
 * ICE candidates must carry an address peers can reach. A wildcard listen address is not one,
 * so fall back to the first external IPv4 of this host (or loopback on an isolated machine).
 */
function defaultAnnouncedAddress(listenIp: string): string {
  if (listenIp !== '0.0.0.0' && listenIp !== '::') return listenIp;
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  return '127.0.0.1';
}
