/** The CustomResourceDefinitions of rtccdn.io/v1alpha1 beyond their schemas: printer columns above all. */
import { AGE_COLUMN, conditionColumn, type ResourceDefinition } from '../definition.js';
import { CDN_NAMES, CDNSpecSchema, CDNStatusSchema } from './cdn.js';
import { CDNNodeSpecSchema, CDNNodeStatusSchema, NODE_NAMES } from './node.js';
import { STREAM_ACL_NAMES, StreamACLSpecSchema, StreamACLStatusSchema } from './streamacl.js';

export const CDN_RESOURCE: ResourceDefinition = {
  names: CDN_NAMES,
  scope: 'Namespaced',
  description:
    'A CDN for sub-second WebRTC live streaming: origins take WHIP publishers, edges serve WHEP viewers, per region. The operator creates one Node object per region and role.',
  spec: CDNSpecSchema,
  status: CDNStatusSchema,
  printerColumns: [
    conditionColumn('Ready'),
    { name: 'Streams', type: 'integer', jsonPath: '.status.liveStreams', description: 'Live streams.' },
    { name: 'Viewers', type: 'integer', jsonPath: '.status.viewers', description: 'Viewers playing.' },
    AGE_COLUMN,
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
    AGE_COLUMN,
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
    conditionColumn('Synced'),
    AGE_COLUMN,
    { name: 'CDN', type: 'string', jsonPath: '.spec.cdnRef.name', description: 'Guarded CDN.', priority: 1 },
  ],
};

/** The resources of rtccdn.io/v1alpha1, in the order their CRDs are generated. */
export const RESOURCES: readonly ResourceDefinition[] = [CDN_RESOURCE, NODE_RESOURCE, STREAM_ACL_RESOURCE];
