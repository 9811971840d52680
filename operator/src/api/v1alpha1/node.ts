/** The `Node` kind: a group of media nodes of one role in one region of a CDN. */
import { z } from 'zod';
import { dnsLabel } from '../../kube/names.js';
import type { ResourceNames } from '../definition.js';
import { immutable, withRules } from '../rules.js';
import {
  conditions,
  count,
  customResourceSchema,
  INT32_MAX,
  LocalObjectReferenceSchema,
  observedGeneration,
  portBase,
  ResourceRequirementsSchema,
  ROLES,
  workers,
} from './fields.js';
import { CATEGORY } from './group.js';

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

/** Most pods a Node can give ports of their own (nodePort exposure). */
export const MAX_POD_SLOTS = 1000;

export const NodePortsSchema = withRules(
  z.object({
    rtcPortBase: portBase().describe('First WebRTC port (UDP and TCP); worker i listens on rtcPortBase + i.'),
    workers: workers().describe('mediasoup workers (one CPU core each) per media node.'),
    podSlots: z
      .int()
      .min(1)
      .max(MAX_POD_SLOTS)
      .optional()
      .describe(
        'With network exposure nodePort: how many pods get ports of their own. Pod i listens on rtcPortBase + i × workers + w and gets a NodePort Service with those ports; pods beyond podSlots are not run. Set by the CDN controller.',
      ),
  }),
  [
    {
      rule: 'self.rtcPortBase + (has(self.podSlots) ? self.podSlots : 1) * self.workers - 1 <= 65535',
      message: 'the ports (rtcPortBase + podSlots × workers - 1) must not exceed 65535',
      fieldPath: '.rtcPortBase',
      violation: (ports) =>
        ports.rtcPortBase + (ports.podSlots ?? 1) * ports.workers - 1 <= 65535 ? undefined : ['rtcPortBase'],
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

export const CDNNodeSchema = customResourceSchema(NODE_NAMES.kind, CDNNodeSpecSchema, CDNNodeStatusSchema);

/**
 * A `Node` of group rtccdn.io (a group of media nodes of one role in one region). Named CDNNode
 * in TypeScript so it never shadows the DOM's global `Node` type.
 */
export type CDNNode = z.output<typeof CDNNodeSchema>;
export type CDNNodeInput = z.input<typeof CDNNodeSchema>;
export type CDNNodeSpec = z.output<typeof CDNNodeSpecSchema>;
export type CDNNodeSpecInput = z.input<typeof CDNNodeSpecSchema>;
export type CDNNodeStatus = z.output<typeof CDNNodeStatusSchema>;
