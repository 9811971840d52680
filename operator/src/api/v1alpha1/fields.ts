/** Field types the rtccdn.io/v1alpha1 kinds share, and the shape of a whole custom object. */
import { z } from 'zod';
import { dnsSubdomain } from '../../kube/names.js';
import { keyedList, X_INT_OR_STRING } from '../rules.js';
import { API_VERSION } from './group.js';

export const INT32_MAX = 2_147_483_647;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
/** A Kubernetes resource.Quantity in its string form (same pattern as controller-gen emits). */
const QUANTITY =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

/** Names of objects in the same namespace. */
const objectName = () => dnsSubdomain();

export const count = () => z.int().min(0);

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
export const conditions = (what: string) =>
  keyedList(ConditionSchema, 'type', 'condition types must be unique', { max: 32 }).describe(
    `Current state of the ${what}, as standard Kubernetes conditions.`,
  );

export const observedGeneration = () =>
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

export const ROLES = ['origin', 'edge', 'transcoder'] as const;
export type Role = (typeof ROLES)[number];

/** The first WebRTC port of a media node. */
export const portBase = () => z.int().min(1024).max(65535);
/** mediasoup workers per media node. */
export const workers = () => z.int().min(1).max(64);

/** A whole custom object of `kind`: apiVersion, kind, metadata, spec and status. */
export function customResourceSchema<K extends string, Spec extends z.ZodType, Status extends z.ZodType>(
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

export type ResourceRequirements = z.output<typeof ResourceRequirementsSchema>;
export type SecretKeySelector = z.output<typeof SecretKeySelectorSchema>;
export type LocalObjectReference = z.output<typeof LocalObjectReferenceSchema>;
export type Condition = z.output<typeof ConditionSchema>;
