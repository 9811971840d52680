/**
 * What every controller of a leadership term is built from: each controllers/<kind>/setup.ts
 * builds its controller from this, and the manager builds it once per term.
 */
import type { KubeClient } from '../kube/client.js';
import type { EventSink } from '../kube/events.js';
import type { Logger } from '../logger.js';
import type { OperatorMetrics } from '../metrics.js';
import type { AclStores } from '../redis/AclStores.js';
import type { ClusterReaders } from '../redis/ClusterReader.js';
import type { AutoscalerSettings } from './autoscaler/reconciler.js';
import type { Caches } from './caches.js';

export interface ControllerContext {
  /** Bound to the term: every request it makes is aborted when the term ends. */
  client: KubeClient;
  caches: Caches;
  /** Read-only connections to the CDNs' cluster registries in Redis. */
  readers: ClusterReaders;
  /** Connections to the CDNs' ACL stores in Redis. */
  aclStores: AclStores;
  events: EventSink;
  logger: Logger;
  metrics: OperatorMetrics;
  /** Concurrent reconciles per controller. */
  workers: number;
  /** How often CDN and Node statuses are refreshed from Redis. */
  statusRefreshMs: number;
  /** The ACL REST API's URL for CDN statuses, when one runs. */
  aclApiUrl?: string | undefined;
  autoscaler: AutoscalerSettings;
  /** How often ACL stores are checked for a reset that needs every StreamACL rewritten. */
  aclStoreCheckMs: number;
}
