/**
 * The operator's connections to CDNs' ACL stores: one RedisAclStore (the media node's own
 * module, so the layout is written exactly as edges read it) per Redis URL and key prefix,
 * for one leadership term.
 */
import { RedisAclStore } from '../../../media-node/src/acl/AclStore.js';
import type { Logger } from '../logger.js';

export class AclStores {
  readonly #stores = new Map<string, RedisAclStore>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  get(url: string, prefix: string): RedisAclStore {
    const key = `${prefix}\n${url}`;
    let store = this.#stores.get(key);
    if (!store) {
      // The operator only writes: no subscription to change messages.
      store = new RedisAclStore({ redisUrl: url, prefix, subscribe: false, logger: this.#logger });
      this.#stores.set(key, store);
    }
    return store;
  }

  async closeAll(): Promise<void> {
    const stores = [...this.#stores.values()];
    this.#stores.clear();
    await Promise.all(stores.map((store) => store.close()));
  }
}
