/**
 * The operator's public API, group `rtccdn.io`, version `v1alpha1`: the `CDN`, `Node` and
 * `StreamACL` custom resources.
 *
 * This file is the single source of truth. The zod schemas below
 * - validate objects in TypeScript (the operator parses what it reads from the API server),
 * - give the TypeScript types (`z.input` = what users write, `z.output` = after defaults),
 * - and generate the CustomResourceDefinitions in `crds/` (operator/src/api/crdgen.ts,
 *   scripts/gen-crds.ts): `.describe()` texts become the OpenAPI descriptions that
 *   `kubectl explain` prints, `.default()`/`.prefault()` become server-side defaults, and the
 *   CEL rules attached with {@link withRules} become `x-kubernetes-validations`.
 *
 * Each CEL rule carries its TypeScript twin (`violation`), run by zod's parse, so the operator
 * and the API server reject the same objects with the same message. Rules that compare with
 * the previous object (`oldSelf`, e.g. immutable fields) exist only on the server.
 *
 * "Exactly one of a or b" is modelled as two optional fields plus a CEL rule, never as a zod
 * union of objects: unions of objects have no structural-schema form.
 */
import { z } from 'zod';
import { dnsLabel, dnsSubdomain } from '../kube/names.js';

// --- names ---------------------------------------------------------------------------------------

export const GROUP = 'rtccdn.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
/** `kubectl get rtccdn` lists every kind of the project. */
export const CATEGORY = 'rtccdn';

export interface ResourceNames {
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  categories: readonly string[];
}

export const CDN_NAMES = {
  kind: 'CDN',
  listKind: 'CDNList',
  plural: 'cdns',
  singular: 'cdn',
  shortNames: [],
  categories: [CATEGORY],
} as const satisfies ResourceNames;

/**
 * The kind is `Node`, like the core kind, and so is the plural `nodes`: kubectl resolves
 * `nodes` to the core resource first. Users type `nodes.rtccdn.io` or a short name (`cdnnode`).
 */
export const NODE_NAMES = {
  kind: 'Node',
  listKind: 'NodeList',
  plural: 'nodes',
  singular: 'node',
  shortNames: ['cdnnode', 'cdnnodes'],
  categories: [CATEGORY],
} as const satisfies ResourceNames;

export const STREAM_ACL_NAMES = {
  kind: 'StreamACL',
  listKind: 'StreamACLList',
  plural: 'streamacls',
  singular: 'streamacl',
  shortNames: ['sacl'],
  categories: [CATEGORY],
} as const satisfies ResourceNames;

// --- CEL rules next to the schemas ---------------------------------------------------------------

/** Metadata key under which a schema's CEL rules are stored (emitted verbatim into the CRD). */
export const X_VALIDATIONS = 'x-kubernetes-validations';
export const X_LIST_TYPE = 'x-kubernetes-list-type';
export const X_LIST_MAP_KEYS = 'x-kubernetes-list-map-keys';
export const X_INT_OR_STRING = 'x-kubernetes-int-or-string';

/** One entry of `x-kubernetes-validations`, as the API server reads it. */
export interface CelValidation {
  rule: string;
  message: string;
  /** Field the error is reported on, relative to the schema holding the rule (e.g. `.minReplicas`). */
  fieldPath?: string;
  /**
   * Error type reported. Beware: FieldValueDuplicate and FieldValueRequired drop the message
   * (the API server prints only "Duplicate value" / "Required value").
   */
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** A CEL rule and its TypeScript twin. */
export interface Rule<T> extends CelValidation {
  /**
   * The same check in TypeScript, run by zod's parse: returns the path (relative to the value,
   * `[]` for the value itself) of the first violation, or `undefined` when the value is valid.
   * Omitted only for transition rules (`oldSelf`), which need the previous object.
   */
  violation?: (value: T) => PropertyKey[] | undefined;
}

/**
 * Attaches CEL rules to a schema: they become `x-kubernetes-validations` in the CRD (appended to
 * rules already attached) and, through each rule's `violation`, zod refinements with the same
 * message.
 */
export function withRules<S extends z.ZodType>(schema: S, rules: readonly Rule<z.output<S>>[]): S {
  let refined = schema;
  for (const { message, violation } of rules) {
    if (!violation) continue;
    refined = refined.superRefine((value, ctx) => {
      const path = violation(value);
      if (path) ctx.addIssue({ code: 'custom', message, path, input: value });
    });
  }
  const existing = (z.globalRegistry.get(schema)?.[X_VALIDATIONS] as CelValidation[] | undefined) ?? [];
  const cel = rules.map(({ rule, message, fieldPath, reason }) => ({
    rule,
    message,
    ...(fieldPath === undefined ? {} : { fieldPath }),
    ...(reason === undefined ? {} : { reason }),
  }));
  return refined.meta({ [X_VALIDATIONS]: [...existing, ...cel] });
}

/** Exactly one of two optional fields of an object must be set. */
export function exactlyOneOf<T extends object>(a: keyof T & string, b: keyof T & string): Rule<T> {
  return {
    rule: `has(self.${a}) != has(self.${b})`,
    message: `exactly one of ${a} or ${b} must be set`,
    violation: (value) => ((value[a] === undefined) === (value[b] === undefined) ? [] : undefined),
  };
}

/** The items of a list have distinct values of `key` (reported on the first duplicate). */
export function uniqueBy<T extends object>(key: keyof T & string, message: string): Rule<T[]> {
  return {
    rule: `self.all(x, self.exists_one(y, y.${key} == x.${key}))`,
    message,
    violation: (items) => {
      const seen = new Set<unknown>();
      for (const [index, item] of items.entries()) {
        if (seen.has(item[key])) return [index, key];
        seen.add(item[key]);
      }
      return undefined;
    },
  };
}

/** A transition rule: the field cannot change once set (checked by the API server only). */
export function immutable(message: string): Rule<unknown> {
  return { rule: 'self == oldSelf', message };
}

/**
 * A list keyed by `key` (`x-kubernetes-list-type: map`): server-side apply merges its items by
 * key instead of replacing the whole list, and duplicate keys are rejected (with a CEL rule for a
 * readable message, twinned in zod).
 */
function keyedList<I extends z.ZodObject>(
  item: I,
  key: keyof z.output<I> & string,
  duplicateMessage: string,
  bounds: { min?: number; max: number },
) {
  let list = z.array(item).max(bounds.max);
  if (bounds.min !== undefined) list = list.min(bounds.min);
  return withRules(list, [uniqueBy<z.output<I>>(key, duplicateMessage)]).meta({
    [X_LIST_TYPE]: 'map',
    [X_LIST_MAP_KEYS]: [key],
  });
}

/**
 * An object whose fields all have defaults, itself defaulted when omitted. The default is the
 * complete object (not `{}`): the API server evaluates CEL rules on a default value as written,
 * before nested defaults apply, so `{}` would fail a rule such as `self.min <= self.max`.
 */
function defaulted<S extends z.ZodObject>(schema: S) {
  return schema.prefault(schema.parse({}) as z.input<S>);
}

// --- shared field types --------------------------------------------------------------------------

const INT32_MAX = 2_147_483_647;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
/** A Kubernetes resource.Quantity in its string form (same pattern as controller-gen emits). */
const QUANTITY =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
/** Stream names, as the media node accepts them (media-node/src/http/names.ts). */
const STREAM_NAME_CHARS = 'A-Za-z0-9._~-';
/** An exact stream name, or a prefix followed by `*` (`*` alone matches every stream). */
export const STREAM_SELECTOR = new RegExp(
  `^([${STREAM_NAME_CHARS}]{1,128}|[${STREAM_NAME_CHARS}]{0,127}\\*)$`,
);

/** Names of objects in the same namespace. */
const objectName = () => dnsSubdomain();

const count = () => z.int().min(0);

export const LocalObjectReferenceSchema = z.object({
  name: objectName().describe('Name of the referenced object, in the same namespace.'),
});

export const SecretKeySelectorSchema = z.object({
  name: objectName().describe('Name of the Secret, in the same namespace.'),
  key: z
    .string()
    .min(1)
    .max(253)
    .regex(SECRET_KEY, 'must be a Secret key (letters, digits, -, _ and .)')
    .describe('Key in the Secret whose value is used.'),
});

/**
 * A resource.Quantity: an integer or a string such as `500m` or `1Gi`. Marked int-or-string, so
 * the CRD declares it the way Kubernetes declares its own quantities.
 */
export const QuantitySchema = z
  .union([z.int().min(0), z.string().regex(QUANTITY, 'must be a quantity such as 500m, 2 or 1Gi')])
  .meta({ [X_INT_OR_STRING]: true });

export const ResourceRequirementsSchema = z.object({
  requests: z
    .record(z.string(), QuantitySchema)
    .optional()
    .describe('Minimum compute resources, e.g. {cpu: "2", memory: 1Gi}.'),
  limits: z
    .record(z.string(), QuantitySchema)
    .optional()
    .describe('Maximum compute resources, e.g. {memory: 2Gi}.'),
});

export const ConditionSchema = z.object({
  type: z
    .string()
    .min(1)
    .max(316)
    .regex(
      /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
    )
    .describe('Type of the condition in CamelCase, e.g. Ready.'),
  status: z.enum(['True', 'False', 'Unknown']).describe('Status of the condition: True, False or Unknown.'),
  observedGeneration: count()
    .optional()
    .describe('metadata.generation of the object when the condition was set.'),
  lastTransitionTime: z.iso
    .datetime({ offset: true })
    .describe('Last time the condition changed from one status to another.'),
  reason: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
    .describe('Programmatic identifier of the reason for the last transition, in CamelCase.'),
  message: z.string().max(32768).describe('Human-readable details about the last transition.'),
});

/** Standard `conditions` list (metav1.Condition), keyed by type. */
const conditions = (what: string) =>
  keyedList(ConditionSchema, 'type', 'condition types must be unique', { max: 32 }).describe(
    `Current state of the ${what}, as standard Kubernetes conditions.`,
  );

const observedGeneration = () =>
  count().describe('metadata.generation of the spec that the operator last reconciled.');

/** Kubernetes object metadata as the operator reads it (unknown fields are kept). */
export const ObjectMetaSchema = z.looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.int().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z
    .array(
      z.looseObject({
        apiVersion: z.string(),
        kind: z.string(),
        name: z.string(),
        uid: z.string(),
        controller: z.boolean().optional(),
        blockOwnerDeletion: z.boolean().optional(),
      }),
    )
    .optional(),
});
export type ObjectMeta = z.output<typeof ObjectMetaSchema>;

// --- CDN -----------------------------------------------------------------------------------------

export const ROLES = ['origin', 'edge', 'transcoder'] as const;
export type Role = (typeof ROLES)[number];

export const RedisSpecSchema = withRules(
  z.object({
    url: z
      .string()
      .max(2048)
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional()
      .describe(
        'Redis URL, e.g. redis://redis.rtccdn:6379/0 (rediss:// for TLS). Use secretRef when the URL carries a password.',
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

export const CODECS = ['VP8', 'H264'] as const;

export const ProfileSchema = z.object({
  name: dnsLabel().describe('Profile name, a DNS label (e.g. 720p); part of the rendition name.'),
  width: z.int().min(2).max(7680).multipleOf(2).describe('Width in pixels (even).'),
  height: z.int().min(2).max(7680).multipleOf(2).describe('Height in pixels (even).'),
  fps: z.int().min(1).max(120).default(30).describe('Frame rate, 1 to 120.'),
  codec: z.enum(CODECS).default('VP8').describe('Video codec: VP8 or H264.'),
  bitrate: z.int().min(50_000).max(100_000_000).describe('Target video bitrate in bits per second.'),
});

export const AclSpecSchema = z.object({
  defaultPolicy: z
    .enum(['allow', 'deny'])
    .default('allow')
    .describe('Access to streams that no StreamACL selects: allow (open to everyone) or deny (refused).'),
});

export const EXPOSURES = ['hostPort', 'hostNetwork', 'nodePort'] as const;

const portBase = () => z.int().min(1024).max(65535);
const workers = () => z.int().min(1).max(64);

export const NetworkSpecSchema = withRules(
  z.object({
    exposure: z
      .enum(EXPOSURES)
      .default('hostPort')
      .describe(
        'How media nodes expose their WebRTC ports: hostPort (ports on the Kubernetes node), hostNetwork (the pod uses the node network) or nodePort (a NodePort Service per port).',
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
    profiles: keyedList(ProfileSchema, 'name', 'profile names must be unique', { max: 16 })
      .optional()
      .describe(
        'Transcoding ladder: renditions the transcoders produce from each stream. Empty: viewers get the published stream only.',
      ),
    acl: defaulted(AclSpecSchema).describe('Access control defaults; StreamACL objects add keys per stream.'),
    network: defaulted(NetworkSpecSchema).describe('How media nodes receive WebRTC traffic.'),
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
});

export const CDNStatusSchema = z
  .object({
    observedGeneration: observedGeneration().optional(),
    conditions: conditions('CDN').optional(),
    regions: keyedList(RegionStatusSchema, 'name', 'region names must be unique', { max: 32 })
      .optional()
      .describe('Per-region node counts.'),
    liveStreams: count().optional().describe('Streams being published now.'),
    viewers: count().optional().describe('Viewers playing now, over all regions.'),
  })
  .describe('Observed state of the CDN, written by the operator.');

// --- Node ----------------------------------------------------------------------------------------

export const NodePortsSchema = withRules(
  z.object({
    rtcPortBase: portBase().describe('First WebRTC port (UDP and TCP); worker i listens on rtcPortBase + i.'),
    workers: workers().describe('mediasoup workers (one CPU core each) per media node.'),
  }),
  [
    {
      rule: 'self.rtcPortBase + self.workers - 1 <= 65535',
      message: 'rtcPortBase + workers - 1 must not exceed 65535',
      fieldPath: '.rtcPortBase',
      violation: (ports) => (ports.rtcPortBase + ports.workers - 1 <= 65535 ? undefined : ['rtcPortBase']),
    },
  ],
);

export const CDNNodeSpecSchema = z
  .object({
    cdnRef: withRules(LocalObjectReferenceSchema, [immutable('cdnRef is immutable')]).describe(
      'The CDN this group of media nodes belongs to.',
    ),
    role: withRules(z.enum(ROLES), [immutable('role is immutable')]).describe(
      'Role of the media nodes: origin, edge or transcoder.',
    ),
    region: withRules(dnsLabel(), [immutable('region is immutable')]).describe(
      'Region of the media nodes (one of the CDN regions).',
    ),
    replicas: count()
      .max(INT32_MAX)
      .default(1)
      .describe(
        'Number of media nodes. Set by the operator, or by an autoscaler through the scale subresource.',
      ),
    resources: ResourceRequirementsSchema.optional().describe(
      'Compute resources of each media node (defaults to the CDN resources of the role).',
    ),
    ports: NodePortsSchema.optional().describe(
      'WebRTC ports of the media nodes (defaults to the CDN network).',
    ),
  })
  .describe('Desired state of a group of media nodes of one role in one region.');

export const CDNNodeStatusSchema = z
  .object({
    replicas: count().optional().describe('Media nodes that exist (the scale subresource reads this).'),
    readyReplicas: count().optional().describe('Media nodes that are ready.'),
    selector: z
      .string()
      .optional()
      .describe('Label selector of the media node pods, in string form (used by autoscalers).'),
    viewers: count().optional().describe('Viewers playing from these media nodes.'),
    streams: count().optional().describe('Streams on these media nodes.'),
    observedGeneration: observedGeneration().optional(),
    conditions: conditions('media nodes').optional(),
  })
  .describe('Observed state of the media nodes, written by the operator.');

// --- StreamACL -----------------------------------------------------------------------------------

export const StreamKeySchema = withRules(
  z.object({
    id: dnsLabel().describe('Identifier of the key, unique in the list (e.g. obs-studio, partner-a).'),
    value: z
      .string()
      .min(16)
      .max(4096)
      .optional()
      .describe(
        'The key itself, at least 16 characters. Readable by anyone who can read this object: prefer secretKeyRef.',
      ),
    secretKeyRef: SecretKeySelectorSchema.optional().describe(
      'Secret key holding the key. The Secret (in the StreamACL namespace) must be labelled rtccdn.io/access-keys=true: the operator reads keys from no other Secret.',
    ),
    expiresAt: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('When the key stops being accepted (RFC 3339). Never when omitted.'),
  }),
  [exactlyOneOf('value', 'secretKeyRef')],
);

export const StreamACLSpecSchema = z
  .object({
    cdnRef: LocalObjectReferenceSchema.describe('The CDN whose streams this ACL guards.'),
    stream: z
      .string()
      .regex(
        STREAM_SELECTOR,
        'must be a stream name (1-128 of A-Z a-z 0-9 . _ ~ -) or a prefix followed by * (e.g. sales-*)',
      )
      .describe(
        'Streams guarded: an exact stream name (1-128 characters of A-Z a-z 0-9 . _ ~ -) or a prefix followed by * (e.g. sales-*; * alone selects every stream).',
      ),
    keys: keyedList(StreamKeySchema, 'id', 'key ids must be unique', { min: 1, max: 64 }).describe(
      'Keys that grant access to the selected streams; each has exactly one of value or secretKeyRef.',
    ),
  })
  .describe('Desired state of the stream access list.');

export const StreamACLStatusSchema = z
  .object({
    observedGeneration: observedGeneration().optional(),
    conditions: conditions('stream access list (e.g. Synced)').optional(),
    syncedKeys: count().optional().describe('Keys synchronised to the media nodes.'),
    lastSyncTime: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('When the keys were last synchronised to the media nodes.'),
  })
  .describe('Observed state of the stream access list, written by the operator.');

// --- full objects and types ----------------------------------------------------------------------

function resource<K extends string, Spec extends z.ZodType, Status extends z.ZodType>(
  kind: K,
  spec: Spec,
  status: Status,
) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(kind),
    metadata: ObjectMetaSchema,
    spec,
    status: status.optional(),
  });
}

export const CDNSchema = resource(CDN_NAMES.kind, CDNSpecSchema, CDNStatusSchema);
export const CDNNodeSchema = resource(NODE_NAMES.kind, CDNNodeSpecSchema, CDNNodeStatusSchema);
export const StreamACLSchema = resource(STREAM_ACL_NAMES.kind, StreamACLSpecSchema, StreamACLStatusSchema);

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
export type Codec = (typeof CODECS)[number];
export type ResourceRequirements = z.output<typeof ResourceRequirementsSchema>;
export type SecretKeySelector = z.output<typeof SecretKeySelectorSchema>;
export type LocalObjectReference = z.output<typeof LocalObjectReferenceSchema>;
export type Condition = z.output<typeof ConditionSchema>;

/**
 * A `Node` of group rtccdn.io (a group of media nodes of one role in one region). Named CDNNode
 * in TypeScript so it never shadows the DOM's global `Node` type.
 */
export type CDNNode = z.output<typeof CDNNodeSchema>;
export type CDNNodeInput = z.input<typeof CDNNodeSchema>;
export type CDNNodeSpec = z.output<typeof CDNNodeSpecSchema>;
export type CDNNodeSpecInput = z.input<typeof CDNNodeSpecSchema>;
export type CDNNodeStatus = z.output<typeof CDNNodeStatusSchema>;

export type StreamACL = z.output<typeof StreamACLSchema>;
export type StreamACLInput = z.input<typeof StreamACLSchema>;
export type StreamACLSpec = z.output<typeof StreamACLSpecSchema>;
export type StreamACLSpecInput = z.input<typeof StreamACLSpecSchema>;
export type StreamACLStatus = z.output<typeof StreamACLStatusSchema>;
export type StreamKey = z.output<typeof StreamKeySchema>;

// --- what the CRDs are made of -------------------------------------------------------------------

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  /** 0: shown by `kubectl get`; 1 and more: only with `-o wide`. */
  priority?: number;
}

export interface ScaleSubresource {
  specReplicasPath: string;
  statusReplicasPath: string;
  labelSelectorPath?: string;
}

/** Everything crdgen needs to build one CustomResourceDefinition. */
export interface ResourceDefinition {
  names: ResourceNames;
  scope: 'Namespaced' | 'Cluster';
  /** Description of the whole object (`kubectl explain <plural>`). */
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: readonly PrinterColumn[];
  scale?: ScaleSubresource;
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
const readyCondition = (type: string): PrinterColumn => ({
  name: type,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
  description: `Status of the ${type} condition.`,
});

export const CDN_RESOURCE: ResourceDefinition = {
  names: CDN_NAMES,
  scope: 'Namespaced',
  description:
    'A CDN for sub-second WebRTC live streaming: origins take WHIP publishers, edges serve WHEP viewers, per region. The operator creates one Node object per region and role.',
  spec: CDNSpecSchema,
  status: CDNStatusSchema,
  printerColumns: [
    readyCondition('Ready'),
    { name: 'Streams', type: 'integer', jsonPath: '.status.liveStreams', description: 'Live streams.' },
    { name: 'Viewers', type: 'integer', jsonPath: '.status.viewers', description: 'Viewers playing.' },
    AGE,
    { name: 'Image', type: 'string', jsonPath: '.spec.image', description: 'Media node image.', priority: 1 },
  ],
};

export const NODE_RESOURCE: ResourceDefinition = {
  names: NODE_NAMES,
  scope: 'Namespaced',
  description:
    'A group of rtccdn media nodes of one role (origin, edge or transcoder) in one region of a CDN. Created by the operator from the CDN; scalable through the scale subresource (kubectl scale, HorizontalPodAutoscaler).',
  spec: CDNNodeSpecSchema,
  status: CDNNodeStatusSchema,
  printerColumns: [
    { name: 'Role', type: 'string', jsonPath: '.spec.role', description: 'Role of the media nodes.' },
    { name: 'Region', type: 'string', jsonPath: '.spec.region', description: 'Region of the media nodes.' },
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas', description: 'Desired media nodes.' },
    { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Ready media nodes.' },
    { name: 'Viewers', type: 'integer', jsonPath: '.status.viewers', description: 'Viewers playing.' },
    AGE,
    { name: 'CDN', type: 'string', jsonPath: '.spec.cdnRef.name', description: 'Owning CDN.', priority: 1 },
  ],
  scale: {
    specReplicasPath: '.spec.replicas',
    statusReplicasPath: '.status.replicas',
    labelSelectorPath: '.status.selector',
  },
};

export const STREAM_ACL_RESOURCE: ResourceDefinition = {
  names: STREAM_ACL_NAMES,
  scope: 'Namespaced',
  description:
    'Access keys for the streams of a CDN whose name matches an exact name or a prefix: a client must present one of the keys to access a selected stream.',
  spec: StreamACLSpecSchema,
  status: StreamACLStatusSchema,
  printerColumns: [
    { name: 'Stream', type: 'string', jsonPath: '.spec.stream', description: 'Stream name or prefix*.' },
    { name: 'Keys', type: 'integer', jsonPath: '.status.syncedKeys', description: 'Keys synchronised.' },
    readyCondition('Synced'),
    AGE,
    { name: 'CDN', type: 'string', jsonPath: '.spec.cdnRef.name', description: 'Guarded CDN.', priority: 1 },
  ],
};

/** The resources of rtccdn.io/v1alpha1, in the order their CRDs are generated. */
export const RESOURCES: readonly ResourceDefinition[] = [CDN_RESOURCE, NODE_RESOURCE, STREAM_ACL_RESOURCE];
