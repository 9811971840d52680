/** The `CDN` kind: a CDN for sub-second WebRTC live streaming, with its regions and settings. */
import { z } from 'zod';
import { CODECS, type Codec, MAX_PROFILES, ProfileSchema } from '../../../../media-node/contract/profiles.js';
import { REDIS_URL_PATTERN } from '../../../../media-node/contract/redis.js';
import { dnsLabel } from '../../kube/names.js';
import type { ResourceNames } from '../definition.js';
import { defaulted, exactlyOneOf, keyedList, withRules } from '../rules.js';
import {
  conditions,
  count,
  customResourceSchema,
  INT32_MAX,
  observedGeneration,
  portBase,
  ResourceRequirementsSchema,
  SecretKeySelectorSchema,
  workers,
} from './fields.js';
import { CATEGORY } from './group.js';

export const CDN_NAMES = {
  kind: 'CDN',
  listKind: 'CDNList',
  plural: 'cdns',
  singular: 'cdn',
  shortNames: [],
  categories: [CATEGORY],
} as const satisfies ResourceNames;

/** A Redis URL, as the media nodes accept it (in spec.redis.url, or in the Secret it names). */
export { REDIS_URL_PATTERN };

export const RedisSpecSchema = withRules(
  z.object({
    url: z
      .string()
      .max(2048)
      .regex(REDIS_URL_PATTERN, 'must be a redis://, rediss://, redis+sentinel:// or rediss+sentinel:// URL')
      .optional()
      .describe(
        'Redis URL, e.g. redis://redis.rtccdn:6379/0 (rediss:// for TLS), or a Sentinel-managed primary: redis+sentinel://sentinel-0.redis:26379,sentinel-1.redis:26379/mymaster[/db][?acks=1] (the hosts are Sentinels; acks: replicas an ACL write must reach). Redis Cluster is not supported. Use secretRef when the URL carries a password.',
      ),
    secretRef: SecretKeySelectorSchema.optional().describe('Secret key holding the Redis URL.'),
  }),
  [exactlyOneOf('url', 'secretRef')],
);

export const OriginsSpecSchema = z.object({
  replicas: count()
    .max(INT32_MAX)
    .default(1)
    .describe('Number of origin nodes (they receive WHIP publishers) in the region.'),
});

export const EdgesSpecSchema = withRules(
  z.object({
    minReplicas: count().max(INT32_MAX).default(1).describe('Fewest edge nodes the autoscaler keeps.'),
    maxReplicas: z.int().min(1).max(INT32_MAX).default(10).describe('Most edge nodes the autoscaler runs.'),
    targetViewersPerEdge: z
      .int()
      .min(1)
      .max(1_000_000)
      .default(500)
      .describe('Viewers per edge node the autoscaler aims for.'),
  }),
  [
    {
      rule: 'self.minReplicas <= self.maxReplicas',
      message: 'minReplicas must be less than or equal to maxReplicas',
      fieldPath: '.minReplicas',
      violation: (edges) => (edges.minReplicas <= edges.maxReplicas ? undefined : ['minReplicas']),
    },
  ],
);

export const TranscodersSpecSchema = z.object({
  replicas: count()
    .max(INT32_MAX)
    .default(0)
    .describe('Number of transcoder nodes (they produce the profiles) in the region.'),
});

export const RegionSpecSchema = z.object({
  name: dnsLabel().describe(
    'Region name, a DNS label (e.g. eu-west). Nodes are scheduled and viewers are routed by region.',
  ),
  origins: defaulted(OriginsSpecSchema).describe('Origin nodes of the region.'),
  edges: defaulted(EdgesSpecSchema).describe(
    'Edge nodes of the region (they serve WHEP viewers), scaled on viewers per edge.',
  ),
  transcoders: defaulted(TranscodersSpecSchema).describe('Transcoder nodes of the region.'),
});

/** The media node's own profile schema (its PROFILES): the CDN accepts exactly what it runs. */
export { CODECS, ProfileSchema };

export const AclSpecSchema = z.object({
  defaultPolicy: z
    .enum(['allow', 'deny'])
    .default('allow')
    .describe('Access to streams that no StreamACL selects: allow (open to everyone) or deny (refused).'),
});

export const EXPOSURES = ['hostPort', 'hostNetwork', 'nodePort'] as const;
export const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer'] as const;

export const NetworkSpecSchema = withRules(
  z.object({
    exposure: z
      .enum(EXPOSURES)
      .default('hostPort')
      .describe(
        'How media nodes expose their WebRTC ports: hostPort (ports on the Kubernetes node, one media node per role and Kubernetes node), hostNetwork (the pod uses the node network, same limit) or nodePort (every pod gets its own ports from a block per group and a NodePort Service for them, so several edges share a Kubernetes node; rtcPortBase must then lie in the cluster NodePort range, 30000-32767 by default).',
      ),
    serviceType: z
      .enum(SERVICE_TYPES)
      .default('ClusterIP')
      .describe(
        'Type of the per-region WHIP (origins) and WHEP (edges) Services. NodePort or LoadBalancer make them reachable from outside the cluster; status.regions[] gives their URLs.',
      ),
    rtcPortBase: portBase()
      .default(40000)
      .describe('First WebRTC port (UDP and TCP); worker i listens on rtcPortBase + i.'),
    workersPerNode: workers().default(2).describe('mediasoup workers (one CPU core each) per media node.'),
    announcedAddress: z
      .string()
      .min(1)
      .max(253)
      .optional()
      .describe(
        'Address announced in ICE candidates, overriding the address of the Kubernetes node (e.g. a public IP or DNS name in front of NAT).',
      ),
  }),
  [
    {
      rule: 'self.rtcPortBase + self.workersPerNode - 1 <= 65535',
      message: 'rtcPortBase + workersPerNode - 1 must not exceed 65535',
      fieldPath: '.rtcPortBase',
      violation: (network) =>
        network.rtcPortBase + network.workersPerNode - 1 <= 65535 ? undefined : ['rtcPortBase'],
    },
  ],
);

export const PlacementSpecSchema = z.object({
  regionLabel: z
    .string()
    .max(316)
    .regex(
      /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$|^$/,
      'must be a label key, or empty',
    )
    .default('topology.kubernetes.io/region')
    .describe(
      'Label of the Kubernetes nodes naming their region: the media nodes of a region run only on Kubernetes nodes whose label equals the region name. Empty: anywhere.',
    ),
});

export const RoleResourcesSchema = z.object({
  origin: ResourceRequirementsSchema.optional().describe('Resources of each origin node.'),
  edge: ResourceRequirementsSchema.optional().describe('Resources of each edge node.'),
  transcoder: ResourceRequirementsSchema.optional().describe('Resources of each transcoder node.'),
});

export const CDNSpecSchema = z
  .object({
    image: z
      .string()
      .min(1)
      .max(1024)
      .describe('Container image of the media node, e.g. ghcr.io/rtccdn/media-node:0.1.0.'),
    imagePullPolicy: z
      .enum(['Always', 'IfNotPresent', 'Never'])
      .optional()
      .describe('Pull policy of the image (Kubernetes default when omitted).'),
    redis: RedisSpecSchema.describe(
      'Redis through which media nodes find each other: exactly one of url or secretRef.',
    ),
    regions: keyedList(RegionSpecSchema, 'name', 'region names must be unique', { min: 1, max: 32 }).describe(
      'Regions of the CDN, each with its origins, edges and transcoders. At least one; names are unique.',
    ),
    profiles: keyedList(ProfileSchema, 'name', 'profile names must be unique', { max: MAX_PROFILES })
      .optional()
      .describe(
        'Transcoding ladder: renditions the transcoders produce from each stream. Empty: viewers get the published stream only.',
      ),
    adaptiveLadder: z
      .boolean()
      .default(false)
      .describe(
        'Viewers without ?profile play the source and its profiles as one ladder and move along it with their link (edges start every profile of a stream while any such viewer watches it). Off: they get the source as published, and renditions only on ?profile.',
      ),
    acl: defaulted(AclSpecSchema).describe('Access control defaults; StreamACL objects add keys per stream.'),
    network: defaulted(NetworkSpecSchema).describe('How media nodes receive WebRTC traffic.'),
    placement: defaulted(PlacementSpecSchema).describe('Where the media nodes of each region run.'),
    publishTokenSecretRef: SecretKeySelectorSchema.optional().describe(
      'Secret key holding the bearer token publishers must present to WHIP. Publishing is open when omitted.',
    ),
    resources: RoleResourcesSchema.optional().describe('Compute resources of the media nodes, per role.'),
  })
  .describe('Desired state of the CDN.');

export const RegionStatusSchema = z.object({
  name: dnsLabel().describe('Region name.'),
  originsReady: count().optional().describe('Origin nodes that are ready.'),
  edgesReady: count().optional().describe('Edge nodes that are ready.'),
  edgesDesired: count().optional().describe('Edge nodes the autoscaler currently wants.'),
  whipUrl: z
    .string()
    .optional()
    .describe(
      'Where publishers POST WHIP offers (append the stream name): outside the cluster with network.serviceType NodePort or LoadBalancer, inside it with ClusterIP. Absent for a region without origins.',
    ),
  whepUrl: z
    .string()
    .optional()
    .describe('Where viewers POST WHEP offers (append the stream name), reachable like whipUrl.'),
});

export const CDNStatusSchema = z
  .object({
    observedGeneration: observedGeneration().optional(),
    conditions: conditions('CDN').optional(),
    regions: keyedList(RegionStatusSchema, 'name', 'region names must be unique', { max: 32 })
      .optional()
      .describe('Per-region node counts.'),
    aclApiUrl: z
      .string()
      .optional()
      .describe('The ACL REST API of the operator, when it is enabled (append {stream}/acl).'),
    liveStreams: count().optional().describe('Streams being published now.'),
    viewers: count().optional().describe('Viewers playing now, over all regions.'),
  })
  .describe('Observed state of the CDN, written by the operator.');

export const CDNSchema = customResourceSchema(CDN_NAMES.kind, CDNSpecSchema, CDNStatusSchema);

/** A CDN as stored (defaults applied). */
export type CDN = z.output<typeof CDNSchema>;
/** A CDN as a user may write it (defaulted fields optional). */
export type CDNInput = z.input<typeof CDNSchema>;
export type CDNSpec = z.output<typeof CDNSpecSchema>;
export type CDNSpecInput = z.input<typeof CDNSpecSchema>;
export type CDNStatus = z.output<typeof CDNStatusSchema>;
export type RegionSpec = z.output<typeof RegionSpecSchema>;
export type RegionStatus = z.output<typeof RegionStatusSchema>;
export type Profile = z.output<typeof ProfileSchema>;
export type RedisSpec = z.output<typeof RedisSpecSchema>;
export type NetworkSpec = z.output<typeof NetworkSpecSchema>;
export type Exposure = (typeof EXPOSURES)[number];
export type ServiceType = (typeof SERVICE_TYPES)[number];
export type { Codec };
