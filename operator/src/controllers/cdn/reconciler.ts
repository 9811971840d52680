/**
 * The CDN reconciler: makes the objects of planCdn() exist (server-side apply: an unchanged
 * object is not written), removes the ones of regions that are gone, creates the cluster
 * Secret once, and reports the truth in the status: per-region readiness from the Nodes,
 * liveStreams and viewers from Redis, conditions Ready and Degraded with reasons.
 *
 * Deleting a CDN needs no finalizer: everything created here carries an ownerReference to it
 * (controller: true), and Kubernetes' garbage collector deletes it.
 */
import { API_VERSION, type CDN, CDN_NAMES } from '../../api/v1alpha1.js';
import type { KubeClient } from '../../kube/client.js';
import { isAlreadyExists } from '../../kube/errors.js';
import type { EventSink } from '../../kube/events.js';
import {
  controllerOf,
  type KubeNodeObject,
  KubeNodeSchema,
  type ServiceObject,
  ServiceSchema,
  secretValue,
} from '../../kube/objects.js';
import {
  CDN_TYPE,
  CONFIG_MAP_TYPE,
  KUBE_NODE_TYPE,
  NODE_TYPE,
  type ResourceType,
  SECRET_TYPE,
  SERVICE_TYPE,
} from '../../kube/resources.js';
import type { Logger } from '../../logger.js';
import type { ClusterReaders } from '../../redis/ClusterReader.js';
import type { ReconcileResult } from '../../runtime/Controller.js';
import type { ObjectReconciler } from '../../runtime/ControllerBuilder.js';
import type { CachedObject, CacheReader, InvalidObject } from '../../runtime/TypedCache.js';
import type { CachedNode } from '../caches.js';
import { POD_FAILURE_REASONS } from '../node/pods.js';
import { checkPublishToken, readSecret, resolveRedis } from '../references.js';
import { CLUSTER_SECRET_KEY, clusterSecretName, LABELS, nodeName, type Problem } from '../shared.js';
import { recordTransition, reportInvalidSpec, writeStatus } from '../status.js';
import {
  type CdnObservation,
  cdnStatus,
  desiredClusterSecret,
  generateClusterSecret,
  MIN_CLUSTER_SECRET_LENGTH,
  planCdn,
} from './desired.js';
import type { PortBlock } from './ports.js';
import { CdnCondition, CdnReason } from './reasons.js';
import { serviceUrl } from './urls.js';

/** The port blocks (nodePort exposure) the Nodes have now. */
function portBlocksOf(nodes: readonly CachedNode[]): Map<string, PortBlock> {
  const blocks = new Map<string, PortBlock>();
  for (const node of nodes) {
    const ports = node.spec.ports;
    if (ports?.podSlots !== undefined) blocks.set(node.metadata.name, { ...ports, podSlots: ports.podSlots });
  }
  return blocks;
}

export interface CdnReconcilerOptions {
  client: KubeClient;
  nodes: CacheReader<CachedNode>;
  services: CacheReader<CachedObject>;
  readers: ClusterReaders;
  events: EventSink;
  logger: Logger;
  /** How often the status is refreshed (viewers and streams change without any event). */
  statusRefreshMs: number;
  /** The ACL REST API's URL, reported in CDN statuses (when the API is enabled). */
  aclApiUrl?: string | undefined;
  now?: () => Date;
}

/** How a CDN the operator cannot read is reported. */
const INVALID_SPEC_CONDITIONS = [
  { type: CdnCondition.Ready, status: 'False' },
  { type: CdnCondition.Degraded, status: 'True' },
] as const;

export class CdnReconciler implements ObjectReconciler<CDN> {
  readonly #options: CdnReconcilerOptions;
  readonly #now: () => Date;

  constructor(options: CdnReconcilerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async reconcile(cdn: CDN): Promise<ReconcileResult | undefined> {
    // Going: the garbage collector removes what it owns.
    if (cdn.metadata.deletionTimestamp) return undefined;
    const { client } = this.#options;
    const { name = '', namespace } = cdn.metadata;
    const problems: Problem[] = [];

    const secretProblem = await this.#ensureClusterSecret(cdn);
    if (secretProblem) problems.push(secretProblem);

    const plan = planCdn(cdn, portBlocksOf(this.#ownedNodes(cdn)));
    problems.push(...plan.problems);
    await client.apply(CONFIG_MAP_TYPE, plan.configMap);
    const services: ServiceObject[] = [];
    if (!plan.blocked) {
      for (const node of plan.nodes) await client.apply(NODE_TYPE, node);
      for (const service of plan.services)
        services.push(ServiceSchema.parse(await client.apply(SERVICE_TYPE, service)));
      await this.#deleteStale(
        cdn,
        NODE_TYPE,
        this.#options.nodes,
        new Set(plan.nodes.map((n) => n.metadata.name)),
      );
      await this.#deleteStale(
        cdn,
        SERVICE_TYPE,
        this.#options.services,
        new Set(plan.services.map((s) => s.metadata.name)),
      );
    }

    const redis = await resolveRedis(client, cdn);
    if (!redis.ok) problems.push(redis.problem);
    const tokenProblem = await checkPublishToken(client, cdn);
    if (tokenProblem) problems.push(tokenProblem);

    const observation: CdnObservation = {
      nodes: this.#ownedNodes(cdn),
      problems,
      load: undefined,
      urls: await this.#urls(cdn, services),
      aclApiUrl: this.#options.aclApiUrl,
    };
    if (redis.ok) {
      try {
        const snapshot = await this.#options.readers.get(redis.value.url, redis.value.prefix).snapshot();
        observation.load = {
          liveStreams: snapshot.liveStreams,
          viewers: snapshot.nodes
            .filter((node) => node.role === 'edge' || node.role === 'all')
            .reduce((sum, node) => sum + node.load.viewers, 0),
        };
      } catch (error) {
        observation.loadProblem = { reason: CdnReason.RedisUnreachable, message: (error as Error).message };
      }
    }
    const status = cdnStatus(cdn, observation, this.#now());
    if (await writeStatus(client, CDN_TYPE, { metadata: { name, namespace }, status: cdn.status }, status)) {
      const before = cdn.status?.conditions;
      recordTransition(
        this.#options.events,
        cdn,
        before,
        status.conditions ?? [],
        CdnCondition.Degraded,
        'True',
      );
      const ready = status.conditions?.find((condition) => condition.type === CdnCondition.Ready);
      const readyBefore = before?.find((condition) => condition.type === CdnCondition.Ready);
      if (ready && POD_FAILURE_REASONS.has(ready.reason) && readyBefore?.reason !== ready.reason) {
        // Pods failing (image, crash loop, no room) is news on the CDN too, not only on its Nodes.
        this.#options.events.record(cdn, 'Warning', ready.reason, ready.message);
      } else {
        recordTransition(this.#options.events, cdn, before, status.conditions ?? [], CdnCondition.Ready);
      }
    }
    return { requeueAfterMs: this.#options.statusRefreshMs };
  }

  /**
   * Creates the cluster Secret with a fresh random value if it does not exist. An existing one
   * is never rewritten (that would silently break every running node): a bad one is reported.
   * A Secret the user created beforehand under that name is used as is.
   */
  async #ensureClusterSecret(cdn: CDN): Promise<Problem | undefined> {
    const { client } = this.#options;
    const namespace = cdn.metadata.namespace ?? 'default';
    const secretName = clusterSecretName(cdn.metadata.name ?? '');
    let secret = await readSecret(client, namespace, secretName);
    if (!secret) {
      try {
        await client.create(SECRET_TYPE, desiredClusterSecret(cdn, generateClusterSecret()));
        this.#options.logger.info(
          { cdn: `${namespace}/${cdn.metadata.name}`, secret: secretName },
          'cluster secret created',
        );
        this.#options.events.record(
          cdn,
          'Normal',
          CdnReason.ClusterSecretCreated,
          `created Secret ${secretName}`,
        );
        return undefined;
      } catch (error) {
        if (!isAlreadyExists(error)) throw error;
        secret = await readSecret(client, namespace, secretName);
      }
    }
    const value = secret && secretValue(secret, CLUSTER_SECRET_KEY);
    if (!value || value.length < MIN_CLUSTER_SECRET_LENGTH) {
      return {
        reason: CdnReason.ClusterSecretInvalid,
        message: `key ${CLUSTER_SECRET_KEY} of Secret ${secretName} is missing or shorter than ${MIN_CLUSTER_SECRET_LENGTH} characters; the operator never overwrites it: fix it, or delete the Secret to have a new one generated (media nodes pick it up as they restart)`,
      };
    }
    return undefined;
  }

  reconcileInvalid(cdn: InvalidObject): Promise<undefined> {
    const { client, events } = this.#options;
    return reportInvalidSpec({ client, events, now: this.#now() }, CDN_TYPE, cdn, INVALID_SPEC_CONDITIONS);
  }

  /** Objects this CDN controls (by ownerReference uid) that the plan no longer has. */
  async #deleteStale(
    cdn: CDN,
    type: ResourceType,
    cache: CacheReader<CachedObject>,
    wanted: Set<string>,
  ): Promise<void> {
    const namespace = cdn.metadata.namespace ?? 'default';
    // Those that do not parse too: only their metadata is needed.
    for (const object of cache.listAll(namespace)) {
      if (wanted.has(object.metadata.name) || !this.#controlledBy(object, cdn)) continue;
      const deleted = await this.#options.client.delete(type, namespace, object.metadata.name, {
        preconditions: { uid: object.metadata.uid ?? '' },
      });
      if (deleted) {
        this.#options.logger.info(
          { cdn: `${namespace}/${cdn.metadata.name}`, [type.kind]: object.metadata.name },
          'removed',
        );
        this.#options.events.record(
          cdn,
          'Normal',
          CdnReason.Removed,
          `removed ${type.kind} ${object.metadata.name}`,
        );
      }
    }
  }

  #controlledBy(object: CachedObject, cdn: CDN): boolean {
    const owner = controllerOf(object);
    return (
      owner !== undefined &&
      owner.kind === CDN_NAMES.kind &&
      owner.apiVersion === API_VERSION &&
      owner.uid === cdn.metadata.uid &&
      object.metadata.labels?.[LABELS.cdn] === cdn.metadata.name
    );
  }

  /** Per region, the WHIP and WHEP URLs of its Services. */
  async #urls(cdn: CDN, services: readonly ServiceObject[]): Promise<CdnObservation['urls']> {
    let kubeNodes: KubeNodeObject[] = [];
    if (services.some((service) => service.spec?.type === 'NodePort')) {
      try {
        const list = await this.#options.client.list(KUBE_NODE_TYPE, undefined);
        kubeNodes = list.items.flatMap((item) => {
          const parsed = KubeNodeSchema.safeParse(item);
          return parsed.success ? [parsed.data] : [];
        });
      } catch (error) {
        // Without the right to list nodes (RBAC), NodePort URLs are left out of the status.
        this.#options.logger.debug({ err: error }, 'Kubernetes nodes not listed');
      }
    }
    const name = cdn.metadata.name ?? '';
    const urls = new Map<string, { whipUrl?: string; whepUrl?: string }>();
    for (const region of cdn.spec.regions) {
      const find = (role: 'origin' | 'edge') =>
        services.find((service) => service.metadata.name === nodeName(name, region.name, role));
      const origins = find('origin');
      const edges = find('edge');
      const whipUrl = origins && serviceUrl(origins, region.name, kubeNodes, '/whip/');
      const whepUrl = edges && serviceUrl(edges, region.name, kubeNodes, '/whep/');
      urls.set(region.name, { ...(whipUrl ? { whipUrl } : {}), ...(whepUrl ? { whepUrl } : {}) });
    }
    return urls;
  }

  #ownedNodes(cdn: CDN): CachedNode[] {
    return this.#options.nodes
      .list(cdn.metadata.namespace ?? 'default')
      .filter((node) => this.#controlledBy(node, cdn));
  }
}
