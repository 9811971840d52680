/**
 * zod schemas for the parts of Kubernetes objects the operator reads. Objects from the API
 * server are parsed at the boundary (the client hands out `unknown`); unknown fields are kept,
 * so parsing never loses data that is written back.
 */
import { z } from 'zod';
import { ObjectMetaSchema } from '../api/v1alpha1.js';

/** Any object: apiVersion, kind and metadata with a name. */
export const KubeObjectSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: ObjectMetaSchema.extend({ name: z.string().min(1) }),
});
export type KubeObject = z.output<typeof KubeObjectSchema>;

export interface ObjectKey {
  namespace: string;
  name: string;
}

/** `namespace/name` (or `name` for cluster-scoped objects): the work-queue key. */
export const objectKey = (namespace: string | undefined, name: string): string =>
  namespace ? `${namespace}/${name}` : name;

export function parseObjectKey(key: string): ObjectKey {
  const slash = key.indexOf('/');
  return slash < 0
    ? { namespace: '', name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export const keyOf = (object: KubeObject): string =>
  objectKey(object.metadata.namespace, object.metadata.name);

export const ListSchema = z.looseObject({
  metadata: z.looseObject({ resourceVersion: z.string().optional(), continue: z.string().optional() }),
  items: z.array(z.unknown()).nullish(),
});

export const StatefulSetStatusSchema = z.looseObject({
  replicas: z.number().int().optional(),
  readyReplicas: z.number().int().optional(),
  updatedReplicas: z.number().int().optional(),
  /** The revision new pods get (controller-revision-hash label), and the one of the oldest. */
  updateRevision: z.string().optional(),
  currentRevision: z.string().optional(),
  availableReplicas: z.number().int().optional(),
  observedGeneration: z.number().int().optional(),
});

export const StatefulSetSchema = KubeObjectSchema.extend({
  spec: z.looseObject({ replicas: z.number().int().optional() }).optional(),
  status: StatefulSetStatusSchema.optional(),
});
export type StatefulSetObject = z.output<typeof StatefulSetSchema>;

/** The parts of a Service the operator reads: assigned node ports and load balancer addresses. */
export const ServiceSchema = KubeObjectSchema.extend({
  spec: z
    .looseObject({
      type: z.string().optional(),
      ports: z
        .array(
          z.looseObject({
            name: z.string().optional(),
            port: z.number().int(),
            nodePort: z.number().int().optional(),
          }),
        )
        .nullish(),
    })
    .optional(),
  status: z
    .looseObject({
      loadBalancer: z
        .looseObject({
          ingress: z
            .array(z.looseObject({ ip: z.string().optional(), hostname: z.string().optional() }))
            .nullish(),
        })
        .optional(),
    })
    .optional(),
});
export type ServiceObject = z.output<typeof ServiceSchema>;

const ContainerStateSchema = z.looseObject({
  waiting: z.looseObject({ reason: z.string().optional(), message: z.string().optional() }).optional(),
  terminated: z
    .looseObject({
      reason: z.string().optional(),
      message: z.string().optional(),
      exitCode: z.number().int(),
    })
    .optional(),
});

/** The parts of a Pod the operator reads: why it is not running or not ready. */
export const PodSchema = KubeObjectSchema.extend({
  status: z
    .looseObject({
      phase: z.string().optional(),
      conditions: z
        .array(
          z.looseObject({
            type: z.string(),
            status: z.string(),
            reason: z.string().optional(),
            message: z.string().optional(),
          }),
        )
        .nullish(),
      containerStatuses: z
        .array(
          z.looseObject({
            name: z.string(),
            ready: z.boolean().optional(),
            restartCount: z.number().int().optional(),
            state: ContainerStateSchema.optional(),
            lastState: ContainerStateSchema.optional(),
          }),
        )
        .nullish(),
    })
    .optional(),
});
export type PodObject = z.output<typeof PodSchema>;

/** The parts of a Kubernetes Node the operator reads: its addresses and readiness. */
export const KubeNodeSchema = KubeObjectSchema.extend({
  status: z
    .looseObject({
      addresses: z.array(z.looseObject({ type: z.string(), address: z.string() })).nullish(),
      conditions: z.array(z.looseObject({ type: z.string(), status: z.string() })).nullish(),
    })
    .optional(),
});
export type KubeNodeObject = z.output<typeof KubeNodeSchema>;

export const SecretSchema = KubeObjectSchema.extend({
  /** Values are base64. */
  data: z.record(z.string(), z.string()).nullish(),
  type: z.string().optional(),
});
export type SecretObject = z.output<typeof SecretSchema>;

/** The value of one key of a Secret, decoded; undefined when the key is absent. */
export function secretValue(secret: SecretObject, key: string): string | undefined {
  const encoded = secret.data?.[key];
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
}

export const LeaseSpecSchema = z.looseObject({
  holderIdentity: z.string().nullish(),
  leaseDurationSeconds: z.number().int().nullish(),
  acquireTime: z.string().nullish(),
  renewTime: z.string().nullish(),
  leaseTransitions: z.number().int().nullish(),
});
export const LeaseSchema = KubeObjectSchema.extend({ spec: LeaseSpecSchema.optional() });
export type LeaseObject = z.output<typeof LeaseSchema>;

/** The controller ownerReference of an object, if any. */
export function controllerOf(object: {
  metadata: Pick<KubeObject['metadata'], 'ownerReferences'>;
}): { apiVersion: string; kind: string; name: string; uid: string } | undefined {
  return object.metadata.ownerReferences?.find((reference) => reference.controller === true);
}

/** An ownerReference that makes `owner` the controller of the object that carries it. */
export function controllerReference(owner: {
  apiVersion: string;
  kind: string;
  metadata: { name?: string | undefined; uid?: string | undefined };
}): {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: true;
  blockOwnerDeletion: true;
} {
  if (!owner.metadata.name || !owner.metadata.uid) {
    throw new TypeError(`owner ${owner.kind} has no name or uid (not read from the API server?)`);
  }
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}
