/**
 * What a Node (a group of media nodes of one role in one region) should consist of, as pure
 * functions: a StatefulSet whose pods run the media node with its container contract
 * (media-node/src/config.ts) filled in from the Node and its CDN, a headless Service for stable
 * pod DNS names, a PodDisruptionBudget, and the Node's status from what was observed.
 */
import type {
  V1Affinity,
  V1Container,
  V1ContainerPort,
  V1EnvVar,
  V1PodDisruptionBudget,
  V1Service,
  V1StatefulSet,
} from '@kubernetes/client-node';
import type { CDN, CDNNode, CDNNodeStatus, Condition, ResourceRequirements } from '../../api/v1alpha1.js';
import { controllerReference, type StatefulSetObject } from '../../kube/objects.js';
import { mergeConditions } from '../../runtime/conditions.js';
import { cdnLabels, configMapData } from '../cdn/desired.js';
import {
  ANNOTATIONS,
  CLUSTER_SECRET_KEY,
  clusterSecretName,
  configHash,
  configMapName,
  headlessServiceName,
  LABELS,
  MEDIA_NODE_APP,
  MEDIA_NODE_DRAIN_DEADLINE_MS,
  MEDIA_NODE_PORTS,
  MEDIA_NODE_SHUTDOWN_TIMEOUT_MS,
  type Problem,
  podName,
  workloadNameProblem,
} from '../shared.js';
import { NodeCondition, NodeReason } from './reasons.js';

export const CONTAINER_NAME = 'media-node';
/**
 * preStop pause before SIGTERM: endpoints and load balancers stop sending new sessions to a
 * terminating pod only after a propagation delay; meanwhile the node keeps serving.
 */
export const PRE_STOP_SECONDS = 5;

/** The pods of a Node: the StatefulSet selector (immutable, so deliberately minimal). */
export function podSelector(node: string): Record<string, string> {
  return { [LABELS.name]: MEDIA_NODE_APP, [LABELS.node]: node };
}

/** The selector in string form, for status.selector (scale subresource, HPA). */
export function selectorString(node: string): string {
  return Object.entries(podSelector(node))
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

type Named<T> = T & { metadata: { name: string; namespace: string } };

export interface NodePlan {
  /** Absent when a problem keeps the Node from being deployed. */
  statefulSet?: Named<V1StatefulSet>;
  headlessService?: Named<V1Service>;
  /** Voluntary disruptions (kubectl drain, node upgrades) take one pod of the group at a time. */
  podDisruptionBudget?: Named<V1PodDisruptionBudget>;
  /** With exposure nodePort: one NodePort Service per pod slot, carrying that pod's ports. */
  rtcServices: Named<V1Service>[];
  problems: Problem[];
}

/** The label on per-pod RTC Services: the pod slot (ordinal) they serve. */
export const RTC_SLOT_LABEL = 'rtccdn.io/rtc-slot';
/** The per-pod RTC Service of slot `ordinal`. */
export const rtcServiceName = (node: string, ordinal: number): string => `${node}-rtc-${ordinal}`;
/** StatefulSet pods carry their ordinal in this label (Kubernetes 1.28+). */
const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';
/** StatefulSet pods carry their name in this label: a Service can select one pod. */
const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';

export interface NodeContext {
  /** The CDN the Node belongs to (spec.cdnRef). */
  cdn: CDN;
  /** Hash of the cluster Secret's data: pods are rolled when it changes (env is read at start). */
  clusterSecretHash?: string | undefined;
  /** Pods run beyond spec.replicas during a rollout of edges (rollout.ts): 0 or 1. */
  surge?: number | undefined;
}

/** ANNOUNCED_IP: the address viewers and publishers send media to. */
function announcedIp(cdn: CDN): V1EnvVar {
  const { announcedAddress } = cdn.spec.network;
  if (announcedAddress) return { name: 'ANNOUNCED_IP', value: announcedAddress };
  // hostPort / hostNetwork: the media ports are the Kubernetes node's, so is the address.
  return { name: 'ANNOUNCED_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } };
}

function redisUrl(cdn: CDN): V1EnvVar {
  const { url, secretRef } = cdn.spec.redis;
  if (secretRef)
    return { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: secretRef.name, key: secretRef.key } } };
  return { name: 'REDIS_URL', value: url ?? '' };
}

const fromConfigMap = (cdnName: string, key: string): V1EnvVar => ({
  name: key,
  valueFrom: { configMapKeyRef: { name: configMapName(cdnName), key } },
});

/** The media node's environment: its container contract, filled in. */
export function mediaNodeEnv(node: CDNNode, cdn: CDN): V1EnvVar[] {
  const cdnName = cdn.metadata.name ?? '';
  const ports = effectivePorts(node, cdn);
  const token = cdn.spec.publishTokenSecretRef;
  return [
    { name: 'ROLE', value: node.spec.role },
    { name: 'REGION', value: node.spec.region },
    // The pod name: stable per ordinal, and how the autoscaler finds a pod's record in Redis.
    { name: 'NODE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'INTERNAL_ADDRESS', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    announcedIp(cdn),
    { name: 'PORT', value: String(MEDIA_NODE_PORTS.http) },
    { name: 'INTERNAL_PORT', value: String(MEDIA_NODE_PORTS.internal) },
    { name: 'RTC_PORT', value: String(ports.rtcPortBase) },
    { name: 'WORKERS', value: String(ports.workers) },
    // nodePort: the pod's ordinal moves its ports to its own slot of the group's block.
    ...(cdn.spec.network.exposure === 'nodePort'
      ? [
          {
            name: 'POD_INDEX',
            valueFrom: { fieldRef: { fieldPath: `metadata.labels['${POD_INDEX_LABEL}']` } },
          },
        ]
      : []),
    redisUrl(cdn),
    fromConfigMap(cdnName, 'REDIS_PREFIX'),
    {
      name: 'CLUSTER_SECRET',
      valueFrom: { secretKeyRef: { name: clusterSecretName(cdnName), key: CLUSTER_SECRET_KEY } },
    },
    // Only origins take publishers: the token goes nowhere else.
    ...(token && node.spec.role === 'origin'
      ? [{ name: 'PUBLISH_TOKEN', valueFrom: { secretKeyRef: { name: token.name, key: token.key } } }]
      : []),
    fromConfigMap(cdnName, 'ACL_DEFAULT_POLICY'),
    // StreamACLs are the truth: the media nodes' own ACL API refuses changes (421).
    { name: 'ACL_API', value: 'kubernetes' },
    fromConfigMap(cdnName, 'PROFILES'),
    // Ladders are built where viewers play: on edges. Optional: a ConfigMap written by an older
    // operator lacks the key until the CDN is reconciled (the media node's default is off).
    ...(node.spec.role === 'edge'
      ? [
          {
            name: 'ADAPTIVE_LADDER',
            valueFrom: {
              configMapKeyRef: { name: configMapName(cdnName), key: 'ADAPTIVE_LADDER', optional: true },
            },
          },
        ]
      : []),
    { name: 'LOG_LEVEL', value: 'info' },
    { name: 'SHUTDOWN_TIMEOUT_MS', value: String(MEDIA_NODE_SHUTDOWN_TIMEOUT_MS) },
    ...(node.spec.role === 'edge'
      ? [{ name: 'DRAIN_DEADLINE_MS', value: String(MEDIA_NODE_DRAIN_DEADLINE_MS) }]
      : []),
    { name: 'DEMO_PAGE', value: 'false' },
  ];
}

export function effectivePorts(
  node: CDNNode,
  cdn: CDN,
): { rtcPortBase: number; workers: number; podSlots?: number | undefined } {
  return (
    node.spec.ports ?? { rtcPortBase: cdn.spec.network.rtcPortBase, workers: cdn.spec.network.workersPerNode }
  );
}

/** The pods a Node runs: spec.replicas, bounded by its pod slots with exposure nodePort. */
export function runnableReplicas(node: CDNNode, cdn: CDN): number {
  const { podSlots } = effectivePorts(node, cdn);
  return cdn.spec.network.exposure === 'nodePort' && podSlots !== undefined
    ? Math.min(node.spec.replicas, podSlots)
    : node.spec.replicas;
}

function effectiveResources(node: CDNNode, cdn: CDN): ResourceRequirements | undefined {
  return node.spec.resources ?? cdn.spec.resources?.[node.spec.role];
}

/**
 * HTTP, internal API, and one UDP + one TCP WebRTC port per worker on the host. With nodePort
 * every pod has ports of its own, which one pod template cannot list: they are on the per-pod
 * Services only.
 */
export function containerPorts(node: CDNNode, cdn: CDN): V1ContainerPort[] {
  const { rtcPortBase, workers } = effectivePorts(node, cdn);
  const onHost = cdn.spec.network.exposure !== 'nodePort';
  const rtc: V1ContainerPort[] = [];
  for (let worker = 0; onHost && worker < workers; worker++) {
    const port = rtcPortBase + worker;
    for (const protocol of ['UDP', 'TCP'] as const) {
      rtc.push({
        name: `rtc-${protocol.toLowerCase()}-${worker}`,
        containerPort: port,
        protocol,
        hostPort: port,
      });
    }
  }
  return [
    { name: 'http', containerPort: MEDIA_NODE_PORTS.http, protocol: 'TCP' },
    { name: 'internal', containerPort: MEDIA_NODE_PORTS.internal, protocol: 'TCP' },
    ...rtc,
  ];
}

/** The surge a rollout asks for, within the pod slots (nodePort). */
function surgeOf(node: CDNNode, cdn: CDN, surge: number | undefined): number {
  if (!surge || node.spec.role !== 'edge') return 0;
  const { podSlots } = effectivePorts(node, cdn);
  const runnable = runnableReplicas(node, cdn);
  return cdn.spec.network.exposure === 'nodePort' && podSlots !== undefined
    ? Math.max(0, Math.min(surge, podSlots - runnable))
    : surge;
}

/** How long media nodes stay bound to a Kubernetes node that is unreachable or not ready. */
export const LOST_NODE_TOLERATION_SECONDS = 30;

/** Seconds Kubernetes waits after SIGTERM: the preStop pause, the node's own bound, a margin. */
export const TERMINATION_GRACE_SECONDS =
  PRE_STOP_SECONDS + Math.ceil(MEDIA_NODE_SHUTDOWN_TIMEOUT_MS / 1000) + 5;
/** An edge with viewers drains on SIGTERM first (DRAIN_DEADLINE_MS), then shuts down. */
export const EDGE_TERMINATION_GRACE_SECONDS =
  TERMINATION_GRACE_SECONDS + Math.ceil(MEDIA_NODE_DRAIN_DEADLINE_MS / 1000);

export function terminationGraceSeconds(role: CDNNode['spec']['role']): number {
  return role === 'edge' ? EDGE_TERMINATION_GRACE_SECONDS : TERMINATION_GRACE_SECONDS;
}

export function planNode(node: CDNNode, context: NodeContext): NodePlan {
  const { cdn } = context;
  const name = node.metadata.name ?? '';
  const namespace = node.metadata.namespace ?? 'default';
  const cdnName = cdn.metadata.name ?? '';
  const problems: Problem[] = [];
  const nameProblem = workloadNameProblem(name);
  if (nameProblem) problems.push({ reason: NodeReason.InvalidName, message: nameProblem });
  const { exposure } = cdn.spec.network;
  if (exposure === 'nodePort' && effectivePorts(node, cdn).podSlots === undefined) {
    problems.push({
      reason: NodeReason.PodSlotsMissing,
      message:
        'network.exposure nodePort needs spec.ports.podSlots (every pod gets ports of its own, and a NodePort is unique in the cluster); the CDN controller sets it on the Nodes it creates',
    });
  }
  if (problems.length > 0) return { rtcServices: [], problems };

  const labels = {
    [LABELS.name]: MEDIA_NODE_APP,
    ...cdnLabels(cdnName, node.spec.region, node.spec.role),
    [LABELS.node]: name,
  };
  const owner = [controllerReference(node)];
  const resources = effectiveResources(node, cdn);
  const container: V1Container = {
    name: CONTAINER_NAME,
    image: cdn.spec.image,
    ...(cdn.spec.imagePullPolicy ? { imagePullPolicy: cdn.spec.imagePullPolicy } : {}),
    env: mediaNodeEnv(node, cdn),
    ports: containerPorts(node, cdn),
    // A node that exits on a bad configuration (Redis unreachable, a bad Secret) says why in the
    // pod status, which the Node's Ready condition quotes.
    terminationMessagePolicy: 'FallbackToLogsOnError',
    ...(resources ? { resources: resources as V1Container['resources'] } : {}),
    // Draining edges and nodes that lost Redis answer 503: they leave the Services at once.
    readinessProbe: {
      httpGet: { path: '/readyz', port: 'http' },
      periodSeconds: 2,
      timeoutSeconds: 2,
      failureThreshold: 1,
      successThreshold: 1,
    },
    livenessProbe: {
      httpGet: { path: '/healthz', port: 'http' },
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 3,
    },
    // mediasoup workers take a moment to start; liveness must not kill a node that is starting.
    startupProbe: {
      httpGet: { path: '/healthz', port: 'http' },
      periodSeconds: 2,
      failureThreshold: 30,
    },
    lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SECONDS } } },
    securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
  };
  const onHost = exposure === 'hostPort' || exposure === 'hostNetwork';
  const { regionLabel } = cdn.spec.placement;
  const statefulSet: NodePlan['statefulSet'] = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, namespace, labels, ownerReferences: owner },
    spec: {
      serviceName: headlessServiceName(name),
      replicas: runnableReplicas(node, cdn) + surgeOf(node, cdn, context.surge),
      // Media nodes need no ordered start; OrderedReady would also block a scale-up behind a
      // draining (unready) pod.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: podSelector(name) },
      // Edges are rolled by the operator (rollout.ts): each old pod is drained — its viewers
      // keep playing until they leave or the drain deadline — before it is deleted and
      // recreated at the new revision, with a surge pod first when the others have no room.
      // Origins and transcoders roll as usual (their publishers and renditions fail over).
      updateStrategy: { type: node.spec.role === 'edge' ? 'OnDelete' : 'RollingUpdate' },
      template: {
        metadata: {
          labels,
          annotations: {
            [ANNOTATIONS.configHash]: configHash({
              config: configMapData(cdn),
              clusterSecret: context.clusterSecretHash ?? '',
            }),
          },
        },
        spec: {
          ...(exposure === 'hostNetwork' ? { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' } : {}),
          // Service links would add variables such as <SVC>_PORT to a process configured by env.
          enableServiceLinks: false,
          terminationGracePeriodSeconds: terminationGraceSeconds(node.spec.role),
          // A media node on a Kubernetes node that stopped answering serves nobody: evict it after
          // 30 s instead of Kubernetes' 300 s default, so that its replacement can start as soon
          // as the node is known to be gone (a StatefulSet waits for that: a deleted Node object
          // or the node.kubernetes.io/out-of-service taint).
          tolerations: [
            {
              key: 'node.kubernetes.io/unreachable',
              operator: 'Exists',
              effect: 'NoExecute',
              tolerationSeconds: LOST_NODE_TOLERATION_SECONDS,
            },
            {
              key: 'node.kubernetes.io/not-ready',
              operator: 'Exists',
              effect: 'NoExecute',
              tolerationSeconds: LOST_NODE_TOLERATION_SECONDS,
            },
          ],
          ...affinity(name, node.spec.region, regionLabel, onHost),
          containers: [container],
        },
      },
    },
  };
  const headlessService: NodePlan['headlessService'] = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: headlessServiceName(name), namespace, labels, ownerReferences: owner },
    spec: {
      clusterIP: 'None',
      // Peers resolve a pod before it is ready (relays, the operator's drain calls).
      publishNotReadyAddresses: true,
      selector: podSelector(name),
      ports: [
        { name: 'http', port: MEDIA_NODE_PORTS.http, targetPort: 'http', protocol: 'TCP' },
        { name: 'internal', port: MEDIA_NODE_PORTS.internal, targetPort: 'internal', protocol: 'TCP' },
      ],
    },
  };
  return {
    statefulSet,
    headlessService,
    podDisruptionBudget: podDisruptionBudget(name, namespace, labels, owner),
    rtcServices: rtcServices(node, cdn, labels, owner),
    problems,
  };
}

/**
 * The group's PodDisruptionBudget: an eviction (kubectl drain, a cluster autoscaler, a node
 * upgrade) may take one of its pods at a time — never all edges (or origins) of a region at once.
 * It counts Ready pods, and a draining edge is unready on purpose: while one drains (rollout,
 * scale-down, an earlier eviction) no other healthy pod of the group is evicted. Unready pods
 * may always be evicted (unhealthyPodEvictionPolicy AlwaysAllow): a draining, crashing or
 * starting pod never blocks a node drain, and an evicted edge drains anyway (SIGTERM drains).
 * maxUnavailable rather than minAvailable: a one-pod group stays evictable (minAvailable 1 would
 * block every node drain), and surge pods of a rollout count as spare capacity.
 */
function podDisruptionBudget(
  name: string,
  namespace: string,
  labels: Record<string, string>,
  owner: ReturnType<typeof controllerReference>[],
): Named<V1PodDisruptionBudget> {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name, namespace, labels, ownerReferences: owner },
    spec: {
      maxUnavailable: 1,
      selector: { matchLabels: podSelector(name) },
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  };
}

/**
 * With exposure nodePort: per pod slot, a NodePort Service selecting that one pod, whose node
 * ports are the pod's own ports (pod i: rtcPortBase + i × workers + w, UDP and TCP), so the pod
 * announces its Kubernetes node's address with the very port it listens on. Traffic policy
 * Local: packets reach the pod on the node they were sent to, with the client's address kept.
 * Not-ready addresses are published: a draining edge (unready on purpose, to leave the WHEP
 * Service) keeps its viewers' media flowing until they are gone.
 */
function rtcServices(
  node: CDNNode,
  cdn: CDN,
  labels: Record<string, string>,
  owner: ReturnType<typeof controllerReference>[],
): Named<V1Service>[] {
  const { rtcPortBase, workers, podSlots } = effectivePorts(node, cdn);
  if (cdn.spec.network.exposure !== 'nodePort' || podSlots === undefined) return [];
  const name = node.metadata.name ?? '';
  const namespace = node.metadata.namespace ?? 'default';
  return Array.from({ length: podSlots }, (_, ordinal) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: rtcServiceName(name, ordinal),
      namespace,
      labels: { ...labels, [RTC_SLOT_LABEL]: String(ordinal) },
      ownerReferences: owner,
    },
    spec: {
      type: 'NodePort',
      externalTrafficPolicy: 'Local',
      publishNotReadyAddresses: true,
      selector: { ...podSelector(name), [POD_NAME_LABEL]: podName(name, ordinal) },
      ports: Array.from({ length: workers }, (_, worker) => rtcPortBase + ordinal * workers + worker).flatMap(
        (port, worker) =>
          (['UDP', 'TCP'] as const).map((protocol) => ({
            name: `${protocol.toLowerCase()}-${worker}`,
            protocol,
            port,
            targetPort: port,
            nodePort: port,
          })),
      ),
    },
  }));
}

/**
 * A region's media nodes run on that region's Kubernetes nodes (viewers are routed by region);
 * with host ports, two media nodes of one group can never share a Kubernetes node.
 */
function affinity(
  name: string,
  region: string,
  regionLabel: string,
  onHost: boolean,
): { affinity?: V1Affinity } {
  const nodeAffinity = regionLabel
    ? {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: regionLabel, operator: 'In', values: [region] }] }],
        },
      }
    : undefined;
  const podAntiAffinity = onHost
    ? {
        requiredDuringSchedulingIgnoredDuringExecution: [
          { labelSelector: { matchLabels: podSelector(name) }, topologyKey: 'kubernetes.io/hostname' },
        ],
      }
    : undefined;
  if (!nodeAffinity && !podAntiAffinity) return {};
  return {
    affinity: { ...(nodeAffinity ? { nodeAffinity } : {}), ...(podAntiAffinity ? { podAntiAffinity } : {}) },
  };
}

// --- status -----------------------------------------------------------------------------------

export interface NodeObservation {
  /** The StatefulSet as last written or read; undefined if it does not exist. */
  statefulSet: StatefulSetObject | undefined;
  /** Problems that keep the Node from being deployed (no CDN, bad name, …). */
  problems: readonly Problem[];
  /** Load of the Node's pods from Redis; undefined when unknown. */
  load: { viewers: number; streams: number } | undefined;
  /** Why pods do not run, read from them (podFailure()). */
  podFailure?: Problem | undefined;
  /** The pods run (runnableReplicas()): fewer than spec.replicas when pod slots run out. */
  runnable?: number | undefined;
  /** Edges: what the operator's rollout is doing (undefined: none in progress). */
  rollout?: { reason: string; message: string } | undefined;
}

export function nodeStatus(node: CDNNode, observation: NodeObservation, now: Date): CDNNodeStatus {
  const name = node.metadata.name ?? '';
  const set = observation.statefulSet;
  const replicas = set?.status?.replicas ?? 0;
  const readyReplicas = set?.status?.readyReplicas ?? 0;
  const wanted = node.spec.replicas;
  const rolledOut =
    set !== undefined &&
    (set.status?.observedGeneration ?? 0) >= (set.metadata.generation ?? 0) &&
    (set.status?.updatedReplicas ?? 0) >= wanted;
  const problem = observation.problems[0];
  const runnable = observation.runnable ?? wanted;
  const notReady = (reason: string, message: string) => ({
    type: NodeCondition.Ready,
    status: 'False' as const,
    reason,
    message,
  });
  const ready = problem
    ? {
        type: NodeCondition.Ready,
        status: 'False' as const,
        reason: problem.reason,
        message: problem.message,
      }
    : readyReplicas >= wanted && (rolledOut || wanted === 0)
      ? {
          type: NodeCondition.Ready,
          status: 'True' as const,
          reason: NodeReason.PodsReady,
          message: `${readyReplicas}/${wanted} media nodes ready`,
        }
      : observation.podFailure
        ? notReady(
            observation.podFailure.reason,
            `${readyReplicas}/${wanted} media nodes ready; ${observation.podFailure.message}`,
          )
        : runnable < wanted
          ? notReady(
              NodeReason.PodSlotsExhausted,
              `${readyReplicas}/${wanted} media nodes ready; only ${runnable} run: spec.ports.podSlots gives ports to ${runnable} pods (exposure nodePort)`,
            )
          : notReady(
              NodeReason.PodsNotReady,
              `${readyReplicas}/${wanted} media nodes ready${set && !rolledOut ? ' (rollout in progress)' : ''}`,
            );
  const generation = node.metadata.generation;
  return {
    replicas,
    readyReplicas,
    selector: selectorString(name),
    ...(observation.load ? { viewers: observation.load.viewers, streams: observation.load.streams } : {}),
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions: mergeConditions(
      node.status?.conditions as Condition[] | undefined,
      node.spec.role === 'edge' ? [ready, rolloutCondition(observation.rollout)] : [ready],
      generation,
      now,
    ),
  };
}

/** RolloutInProgress: True with what the rollout waits for, False once every pod is current. */
function rolloutCondition(rollout: NodeObservation['rollout']) {
  return rollout
    ? { type: NodeCondition.RolloutInProgress, status: 'True' as const, ...rollout }
    : {
        type: NodeCondition.RolloutInProgress,
        status: 'False' as const,
        reason: NodeReason.RolloutComplete,
        message: 'every pod runs the current revision',
      };
}
