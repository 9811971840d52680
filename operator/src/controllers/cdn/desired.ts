/**
 * What a CDN should consist of, as pure functions of the CDN object (no I/O): one Node per role
 * and region, one Service per public role and region, the shared ConfigMap and the cluster
 * Secret, all owned by the CDN; and the CDN's status from what was observed.
 */
import { randomBytes } from 'node:crypto';
import type { V1ConfigMap, V1Secret, V1Service } from '@kubernetes/client-node';
import {
  API_VERSION,
  type CDN,
  type CDNNode,
  type CDNNodeSpecInput,
  type CDNStatus,
  type Condition,
  NODE_NAMES,
  type RegionSpec,
  type RegionStatus,
  type Role,
} from '../../api/v1alpha1.js';
import { controllerReference } from '../../kube/objects.js';
import { type DesiredCondition, mergeConditions } from '../../runtime/conditions.js';
import { autoscalerStateOf } from '../autoscaler/state.js';
import { POD_FAILURE_REASONS } from '../node/pods.js';
import { NodeCondition } from '../node/reasons.js';
import {
  CLUSTER_SECRET_KEY,
  clusterSecretName,
  configMapName,
  edgeAutoscalerMode,
  LABELS,
  MANAGED_BY,
  MEDIA_NODE_APP,
  nodeName,
  type Problem,
  redisPrefixFor,
  workloadNameProblem,
} from '../shared.js';
import { allocatePortBlocks, type PortBlock } from './ports.js';
import { CdnCondition, CdnReason } from './reasons.js';

/** A Node as the CDN controller applies it (server-side apply: only the fields it owns). */
export interface DesiredNode {
  apiVersion: typeof API_VERSION;
  kind: typeof NODE_NAMES.kind;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    ownerReferences: ReturnType<typeof controllerReference>[];
  };
  spec: CDNNodeSpecInput;
}

export interface CdnPlan {
  nodes: DesiredNode[];
  services: (V1Service & { metadata: { name: string; namespace: string } })[];
  configMap: V1ConfigMap & { metadata: { name: string; namespace: string } };
  /** Regions left out, and why (e.g. names too long for a StatefulSet). */
  problems: Problem[];
  /**
   * Set when nothing may be applied or removed (the WebRTC ports of the groups cannot be
   * allocated): what runs keeps running, and the problem says why nothing changes.
   */
  blocked?: Problem;
}

/** Roles that get a Service: origins take WHIP, edges serve WHEP; transcoders serve nobody. */
const PUBLIC_ROLES: readonly Role[] = ['origin', 'edge'];

/** Labels of everything belonging to the CDN (and, given a region and role, to that group). */
export function cdnLabels(cdn: string, region?: string, role?: Role): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.cdn]: cdn,
    ...(region === undefined ? {} : { [LABELS.region]: region }),
    ...(role === undefined ? {} : { [LABELS.role]: role }),
  };
}

/** The ConfigMap's data: the non-secret configuration every media node of the CDN shares. */
export function configMapData(cdn: CDN): Record<string, string> {
  const namespace = cdn.metadata.namespace ?? 'default';
  return {
    ACL_DEFAULT_POLICY: cdn.spec.acl.defaultPolicy,
    ADAPTIVE_LADDER: String(cdn.spec.adaptiveLadder),
    PROFILES: JSON.stringify(cdn.spec.profiles ?? []),
    REDIS_PREFIX: redisPrefixFor(namespace, cdn.metadata.name ?? ''),
  };
}

/** The Node spec of one role in one region, as the CDN dictates it. */
function nodeSpec(cdn: CDN, region: RegionSpec, role: Role, ports: PortBlock | undefined): CDNNodeSpecInput {
  const resources = cdn.spec.resources?.[role];
  // Edges: spec.replicas belongs to the autoscaler (built-in or external), never to this
  // controller: leaving it out of the applied object leaves it to them.
  const replicas =
    role === 'origin'
      ? region.origins.replicas
      : role === 'transcoder'
        ? region.transcoders.replicas
        : undefined;
  return {
    cdnRef: { name: cdn.metadata.name ?? '' },
    role,
    region: region.name,
    ...(replicas === undefined ? {} : { replicas }),
    ...(resources === undefined ? {} : { resources }),
    ports: ports ?? { rtcPortBase: cdn.spec.network.rtcPortBase, workers: cdn.spec.network.workersPerNode },
  };
}

/** How many pods of a role may run in a region: each needs its own ports with nodePort. */
function podSlotsOf(region: RegionSpec, role: Role): number {
  const most =
    role === 'origin'
      ? region.origins.replicas
      : role === 'edge'
        ? region.edges.maxReplicas
        : region.transcoders.replicas;
  return Math.max(1, most);
}

/** The port blocks of the groups with exposure nodePort (none otherwise), or why there are none. */
function portBlocks(
  cdn: CDN,
  groups: readonly { node: string; region: RegionSpec; role: Role }[],
  existing: ReadonlyMap<string, PortBlock>,
): ReturnType<typeof allocatePortBlocks> {
  const { network } = cdn.spec;
  if (network.exposure !== 'nodePort') return { blocks: new Map() };
  return allocatePortBlocks(
    groups.map(({ node, region, role }) => ({ node, slots: podSlotsOf(region, role) })),
    existing,
    { base: network.rtcPortBase, last: 65535, workers: network.workersPerNode },
  );
}

/** The roles a region runs: transcoders only when asked for (the default is none). */
export function rolesOf(region: RegionSpec): Role[] {
  return region.transcoders.replicas > 0 ? ['origin', 'edge', 'transcoder'] : ['origin', 'edge'];
}

/**
 * @param existingPorts the port blocks the CDN's Nodes have now (spec.ports with podSlots): kept
 *   while they fit, so that a change elsewhere does not restart their pods.
 */
export function planCdn(cdn: CDN, existingPorts: ReadonlyMap<string, PortBlock> = new Map()): CdnPlan {
  const name = cdn.metadata.name ?? '';
  const namespace = cdn.metadata.namespace ?? 'default';
  const owner = [controllerReference(cdn)];
  const problems: Problem[] = [];
  const nodes: DesiredNode[] = [];
  const services: CdnPlan['services'] = [];
  const regions: RegionSpec[] = [];
  for (const region of cdn.spec.regions) {
    const invalid = rolesOf(region)
      .map((role) => workloadNameProblem(nodeName(name, region.name, role)))
      .filter((problem) => problem !== undefined);
    if (invalid.length > 0) {
      problems.push({
        reason: CdnReason.InvalidName,
        message: `region ${region.name} is not deployed: ${invalid[0]} (shorten the CDN or region name)`,
      });
      continue;
    }
    regions.push(region);
  }
  const groups = regions.flatMap((region) =>
    rolesOf(region).map((role) => ({ node: nodeName(name, region.name, role), region, role })),
  );
  const allocation = portBlocks(cdn, groups, existingPorts);
  const configMap: CdnPlan['configMap'] = {
    metadata: { name: configMapName(name), namespace, labels: cdnLabels(name), ownerReferences: owner },
    data: configMapData(cdn),
  };
  if ('problem' in allocation) {
    return {
      nodes: [],
      services: [],
      configMap,
      problems: [...problems, allocation.problem],
      blocked: allocation.problem,
    };
  }
  for (const region of regions) {
    for (const role of rolesOf(region)) {
      const node = nodeName(name, region.name, role);
      nodes.push({
        apiVersion: API_VERSION,
        kind: NODE_NAMES.kind,
        metadata: {
          name: node,
          namespace,
          labels: cdnLabels(name, region.name, role),
          ownerReferences: owner,
        },
        spec: nodeSpec(cdn, region, role, allocation.blocks.get(node)),
      });
    }
    for (const role of PUBLIC_ROLES) {
      services.push({
        metadata: {
          name: nodeName(name, region.name, role),
          namespace,
          labels: { ...cdnLabels(name, region.name, role), [LABELS.name]: MEDIA_NODE_APP },
          ownerReferences: owner,
        },
        spec: {
          type: cdn.spec.network.serviceType,
          selector: { [LABELS.name]: MEDIA_NODE_APP, ...cdnLabels(name, region.name, role) },
          ports: [
            {
              // WHIP on origins, WHEP on edges (and health and metrics): the media node's HTTP port.
              name: 'http',
              port: 80,
              targetPort: 'http',
              protocol: 'TCP',
            },
          ],
        },
      });
    }
  }
  return { nodes, services, configMap, problems };
}

/** 256 random bits, URL-safe: the CLUSTER_SECRET that signs node-to-node calls. */
export function generateClusterSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The cluster Secret, created once with a fresh value and never rewritten by the operator. */
export function desiredClusterSecret(
  cdn: CDN,
  value: string,
): V1Secret & { metadata: { name: string; namespace: string } } {
  const name = cdn.metadata.name ?? '';
  return {
    metadata: {
      name: clusterSecretName(name),
      namespace: cdn.metadata.namespace ?? 'default',
      labels: cdnLabels(name),
      ownerReferences: [controllerReference(cdn)],
    },
    type: 'Opaque',
    stringData: { [CLUSTER_SECRET_KEY]: value },
  };
}

/** The media node rejects a CLUSTER_SECRET shorter than this. */
export const MIN_CLUSTER_SECRET_LENGTH = 16;

// --- status -----------------------------------------------------------------------------------

export interface CdnObservation {
  /** The CDN's Nodes (owned by it), as read. */
  nodes: readonly CDNNode[];
  /** Configuration problems (missing Secrets, names): the CDN cannot be fully deployed. */
  problems: readonly Problem[];
  /** From the Redis registry; undefined when it could not be read. */
  load: { liveStreams: number; viewers: number } | undefined;
  /** Why the load is unknown (Redis unreachable), if it is. */
  loadProblem?: Problem | undefined;
  /** Per region, where publishers and viewers go (see urls.ts). */
  urls?: ReadonlyMap<string, { whipUrl?: string | undefined; whepUrl?: string | undefined }>;
  /** The operator's ACL REST API, when it is enabled. */
  aclApiUrl?: string | undefined;
}

export function cdnStatus(cdn: CDN, observation: CdnObservation, now: Date): CDNStatus {
  const name = cdn.metadata.name ?? '';
  const findNode = (region: string, role: Role): CDNNode | undefined =>
    observation.nodes.find((node) => node.metadata.name === nodeName(name, region, role));
  const regions: RegionStatus[] = [];
  const notReady: string[] = [];
  // Why pods do not run (an image pull failing, a crash loop), as the Nodes report it.
  let podFailure: Problem | undefined;
  const explain = (node: CDNNode | undefined): void => {
    const ready = node?.status?.conditions?.find((condition) => condition.type === NodeCondition.Ready);
    if (podFailure || ready?.status !== 'False' || !POD_FAILURE_REASONS.has(ready.reason ?? '')) return;
    podFailure = { reason: ready.reason ?? '', message: `Node ${node?.metadata.name}: ${ready.message}` };
  };
  for (const region of cdn.spec.regions) {
    const origins = findNode(region.name, 'origin');
    const edges = findNode(region.name, 'edge');
    const originsReady = origins?.status?.readyReplicas ?? 0;
    const edgesReady = edges?.status?.readyReplicas ?? 0;
    const edgesWanted = edges?.spec.replicas ?? region.edges.minReplicas;
    // The built-in autoscaler's recommendation; with an external one, what it set.
    const recommended =
      edges && edgeAutoscalerMode(cdn) === 'builtin' ? autoscalerStateOf(edges)?.desired : undefined;
    const edgesDesired = recommended ?? edgesWanted;
    const urls = observation.urls?.get(region.name);
    regions.push({
      name: region.name,
      originsReady,
      edgesReady,
      edgesDesired,
      // A region without origins takes no publishers: its origin Service has no pods.
      ...(urls?.whipUrl && region.origins.replicas > 0 ? { whipUrl: urls.whipUrl } : {}),
      ...(urls?.whepUrl ? { whepUrl: urls.whepUrl } : {}),
    });
    const missing: string[] = [];
    if (originsReady < region.origins.replicas) {
      missing.push(`origins ${originsReady}/${region.origins.replicas}`);
      explain(origins);
    }
    if (edgesReady < edgesWanted) {
      missing.push(`edges ${edgesReady}/${edgesWanted}`);
      explain(edges);
    }
    if (region.transcoders.replicas > 0) {
      const transcoders = findNode(region.name, 'transcoder');
      const transcodersReady = transcoders?.status?.readyReplicas ?? 0;
      if (transcodersReady < region.transcoders.replicas) {
        missing.push(`transcoders ${transcodersReady}/${region.transcoders.replicas}`);
        explain(transcoders);
      }
    }
    if (missing.length > 0) notReady.push(`${region.name}: ${missing.join(', ')} ready`);
  }

  const problems = [...observation.problems, ...(observation.loadProblem ? [observation.loadProblem] : [])];
  const configProblem = observation.problems[0];
  const ready: DesiredCondition = configProblem
    ? {
        type: CdnCondition.Ready,
        status: 'False',
        reason: configProblem.reason,
        message: configProblem.message,
      }
    : notReady.length > 0
      ? {
          type: CdnCondition.Ready,
          status: 'False',
          // A failure the pods report is the news; "not ready" alone is not.
          reason: (podFailure as Problem | undefined)?.reason ?? CdnReason.NodesNotReady,
          message: [...notReady, ...(podFailure ? [(podFailure as Problem).message] : [])].join('; '),
        }
      : {
          type: CdnCondition.Ready,
          status: 'True',
          reason: CdnReason.NodesReady,
          message: 'every media node is ready',
        };
  const degraded: DesiredCondition =
    problems.length > 0
      ? {
          type: CdnCondition.Degraded,
          status: 'True',
          reason: problems[0]!.reason,
          message: problems.map((problem) => problem.message).join('; '),
        }
      : {
          type: CdnCondition.Degraded,
          status: 'False',
          reason: CdnReason.AsExpected,
          message: 'the CDN is deployed as specified',
        };

  const generation = cdn.metadata.generation;
  return {
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions: mergeConditions(
      cdn.status?.conditions as Condition[] | undefined,
      [ready, degraded],
      generation,
      now,
    ),
    regions,
    ...(observation.aclApiUrl ? { aclApiUrl: observation.aclApiUrl } : {}),
    ...(observation.load
      ? { liveStreams: observation.load.liveStreams, viewers: observation.load.viewers }
      : {}),
  };
}
