import { z } from 'zod';
import type { Logger } from '../logger.js';
import { ClusterRegistryError } from './errors.js';
import { LUA_SERVER_EXPIRY, RedisScript } from './Lease.js';
import type { RegistryConnection } from './RegistryConnection.js';

// KEYS[1] index ZSET. Prunes members whose expiry (server time) has passed, returns the rest.
export const LIVE_MEMBERS = new RedisScript(
  'index-live-members',
  `${LUA_SERVER_EXPIRY}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. expiry(0))
return redis.call('ZRANGE', KEYS[1], 0, -1)
`,
);

/**
 * Reads the registry's records (layout: keys.ts). What it cannot read — not JSON, invalid, or of
 * another layout version — is logged and skipped, never guessed at: one bad record never hides
 * the others.
 */
export class RecordReader {
  readonly #connection: RegistryConnection;
  readonly #logger: Logger;

  constructor(connection: RegistryConnection, logger: Logger) {
    this.#connection = connection;
    this.#logger = logger;
  }

  /** The record at `key`, or undefined (absent, or unreadable: logged). */
  async get<T>(operation: string, key: string, schema: z.ZodType<T>): Promise<T | undefined> {
    const value = await this.#connection.command(operation, key, (redis) => redis.get(key));
    return value === null ? undefined : this.parse(schema, value, key);
  }

  /**
   * The records listed in an index: prunes expired members (server time) and reads the live
   * ones in a single MGET. Records that expired since are dropped.
   */
  async listIndexed<T>(
    operation: string,
    indexKey: string,
    memberSchema: z.ZodType<string>,
    recordSchema: z.ZodType<T>,
    record: { keyOf: (member: string) => string; idOf: (record: T) => string },
  ): Promise<T[]> {
    const listed = (await this.#connection.command(operation, indexKey, (redis) =>
      LIVE_MEMBERS.run(redis, [indexKey], []),
    )) as string[];
    const members = listed.filter((member) => {
      if (memberSchema.safeParse(member).success) return true;
      this.#logger.warn({ key: indexKey, member: member.slice(0, 200) }, 'skipped an invalid index member');
      return false;
    });
    if (members.length === 0) return [];
    const keys = members.map(record.keyOf);
    const values = await this.#connection.command(operation, indexKey, (redis) => redis.mget(keys));
    const records: T[] = [];
    values.forEach((value, index) => {
      if (value === null) return;
      const key = keys[index]!;
      const parsed = this.parse(recordSchema, value, key);
      if (parsed === undefined) return;
      if (record.idOf(parsed) !== members[index]) {
        this.#logger.warn({ key, id: record.idOf(parsed) }, 'skipped a record stored under another key');
        return;
      }
      records.push(parsed);
    });
    return records.sort((x, y) => (record.idOf(x) < record.idOf(y) ? -1 : 1));
  }

  parse<T>(schema: z.ZodType<T>, value: string, key: string): T | undefined {
    let data: unknown;
    try {
      data = JSON.parse(value);
    } catch {
      this.#logger.warn({ key, value: value.slice(0, 200) }, 'skipped a record that is not JSON');
      return undefined;
    }
    const result = schema.safeParse(data);
    if (!result.success) {
      this.#logger.warn(
        { key, value: value.slice(0, 200), problem: z.prettifyError(result.error) },
        'skipped an invalid record (corrupt, or written by another layout version)',
      );
      return undefined;
    }
    return result.data;
  }
}

/**
 * The record of whoever holds a lease we could not take. An unreadable one (corrupt, or written
 * by a newer layout version) still holds the key, so the claim fails; it cannot be answered
 * with a holder, so it is an error naming the key (someone has to look at it).
 */
export function holderRecord<T>(schema: z.ZodType<T>, operation: string, key: string, value: string): T {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch {
    throw new ClusterRegistryError(operation, key, 'the key is held by a value that is not JSON');
  }
  const result = schema.safeParse(data);
  if (!result.success) {
    throw new ClusterRegistryError(
      operation,
      key,
      `the key is held by an unreadable record (corrupt, or a newer layout version): ${z.prettifyError(result.error)}`,
    );
  }
  return result.data;
}

/** Records are checked before they are written: a bad one is the caller's bug, thrown at once. */
export function validated<T>(schema: z.ZodType<T>, what: string, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new TypeError(`invalid ${what}: ${z.prettifyError(result.error)}`);
  return result.data;
}
