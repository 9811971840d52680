import { randomUUID } from 'node:crypto';
import type { Redis, RedisOptions } from 'ioredis';
import {
  createRedis,
  failFastRedisOptions,
  REPLICA_ACK_TIMEOUT_MS,
  replicaAcks,
} from '../redis/connection.js';
import { type AclChangeMessage, AclChangeMessageSchema, ClusterKeys, LAYOUT_VERSION } from '../redis/keys.js';
import { RedisScript } from '../redis/RedisScript.js';
import type { Logger } from '../runtime/logger.js';
import { TypedEmitter } from '../runtime/TypedEmitter.js';
import { ACL_RECORD_VERSION, type AclRecord, AclRecordSchema, type StoredKey } from './model.js';

/** A change of one ACL, as every reader learns it. */
export interface AclChange {
  /** ACL version after the change (strictly increasing, no gaps in a healthy stream). */
  version: number;
  /** The store's epoch (see AclSnapshot). */
  epoch: string;
  pattern: string;
  op: 'put' | 'delete';
  /** Writer's clock at the change (ms). */
  at: number;
  /** This write's id and the previous write's ('' for none): see AclChangeMessage. */
  id?: string | undefined;
  prev?: string | undefined;
}

export interface AclSnapshot extends AclStoreVersion {
  records: AclRecord[];
  /**
   * Patterns whose stored record cannot be read (invalid, or written by a newer version): they
   * are not absent — their streams are refused until the record is rewritten.
   */
  unreadable: string[];
}

export interface AclStoreVersion {
  /** Lifetime of the store's data: a different epoch means the store was reset (data lost). */
  epoch: string;
  version: number;
  /**
   * The epoch for which the operator has written every StreamACL ('' if none): in an
   * operator-managed CDN, edges admit nobody until it equals `epoch`.
   */
  syncedEpoch: string;
  /** Id of the last write ('' if none, or written by an older version): with `version`, where the store is. */
  head: string;
}

export type AclStoreEvents = {
  /** Another writer (or this one) changed an ACL. Pub/sub: may be lost; see AclCache. */
  change: [change: AclChange];
};

/** Where ACLs live: Redis in a CDN (shared with the operator), memory on a standalone node. */
export interface AclStore extends TypedEmitter<AclStoreEvents> {
  /**
   * Resolves once the store can answer (connected) and, if it reports changes, receives them
   * (subscribed) — or after `timeoutMs` regardless.
   */
  connected(timeoutMs: number): Promise<void>;
  /** The record of `pattern`; throws UnreadableAclError when one is stored but cannot be read. */
  get(pattern: string): Promise<AclRecord | undefined>;
  snapshot(): Promise<AclSnapshot>;
  /** Epoch, version and synced epoch, cheaply (the cache's periodic check). */
  version(): Promise<AclStoreVersion>;
  /** The store's epoch, created now if the store has none yet (the operator, before a full sync). */
  ensureEpoch(): Promise<string>;
  /**
   * Records that every StreamACL has been written for `epoch`; false (nothing written) when the
   * store's epoch is another one by now (it was reset during the sync: sync again).
   */
  markSynced(epoch: string): Promise<boolean>;
  /**
   * Atomically replaces the ACL of `pattern` with what `change` computes from the current
   * one (undefined current = none). `change` returning undefined deletes it, UNCHANGED leaves it
   * as it is (no write); returning the current keys is still a write. The record is stamped
   * with `options.owner`. Retries when a concurrent writer got there first. A stored record
   * that cannot be read is passed as undefined (so that a write repairs it). The new record is
   * validated before it is written: InvalidAclError, and nothing written, if edges could not
   * read it.
   */
  update(pattern: string, change: AclUpdate, options?: { owner?: string }): Promise<AclRecord | undefined>;
  close(): Promise<void>;
}

/** What an update's `change` may return to leave the record as it is. */
export const UNCHANGED = Symbol('unchanged');

/** New keys for a pattern from its current record; undefined deletes it. */
export type AclUpdate = (current: AclRecord | undefined) => StoredKey[] | undefined | typeof UNCHANGED;

/** A failed ACL store operation, with what was attempted. */
export class AclStoreError extends Error {
  override name = 'AclStoreError';
}

/** A record that would not be readable by the edges (never written). */
export class InvalidAclError extends Error {
  override name = 'InvalidAclError';
}

/** A stored record that cannot be read: invalid, or of a newer record version. */
export class UnreadableAclError extends Error {
  override name = 'UnreadableAclError';
  constructor(
    readonly pattern: string,
    reason: string,
  ) {
    super(`the stored ACL of ${pattern} cannot be read: ${reason}`);
  }
}

/** The record to write, validated as every reader will parse it. */
function newRecord(pattern: string, keys: StoredKey[], owner: string | undefined): AclRecord {
  const record = { v: ACL_RECORD_VERSION, pattern, keys, updatedAt: Date.now(), ...(owner ? { owner } : {}) };
  const parsed = AclRecordSchema.safeParse(record);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidAclError(`ACL ${pattern}: ${issue.path.join('.') || '(record)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Parses a stored record; UnreadableAclError when it is not one this version can read. */
function parseRecord(value: string, pattern: string): AclRecord {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new UnreadableAclError(pattern, 'not JSON');
  }
  const parsed = AclRecordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UnreadableAclError(pattern, `${issue.path.join('.') || '(record)'}: ${issue.message}`);
  }
  if (parsed.data.pattern !== pattern)
    throw new UnreadableAclError(pattern, `it names ${parsed.data.pattern}`);
  return parsed.data;
}

// --- Redis ----------------------------------------------------------------------------------------

/**
 * Compare-and-set of one ACL record, its index entry, the version counter, the head (id of the
 * last write) and the change message, atomically. ARGV[1] is the value the writer read ("" =
 * none, so the record must not exist); ARGV[2] the new value ("" = delete); ARGV[7] an epoch id,
 * set if none exists yet; ARGV[8] this write's id. Returns {1, version} or {0} on a conflict.
 */
const WRITE_ACL = new RedisScript(
  'acl-write',
  `
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return {0} end
redis.call('SET', KEYS[4], ARGV[7], 'NX')
local op
if ARGV[2] == '' then
  -- Deleting an absent ACL still announces it: edges that locked the pattern after a store
  -- reset (AclCache) unlock it on an explicit delete.
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
  op = 'delete'
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  op = 'put'
end
local version = redis.call('INCR', KEYS[3])
local epoch = redis.call('GET', KEYS[4])
local prev = redis.call('GET', KEYS[5]) or ''
redis.call('SET', KEYS[5], ARGV[8])
redis.call('PUBLISH', ARGV[4], '{"v":' .. ARGV[6] .. ',"version":' .. version .. ',"epoch":"' .. epoch .. '","pattern":"' .. ARGV[3] ..
  '","op":"' .. op .. '","at":' .. ARGV[5] .. ',"id":"' .. ARGV[8] .. '","prev":"' .. prev .. '"}')
return {1, version}
`,
);

/**
 * Epoch, version, synced epoch, head and every (pattern, record), read in one atomic step (a
 * consistent snapshot).
 */
const SNAPSHOT_ACLS = new RedisScript(
  'acl-snapshot-v2',
  `
local out = {redis.call('GET', KEYS[3]) or '', redis.call('GET', KEYS[2]) or '0', redis.call('GET', KEYS[4]) or '',
  redis.call('GET', KEYS[5]) or ''}
for _, pattern in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = pattern
  out[#out + 1] = redis.call('GET', ARGV[1] .. pattern) or ''
end
return out
`,
);

/** The store's epoch, set to ARGV[1] if there is none. */
const ENSURE_EPOCH = new RedisScript(
  'acl-ensure-epoch',
  `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`,
);

/** Marks epoch ARGV[1] fully synced, if it is still the store's epoch: {1} or {0}. */
const MARK_SYNCED = new RedisScript(
  'acl-mark-synced',
  `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
redis.call('SET', KEYS[2], ARGV[1])
return {1}
`,
);

export interface RedisAclStoreOptions {
  /** Any URL parseRedisUrl() accepts: a server, or a Sentinel-managed primary. */
  redisUrl: string;
  prefix?: string;
  /** Subscribe to changes (edges); writers that only write (the operator) may skip it. */
  subscribe: boolean;
  commandTimeoutMs?: number;
  logger: Logger;
}

/**
 * ACLs in Redis under {prefix}acl: (layout in redis/keys.ts). Commands fail fast while Redis
 * is down (no offline queue): admission decides from its cache, the REST API answers 503.
 *
 * Behind Sentinel, a write is acknowledged only once it has reached the URL's `acks` replicas
 * (WAIT): a failover promotes the most up-to-date replica, so it never loses a write whose
 * caller was told it succeeded — a revocation stays revoked. A write that does not reach them
 * in time fails (the caller writes it again); readers follow whatever the store then holds.
 */
export class RedisAclStore extends TypedEmitter<AclStoreEvents> implements AclStore {
  readonly keys: ClusterKeys;
  readonly #redis: Redis;
  readonly #subscriber: Redis | undefined;
  #subscribed = false;
  readonly #subscribedWaiters = new Set<() => void>();
  readonly #logger: Logger;
  readonly #recordKeyPrefix: string;
  /** Replicas a write must reach before update() resolves (0: a single server, no wait). */
  readonly #acks: number;

  constructor(options: RedisAclStoreOptions) {
    super();
    this.keys = new ClusterKeys(options.prefix);
    this.#acks = replicaAcks(options.redisUrl);
    this.#recordKeyPrefix = this.keys.aclRecord('x').slice(0, -1);
    this.#logger = options.logger.child({ component: 'acl-store' });
    const connection: RedisOptions = failFastRedisOptions(options.commandTimeoutMs ?? 1000);
    this.#redis = createRedis(options.redisUrl, { ...connection, connectionName: 'rtccdn-acl' });
    // Connection errors are reported by the callers' failures and by AclCache's staleness.
    this.#redis.on('error', (error) => this.#logger.debug({ err: error }, 'acl store connection error'));
    if (options.subscribe) {
      const subscriber = createRedis(options.redisUrl, {
        ...connection,
        connectionName: 'rtccdn-acl-events',
      });
      subscriber.on('error', (error) => this.#logger.debug({ err: error }, 'acl events connection error'));
      subscriber.on('ready', () => {
        subscriber.subscribe(this.keys.aclEvents).then(
          () => {
            this.#subscribed = true;
            for (const resolve of this.#subscribedWaiters) resolve();
          },
          (error: Error) => {
            this.#logger.warn({ err: error }, 'cannot subscribe to ACL changes; reconnecting');
            // Nothing else would subscribe again before the next reconnection.
            subscriber.disconnect(true);
          },
        );
      });
      subscriber.on('close', () => {
        this.#subscribed = false;
      });
      subscriber.on('message', (_channel: string, text: string) => this.#onMessage(text));
      this.#subscriber = subscriber;
    }
  }

  async connected(timeoutMs: number): Promise<void> {
    const waits: Promise<unknown>[] = [];
    if (this.#redis.status !== 'ready') {
      waits.push(new Promise((resolve) => this.#redis.once('ready', resolve)));
    }
    // Changes published before the subscription is active would only be caught by AclCache's
    // periodic check: the cache's first read should not start before it.
    let subscribed: (() => void) | undefined;
    if (this.#subscriber && !this.#subscribed) {
      waits.push(
        new Promise<void>((resolve) => {
          subscribed = resolve;
          this.#subscribedWaiters.add(resolve);
        }),
      );
    }
    if (waits.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(waits),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (subscribed) this.#subscribedWaiters.delete(subscribed);
  }

  async get(pattern: string): Promise<AclRecord | undefined> {
    const value = await this.#command('get', pattern, () => this.#redis.get(this.keys.aclRecord(pattern)));
    return value ? this.#parse(value, pattern) : undefined;
  }

  async version(): Promise<AclStoreVersion> {
    const [epoch, version, synced, head] = await this.#command('version', '', () =>
      this.#redis.mget(this.keys.aclEpoch, this.keys.aclVersion, this.keys.aclSynced, this.keys.aclHead),
    );
    return { epoch: epoch ?? '', version: Number(version ?? 0), syncedEpoch: synced ?? '', head: head ?? '' };
  }

  async ensureEpoch(): Promise<string> {
    return (await this.#command('ensure epoch', '', () =>
      ENSURE_EPOCH.run(this.#redis, [this.keys.aclEpoch], [randomUUID()]),
    )) as string;
  }

  async markSynced(epoch: string): Promise<boolean> {
    const [done] = (await this.#command('mark synced', '', () =>
      MARK_SYNCED.run(this.#redis, [this.keys.aclEpoch, this.keys.aclSynced], [epoch]),
    )) as [number];
    return done === 1;
  }

  async snapshot(): Promise<AclSnapshot> {
    const reply = (await this.#command('snapshot', '', () =>
      SNAPSHOT_ACLS.run(
        this.#redis,
        [
          this.keys.aclPatterns,
          this.keys.aclVersion,
          this.keys.aclEpoch,
          this.keys.aclSynced,
          this.keys.aclHead,
        ],
        [this.#recordKeyPrefix],
      ),
    )) as string[];
    const [epoch, version, syncedEpoch, head, ...pairs] = reply;
    const records: AclRecord[] = [];
    const unreadable: string[] = [];
    for (let index = 0; index + 1 < pairs.length; index += 2) {
      const pattern = pairs[index]!;
      const value = pairs[index + 1]!;
      if (!value) continue; // indexed but gone: a delete in between is not possible (one script)
      try {
        records.push(this.#parse(value, pattern));
      } catch (error) {
        if (!(error instanceof UnreadableAclError)) throw error;
        unreadable.push(pattern);
      }
    }
    return {
      epoch: epoch ?? '',
      version: Number(version ?? 0),
      syncedEpoch: syncedEpoch ?? '',
      head: head ?? '',
      records,
      unreadable,
    };
  }

  async update(
    pattern: string,
    change: AclUpdate,
    options: { owner?: string } = {},
  ): Promise<AclRecord | undefined> {
    const key = this.keys.aclRecord(pattern);
    for (let attempt = 0; attempt < 20; attempt++) {
      const currentValue = (await this.#command('read', pattern, () => this.#redis.get(key))) ?? '';
      const current = currentValue ? this.#parseOrUndefined(currentValue, pattern) : undefined;
      const keys = change(current);
      if (keys === UNCHANGED) return current;
      const next = keys === undefined ? undefined : newRecord(pattern, keys, options.owner);
      const reply = (await this.#command('write', pattern, () =>
        WRITE_ACL.run(
          this.#redis,
          [key, this.keys.aclPatterns, this.keys.aclVersion, this.keys.aclEpoch, this.keys.aclHead],
          [
            currentValue,
            next ? JSON.stringify(next) : '',
            pattern,
            this.keys.aclEvents,
            Date.now(),
            LAYOUT_VERSION,
            randomUUID(),
            randomUUID(),
          ],
        ),
      )) as [number, number?];
      if (reply[0] === 1) {
        await this.#replicated(pattern);
        return next;
      }
    }
    throw new AclStoreError(`ACL ${pattern}: too many concurrent writers, gave up after 20 attempts`);
  }

  /** Waits until the write just made has reached `acks` replicas; AclStoreError if it does not. */
  async #replicated(pattern: string): Promise<void> {
    if (this.#acks === 0) return;
    const reached = await this.#command('replicate', pattern, () =>
      this.#redis.wait(this.#acks, REPLICA_ACK_TIMEOUT_MS),
    );
    if (reached < this.#acks) {
      throw new AclStoreError(
        `ACL ${pattern}: written on the Redis primary but on ${reached} of ${this.#acks} replicas within ${REPLICA_ACK_TIMEOUT_MS} ms, so a failover could lose it: not acknowledged, write it again`,
      );
    }
  }

  #onMessage(text: string): void {
    let message: AclChangeMessage;
    try {
      message = AclChangeMessageSchema.parse(JSON.parse(text));
    } catch (error) {
      this.#logger.warn({ err: error, message: text.slice(0, 200) }, 'ignoring invalid ACL change message');
      return;
    }
    this.emit('change', {
      version: message.version,
      epoch: message.epoch,
      pattern: message.pattern,
      op: message.op,
      at: message.at,
      id: message.id,
      prev: message.prev,
    });
  }

  /**
   * A record we cannot read is never guessed at, and never taken for an absent one (which would
   * make its streams public): UnreadableAclError, and its streams are refused until rewritten.
   */
  #parse(value: string, pattern: string): AclRecord {
    try {
      return parseRecord(value, pattern);
    } catch (error) {
      this.#logger.error({ err: error, pattern }, 'unreadable ACL record in Redis: its streams are refused');
      throw error;
    }
  }

  /** For writers: an unreadable record is replaced (that is how it is repaired). */
  #parseOrUndefined(value: string, pattern: string): AclRecord | undefined {
    try {
      return parseRecord(value, pattern);
    } catch (error) {
      if (error instanceof UnreadableAclError) return undefined;
      throw error;
    }
  }

  async #command<T>(operation: string, pattern: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw new AclStoreError(
        `ACL store ${operation}${pattern ? ` ${pattern}` : ''} failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  async close(): Promise<void> {
    for (const connection of [this.#redis, this.#subscriber]) {
      if (!connection) continue;
      await Promise.race([
        connection.quit().catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 500)),
      ]);
      connection.disconnect();
    }
  }
}

// --- memory ---------------------------------------------------------------------------------------

/** A standalone node's ACLs: in this process only (gone on restart — run Redis to keep them). */
export class MemoryAclStore extends TypedEmitter<AclStoreEvents> implements AclStore {
  readonly #records = new Map<string, AclRecord>();
  readonly #epoch = randomUUID();
  #version = 0;
  #head = '';

  async connected(): Promise<void> {}

  async get(pattern: string): Promise<AclRecord | undefined> {
    return this.#records.get(pattern);
  }

  /** A standalone node's store needs no operator: it is synced by definition. */
  async version(): Promise<AclStoreVersion> {
    return { epoch: this.#epoch, version: this.#version, syncedEpoch: this.#epoch, head: this.#head };
  }

  async ensureEpoch(): Promise<string> {
    return this.#epoch;
  }

  async markSynced(epoch: string): Promise<boolean> {
    return epoch === this.#epoch;
  }

  async snapshot(): Promise<AclSnapshot> {
    return { ...(await this.version()), records: [...this.#records.values()], unreadable: [] };
  }

  async update(
    pattern: string,
    change: AclUpdate,
    options: { owner?: string } = {},
  ): Promise<AclRecord | undefined> {
    const current = this.#records.get(pattern);
    const keys = change(current);
    if (keys === UNCHANGED) return current;
    const next = keys === undefined ? undefined : newRecord(pattern, keys, options.owner);
    if (next) this.#records.set(pattern, next);
    else this.#records.delete(pattern);
    this.#version++;
    const prev = this.#head;
    this.#head = randomUUID();
    this.emit('change', {
      version: this.#version,
      epoch: this.#epoch,
      pattern,
      op: next ? 'put' : 'delete',
      at: Date.now(),
      id: this.#head,
      prev,
    });
    return next;
  }

  async close(): Promise<void> {}
}
