import { CDN_NAMES, GROUP, NODE_NAMES, STREAM_ACL_NAMES, VERSION } from '../api/v1alpha1.js';

/** What the client needs to build a resource's URL and its objects' apiVersion/kind. */
export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export const apiVersionOf = (type: ResourceType): string =>
  type.group === '' ? type.version : `${type.group}/${type.version}`;

/** `statefulsets.apps`, `nodes.rtccdn.io`: unambiguous in logs (rtccdn's Node is not the core Node). */
export const resourceName = (type: ResourceType): string =>
  type.group === '' ? type.plural : `${type.plural}.${type.group}`;

/** The collection path, or an object's path (with an optional subresource). */
export function resourcePath(
  type: ResourceType,
  namespace: string | undefined,
  name?: string,
  subresource?: string,
): string {
  const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const scope = type.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const object = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  const sub = subresource === undefined ? '' : `/${subresource}`;
  return `${base}${scope}/${type.plural}${object}${sub}`;
}

export const CDN_TYPE: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: CDN_NAMES.kind,
  plural: CDN_NAMES.plural,
  namespaced: true,
};
export const NODE_TYPE: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: NODE_NAMES.kind,
  plural: NODE_NAMES.plural,
  namespaced: true,
};
export const STREAM_ACL_TYPE: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: STREAM_ACL_NAMES.kind,
  plural: STREAM_ACL_NAMES.plural,
  namespaced: true,
};
export const STATEFUL_SET_TYPE: ResourceType = {
  group: 'apps',
  version: 'v1',
  kind: 'StatefulSet',
  plural: 'statefulsets',
  namespaced: true,
};
export const POD_DISRUPTION_BUDGET_TYPE: ResourceType = {
  group: 'policy',
  version: 'v1',
  kind: 'PodDisruptionBudget',
  plural: 'poddisruptionbudgets',
  namespaced: true,
};
export const SERVICE_TYPE: ResourceType = {
  group: '',
  version: 'v1',
  kind: 'Service',
  plural: 'services',
  namespaced: true,
};
export const SECRET_TYPE: ResourceType = {
  group: '',
  version: 'v1',
  kind: 'Secret',
  plural: 'secrets',
  namespaced: true,
};
export const CONFIG_MAP_TYPE: ResourceType = {
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  plural: 'configmaps',
  namespaced: true,
};
export const EVENT_TYPE: ResourceType = {
  group: '',
  version: 'v1',
  kind: 'Event',
  plural: 'events',
  namespaced: true,
};
export const LEASE_TYPE: ResourceType = {
  group: 'coordination.k8s.io',
  version: 'v1',
  kind: 'Lease',
  plural: 'leases',
  namespaced: true,
};
export const POD_TYPE: ResourceType = {
  group: '',
  version: 'v1',
  kind: 'Pod',
  plural: 'pods',
  namespaced: true,
};
/** Kubernetes' own Node (cluster-scoped), not rtccdn's. */
export const KUBE_NODE_TYPE: ResourceType = {
  group: '',
  version: 'v1',
  kind: 'Node',
  plural: 'nodes',
  namespaced: false,
};
