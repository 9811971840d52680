import { redactRedisUrl } from '../../contract/redis.js';

/** A failed registry operation: what was attempted, on which key, and why (cause: the Redis error). */
export class ClusterRegistryError extends Error {
  override name = 'ClusterRegistryError';
  constructor(
    readonly operation: string,
    readonly key: string,
    cause: unknown,
  ) {
    super(`cluster registry: ${operation} ${key} failed: ${describeRedisError(cause)}`, { cause });
  }
}

export function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Command timed out';
}

/** ioredis' messages, said in the registry's terms. */
export function describeRedisError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (message.startsWith("Stream isn't writeable")) return 'Redis is not connected';
  if (message.startsWith('Reached the max retries per request limit'))
    return 'the connection to Redis was lost';
  if (isTimeout(error)) return 'Redis did not answer in time';
  if (message === 'Connection is closed.') return 'the connection to Redis is closed';
  return message;
}

/**
 * Where the registry's Redis is, without credentials, for logs and errors: host:port of a server,
 * or the Sentinel URL (redacted) of a Sentinel-managed primary.
 */
export function redactedAddress(redisUrl: string): string {
  if (/^rediss?\+sentinel:/.test(redisUrl)) return redactRedisUrl(redisUrl);
  try {
    const url = new URL(redisUrl);
    return `${url.hostname}:${url.port || '6379'}`;
  } catch {
    return 'redis';
  }
}
