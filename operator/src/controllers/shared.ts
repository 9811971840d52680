/**
 * Names, labels and annotations shared by the controllers: the contract between the objects
 * the operator creates (and whoever selects them: Services, HPAs, dashboards).
 */
import { createHash } from 'node:crypto';
import type { CDN, Role } from '../api/v1alpha1.js';
import { DNS_1035_LABEL_PATTERN } from '../kube/names.js';

export const LABELS = {
  /** Every media node pod and the objects around it. */
  name: 'app.kubernetes.io/name',
  /** Every object the operator creates: its watches select on this. */
  managedBy: 'app.kubernetes.io/managed-by',
  cdn: 'rtccdn.io/cdn',
  region: 'rtccdn.io/region',
  role: 'rtccdn.io/role',
  /** The Node (group of media nodes) a pod belongs to: the StatefulSet selector. */
  node: 'rtccdn.io/node',
  /**
   * On a Secret: `true` lets StreamACLs of its namespace read access keys from it. The operator
   * watches (and caches) only such Secrets, and refuses keys from any other.
   */
  accessKeys: 'rtccdn.io/access-keys',
} as const;

/** The label selector of Secrets that may hold access keys. */
export const ACCESS_KEYS_SELECTOR = `${LABELS.accessKeys}=true`;

export const MEDIA_NODE_APP = 'rtccdn-media-node';
export const MANAGED_BY = 'rtccdn-operator';
/** Label selector of everything the operator created. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY}`;

export const ANNOTATIONS = {
  /**
   * On a CDN: who scales its edges. `builtin` (default): the operator's autoscaler, which
   * drains edges before removing them. `external`: nobody in the operator writes the edge
   * Nodes' spec.replicas, so an HPA or KEDA can drive their scale subresource.
   */
  edgeAutoscaler: 'rtccdn.io/edge-autoscaler',
  /** On an edge Node: the autoscaler's state (JSON), so that a new leader continues it. */
  autoscalerState: 'rtccdn.io/autoscaler',
  /** On pod templates: a hash of the configuration read from the environment at start. */
  configHash: 'rtccdn.io/config-hash',
} as const;

export type EdgeAutoscalerMode = 'builtin' | 'external';

export function edgeAutoscalerMode(cdn: Pick<CDN, 'metadata'>): EdgeAutoscalerMode {
  return cdn.metadata.annotations?.[ANNOTATIONS.edgeAutoscaler] === 'external' ? 'external' : 'builtin';
}

/** Ports of the media node container (its container contract defaults). */
export const MEDIA_NODE_PORTS = { http: 8080, internal: 8081 } as const;
/** SHUTDOWN_TIMEOUT_MS given to media nodes; the pod's grace period is derived from it. */
export const MEDIA_NODE_SHUTDOWN_TIMEOUT_MS = 10_000;
/**
 * DRAIN_DEADLINE_MS given to edges: a draining edge (rollout, scale-down, SIGTERM) keeps its
 * viewers this long before ending their sessions (`node-draining`) so their players re-join
 * elsewhere; an edge's grace period includes it.
 */
export const MEDIA_NODE_DRAIN_DEADLINE_MS = 60_000;

/** `live-eu-west-edge`: the Node, its StatefulSet and the role's Service. */
export const nodeName = (cdn: string, region: string, role: Role): string => `${cdn}-${region}-${role}`;
/** The headless Service giving each pod of a Node a stable DNS name. */
export const headlessServiceName = (node: string): string => `${node}-pods`;
export const clusterSecretName = (cdn: string): string => `${cdn}-cluster`;
export const CLUSTER_SECRET_KEY = 'clusterSecret';
export const configMapName = (cdn: string): string => `${cdn}-config`;

/** StatefulSet pods are `<name>-<ordinal>`, and NODE_ID is the pod name. */
export const podName = (node: string, ordinal: number): string => `${node}-${ordinal}`;

/** The ordinal of `podId` if it is a pod of StatefulSet `node`. */
export function podOrdinal(node: string, podId: string): number | undefined {
  if (!podId.startsWith(`${node}-`)) return undefined;
  const suffix = podId.slice(node.length + 1);
  return /^(0|[1-9]\d{0,8})$/.test(suffix) ? Number(suffix) : undefined;
}

/**
 * StatefulSet names must be DNS-1035 labels (they name Services too), and at most 52
 * characters: the pods' `controller-revision-hash` label is the name plus 11 characters and
 * label values stop at 63.
 */
export const MAX_WORKLOAD_NAME = 52;

/** Why `name` cannot name a StatefulSet and its Services, or undefined when it can. */
export function workloadNameProblem(name: string): string | undefined {
  if (name.length > MAX_WORKLOAD_NAME) {
    return `${name} is ${name.length} characters; StatefulSet names are limited to ${MAX_WORKLOAD_NAME}`;
  }
  if (!DNS_1035_LABEL_PATTERN.test(name)) {
    return `${name} is not a DNS-1035 label (lowercase letters, digits and -, starting with a letter)`;
  }
  return undefined;
}

/**
 * The Redis key prefix of a CDN's cluster registry. One per CDN, so that CDNs sharing a Redis
 * (each with its own CLUSTER_SECRET) never see each other's nodes. Readable when it fits the
 * layout's 64 characters, hashed otherwise. The StreamACL controller must use the same.
 */
export function redisPrefixFor(namespace: string, cdn: string): string {
  const readable = `rtccdn:${namespace}.${cdn}:`;
  if (readable.length <= 64) return readable;
  return `rtccdn:${createHash('sha256').update(`${namespace}/${cdn}`).digest('hex').slice(0, 32)}:`;
}

/** A short, stable hash of configuration (pod template annotations: changes roll the pods). */
export function configHash(data: unknown): string {
  return createHash('sha256').update(stableJson(data)).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted, so equal data always hashes the same. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => a.localeCompare(b)))
      : inner,
  );
}

/** A problem that keeps an object from being Ready: a condition reason and a message. */
export interface Problem {
  reason: string;
  message: string;
}
