/**
 * CustomResourceDefinitions from the zod schemas of operator/src/api/v1alpha1.ts: a build tool,
 * never loaded by the operator at run time. Pure functions, no I/O: scripts/gen-crds.ts writes
 * their output to crds/, and the tests compare it with the committed files.
 *
 * A CRD schema must be *structural* (the API server refuses anything else), and zod's JSON Schema
 * is not: {@link toStructuralSchema} converts `z.toJSONSchema(schema, { io: 'input',
 * target: 'openapi-3.0' })` into the OpenAPI v3 subset Kubernetes accepts, and throws a
 * {@link StructuralSchemaError} naming the JSON path of anything it cannot convert, rather than
 * emit a schema that the API server rejects or, worse, that silently prunes fields.
 *
 * - `io: 'input'`: fields with a default are optional, and the default is emitted (the API server
 *   applies it); `.prefault({})` on an object becomes `default: {}`, so nested defaults apply.
 * - Dropped: `$schema`, `additionalProperties: false` (Kubernetes prunes unknown fields),
 *   `propertyNames: {type: string}` (record keys), the ±2^53-1 bounds zod puts on every `z.int()`,
 *   and zod's own regex next to `format: date-time` / `date` (the API server checks the format).
 * - Unions: a nullable union becomes `nullable: true`; a union of enums of one type becomes one
 *   enum; a union marked `x-kubernetes-int-or-string` (integer | string) becomes the int-or-string
 *   form, with the string branch's pattern and the integer branch's bounds lifted. Any other union
 *   (objects: "exactly one of" shapes) throws: model those as optional fields plus a CEL rule
 *   (`exactlyOneOf` in operator/src/api/rules.ts).
 * - Open objects (`z.looseObject`, `additionalProperties: {}`) become
 *   `x-kubernetes-preserve-unknown-fields: true`.
 * - `x-kubernetes-*` metadata attached with `.meta()` (CEL rules, list types, …) is copied through.
 * - Keys are sorted (like controller-gen's output) so the generated YAML is stable.
 */
import { stringify } from 'yaml';
import { z } from 'zod';
import type {
  PrinterColumn,
  ResourceDefinition,
  ScaleSubresource,
} from '../../operator/src/api/definition.js';
import { type CelValidation, X_INT_OR_STRING } from '../../operator/src/api/rules.js';
import { API_VERSION, GROUP, RESOURCES, VERSION } from '../../operator/src/api/v1alpha1.js';

// --- types ---------------------------------------------------------------------------------------

type SchemaType = 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';

/** The structural subset of apiextensions.k8s.io/v1 JSONSchemaProps that crdgen emits. */
export interface JSONSchemaProps {
  type?: SchemaType;
  description?: string;
  title?: string;
  format?: string;
  default?: unknown;
  enum?: unknown[];
  nullable?: boolean;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  required?: string[];
  properties?: Record<string, JSONSchemaProps>;
  items?: JSONSchemaProps;
  additionalProperties?: JSONSchemaProps;
  /** Only in int-or-string nodes: exactly `[{type: integer}, {type: string}]`. */
  anyOf?: JSONSchemaProps[];
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-preserve-unknown-fields'?: true;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: CelValidation[];
}

export interface CustomResourceDefinitionVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema: { openAPIV3Schema: JSONSchemaProps };
  subresources: { status: Record<string, never>; scale?: ScaleSubresource };
  additionalPrinterColumns: PrinterColumn[];
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames?: string[];
      categories: string[];
    };
    scope: 'Namespaced' | 'Cluster';
    versions: CustomResourceDefinitionVersion[];
  };
}

/** A construct that has no structural form, at a JSON path such as `.spec.regions[*].name`. */
export class StructuralSchemaError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path || '.'}: ${reason}`);
    this.name = 'StructuralSchemaError';
  }
}

// --- zod → structural schema ---------------------------------------------------------------------

type Raw = Record<string, unknown>;

const SAFE_INTEGER_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

/** Formats the API server validates (k8s.io/apiextensions-apiserver supportedFormats). */
const SUPPORTED_FORMATS = new Set([
  'bsonobjectid',
  'uri',
  'email',
  'hostname',
  'ipv4',
  'ipv6',
  'cidr',
  'mac',
  'uuid',
  'uuid3',
  'uuid4',
  'uuid5',
  'isbn',
  'isbn10',
  'isbn13',
  'creditcard',
  'ssn',
  'hexcolor',
  'rgbcolor',
  'byte',
  'password',
  'date',
  'duration',
  'datetime',
  'date-time',
]);
/** Formats for which zod also emits a regex of its own, redundant with the server's format check. */
const FORMATS_WITHOUT_ZOD_PATTERN = new Set(['date-time', 'date']);

const STRING_KEYWORDS = ['pattern', 'minLength', 'maxLength', 'format'] as const;
const NUMBER_KEYWORDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'] as const;

/** Hints for keywords that have no structural form. */
const UNSUPPORTED: ReadonlyMap<string, string> = new Map([
  ['$ref', 'references are not allowed in a CRD schema (a zod schema with an `id` is extracted to a $ref)'],
  ['$defs', 'definitions are not allowed in a CRD schema'],
  ['definitions', 'definitions are not allowed in a CRD schema'],
  ['allOf', 'allOf is not supported (use a single z.object)'],
  ['not', 'not is not structural'],
  ['patternProperties', 'patternProperties is not allowed in a CRD schema'],
  ['uniqueItems', 'uniqueItems is not allowed in a CRD schema (use x-kubernetes-list-type: set or map)'],
  ['prefixItems', 'tuples are not structural'],
  ['if', 'if/then/else is not structural (use a CEL rule)'],
  ['then', 'if/then/else is not structural (use a CEL rule)'],
  ['else', 'if/then/else is not structural (use a CEL rule)'],
  ['dependentRequired', 'dependentRequired is not structural (use a CEL rule)'],
  ['dependentSchemas', 'dependentSchemas is not structural (use a CEL rule)'],
]);

const X_KEYS = new Set([
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
]);

function isObject(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(path: string, reason: string): never {
  throw new StructuralSchemaError(path, reason);
}

/** Is this union branch zod's encoding of `null` (`{type: null}` or openapi-3.0's `{nullable, enum: [null]}`)? */
function isNullBranch(branch: unknown): boolean {
  if (!isObject(branch)) return false;
  if (branch.type === 'null') return true;
  return (
    branch.nullable === true &&
    Array.isArray(branch.enum) &&
    branch.enum.length === 1 &&
    branch.enum[0] === null
  );
}

/** Replaces an anyOf/oneOf with an equivalent single schema, or throws. */
function lowerUnion(node: Raw, path: string): Raw {
  if ('anyOf' in node && 'oneOf' in node) fail(path, 'both anyOf and oneOf');
  const keyword = 'anyOf' in node ? 'anyOf' : 'oneOf';
  const branches = node[keyword];
  if (!Array.isArray(branches) || branches.length === 0) fail(path, `${keyword} must be a non-empty list`);
  const rest: Raw = { ...node };
  delete rest[keyword];

  if (rest[X_INT_OR_STRING] === true) return lowerIntOrString(rest, branches, `${path}`);

  const alternatives = branches.filter((branch) => !isNullBranch(branch));
  if (alternatives.length === 0) fail(path, 'a value that can only be null has no structural form');
  const nullable = alternatives.length < branches.length ? { nullable: true } : {};
  if (alternatives.length === 1) {
    // The outer node's keys (description, default) win over the branch's.
    return { ...(alternatives[0] as Raw), ...rest, ...nullable };
  }
  const enumOnly = alternatives.every(
    (branch) =>
      isObject(branch) &&
      Array.isArray(branch.enum) &&
      Object.keys(branch).every((key) => key === 'type' || key === 'enum' || key === 'description'),
  );
  const types = new Set(alternatives.map((branch) => (branch as Raw).type));
  if (enumOnly && types.size === 1) {
    const values = alternatives.flatMap((branch) => (branch as Raw).enum as unknown[]);
    return { type: [...types][0], ...rest, enum: [...new Set(values)], ...nullable };
  }
  return fail(
    path,
    `${keyword} with ${alternatives.length} alternatives is not structural; model "exactly one of" as ` +
      'optional fields with a CEL rule (exactlyOneOf), or mark an integer|string union x-kubernetes-int-or-string',
  );
}

/** `z.union([z.int(), z.string()])` marked int-or-string: lift each branch's own constraints. */
function lowerIntOrString(rest: Raw, branches: unknown[], path: string): Raw {
  const lifted: Raw = { ...rest };
  const seen = new Set<unknown>();
  for (const [index, branch] of branches.entries()) {
    const at = `${path}.anyOf[${index}]`;
    if (!isObject(branch)) fail(at, 'is not a schema object');
    const { type, ...constraints } = branch;
    if (type !== 'integer' && type !== 'string') {
      fail(at, `x-kubernetes-int-or-string allows integer and string alternatives, not ${String(type)}`);
    }
    if (seen.has(type)) fail(at, `a second ${type} alternative`);
    seen.add(type);
    const allowed: readonly string[] = type === 'string' ? STRING_KEYWORDS : NUMBER_KEYWORDS;
    for (const [key, value] of Object.entries(constraints)) {
      if (!allowed.includes(key))
        fail(`${at}.${key}`, `cannot be lifted out of an int-or-string alternative`);
      if (key === 'minimum' || key === 'maximum') {
        if (SAFE_INTEGER_BOUNDS.has(value as number)) continue;
      }
      if (key in lifted && lifted[key] !== value) fail(`${at}.${key}`, 'conflicts with another alternative');
      lifted[key] = value;
    }
  }
  if (seen.size !== 2) fail(path, 'x-kubernetes-int-or-string needs an integer and a string alternative');
  return lifted;
}

function takeNumber(node: Raw, key: string, path: string): number | undefined {
  const value = node[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`${path}.${key}`, 'must be a finite number');
  return value;
}

function takeNonNegativeInt(node: Raw, key: string, path: string): number | undefined {
  const value = takeNumber(node, key, path);
  if (value !== undefined && (!Number.isInteger(value) || value < 0)) {
    fail(`${path}.${key}`, 'must be a non-negative integer');
  }
  return value;
}

function rewrite(input: unknown, path: string): JSONSchemaProps {
  if (!isObject(input)) fail(path, 'is not a schema object');
  let node: Raw = { ...input };
  delete node.$schema;
  // Definitions are reported after the properties, so that the $ref using them names its path.
  for (const [keyword, reason] of UNSUPPORTED) {
    if (keyword in node && keyword !== '$defs' && keyword !== 'definitions') fail(path, reason);
  }
  if ('anyOf' in node || 'oneOf' in node) node = lowerUnion(node, path);
  if ('const' in node) {
    node.enum = [node.const];
    delete node.const;
  }
  if (Array.isArray(node.type)) {
    // draft-2020-12 style nullable: ["string", "null"]
    const types = node.type.filter((type) => type !== 'null');
    if (types.length !== 1)
      fail(`${path}.type`, `a union of types (${node.type.join(', ')}) is not structural`);
    if (types.length < node.type.length) node.nullable = true;
    node.type = types[0];
  }

  const out: JSONSchemaProps = {};
  const done = new Set<string>();
  const take = (key: string): unknown => {
    done.add(key);
    return node[key];
  };

  // Kubernetes extensions, checked here so that mistakes surface at generation time.
  for (const key of Object.keys(node)) {
    if (!key.startsWith('x-kubernetes-')) continue;
    if (!X_KEYS.has(key)) fail(`${path}.${key}`, 'unknown Kubernetes extension');
    (out as Raw)[key] = take(key);
  }
  const intOrString = out['x-kubernetes-int-or-string'] === true;
  const preserveUnknown = out['x-kubernetes-preserve-unknown-fields'] === true;

  const type = take('type');
  if (type !== undefined) {
    if (intOrString) fail(`${path}.type`, 'an int-or-string node has no type');
    if (!['object', 'array', 'string', 'integer', 'number', 'boolean'].includes(type as string)) {
      fail(`${path}.type`, `type ${JSON.stringify(type)} is not supported`);
    }
    out.type = type as SchemaType;
  } else if (!intOrString && !preserveUnknown) {
    fail(path, 'has no type (z.unknown()/z.any() need x-kubernetes-preserve-unknown-fields)');
  }

  const description = take('description');
  if (description !== undefined) {
    if (typeof description !== 'string') fail(`${path}.description`, 'must be a string');
    out.description = description;
  }
  const title = take('title');
  if (typeof title === 'string') out.title = title;
  if ('default' in node) out.default = take('default');
  const values = take('enum');
  if (values !== undefined) {
    if (!Array.isArray(values) || values.length === 0) fail(`${path}.enum`, 'must be a non-empty list');
    out.enum = values;
  }
  const nullable = take('nullable');
  if (nullable === true) out.nullable = true;

  const isString = out.type === 'string' || intOrString;
  const isNumber = out.type === 'integer' || out.type === 'number' || intOrString;

  if (isString) {
    const format = take('format');
    let pattern = take('pattern');
    if (format !== undefined) {
      if (typeof format !== 'string' || !SUPPORTED_FORMATS.has(format)) {
        fail(`${path}.format`, `format ${JSON.stringify(format)} is not validated by the API server`);
      }
      out.format = format;
      if (FORMATS_WITHOUT_ZOD_PATTERN.has(format)) pattern = undefined;
    }
    if (pattern !== undefined) {
      if (typeof pattern !== 'string') fail(`${path}.pattern`, 'must be a string');
      out.pattern = pattern;
    }
    const minLength = takeNonNegativeInt(node, 'minLength', path);
    const maxLength = takeNonNegativeInt(node, 'maxLength', path);
    done.add('minLength').add('maxLength');
    if (minLength !== undefined && minLength > 0) out.minLength = minLength;
    if (maxLength !== undefined) out.maxLength = maxLength;
  }

  if (isNumber) {
    for (const key of ['minimum', 'maximum', 'multipleOf'] as const) {
      const value = takeNumber(node, key, path);
      done.add(key);
      if (value === undefined) continue;
      if ((out.type === 'integer' || intOrString) && SAFE_INTEGER_BOUNDS.has(value)) continue;
      out[key] = value;
    }
    // draft-2020-12 numeric exclusive bounds → OpenAPI v3.0 booleans
    for (const [exclusive, bound] of [
      ['exclusiveMinimum', 'minimum'],
      ['exclusiveMaximum', 'maximum'],
    ] as const) {
      const value = take(exclusive);
      if (value === undefined || value === false) continue;
      if (typeof value === 'number') {
        out[bound] = value;
      } else if (value !== true) {
        fail(`${path}.${exclusive}`, 'must be a boolean or a number');
      } else if (out[bound] === undefined) {
        fail(`${path}.${exclusive}`, `needs ${bound}`);
      }
      out[exclusive] = true;
    }
  }

  if (out.type === 'array') {
    const items = take('items');
    if (Array.isArray(items)) fail(`${path}.items`, 'tuples are not structural');
    if (items === undefined) fail(path, 'an array needs items');
    out.items = rewrite(items, `${path}[*]`);
    const minItems = takeNonNegativeInt(node, 'minItems', path);
    const maxItems = takeNonNegativeInt(node, 'maxItems', path);
    done.add('minItems').add('maxItems');
    if (minItems !== undefined && minItems > 0) out.minItems = minItems;
    if (maxItems !== undefined) out.maxItems = maxItems;
  }

  if (out.type === 'object') {
    rewriteObject(out, path, take);
    for (const key of ['minProperties', 'maxProperties'] as const) {
      const value = takeNonNegativeInt(node, key, path);
      done.add(key);
      if (value !== undefined) out[key] = value;
    }
  }

  for (const keyword of ['$defs', 'definitions']) {
    if (keyword in node) fail(path, UNSUPPORTED.get(keyword)!);
  }
  const leftover = Object.keys(node).filter((key) => !done.has(key));
  if (leftover.length > 0) {
    fail(`${path}.${leftover[0]}`, `keyword not supported for ${out.type ?? 'this node'} in a CRD schema`);
  }
  checkExtensions(out, path);
  return out;
}

function rewriteObject(out: JSONSchemaProps, path: string, take: (key: string) => unknown): void {
  const properties = take('properties');
  if (properties !== undefined) {
    if (!isObject(properties)) fail(`${path}.properties`, 'must be an object');
    if (Object.keys(properties).length > 0) {
      out.properties = {};
      for (const [name, schema] of Object.entries(properties)) {
        out.properties[name] = rewrite(schema, `${path}.${name}`);
      }
    }
  }
  const required = take('required');
  if (required !== undefined) {
    if (!Array.isArray(required) || !required.every((name) => typeof name === 'string')) {
      fail(`${path}.required`, 'must be a list of property names');
    }
    for (const name of required) {
      if (!out.properties?.[name])
        fail(`${path}.required`, `requires ${name}, which is not a declared property`);
    }
    if (required.length > 0) out.required = [...required];
  }
  const propertyNames = take('propertyNames');
  if (propertyNames !== undefined) {
    const plain = isObject(propertyNames) && Object.keys(propertyNames).join() === 'type';
    if (!plain || propertyNames.type !== 'string') {
      fail(`${path}.propertyNames`, 'constraints on map keys are not structural (use a CEL rule)');
    }
  }
  const additional = take('additionalProperties');
  if (additional === undefined || additional === false) return;
  if (additional === true || (isObject(additional) && Object.keys(additional).length === 0)) {
    // An open object (z.looseObject, z.record(z.string(), z.unknown())): keep unknown fields.
    out['x-kubernetes-preserve-unknown-fields'] = true;
    return;
  }
  if (out.properties) {
    fail(`${path}.additionalProperties`, 'an object cannot have both properties and additionalProperties');
  }
  out.additionalProperties = rewrite(additional, `${path}.*`);
}

function checkExtensions(out: JSONSchemaProps, path: string): void {
  const listType = out['x-kubernetes-list-type'];
  const mapKeys = out['x-kubernetes-list-map-keys'];
  if (listType !== undefined) {
    if (out.type !== 'array') fail(path, 'x-kubernetes-list-type on a non-array');
    if (!['atomic', 'set', 'map'].includes(listType))
      fail(path, `x-kubernetes-list-type ${listType} is unknown`);
  }
  if (mapKeys !== undefined || listType === 'map') {
    if (listType !== 'map') fail(path, 'x-kubernetes-list-map-keys needs x-kubernetes-list-type: map');
    if (!Array.isArray(mapKeys) || mapKeys.length === 0) fail(path, 'x-kubernetes-list-map-keys is missing');
    const items = out.items;
    for (const key of mapKeys) {
      const field = items?.properties?.[key];
      if (!field) fail(`${path}[*]`, `list map key ${key} is not a property of the items`);
      if (!items?.required?.includes(key) && field.default === undefined) {
        fail(`${path}[*].${key}`, 'a list map key must be required or have a default');
      }
    }
  }
  const rules = out['x-kubernetes-validations'];
  if (rules !== undefined) {
    if (!Array.isArray(rules)) fail(path, 'x-kubernetes-validations must be a list');
    for (const [index, rule] of rules.entries()) {
      if (!isObject(rule) || typeof rule.rule !== 'string' || rule.rule.length === 0) {
        fail(`${path}.x-kubernetes-validations[${index}]`, 'needs a rule');
      }
    }
  }
  if (out['x-kubernetes-int-or-string']) out.anyOf = [{ type: 'integer' }, { type: 'string' }];
}

/** Sorts the keys of every schema node and of `properties` (not of default/enum values or rules). */
function sortKeys(schema: JSONSchemaProps): JSONSchemaProps {
  const sorted: Raw = {};
  for (const key of Object.keys(schema).sort()) {
    const value = (schema as Raw)[key];
    if (key === 'properties') {
      const properties: Record<string, JSONSchemaProps> = {};
      for (const name of Object.keys(value as Raw).sort()) {
        properties[name] = sortKeys((value as Record<string, JSONSchemaProps>)[name]!);
      }
      sorted[key] = properties;
    } else if (key === 'items' || key === 'additionalProperties') {
      sorted[key] = sortKeys(value as JSONSchemaProps);
    } else if (key === 'anyOf') {
      sorted[key] = (value as JSONSchemaProps[]).map(sortKeys);
    } else {
      sorted[key] = value;
    }
  }
  return sorted as JSONSchemaProps;
}

/**
 * The structural CRD schema of a zod schema. `path` prefixes the JSON paths in errors (e.g.
 * `.spec`). Throws {@link StructuralSchemaError} on anything without a structural form.
 */
export function toStructuralSchema(schema: z.ZodType, path = ''): JSONSchemaProps {
  let json: unknown;
  try {
    json = z.toJSONSchema(schema, {
      io: 'input',
      target: 'openapi-3.0',
      unrepresentable: 'throw',
      cycles: 'throw',
      reused: 'inline',
    });
  } catch (error) {
    fail(path, `zod cannot express this schema in JSON Schema: ${(error as Error).message}`);
  }
  const structural = sortKeys(rewrite(json, path));
  assertStructural(structural, path);
  return structural;
}

/**
 * Checks the rules of a structural schema (as the API server does), throwing on the first
 * violation: every node has a type (except int-or-string and preserve-unknown-fields nodes), no
 * references or unsupported keywords, no types inside anyOf/oneOf/allOf except the int-or-string
 * form, and `properties` and `additionalProperties` never together.
 */
export function assertStructural(schema: JSONSchemaProps, path = ''): void {
  const node = schema as Raw;
  if (!isObject(node)) fail(path, 'is not a schema object');
  const intOrString = node['x-kubernetes-int-or-string'] === true;
  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (node.type === undefined && !intOrString && !preserve) fail(path, 'has no type');
  for (const keyword of [...UNSUPPORTED.keys(), '$schema', 'const', 'propertyNames']) {
    if (keyword in node) fail(`${path}.${keyword}`, 'is not allowed in a structural schema');
  }
  if (node.additionalProperties === false) fail(`${path}.additionalProperties`, 'false is not structural');
  if (node.properties !== undefined && node.additionalProperties !== undefined) {
    fail(path, 'properties and additionalProperties together');
  }
  for (const keyword of ['anyOf', 'oneOf']) {
    const branches = node[keyword];
    if (branches === undefined) continue;
    const intOrStringForm =
      intOrString &&
      keyword === 'anyOf' &&
      JSON.stringify(branches) === JSON.stringify([{ type: 'integer' }, { type: 'string' }]);
    if (!intOrStringForm) fail(`${path}.${keyword}`, 'only the int-or-string anyOf is emitted');
  }
  for (const [name, child] of Object.entries((node.properties as Raw | undefined) ?? {})) {
    assertStructural(child as JSONSchemaProps, `${path}.${name}`);
  }
  if (node.items !== undefined) assertStructural(node.items as JSONSchemaProps, `${path}[*]`);
  if (isObject(node.additionalProperties)) {
    assertStructural(node.additionalProperties as JSONSchemaProps, `${path}.*`);
  }
}

// --- CRDs ----------------------------------------------------------------------------------------

const API_VERSION_DESCRIPTION =
  'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources';
const KIND_DESCRIPTION =
  'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds';

/** The whole object's schema: apiVersion, kind, metadata (left to the API server), spec, status. */
export function openAPIV3Schema(definition: ResourceDefinition): JSONSchemaProps {
  return sortKeys({
    type: 'object',
    description: definition.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: API_VERSION_DESCRIPTION },
      kind: { type: 'string', description: KIND_DESCRIPTION },
      metadata: { type: 'object' },
      spec: toStructuralSchema(definition.spec, '.spec'),
      status: toStructuralSchema(definition.status, '.status'),
    },
  });
}

/** The schema node a simple JSONPath (`.a.b`, `.a[?(...)].b`) selects, or throws. */
export function schemaAt(schema: JSONSchemaProps, jsonPath: string): JSONSchemaProps | 'opaque' {
  const tokens = jsonPath.match(/\.[A-Za-z0-9_-]+|\[[^\]]*\]/g);
  if (!tokens || tokens.join('') !== jsonPath) fail(jsonPath, 'is not a simple JSONPath');
  let node = schema;
  for (const token of tokens) {
    if (token.startsWith('[')) {
      if (node.type !== 'array' || !node.items) fail(jsonPath, `${token} applied to a non-array`);
      node = node.items;
      continue;
    }
    const name = token.slice(1);
    const child = node.properties?.[name];
    if (child) {
      node = child;
    } else if (node.type === 'object' && !node.properties && !node.additionalProperties) {
      return 'opaque'; // metadata: validated by the API server itself
    } else {
      fail(jsonPath, `no field ${name}`);
    }
  }
  return node;
}

function checkColumn(schema: JSONSchemaProps, column: PrinterColumn, kind: string): void {
  const node = schemaAt(schema, column.jsonPath);
  if (node === 'opaque') return;
  const expected: Record<PrinterColumn['type'], string> = {
    string: 'string',
    integer: 'integer',
    number: 'number',
    boolean: 'boolean',
    date: 'string',
  };
  if (node.type !== expected[column.type]) {
    fail(column.jsonPath, `${kind} column ${column.name} is ${column.type} but the field is ${node.type}`);
  }
}

function checkScale(schema: JSONSchemaProps, scale: ScaleSubresource): void {
  const expect = (jsonPath: string, type: SchemaType) => {
    const node = schemaAt(schema, jsonPath);
    if (node === 'opaque' || node.type !== type) fail(jsonPath, `the scale subresource needs a ${type} here`);
  };
  expect(scale.specReplicasPath, 'integer');
  expect(scale.statusReplicasPath, 'integer');
  if (scale.labelSelectorPath) expect(scale.labelSelectorPath, 'string');
}

export function customResourceDefinition(definition: ResourceDefinition): CustomResourceDefinition {
  const { names } = definition;
  const schema = openAPIV3Schema(definition);
  for (const column of definition.printerColumns) checkColumn(schema, column, names.kind);
  if (definition.scale) checkScale(schema, definition.scale);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${names.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/part-of': 'rtccdn' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        listKind: names.listKind,
        plural: names.plural,
        singular: names.singular,
        ...(names.shortNames.length > 0 ? { shortNames: [...names.shortNames] } : {}),
        categories: [...names.categories],
      },
      scope: definition.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: schema },
          subresources: {
            status: {},
            ...(definition.scale ? { scale: { ...definition.scale } } : {}),
          },
          additionalPrinterColumns: definition.printerColumns.map((column) => ({ ...column })),
        },
      ],
    },
  };
}

/** The CRDs of every resource of {@link API_VERSION}. */
export function customResourceDefinitions(): CustomResourceDefinition[] {
  return RESOURCES.map(customResourceDefinition);
}

export const GENERATED_HEADER = `# generated by scripts/gen-crds.ts — do not edit.
# Source: operator/src/api/v1alpha1.ts (${API_VERSION}). Regenerate: node --import tsx scripts/gen-crds.ts
`;

export function renderCrd(crd: CustomResourceDefinition): string {
  return GENERATED_HEADER + stringify(crd, { lineWidth: 0 });
}

/** Every generated file, relative to `crds/`. */
export function renderCrdFiles(): { file: string; content: string }[] {
  return customResourceDefinitions().map((crd) => ({
    file: `${crd.metadata.name}.yaml`,
    content: renderCrd(crd),
  }));
}
