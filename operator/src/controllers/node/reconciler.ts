/**
 * The Node reconciler: makes the StatefulSet, headless Service and PodDisruptionBudget of
 * planNode() exist (the budget goes with the Node, by garbage collection), and
 * writes the Node's status (replicas and readiness from the StatefulSet, viewers and streams
 * of its pods from Redis, the selector the scale subresource hands to autoscalers).
 *
 * spec.replicas is copied to the StatefulSet as it is: whoever owns it (the CDN controller for
 * origins and transcoders, the autoscaler or an HPA for edges, `kubectl scale` for a Node
 * without a CDN owner) writes it on the Node, never on the StatefulSet.
 */
import { DRAIN_PATH, InternalClient } from '../../../../media-node/contract/internal-api.js';
import type { NodeRecord } from '../../../../media-node/contract/redis.js';
import type { CDN, CDNNode } from '../../api/v1alpha1.js';
import type { KubeClient } from '../../kube/client.js';
import { KubeApiError } from '../../kube/errors.js';
import type { EventSink } from '../../kube/events.js';
import {
  controllerOf,
  type PodObject,
  type SecretObject,
  type StatefulSetObject,
  StatefulSetSchema,
  secretValue,
} from '../../kube/objects.js';
import {
  NODE_TYPE,
  POD_DISRUPTION_BUDGET_TYPE,
  POD_TYPE,
  SERVICE_TYPE,
  STATEFUL_SET_TYPE,
} from '../../kube/resources.js';
import type { Logger } from '../../logger.js';
import type { ClusterReaders } from '../../redis/ClusterReader.js';
import type { ReconcileResult } from '../../runtime/Controller.js';
import type { ObjectReconciler } from '../../runtime/ControllerBuilder.js';
import { type CachedObject, type CacheReader, InvalidObject } from '../../runtime/TypedCache.js';
import { autoscalerStateOf } from '../autoscaler/state.js';
import type { CachedCDN } from '../caches.js';
import { readSecret, resolveRedis } from '../references.js';
import {
  CLUSTER_SECRET_KEY,
  clusterSecretName,
  configHash,
  LABELS,
  MEDIA_NODE_DRAIN_DEADLINE_MS,
  type Problem,
  podName,
  podOrdinal,
} from '../shared.js';
import { recordTransition, reportInvalidSpec, writeStatus } from '../status.js';
import {
  effectivePorts,
  type NodePlan,
  nodeStatus,
  planNode,
  RTC_SLOT_LABEL,
  runnableReplicas,
} from './desired.js';
import { POD_FAILURE_REASONS, podFailure } from './pods.js';
import { NodeCondition, NodeReason } from './reasons.js';
import {
  encodeRolloutState,
  planRollout,
  ROLLOUT_ANNOTATION,
  type RolloutPlan,
  rolloutStateOf,
} from './rollout.js';

/** How often a Node is looked at while its edges are being rolled. */
const ROLLOUT_POLL_MS = 2_000;
/** A drained pod is waited for this much longer than its edge's own deadline. */
const ROLLOUT_DEADLINE_MARGIN_MS = 10_000;
/**
 * A pod of the rollout whose record still does not say draining this long after the drain call
 * is drained again (the call failed, or something undrained it).
 */
const REDRAIN_AFTER_MS = 5_000;
/** Label the StatefulSet controller puts on each pod: its revision. */
const REVISION_LABEL = 'controller-revision-hash';

export interface NodeReconcilerOptions {
  client: KubeClient;
  cdns: CacheReader<CachedCDN>;
  statefulSets: CacheReader<StatefulSetObject>;
  /** The operator's Services (per-pod RTC Services are pruned from it). */
  services: CacheReader<CachedObject>;
  /** The media node pods (why they do not run goes into the status). */
  pods: CacheReader<PodObject>;
  readers: ClusterReaders;
  events: EventSink;
  logger: Logger;
  statusRefreshMs: number;
  now?: () => Date;
}

/** How a Node the operator cannot read is reported. */
const INVALID_SPEC_CONDITIONS = [{ type: NodeCondition.Ready, status: 'False' }] as const;

export class NodeReconciler implements ObjectReconciler<CDNNode> {
  readonly #options: NodeReconcilerOptions;
  readonly #now: () => Date;

  constructor(options: NodeReconcilerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async reconcile(node: CDNNode): Promise<ReconcileResult | undefined> {
    if (node.metadata.deletionTimestamp) return undefined;
    const { client } = this.#options;
    const { name = '', namespace = 'default' } = node.metadata;
    const cdnName = node.spec.cdnRef.name;
    const cdn = this.#options.cdns.lookup(namespace, cdnName);
    if (cdn === undefined || cdn instanceof InvalidObject) {
      // Nothing to run without the CDN (image, Redis, secrets); its creation enqueues this Node.
      await this.#writeStatus(node, {
        statefulSet: this.#cachedStatefulSet(namespace, name),
        problems: [
          cdn
            ? { reason: NodeReason.CDNInvalid, message: `CDN ${cdnName} cannot be read by the operator` }
            : {
                reason: NodeReason.CDNNotFound,
                message: `CDN ${cdnName} (spec.cdnRef) not found in ${namespace}`,
              },
        ],
        load: undefined,
      });
      return undefined;
    }

    const problems: Problem[] = [];
    const secretName = clusterSecretName(cdnName);
    const secret = await readSecret(client, namespace, secretName);
    if (!secret) {
      // The CDN controller creates it (and its creation enqueues this Node): until then, do not
      // start pods that would fail on a missing Secret, nor roll them once it appears.
      problems.push({
        reason: NodeReason.ClusterSecretMissing,
        message: `Secret ${secretName} not found yet`,
      });
    }
    const pods = this.#options.pods
      .list(namespace)
      .filter((pod) => pod.metadata.labels?.[LABELS.node] === name);
    // The registry's records of this Node's pods (load, draining, internal address).
    let records: Map<number, NodeRecord> | undefined;
    const redis = await resolveRedis(client, cdn);
    if (redis.ok) {
      try {
        const snapshot = await this.#options.readers.get(redis.value.url, redis.value.prefix).snapshot();
        records = new Map();
        for (const record of snapshot.nodes) {
          const ordinal = podOrdinal(name, record.id);
          if (ordinal !== undefined) records.set(ordinal, record);
        }
      } catch (error) {
        // Reported on the CDN (Degraded: RedisUnreachable); here the load is just unknown.
        this.#options.logger.debug({ err: error, node: `${namespace}/${name}` }, 'load unknown');
      }
    }
    const rollout =
      node.spec.role === 'edge' && problems.length === 0
        ? this.#planRollout(node, cdn, pods, records)
        : undefined;

    const plan = planNode(node, {
      cdn,
      clusterSecretHash: secret ? configHash(secret.data ?? {}) : undefined,
      surge: rollout?.surge,
    });
    problems.push(...plan.problems);

    let statefulSet: StatefulSetObject | undefined;
    if (problems.length === 0 && plan.statefulSet && plan.headlessService && plan.podDisruptionBudget) {
      statefulSet = StatefulSetSchema.parse(await client.apply(STATEFUL_SET_TYPE, plan.statefulSet));
      await client.apply(SERVICE_TYPE, plan.headlessService);
      await client.apply(POD_DISRUPTION_BUDGET_TYPE, plan.podDisruptionBudget);
      const refused = await this.#applyRtcServices(node, plan.rtcServices);
      if (refused) problems.push(refused);
    } else {
      statefulSet = this.#cachedStatefulSet(namespace, name);
    }

    let load: { viewers: number; streams: number } | undefined;
    if (records) {
      const ours = [...records.values()];
      load = {
        viewers: ours.reduce((sum, record) => sum + record.load.viewers, 0),
        streams: ours.reduce((sum, record) => sum + record.load.streams, 0),
      };
    }
    let rolling = false;
    if (rollout && problems.length === 0 && statefulSet) {
      rolling = await this.#applyRollout(node, rollout, records, secret);
    }
    await this.#writeStatus(node, {
      statefulSet,
      problems,
      load,
      podFailure: podFailure(pods),
      runnable: runnableReplicas(node, cdn),
      rollout: rollout?.progress,
    });
    return { requeueAfterMs: rolling ? ROLLOUT_POLL_MS : this.#options.statusRefreshMs };
  }

  /**
   * Applies the per-pod NodePort Services (exposure nodePort) and removes those of slots the
   * Node no longer has. A Service the apiserver refuses (its port taken by another Service,
   * or outside the cluster's NodePort range) is reported, not retried in a hot loop.
   */
  async #applyRtcServices(node: CDNNode, services: NodePlan['rtcServices']): Promise<Problem | undefined> {
    const { client } = this.#options;
    const { name = '', namespace = 'default' } = node.metadata;
    let refused: Problem | undefined;
    for (const service of services) {
      try {
        await client.apply(SERVICE_TYPE, service);
      } catch (error) {
        if (!(error instanceof KubeApiError) || (error.status !== 422 && error.status !== 409)) throw error;
        refused ??= {
          reason: NodeReason.RtcPortsUnavailable,
          message: `Service ${service.metadata.name} refused: ${error.message}`,
        };
      }
    }
    const wanted = new Set(services.map((service) => service.metadata.name));
    for (const service of this.#options.services.listAll(namespace)) {
      const labels = service.metadata.labels ?? {};
      if (labels[LABELS.node] !== name || labels[RTC_SLOT_LABEL] === undefined) continue;
      if (wanted.has(service.metadata.name) || controllerOf(service)?.uid !== node.metadata.uid) continue;
      await client.delete(SERVICE_TYPE, namespace, service.metadata.name, {
        preconditions: { uid: service.metadata.uid ?? '' },
      });
    }
    return refused;
  }

  /** The next step of the rollout of an edge Node (rollout.ts), from what is observed. */
  #planRollout(
    node: CDNNode,
    cdn: CDN,
    pods: readonly PodObject[],
    records: ReadonlyMap<number, NodeRecord> | undefined,
  ): RolloutPlan {
    const { name = '', namespace = 'default' } = node.metadata;
    const set = this.#cachedStatefulSet(namespace, name);
    const region = cdn.spec.regions.find((candidate) => candidate.name === node.spec.region);
    const { podSlots } = effectivePorts(node, cdn);
    return planRollout({
      updateRevision: set?.status?.updateRevision,
      replicas: runnableReplicas(node, cdn),
      maxPods: cdn.spec.network.exposure === 'nodePort' ? podSlots : undefined,
      pods: pods.flatMap((pod) => {
        const ordinal = podOrdinal(name, pod.metadata.name ?? '');
        if (ordinal === undefined) return [];
        return [
          {
            ordinal,
            revision: pod.metadata.labels?.[REVISION_LABEL],
            ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
            terminating:
              pod.metadata.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null,
          },
        ];
      }),
      edges:
        records &&
        new Map(
          [...records].map(([ordinal, record]) => [
            ordinal,
            { viewers: record.load.viewers, draining: record.draining },
          ]),
        ),
      viewersPerEdge: region?.edges.targetViewersPerEdge ?? 100,
      deadlineMs: MEDIA_NODE_DRAIN_DEADLINE_MS + ROLLOUT_DEADLINE_MARGIN_MS,
      autoscalerDraining: autoscalerStateOf(node)?.drain !== undefined,
      state: rolloutStateOf(node.metadata.annotations),
      now: this.#now().getTime(),
    });
  }

  /**
   * Does what the rollout plan says (drain a pod through its internal API, or delete it), and
   * records its state on the Node and its events. The state naming the pod to drain is written
   * before the drain call: the autoscaler, which undrains draining pods it did not drain itself
   * unless they are the rollout's, must see it before the edge's record says draining. A pod of
   * the rollout whose record does not say draining (the call failed, or it was undrained) is
   * drained again at every poll. True while a rollout is in progress.
   */
  async #applyRollout(
    node: CDNNode,
    rollout: RolloutPlan,
    records: ReadonlyMap<number, NodeRecord> | undefined,
    secret: SecretObject | undefined,
  ): Promise<boolean> {
    const { client, events, logger } = this.#options;
    const { name = '', namespace = 'default' } = node.metadata;
    const { action } = rollout;
    const drain = async (ordinal: number, deadlineMs = MEDIA_NODE_DRAIN_DEADLINE_MS): Promise<boolean> => {
      const record = records?.get(ordinal);
      const clusterSecret = secret && secretValue(secret, CLUSTER_SECRET_KEY);
      if (!record || !clusterSecret) {
        logger.info({ node: `${namespace}/${name}`, ordinal }, 'rollout: pod not registered yet');
        return false;
      }
      try {
        await new InternalClient(clusterSecret, 3_000).request(
          'POST',
          { nodeId: record.id, internalUrl: record.internalUrl },
          DRAIN_PATH,
          { draining: true, deadlineMs },
        );
        return true;
      } catch (error) {
        logger.warn({ err: error, pod: record.id }, 'rollout: cannot drain the pod; retrying');
        return false;
      }
    };
    if (action.type === 'drain') {
      // Not registered yet: nothing written, planned again at the next poll.
      if (!records?.get(action.ordinal) || !secret) return true;
    } else if (action.type === 'delete') {
      await client.delete(POD_TYPE, namespace, podName(name, action.ordinal));
    }
    const encoded = encodeRolloutState(rollout.state);
    if (encoded !== (node.metadata.annotations?.[ROLLOUT_ANNOTATION] ?? '')) {
      await client.mergePatch(NODE_TYPE, namespace, name, {
        metadata: { annotations: { [ROLLOUT_ANNOTATION]: encoded === '' ? null : encoded } },
      });
    }
    if (action.type === 'drain') {
      await drain(action.ordinal);
    } else {
      const pod = rollout.state?.pod;
      // Not right after the call: the records read for this pass may predate it.
      const settled = pod !== undefined && this.#now().getTime() - pod.drainSince > REDRAIN_AFTER_MS;
      if (pod && settled && !pod.deleted && records?.get(pod.ordinal)?.draining === false) {
        logger.warn(
          { node: `${namespace}/${name}`, ordinal: pod.ordinal },
          'rollout: the pod being replaced is not draining (undrained, or the call failed); draining it again',
        );
        // With what is left of the deadline: drained again, its viewers are not kept longer.
        const elapsed = this.#now().getTime() - pod.drainSince;
        await drain(pod.ordinal, Math.max(0, MEDIA_NODE_DRAIN_DEADLINE_MS - elapsed));
      }
    }
    for (const event of rollout.events) {
      events.record(node, 'Normal', event.reason, event.message);
      logger.info({ node: `${namespace}/${name}`, reason: event.reason }, event.message);
    }
    return rollout.state !== undefined;
  }

  reconcileInvalid(node: InvalidObject): Promise<undefined> {
    const { client, events } = this.#options;
    return reportInvalidSpec({ client, events, now: this.#now() }, NODE_TYPE, node, INVALID_SPEC_CONDITIONS);
  }

  #cachedStatefulSet(namespace: string, name: string): StatefulSetObject | undefined {
    return this.#options.statefulSets.get(namespace, name);
  }

  async #writeStatus(node: CDNNode, observation: Parameters<typeof nodeStatus>[1]): Promise<void> {
    const status = nodeStatus(node, observation, this.#now());
    const metadata = { name: node.metadata.name ?? '', namespace: node.metadata.namespace };
    if (!(await writeStatus(this.#options.client, NODE_TYPE, { metadata, status: node.status }, status)))
      return;
    const before = node.status?.conditions?.find((condition) => condition.type === NodeCondition.Ready);
    const after = status.conditions?.find((condition) => condition.type === NodeCondition.Ready);
    const problem =
      observation.problems[0] ??
      (after && POD_FAILURE_REASONS.has(after.reason)
        ? { reason: after.reason, message: after.message }
        : undefined);
    // A problem (no CDN, bad name, pods failing, …) is a Warning as soon as it appears;
    // readiness changes are news.
    if (problem && before?.reason !== problem.reason) {
      this.#options.events.record(node, 'Warning', problem.reason, problem.message);
    } else {
      recordTransition(
        this.#options.events,
        node,
        node.status?.conditions,
        status.conditions ?? [],
        NodeCondition.Ready,
      );
    }
  }
}
