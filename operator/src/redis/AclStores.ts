/**
 * The operator's connections to CDNs' ACL stores: one RedisAclStore (the media node's own
 * module, so the layout is written exactly as edges read it) per Redis URL and key prefix,
 * for one leadership term.
 */
import { RedisAclStore } from '../../../media-node/contract/acl.js';
import type { Logger } from '../logger.js';

/**
 * How long a new connection may take to come up before its first command is tried anyway (and,
 * with Redis really down, fails as RedisUnavailable). The store does not queue commands while it
 * connects, so without this wait the first ACL after a start would fail and wait for a retry.
 */
const FIRST_CONNECT_WAIT_MS = 5000;

export class AclStores {
  readonly #stores = new Map<string, { store: RedisAclStore; firstConnect: Promise<void> }>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  async get(url: string, prefix: string): Promise<RedisAclStore> {
    const key = `${prefix}\n${url}`;
    let entry = this.#stores.get(key);
    if (!entry) {
      // The operator only writes: no subscription to change messages.
      const store = new RedisAclStore({ redisUrl: url, prefix, subscribe: false, logger: this.#logger });
      entry = { store, firstConnect: store.connected(FIRST_CONNECT_WAIT_MS) };
      this.#stores.set(key, entry);
    }
    await entry.firstConnect;
    return entry.store;
  }

  async closeAll(): Promise<void> {
    const entries = [...this.#stores.values()];
    this.#stores.clear();
    await Promise.all(entries.map((entry) => entry.store.close()));
  }
}
