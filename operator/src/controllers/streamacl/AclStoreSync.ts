/**
 * Full syncs of ACL stores. A CDN's edges (ACL_API=kubernetes) admit nobody until the store says
 * the operator has written every StreamACL for the store's current data (its epoch): otherwise an
 * edge started after Redis lost its data — a restart, an autoscaled one — would see no ACLs and
 * take every stream for public. This loop notices a store whose epoch is not marked synced (a
 * new Redis, a reset), rewrites every StreamACL of the CDNs on it at once (not at the next
 * resync), and then marks the epoch synced — unless the store was reset again meanwhile.
 */
import { z } from 'zod';
import type { KubeClient } from '../../kube/client.js';
import type { Logger } from '../../logger.js';
import type { OperatorMetrics } from '../../metrics.js';
import type { AclStores } from '../../redis/AclStores.js';
import { type CacheReader, InvalidObject } from '../../runtime/TypedCache.js';
import type { CachedCDN, CachedStreamACL } from '../caches.js';
import { resolveRedis } from '../references.js';

export interface AclStoreSyncOptions {
  client: KubeClient;
  cdns: CacheReader<CachedCDN>;
  streamAcls: CacheReader<CachedStreamACL>;
  stores: AclStores;
  /** Writes one StreamACL now; true when Redis is as closed as it asks. */
  syncAcl: (namespace: string, name: string) => Promise<boolean>;
  /** How often every store's epoch is checked. */
  intervalMs: number;
  metrics?: OperatorMetrics | undefined;
  logger: Logger;
}

export class AclStoreSync {
  readonly #options: AclStoreSyncOptions;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: AclStoreSyncOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'acl-store-sync' });
  }

  start(): void {
    const tick = () => {
      if (this.#stopped) return;
      this.#running = this.checkAll()
        .catch((error: Error) => this.#logger.warn({ err: error }, 'ACL store check failed'))
        .finally(() => {
          this.#running = undefined;
          if (!this.#stopped) this.#timer = setTimeout(tick, this.#options.intervalMs);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** One pass over every store of the watched CDNs. */
  async checkAll(): Promise<void> {
    const { client, cdns, streamAcls, stores } = this.#options;
    // Which CDNs share a store (same Redis URL and key prefix).
    const byStore = new Map<
      string,
      { url: string; prefix: string; cdns: { namespace: string; name: string }[] }
    >();
    for (const cdn of cdns.list()) {
      if (cdn.metadata.deletionTimestamp) continue;
      const redis = await resolveRedis(client, cdn);
      if (!redis.ok) continue; // the CDN's status says why
      const key = `${redis.value.prefix}\n${redis.value.url}`;
      const entry = byStore.get(key) ?? { ...redis.value, cdns: [] };
      entry.cdns.push({ namespace: cdn.metadata.namespace ?? 'default', name: cdn.metadata.name });
      byStore.set(key, entry);
    }
    for (const { url, prefix, cdns: members } of byStore.values()) {
      const store = await stores.get(url, prefix);
      const version = await store.version().catch(() => undefined);
      if (!version || (version.epoch !== '' && version.syncedEpoch === version.epoch)) continue;
      const epoch = await store.ensureEpoch();
      this.#logger.warn(
        { prefix, epoch, syncedEpoch: version.syncedEpoch || '(none)' },
        'ACL store has not been fully written for its current data: rewriting every StreamACL now (edges admit nobody meanwhile)',
      );
      const acls = members.flatMap(({ namespace, name: cdn }) =>
        streamAcls
          // Unreadable ones too: they cannot be written, so the store is not marked synced.
          .listAll(namespace)
          .filter((acl) => cdnOf(acl) === cdn)
          .map((acl) => ({ namespace, name: acl.metadata.name })),
      );
      let complete = true;
      for (const acl of acls) {
        if (!(await this.#options.syncAcl(acl.namespace, acl.name))) complete = false;
      }
      if (!complete) {
        this.#logger.warn({ prefix, epoch }, 'some StreamACLs could not be written; trying again');
        continue;
      }
      if (await store.markSynced(epoch)) {
        this.#options.metrics?.aclStoreSyncs.inc();
        this.#logger.info(
          { prefix, epoch, streamAcls: acls.length },
          'ACL store fully written: edges admit viewers again',
        );
      }
    }
  }
}

/** Just enough of a StreamACL to know its CDN when the rest does not parse. */
const CdnRefSchema = z.object({ spec: z.object({ cdnRef: z.object({ name: z.string() }) }) });

function cdnOf(acl: CachedStreamACL | InvalidObject): string | undefined {
  if (!(acl instanceof InvalidObject)) return acl.spec.cdnRef.name;
  const readable = CdnRefSchema.safeParse(acl.object);
  return readable.success ? readable.data.spec.cdnRef.name : undefined;
}
