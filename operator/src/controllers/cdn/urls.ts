/**
 * Where users reach a CDN's Services, as pure functions of the Services and Kubernetes Nodes
 * observed: the base URLs the CDN status hands out (status.regions[].whipUrl / whepUrl).
 */
import type { KubeNodeObject, ServiceObject } from '../../kube/objects.js';

/** The region label Kubernetes nodes carry (set by the cloud provider or the administrator). */
export const REGION_LABEL = 'topology.kubernetes.io/region';

const hostPart = (address: string): string => (address.includes(':') ? `[${address}]` : address);

function isReady(node: KubeNodeObject): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** The address of a node clients outside the cluster can reach: ExternalIP, else InternalIP. */
export function nodeAddress(node: KubeNodeObject): string | undefined {
  const addresses = node.status?.addresses ?? [];
  return (
    addresses.find((a) => a.type === 'ExternalIP')?.address ??
    addresses.find((a) => a.type === 'InternalIP')?.address
  );
}

/**
 * The base URL of a Service's `http` port, `path` appended (`/whip/`): the load balancer's
 * address; with a NodePort, a ready Kubernetes node of the region (any ready node when the
 * region has none: NodePorts answer on every node); with ClusterIP, the in-cluster DNS name.
 * Undefined while there is none yet (a load balancer being provisioned, no ready node).
 */
export function serviceUrl(
  service: ServiceObject,
  region: string,
  kubeNodes: readonly KubeNodeObject[],
  path: string,
): string | undefined {
  const http = service.spec?.ports?.find((port) => port.name === 'http') ?? service.spec?.ports?.[0];
  if (!http) return undefined;
  switch (service.spec?.type) {
    case 'LoadBalancer': {
      const ingress = service.status?.loadBalancer?.ingress?.[0];
      const host = ingress?.ip ?? ingress?.hostname;
      if (!host) return undefined;
      return `http://${hostPart(host)}${http.port === 80 ? '' : `:${http.port}`}${path}`;
    }
    case 'NodePort': {
      if (http.nodePort === undefined) return undefined;
      const ready = kubeNodes.filter(isReady).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      const inRegion = ready.filter((node) => node.metadata.labels?.[REGION_LABEL] === region);
      const address = [...inRegion, ...ready].map(nodeAddress).find((a) => a !== undefined);
      return address === undefined ? undefined : `http://${hostPart(address)}:${http.nodePort}${path}`;
    }
    default:
      return `http://${service.metadata.name}.${service.metadata.namespace}.svc${http.port === 80 ? '' : `:${http.port}`}${path}`;
  }
}
