import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * A Lua script run by SHA1 (EVALSHA) and sent in full (EVAL) only when the server does not
 * have it: after a Redis restart or SCRIPT FLUSH. Scripts run atomically on the server.
 */
export class RedisScript {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;

  constructor(name: string, source: string) {
    this.name = name;
    this.source = source;
    this.sha1 = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha1, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return await redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }

  /** Caches the script on the server (SCRIPT LOAD), so later runs are a single EVALSHA. */
  async load(redis: Redis): Promise<void> {
    await redis.script('LOAD', this.source);
  }
}
