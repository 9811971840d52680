/**
 * The built-in edge autoscaler: for each edge Node a CDN controls, reads the region's edge load
 * from Redis, asks decideScale() what to do, tells edges to drain (or to stop draining) through
 * their internal API, and writes spec.replicas and its state annotation on the Node with its
 * own field manager. It is the only writer of edge replicas while the CDN leaves it enabled
 * (annotation rtccdn.io/edge-autoscaler absent or `builtin`).
 */

import { DRAIN_PATH, InternalClient } from '../../../../media-node/contract/internal-api.js';
import type { NodeRecord } from '../../../../media-node/contract/redis.js';
import { API_VERSION, type CDN, CDN_NAMES, type CDNNode } from '../../api/v1alpha1.js';
import type { KubeClient } from '../../kube/client.js';
import type { EventSink } from '../../kube/events.js';
import { controllerOf, secretValue } from '../../kube/objects.js';
import { NODE_TYPE } from '../../kube/resources.js';
import type { Logger } from '../../logger.js';
import type { OperatorMetrics } from '../../metrics.js';
import type { ClusterReaders, ClusterSnapshot } from '../../redis/ClusterReader.js';
import type { ReconcileRequest, ReconcileResult } from '../../runtime/Controller.js';
import type { ObjectReconciler } from '../../runtime/ControllerBuilder.js';
import type { CacheReader } from '../../runtime/TypedCache.js';
import type { CachedCDN } from '../caches.js';
import { rolloutStateOf } from '../node/rollout.js';
import { readSecret, resolveRedis } from '../references.js';
import {
  ANNOTATIONS,
  CLUSTER_SECRET_KEY,
  clusterSecretName,
  edgeAutoscalerMode,
  podName,
  podOrdinal,
} from '../shared.js';
import { decideScale, type ScaleDecision, type ScalePolicy } from './decide.js';
import { AutoscalerReason } from './reasons.js';
import { autoscalerStateOf, encodeAutoscalerState, toScalerState } from './state.js';

/** Field manager of spec.replicas and the state annotation of edge Nodes. */
export const AUTOSCALER_FIELD_MANAGER = 'rtccdn-autoscaler';

export interface AutoscalerSettings {
  /** How often each edge Node is evaluated. */
  intervalMs: number;
  stabilizationMs: number;
  drainGraceMs: number;
}

export interface AutoscalerReconcilerOptions extends AutoscalerSettings {
  client: KubeClient;
  cdns: CacheReader<CachedCDN>;
  readers: ClusterReaders;
  events: EventSink;
  logger: Logger;
  metrics?: OperatorMetrics | undefined;
  now?: () => number;
}

/** The edge Nodes a CDN controls: what the autoscaler reconciles. */
export function isAutoscaledEdge(node: CDNNode): boolean {
  const owner = controllerOf(node);
  return node.spec.role === 'edge' && owner?.kind === CDN_NAMES.kind && owner.apiVersion === API_VERSION;
}

/**
 * Nodes that do not parse are not reconciled here (no reconcileInvalid): the Node controller
 * reports them.
 */
export class AutoscalerReconciler implements ObjectReconciler<CDNNode> {
  readonly #options: AutoscalerReconcilerOptions;
  readonly #now: () => number;
  /** Metric labels exported per Node, so that they can be removed with it. */
  readonly #exported = new Map<string, { namespace: string; cdn: string; region: string }>();

  constructor(options: AutoscalerReconcilerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async reconcile(node: CDNNode): Promise<ReconcileResult | undefined> {
    const { name = '', namespace = 'default' } = node.metadata;
    if (node.metadata.deletionTimestamp || !isAutoscaledEdge(node)) {
      this.#unexport(`${namespace}/${name}`);
      return undefined;
    }
    const owner = controllerOf(node);
    const cdn = owner ? this.#options.cdns.get(namespace, owner.name) : undefined;
    if (!cdn || cdn.metadata.uid !== owner?.uid) return undefined;
    const region = cdn.spec.regions.find((candidate) => candidate.name === node.spec.region);
    const labels = { namespace, cdn: cdn.metadata.name ?? '', region: node.spec.region };
    if (!region || edgeAutoscalerMode(cdn) === 'external') {
      this.#unexport(`${namespace}/${name}`);
      return undefined;
    }
    this.#exported.set(`${namespace}/${name}`, labels);

    const snapshot = await this.#observe(cdn);
    const edges = snapshot?.nodes.filter(
      (record) => record.role === 'edge' && record.region === node.spec.region,
    );
    const viewers = edges?.reduce((sum, record) => sum + record.load.viewers, 0);
    const podViewers =
      edges && new Map(this.#pods(node, edges).map(([ordinal, record]) => [ordinal, record.load.viewers]));
    const policy: ScalePolicy = {
      ...region.edges,
      stabilizationMs: this.#options.stabilizationMs,
      drainGraceMs: this.#options.drainGraceMs,
    };
    const now = this.#now();
    const annotation = autoscalerStateOf(node);
    const created = Date.parse(node.metadata.creationTimestamp ?? '');
    const scalerState = toScalerState(annotation, Number.isNaN(created) ? now : created);
    // While the operator rolls this Node's pods (node/rollout.ts) no scale-down starts: the
    // stabilization window is held open (scale-up stays immediate; a drain already running
    // goes on, and the rollout waits for it).
    const rollingOut = rolloutStateOf(node.metadata.annotations) !== undefined && !scalerState.drain;
    const decision = decideScale({
      policy,
      replicas: node.spec.replicas,
      viewers,
      podViewers,
      state: rollingOut ? { ...scalerState, lastScaleTime: now } : scalerState,
      now,
    });
    if (rollingOut && decision.reason === 'stabilizing') decision.state = scalerState;

    this.#options.metrics?.edgesDesired.set(labels, decision.desired);
    if (viewers !== undefined) this.#options.metrics?.regionViewers.set(labels, viewers);
    if (edges) await this.#syncDrains(cdn, node, decision, edges);

    const encoded = encodeAutoscalerState(decision.state, decision.desired);
    if (
      decision.replicas !== node.spec.replicas ||
      encoded !== node.metadata.annotations?.[ANNOTATIONS.autoscalerState]
    ) {
      await this.#options.client.apply(
        NODE_TYPE,
        {
          metadata: { name, namespace, annotations: { [ANNOTATIONS.autoscalerState]: encoded } },
          spec: { replicas: decision.replicas },
        } as { metadata: { name: string; namespace: string } },
        { fieldManager: AUTOSCALER_FIELD_MANAGER },
      );
    }
    this.#report(node, decision, viewers, policy);
    return { requeueAfterMs: this.#options.intervalMs };
  }

  forget({ namespace, name }: ReconcileRequest): void {
    this.#unexport(`${namespace}/${name}`);
  }

  #unexport(key: string): void {
    const labels = this.#exported.get(key);
    if (!labels) return;
    this.#exported.delete(key);
    this.#options.metrics?.edgesDesired.remove(labels);
    this.#options.metrics?.regionViewers.remove(labels);
  }

  async #observe(cdn: CDN): Promise<ClusterSnapshot | undefined> {
    const redis = await resolveRedis(this.#options.client, cdn);
    if (!redis.ok) return undefined; // reported on the CDN
    try {
      return await this.#options.readers.get(redis.value.url, redis.value.prefix).snapshot();
    } catch (error) {
      // Reported on the CDN (Degraded: RedisUnreachable); without load only bounds are enforced.
      this.#options.logger.debug({ err: error, cdn: cdn.metadata.name }, 'edge load unknown');
      return undefined;
    }
  }

  /** This Node's pods that have a live record, by ordinal. */
  #pods(node: CDNNode, records: readonly NodeRecord[]): [number, NodeRecord][] {
    const name = node.metadata.name ?? '';
    return records.flatMap((record) => {
      const ordinal = podOrdinal(name, record.id);
      return ordinal === undefined ? [] : [[ordinal, record] as [number, NodeRecord]];
    });
  }

  /**
   * Tells each live pod that stays whether it must drain, when its record says otherwise.
   * Failures are logged and retried at the next evaluation; a pod that never answers is
   * removed anyway once the grace period is over.
   */
  async #syncDrains(
    cdn: CDN,
    node: CDNNode,
    decision: ScaleDecision,
    edges: readonly NodeRecord[],
  ): Promise<void> {
    const draining = new Set(decision.draining);
    // The pod a rollout drains (node/rollout.ts) is the rollout's: never undrained here.
    const rolling = rolloutStateOf(node.metadata.annotations)?.pod?.ordinal;
    const calls = this.#pods(node, edges).filter(
      ([ordinal, record]) =>
        ordinal < decision.replicas && ordinal !== rolling && record.draining !== draining.has(ordinal),
    );
    if (calls.length === 0) return;
    const namespace = cdn.metadata.namespace ?? 'default';
    const secretName = clusterSecretName(cdn.metadata.name ?? '');
    const secret = await readSecret(this.#options.client, namespace, secretName);
    const clusterSecret = secret && secretValue(secret, CLUSTER_SECRET_KEY);
    if (!clusterSecret) {
      this.#options.logger.warn(
        { secret: `${namespace}/${secretName}` },
        'cannot drain edges: no cluster secret',
      );
      return;
    }
    const internal = new InternalClient(clusterSecret, 3_000);
    await Promise.all(
      calls.map(async ([ordinal, record]) => {
        const want = draining.has(ordinal);
        const pod = podName(node.metadata.name ?? '', ordinal);
        try {
          const reply = await internal.request<{ draining?: boolean; viewers?: number }>(
            'POST',
            { nodeId: record.id, internalUrl: record.internalUrl },
            DRAIN_PATH,
            // The edge ends the sessions still there when the operator's grace period ends.
            want ? { draining: true, deadlineMs: this.#options.drainGraceMs } : { draining: false },
          );
          this.#options.metrics?.drainRequests.inc({ result: 'ok' });
          this.#options.logger.info(
            { node: `${namespace}/${node.metadata.name}`, pod, draining: want, viewers: reply?.viewers },
            want ? 'edge draining' : 'edge no longer draining',
          );
        } catch (error) {
          this.#options.metrics?.drainRequests.inc({ result: 'error' });
          this.#options.logger.warn(
            { node: `${namespace}/${node.metadata.name}`, pod, err: error },
            `could not ${want ? 'drain' : 'undrain'} ${pod}; retrying at the next evaluation`,
          );
        }
      }),
    );
  }

  #report(node: CDNNode, decision: ScaleDecision, viewers: number | undefined, policy: ScalePolicy): void {
    const current = node.spec.replicas;
    const load =
      viewers === undefined
        ? 'viewers unknown'
        : `${viewers} viewers, ${policy.targetViewersPerEdge} per edge`;
    const log = {
      node: `${node.metadata.namespace}/${node.metadata.name}`,
      from: current,
      to: decision.replicas,
      desired: decision.desired,
      viewers,
    };
    const event = (reason: string, message: string): void => {
      this.#options.logger.info(log, message);
      this.#options.events.record(node, 'Normal', reason, message);
    };
    switch (decision.reason) {
      case 'scale-up':
        event(AutoscalerReason.ScaledUp, `edges ${current} → ${decision.replicas} (${load})`);
        break;
      case 'bounds':
        event(
          AutoscalerReason.ScaledToBounds,
          `edges ${current} → ${decision.replicas} (bounds ${policy.minReplicas}..${policy.maxReplicas})`,
        );
        break;
      case 'drain-started': {
        const pods = decision.draining.map((ordinal) => podName(node.metadata.name ?? '', ordinal));
        event(
          AutoscalerReason.DrainStarted,
          `draining ${pods.join(', ')} to scale ${current} → ${decision.desired} (${load})`,
        );
        break;
      }
      case 'scale-down':
        event(AutoscalerReason.ScaledDown, `edges ${current} → ${decision.replicas} (drained)`);
        break;
      case 'drain-cancelled':
        event(AutoscalerReason.DrainCancelled, `viewers came back: edges stay at ${current} (${load})`);
        break;
      default:
        break;
    }
  }
}
