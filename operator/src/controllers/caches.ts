/**
 * The typed caches of one leadership term: one list-watch per resource type and label selector,
 * shared by every controller, each parsing its objects with their schema as they enter.
 */
import {
  type CDN,
  type CDNNode,
  CDNNodeSchema,
  CDNSchema,
  type StreamACL,
  StreamACLSchema,
} from '../api/v1alpha1.js';
import {
  type KubeObject,
  KubeObjectSchema,
  type PodObject,
  PodSchema,
  type SecretObject,
  SecretSchema,
  type StatefulSetObject,
  StatefulSetSchema,
} from '../kube/objects.js';
import {
  CDN_TYPE,
  CONFIG_MAP_TYPE,
  NODE_TYPE,
  POD_TYPE,
  type ResourceType,
  SECRET_TYPE,
  SERVICE_TYPE,
  STATEFUL_SET_TYPE,
  STREAM_ACL_TYPE,
} from '../kube/resources.js';
import type { Logger } from '../logger.js';
import type { ListWatch } from '../runtime/ListWatch.js';
import { type CacheReader, type Named, type TypedCache, typedCache } from '../runtime/TypedCache.js';
import { ACCESS_KEYS_SELECTOR, MANAGED_SELECTOR } from './shared.js';

export type CachedCDN = Named<CDN>;
export type CachedNode = Named<CDNNode>;
export type CachedStreamACL = Named<StreamACL>;

/** A list-watch of `type`, of the objects that match `labelSelector` (all when undefined). */
export type ListWatchFactory = (type: ResourceType, labelSelector?: string) => ListWatch;

export interface Caches {
  cdns: TypedCache<CachedCDN>;
  nodes: TypedCache<CachedNode>;
  /** Only those the operator created (label app.kubernetes.io/managed-by). */
  statefulSets: TypedCache<StatefulSetObject>;
  services: TypedCache<KubeObject>;
  configMaps: TypedCache<KubeObject>;
  secrets: TypedCache<SecretObject>;
  streamAcls: TypedCache<CachedStreamACL>;
  /** Secrets labelled rtccdn.io/access-keys=true: the only ones access keys are read from. */
  keySecrets: TypedCache<SecretObject>;
  /** The media node pods (they carry the operator's labels from the pod templates). */
  pods: TypedCache<PodObject>;
}

export function createCaches(listWatch: ListWatchFactory, logger: Logger): Caches {
  return {
    cdns: typedCache(listWatch(CDN_TYPE), CDNSchema, logger),
    // Every Node: a user may create one without a CDN owner.
    nodes: typedCache(listWatch(NODE_TYPE), CDNNodeSchema, logger),
    // Only what the operator created: no need to hold every Secret of the cluster in memory.
    statefulSets: typedCache(listWatch(STATEFUL_SET_TYPE, MANAGED_SELECTOR), StatefulSetSchema, logger),
    services: typedCache(listWatch(SERVICE_TYPE, MANAGED_SELECTOR), KubeObjectSchema, logger),
    configMaps: typedCache(listWatch(CONFIG_MAP_TYPE, MANAGED_SELECTOR), KubeObjectSchema, logger),
    secrets: typedCache(listWatch(SECRET_TYPE, MANAGED_SELECTOR), SecretSchema, logger),
    streamAcls: typedCache(listWatch(STREAM_ACL_TYPE), StreamACLSchema, logger),
    // Access keys live in users' Secrets labelled for it (any name), and their changes (a key
    // rotated in its Secret re-syncs the ACLs that read it). No other Secret is cached.
    keySecrets: typedCache(listWatch(SECRET_TYPE, ACCESS_KEYS_SELECTOR), SecretSchema, logger),
    pods: typedCache(listWatch(POD_TYPE, MANAGED_SELECTOR), PodSchema, logger),
  };
}

/** The Nodes of `namespace` whose spec.cdnRef names `cdn` (none when `cdn` is undefined). */
export function nodesOfCdn(
  nodes: CacheReader<CachedNode>,
  namespace: string | undefined,
  cdn: string | undefined,
): CachedNode[] {
  if (cdn === undefined) return [];
  return nodes.list(namespace ?? '').filter((node) => node.spec.cdnRef.name === cdn);
}
