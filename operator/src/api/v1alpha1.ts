/**
 * The operator's public API, group `rtccdn.io`, version `v1alpha1`: the `CDN`, `Node` and
 * `StreamACL` custom resources. This index re-exports it; the parts live in `v1alpha1/`:
 *
 * - `cdn.ts`, `node.ts`, `streamacl.ts`: one kind each (names, schemas, types);
 * - `fields.ts`: field types the kinds share (references, quantities, conditions, metadata);
 * - `definitions.ts`: what each CRD adds to its schemas (printer columns, scale subresource);
 * - `group.ts`: the group and version.
 *
 * The zod schemas are the single source of truth. They
 * - validate objects in TypeScript (the operator's caches parse what they read with them),
 * - give the TypeScript types (`z.input` = what users write, `z.output` = after defaults),
 * - and generate the CustomResourceDefinitions in `crds/` (scripts/gen-crds.ts with
 *   scripts/crds/crdgen.ts): `.describe()` texts become the OpenAPI descriptions that
 *   `kubectl explain` prints, `.default()`/`.prefault()` become server-side defaults, and the
 *   CEL rules attached with `withRules` (../rules.ts) become `x-kubernetes-validations`.
 *
 * "Exactly one of a or b" is modelled as two optional fields plus a CEL rule, never as a zod
 * union of objects: unions of objects have no structural-schema form.
 */
export * from './v1alpha1/cdn.js';
export * from './v1alpha1/definitions.js';
export {
  type Condition,
  ConditionSchema,
  type LocalObjectReference,
  LocalObjectReferenceSchema,
  type ObjectMeta,
  ObjectMetaSchema,
  QuantitySchema,
  type ResourceRequirements,
  ResourceRequirementsSchema,
  ROLES,
  type Role,
  type SecretKeySelector,
  SecretKeySelectorSchema,
} from './v1alpha1/fields.js';
export * from './v1alpha1/group.js';
export * from './v1alpha1/node.js';
export * from './v1alpha1/streamacl.js';
