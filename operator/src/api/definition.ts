/**
 * What a CustomResourceDefinition is made of besides its schemas: names, scope, description,
 * printer columns and the scale subresource. Each API version lists its resources with these
 * (v1alpha1/definitions.ts); the generator (scripts/crds/crdgen.ts) turns them into CRDs.
 */
import type { z } from 'zod';

export interface ResourceNames {
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  categories: readonly string[];
}

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

/** The object's age, last of the default columns as kubectl prints it. */
export const AGE_COLUMN: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
};
/** The status of a condition (e.g. Ready) as a column. */
export const conditionColumn = (type: string): PrinterColumn => ({
  name: type,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
  description: `Status of the ${type} condition.`,
});
