import type { AccessKeyInput, AclRecord, DefaultPolicy, StoredKey } from '../../contract/acl.js';
import {
  type AclStore,
  AclStoreError,
  deriveAclHashKey,
  hashAccessKey,
  InvalidAclError,
  MemoryAclStore,
  RedisAclStore,
  randomAclHashKey,
  UnreadableAclError,
} from '../../contract/acl.js';
import { RtccdnError } from '../../contract/errors.js';
import type { Logger } from '../logger.js';
import type { MediaNodeMetrics } from '../metrics.js';
import { AccessController, type Grant, type Guarded } from './AccessController.js';
import { AclCache } from './AclCache.js';

export interface AccessConfig {
  defaultPolicy: DefaultPolicy;
  maxStalenessMs: number;
  failuresPerClientIp: number;
  failuresPerStream: number;
  failureWindowMs: number;
  /**
   * ACLs are written by the operator (ACL_API=kubernetes): admit nobody until it has written
   * every StreamACL for the store's current data.
   */
  operatorManaged: boolean;
}

/** An ACL as the REST API shows it: ids and expiry, never key values or hashes. */
export interface AclView {
  stream: string;
  keys: { id: string; expiresAt?: string }[];
  updatedAt: string;
}

export interface StreamAccessOptions {
  config: AccessConfig;
  /** ACLs in Redis, shared by the CDN; absent on a standalone node (ACLs in memory). */
  redis: { url: string; prefix: string; clusterSecret: string } | undefined;
  metrics: MediaNodeMetrics;
  logger: Logger;
}

/**
 * Stream access control on one node: the ACL store (Redis or memory), the cache admission reads,
 * the controller that admits and revokes viewers, and the operations of the ACL REST API.
 */
export class StreamAccess {
  readonly store: AclStore;
  readonly cache: AclCache;
  readonly controller: AccessController;
  readonly #hashKey: Buffer;

  constructor(options: StreamAccessOptions) {
    const { config, redis, metrics, logger } = options;
    this.store = redis
      ? new RedisAclStore({ redisUrl: redis.url, prefix: redis.prefix, subscribe: true, logger })
      : new MemoryAclStore();
    this.#hashKey = redis ? deriveAclHashKey(redis.clusterSecret) : randomAclHashKey();
    this.cache = new AclCache({ store: this.store, logger });
    this.controller = new AccessController({
      cache: this.cache,
      hashKey: this.#hashKey,
      defaultPolicy: config.defaultPolicy,
      maxStalenessMs: config.maxStalenessMs,
      requireStoreSynced: config.operatorManaged,
      limits: {
        perClientIp: config.failuresPerClientIp,
        perStream: config.failuresPerStream,
        windowMs: config.failureWindowMs,
      },
      metrics,
      logger,
    });
    const cache = this.cache;
    metrics.aclCacheAge = () =>
      cache.confirmedAt === undefined ? -1 : (Date.now() - cache.confirmedAt) / 1000;
    metrics.aclStoreSyncedSampler = () =>
      cache.confirmedAt !== undefined && (!config.operatorManaged || cache.storeSynced) ? 1 : 0;
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  admit(stream: string, key: string | undefined, clientIp: string): Grant {
    return this.controller.admit(stream, key, clientIp);
  }

  /** Throws (401/403/503) when the grant no longer holds; see AccessController.watch. */
  watch(session: Guarded, grant: Grant): void {
    this.controller.watch(session, grant);
  }

  /** Whether a viewer without a key would be admitted to `stream` now. */
  isPublic(stream: string): boolean {
    return this.controller.isPublic(stream);
  }

  // --- REST operations (validated input) -----------------------------------------------------------

  async get(pattern: string): Promise<AclView | undefined> {
    const record = await this.#call(() => this.store.get(pattern));
    return record && view(record);
  }

  async replaceKeys(pattern: string, keys: AccessKeyInput[]): Promise<AclView> {
    const stored = keys.map((key) => this.#stored(key));
    return view((await this.#call(() => this.store.update(pattern, () => stored)))!);
  }

  /** Adds keys; an id already present is a 409 (remove it first: ids name keys for revocation). */
  async addKeys(pattern: string, keys: AccessKeyInput[]): Promise<AclView> {
    const added = keys.map((key) => this.#stored(key));
    const record = await this.#call(() =>
      this.store.update(pattern, (current) => {
        const existing = current?.keys ?? [];
        const taken = added.find((key) => existing.some((other) => other.id === key.id));
        if (taken) throw new RtccdnError('KEY_ID_TAKEN', `key id "${taken.id}" already exists on ${pattern}`);
        return [...existing, ...added];
      }),
    );
    return view(record!);
  }

  async removeKey(pattern: string, id: string): Promise<AclView> {
    const record = await this.#call(() =>
      this.store.update(pattern, (current) => {
        if (!current?.keys.some((key) => key.id === id)) {
          throw new RtccdnError('KEY_NOT_FOUND', `no key "${id}" on ${pattern}`);
        }
        return current.keys.filter((key) => key.id !== id);
      }),
    );
    return view(record!);
  }

  async delete(pattern: string): Promise<boolean> {
    let existed = false;
    await this.#call(() =>
      this.store.update(pattern, (current) => {
        existed = current !== undefined;
        return undefined;
      }),
    );
    return existed;
  }

  #stored(key: AccessKeyInput): StoredKey {
    return {
      id: key.id,
      hash: hashAccessKey(this.#hashKey, key.key),
      ...(key.expiresAt !== undefined ? { expiresAt: Date.parse(key.expiresAt) } : {}),
    };
  }

  async #call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof AclStoreError) {
        throw new RtccdnError(
          'ACL_STORE_UNAVAILABLE',
          `access rules cannot be changed right now: ${error.message}`,
          {
            retryAfterMs: 2000,
          },
        );
      }
      if (error instanceof InvalidAclError) throw new RtccdnError('INVALID_REQUEST', error.message);
      if (error instanceof UnreadableAclError) {
        throw new RtccdnError('ACL_UNREADABLE', `${error.message}; replace it (PUT) or delete it`);
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    this.controller.close();
    this.cache.close();
    await this.store.close();
  }
}

function view(record: AclRecord): AclView {
  return {
    stream: record.pattern,
    keys: record.keys.map((key) => ({
      id: key.id,
      ...(key.expiresAt !== undefined ? { expiresAt: new Date(key.expiresAt).toISOString() } : {}),
    })),
    updatedAt: new Date(record.updatedAt).toISOString(),
  };
}
