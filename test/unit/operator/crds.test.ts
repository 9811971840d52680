/**
 * The operator's API types (operator/src/api/v1alpha1.ts) and the CRDs generated from them
 * (scripts/crds/crdgen.ts): the committed YAML is what the generator produces today, the
 * schemas are structural, and zod accepts and rejects the same objects the CRDs are meant to.
 * The API server's own verdict is in crds-apiserver.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { z } from 'zod';
import { parseProfiles } from '../../../media-node/src/transcode/profiles.js';
import { exactlyOneOf, withRules } from '../../../operator/src/api/rules.js';
import {
  CDNNodeSchema,
  CDNSchema,
  CDNSpecSchema,
  QuantitySchema,
  StreamACLSchema,
  StreamACLSpecSchema,
} from '../../../operator/src/api/v1alpha1.js';
import {
  type CustomResourceDefinition,
  customResourceDefinitions,
  GENERATED_HEADER,
  type JSONSchemaProps,
  renderCrdFiles,
  StructuralSchemaError,
  toStructuralSchema,
} from '../../../scripts/crds/crdgen.js';

const CRDS_DIR = fileURLToPath(new URL('../../../crds/', import.meta.url));
const EXAMPLES_DIR = join(CRDS_DIR, 'examples');

const crds = customResourceDefinitions();
const crd = (plural: string): CustomResourceDefinition => {
  const found = crds.find((candidate) => candidate.spec.names.plural === plural);
  if (!found) throw new Error(`no CRD ${plural}`);
  return found;
};
const rootSchema = (plural: string): JSONSchemaProps => crd(plural).spec.versions[0]!.schema.openAPIV3Schema;

/** Follows `.a.b[*].c` in a schema. */
function at(schema: JSONSchemaProps, path: string): JSONSchemaProps {
  let node = schema;
  for (const part of path.split('.').filter(Boolean)) {
    const [name, star] = part.split('[');
    node = node.properties?.[name!] as JSONSchemaProps;
    if (!node) throw new Error(`no ${path}`);
    if (star !== undefined) node = node.items!;
  }
  return node;
}

// --- an independent check of the structural-schema rules ------------------------------------------

const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
const FORBIDDEN = [
  '$ref',
  '$schema',
  '$defs',
  'definitions',
  'propertyNames',
  'patternProperties',
  'uniqueItems',
  'allOf',
  'oneOf',
  'not',
  'const',
  'if',
  'prefixItems',
];

/** Every violation of the structural rules (and of our own conventions) in a schema tree. */
function structuralViolations(node: JSONSchemaProps, path: string, violations: string[] = []): string[] {
  const raw = node as Record<string, unknown>;
  const intOrString = raw['x-kubernetes-int-or-string'] === true;
  const preserve = raw['x-kubernetes-preserve-unknown-fields'] === true;
  if (node.type === undefined) {
    if (!intOrString && !preserve) violations.push(`${path}: no type`);
  } else if (!TYPES.has(node.type)) {
    violations.push(`${path}: type ${node.type}`);
  }
  if (intOrString && node.type !== undefined) violations.push(`${path}: int-or-string with a type`);
  for (const keyword of FORBIDDEN) {
    if (keyword in raw) violations.push(`${path}: ${keyword}`);
  }
  if (raw.additionalProperties === false) violations.push(`${path}: additionalProperties: false`);
  if (node.properties && node.additionalProperties)
    violations.push(`${path}: properties + additionalProperties`);
  if (node.anyOf) {
    // The one anyOf a CRD may have: the int-or-string form, with no other keyword inside.
    const ok =
      intOrString && JSON.stringify(node.anyOf) === JSON.stringify([{ type: 'integer' }, { type: 'string' }]);
    if (!ok) violations.push(`${path}: anyOf ${JSON.stringify(node.anyOf)}`);
  }
  for (const key of ['exclusiveMinimum', 'exclusiveMaximum']) {
    if (key in raw && typeof raw[key] !== 'boolean') violations.push(`${path}: ${key} is not a boolean`);
  }
  for (const key of ['minimum', 'maximum']) {
    if (Math.abs(raw[key] as number) === Number.MAX_SAFE_INTEGER)
      violations.push(`${path}: zod ${key} leaked`);
  }
  if (node.format === 'date-time' && node.pattern) violations.push(`${path}: zod date-time pattern leaked`);
  if (node.type === 'array' && !node.items) violations.push(`${path}: array without items`);
  if (node['x-kubernetes-list-type'] === 'map') {
    for (const key of node['x-kubernetes-list-map-keys'] ?? []) {
      const item = node.items;
      if (!item?.required?.includes(key) && item?.properties?.[key]?.default === undefined) {
        violations.push(`${path}: list map key ${key} is neither required nor defaulted`);
      }
    }
  }
  for (const name of node.required ?? []) {
    if (!node.properties?.[name]) violations.push(`${path}: required ${name} is not declared`);
  }
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    structuralViolations(child, `${path}.${name}`, violations);
  }
  if (node.items) structuralViolations(node.items, `${path}[*]`, violations);
  if (node.additionalProperties) structuralViolations(node.additionalProperties, `${path}.*`, violations);
  return violations;
}

/** Fields of spec and status without a description (kubectl explain would show nothing). */
function undescribed(node: JSONSchemaProps, path: string, found: string[] = []): string[] {
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    if (!child.description) found.push(`${path}.${name}`);
    undescribed(child, `${path}.${name}`, found);
  }
  if (node.items) undescribed(node.items, `${path}[*]`, found);
  return found;
}

function walk(node: JSONSchemaProps, visit: (node: JSONSchemaProps) => void): void {
  visit(node);
  for (const child of Object.values(node.properties ?? {})) walk(child, visit);
  if (node.items) walk(node.items, visit);
  if (node.additionalProperties) walk(node.additionalProperties, visit);
}

// --- zod helpers -----------------------------------------------------------------------------------

type Issue = { path: PropertyKey[]; message: string };

function issues(schema: z.ZodType, value: unknown): Issue[] {
  const result = schema.safeParse(value);
  if (result.success) throw new Error('expected the value to be rejected');
  return result.error.issues.map(({ path, message }) => ({ path, message }));
}

const CDN_SPEC = {
  image: 'ghcr.io/rtccdn/media-node:0.1.0',
  redis: { url: 'redis://redis:6379' },
  regions: [{ name: 'eu-west' }],
};
const cdnSpec = (patch: Record<string, unknown>) => ({ ...CDN_SPEC, ...patch });
const ACL_SPEC = {
  cdnRef: { name: 'live' },
  stream: 'sales-*',
  keys: [{ id: 'a', value: '0123456789abcdef' }],
};
const aclSpec = (patch: Record<string, unknown>) => ({ ...ACL_SPEC, ...patch });

function examples(): { file: string; object: Record<string, unknown> }[] {
  return readdirSync(EXAMPLES_DIR)
    .filter((file) => file.endsWith('.yaml'))
    .sort()
    .map((file) => ({ file, object: parse(readFileSync(join(EXAMPLES_DIR, file), 'utf8')) }));
}

const SCHEMA_OF_KIND: Record<string, z.ZodType> = {
  CDN: CDNSchema,
  Node: CDNNodeSchema,
  StreamACL: StreamACLSchema,
};

// --- tests -----------------------------------------------------------------------------------------

describe('generated CRDs (crds/*.rtccdn.io.yaml)', () => {
  it('are committed exactly as the zod schemas generate them (run scripts/gen-crds.ts after a change)', () => {
    const files = renderCrdFiles();
    expect(files.map(({ file }) => file)).toEqual([
      'cdns.rtccdn.io.yaml',
      'nodes.rtccdn.io.yaml',
      'streamacls.rtccdn.io.yaml',
    ]);
    for (const { file, content } of files) {
      const committed = readFileSync(join(CRDS_DIR, file), 'utf8');
      // Compared as whole texts, so that jest prints a line diff of the drift.
      expect({ file, content: committed }).toEqual({ file, content });
      expect(committed.startsWith(GENERATED_HEADER)).toBe(true);
      expect(parse(committed)).toEqual(crds.find((candidate) => `${candidate.metadata.name}.yaml` === file));
    }
    const generated = readdirSync(CRDS_DIR).filter((file) => file.endsWith('.rtccdn.io.yaml'));
    expect(generated.sort()).toEqual(files.map(({ file }) => file));
  });

  it('are generated deterministically', () => {
    expect(renderCrdFiles()).toEqual(renderCrdFiles());
  });

  it.each(['cdns', 'nodes', 'streamacls'])('%s: the schema is structural', (plural) => {
    const schema = rootSchema(plural);
    expect(structuralViolations(schema, '')).toEqual([]);
    expect(schema.properties?.metadata).toEqual({ type: 'object' });
    expect(schema.required).toEqual(['spec']);
  });

  it.each(['cdns', 'nodes', 'streamacls'])('%s: every spec and status field has a description', (plural) => {
    const schema = rootSchema(plural);
    expect(undescribed(at(schema, 'spec'), '.spec')).toEqual([]);
    expect(undescribed(at(schema, 'status'), '.status')).toEqual([]);
  });

  it('declare names, categories, scope and subresources', () => {
    for (const definition of crds) {
      expect(definition.metadata.name).toBe(`${definition.spec.names.plural}.rtccdn.io`);
      expect(definition.spec.group).toBe('rtccdn.io');
      expect(definition.spec.scope).toBe('Namespaced');
      expect(definition.spec.names.categories).toEqual(['rtccdn']);
      expect(definition.spec.versions).toHaveLength(1);
      expect(definition.spec.versions[0]).toMatchObject({ name: 'v1alpha1', served: true, storage: true });
      expect(definition.spec.versions[0]!.subresources.status).toEqual({});
      expect(definition.spec.versions[0]!.additionalPrinterColumns.map((column) => column.name)).toContain(
        'Age',
      );
    }
    expect(crd('nodes').spec.names).toMatchObject({ kind: 'Node', singular: 'node' });
    expect(crd('nodes').spec.names.shortNames).toEqual(['cdnnode', 'cdnnodes']);
    expect(crd('streamacls').spec.names.shortNames).toEqual(['sacl']);
    expect(crd('nodes').spec.versions[0]!.subresources.scale).toEqual({
      specReplicasPath: '.spec.replicas',
      statusReplicasPath: '.status.replicas',
      labelSelectorPath: '.status.selector',
    });
    expect(crd('cdns').spec.versions[0]!.subresources.scale).toBeUndefined();
  });

  it('carry the CEL rules, list types and defaults of the API', () => {
    const rules = (node: JSONSchemaProps) => (node['x-kubernetes-validations'] ?? []).map(({ rule }) => rule);
    const cdn = rootSchema('cdns');
    expect(rules(at(cdn, 'spec.redis'))).toEqual(['has(self.url) != has(self.secretRef)']);
    expect(rules(at(cdn, 'spec.regions'))).toEqual(['self.all(x, self.exists_one(y, y.name == x.name))']);
    expect(rules(at(cdn, 'spec.regions[*].edges'))).toEqual(['self.minReplicas <= self.maxReplicas']);
    expect(rules(at(cdn, 'spec.profiles'))).toEqual(['self.all(x, self.exists_one(y, y.name == x.name))']);
    expect(at(cdn, 'spec.regions')).toMatchObject({
      minItems: 1,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
    });
    expect(at(cdn, 'spec.regions[*].edges').default).toEqual({
      minReplicas: 1,
      maxReplicas: 10,
      targetViewersPerEdge: 500,
    });
    expect(at(cdn, 'spec.network.exposure')).toMatchObject({
      default: 'hostPort',
      enum: ['hostPort', 'hostNetwork', 'nodePort'],
    });
    expect(at(cdn, 'spec.acl.defaultPolicy')).toMatchObject({ default: 'allow', enum: ['allow', 'deny'] });
    expect(at(cdn, 'spec.profiles[*].width')).toMatchObject({
      type: 'integer',
      multipleOf: 2,
      minimum: 16,
      maximum: 7680,
    });
    expect(at(cdn, 'spec.profiles[*].name')).toMatchObject({ maxLength: 32 });
    expect(at(cdn, 'spec.resources.edge.requests').additionalProperties).toMatchObject({
      'x-kubernetes-int-or-string': true,
      anyOf: [{ type: 'integer' }, { type: 'string' }],
    });
    for (const plural of ['cdns', 'nodes', 'streamacls']) {
      const conditions = at(rootSchema(plural), 'status.conditions');
      expect(conditions).toMatchObject({
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      });
      expect(conditions.items?.required).toEqual([
        'type',
        'status',
        'lastTransitionTime',
        'reason',
        'message',
      ]);
      expect(conditions.items?.properties?.status?.enum).toEqual(['True', 'False', 'Unknown']);
      expect(conditions.items?.properties?.lastTransitionTime).toMatchObject({
        type: 'string',
        format: 'date-time',
      });
    }
    const acl = rootSchema('streamacls');
    expect(rules(at(acl, 'spec.keys'))).toEqual(['self.all(x, self.exists_one(y, y.id == x.id))']);
    expect(rules(at(acl, 'spec.keys[*]'))).toEqual(['has(self.value) != has(self.secretKeyRef)']);
    expect(at(acl, 'spec.keys[*].expiresAt')).toEqual({
      type: 'string',
      format: 'date-time',
      description: expect.any(String),
    });
    const node = rootSchema('nodes');
    expect(rules(at(node, 'spec.role'))).toEqual(['self == oldSelf']);
    expect(at(node, 'status.selector').type).toBe('string');
    // CEL rules need bounded lists to stay within the API server's cost budget.
    walk(rootSchema('cdns'), (schemaNode) => {
      if (schemaNode['x-kubernetes-validations'] && schemaNode.type === 'array') {
        expect(schemaNode.maxItems).toBeGreaterThan(0);
      }
    });
  });
});

describe('toStructuralSchema (the rewriter)', () => {
  const rewriteError = (schema: z.ZodType, path = '.spec'): StructuralSchemaError => {
    try {
      toStructuralSchema(schema, path);
    } catch (error) {
      if (error instanceof StructuralSchemaError) return error;
      throw error;
    }
    throw new Error('expected a StructuralSchemaError');
  };

  it('drops what structural schemas forbid and keeps validations', () => {
    const schema = toStructuralSchema(
      z.strictObject({
        name: z.string().min(1).max(5).describe('the name'),
        count: z.int().positive().default(3),
        when: z.iso.datetime().optional(),
        labels: z.record(z.string(), z.string()).optional(),
        maybe: z.string().nullable().optional(),
        mode: z.union([z.literal('a'), z.literal('b')]).optional(),
      }),
    );
    expect(schema).toEqual({
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', description: 'the name', minLength: 1, maxLength: 5 },
        count: { type: 'integer', default: 3, minimum: 0, exclusiveMinimum: true },
        when: { type: 'string', format: 'date-time' },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        maybe: { type: 'string', nullable: true },
        mode: { type: 'string', enum: ['a', 'b'] },
      },
    });
  });

  it('writes int-or-string quantities the way Kubernetes declares its own', () => {
    expect(toStructuralSchema(QuantitySchema)).toEqual({
      anyOf: [{ type: 'integer' }, { type: 'string' }],
      minimum: 0,
      pattern: expect.stringMatching(/^\^/),
      'x-kubernetes-int-or-string': true,
    });
  });

  it('keeps unknown fields of open objects, and copies CEL rules attached with withRules', () => {
    expect(toStructuralSchema(z.looseObject({ a: z.string() }))).toEqual({
      type: 'object',
      required: ['a'],
      properties: { a: { type: 'string' } },
      'x-kubernetes-preserve-unknown-fields': true,
    });
    const pair = withRules(z.object({ a: z.string().optional(), b: z.string().optional() }), [
      exactlyOneOf('a', 'b'),
    ]);
    expect(toStructuralSchema(pair)['x-kubernetes-validations']).toEqual([
      { rule: 'has(self.a) != has(self.b)', message: 'exactly one of a or b must be set' },
    ]);
  });

  it('fails loudly, with the JSON path, on constructs that have no structural form', () => {
    const objectUnion = rewriteError(
      z.object({ redis: z.union([z.object({ url: z.string() }), z.object({ secret: z.string() })]) }),
    );
    expect(objectUnion.path).toBe('.spec.redis');
    expect(objectUnion.message).toMatch(/^\.spec\.redis: anyOf with 2 alternatives is not structural/);

    const discriminated = rewriteError(
      z.object({
        items: z.array(
          z.discriminatedUnion('kind', [
            z.object({ kind: z.literal('a'), a: z.string() }),
            z.object({ kind: z.literal('b'), b: z.string() }),
          ]),
        ),
      }),
    );
    expect(discriminated.path).toBe('.spec.items[*]');

    expect(rewriteError(z.object({ blob: z.unknown() })).message).toMatch(/^\.spec\.blob: has no type/);
    expect(rewriteError(z.object({ shared: z.string().meta({ id: 'Shared' }) })).path).toBe('.spec.shared');
    expect(rewriteError(z.object({ m: z.record(z.enum(['x', 'y']), z.string()) })).path).toBe(
      '.spec.m.required',
    );
    expect(rewriteError(z.object({ n: z.union([z.string(), z.boolean()]) })).path).toBe('.spec.n');
    expect(rewriteError(z.object({ t: z.tuple([z.string(), z.int()]) })).path).toBe('.spec.t[*]');
    expect(rewriteError(z.object({ e: z.email().meta({ format: 'flux' }) })).path).toBe('.spec.e.format');
    expect(rewriteError(z.object({ x: z.string().meta({ 'x-kubernetes-typo': true }) })).path).toBe(
      '.spec.x.x-kubernetes-typo',
    );
  });
});

describe('zod validation of the resources', () => {
  it('accepts exactly the rendition profiles the media nodes run (one schema, in their contract)', () => {
    const base = { name: 'p360', width: 640, height: 360, bitrate: 800_000 };
    const cases: [string, Record<string, unknown>][] = [
      ['smallest', { ...base, width: 16, height: 16 }],
      ['too narrow', { ...base, width: 14 }],
      ['tallest', { ...base, width: 7680, height: 4320 }],
      ['too tall', { ...base, height: 4322 }],
      ['longest name', { ...base, name: 'p'.repeat(32) }],
      ['name too long', { ...base, name: 'p'.repeat(33) }],
      ['odd', { ...base, width: 641 }],
    ];
    for (const [label, profile] of cases) {
      const cdnAccepts = CDNSpecSchema.safeParse(cdnSpec({ profiles: [profile] })).success;
      let nodeAccepts = true;
      try {
        parseProfiles(JSON.stringify([profile]));
      } catch {
        nodeAccepts = false;
      }
      expect(`${label}: CDN ${cdnAccepts}`).toBe(`${label}: CDN ${nodeAccepts}`);
    }
  });

  it.each(examples())('accepts the example $file', ({ object }) => {
    const schema = SCHEMA_OF_KIND[object.kind as string];
    expect(schema).toBeDefined();
    expect(schema!.safeParse(object).error?.issues).toBeUndefined();
  });

  it('applies the same defaults as the CRD', () => {
    const spec = CDNSpecSchema.parse({
      ...CDN_SPEC,
      profiles: [{ name: '720p', width: 1280, height: 720, bitrate: 2_500_000 }],
    });
    expect(spec).toEqual({
      ...CDN_SPEC,
      regions: [
        {
          name: 'eu-west',
          origins: { replicas: 1 },
          edges: { minReplicas: 1, maxReplicas: 10, targetViewersPerEdge: 500 },
          transcoders: { replicas: 0 },
        },
      ],
      profiles: [{ name: '720p', width: 1280, height: 720, fps: 30, codec: 'VP8', bitrate: 2_500_000 }],
      adaptiveLadder: false,
      acl: { defaultPolicy: 'allow' },
      network: { exposure: 'hostPort', serviceType: 'ClusterIP', rtcPortBase: 40000, workersPerNode: 2 },
      placement: { regionLabel: 'topology.kubernetes.io/region' },
    });
  });

  it.each([
    [
      'edges min > max',
      cdnSpec({ regions: [{ name: 'eu', edges: { minReplicas: 5, maxReplicas: 2 } }] }),
      ['regions', 0, 'edges', 'minReplicas'],
      'minReplicas must be less than or equal to maxReplicas',
    ],
    [
      'edges min > default max',
      cdnSpec({ regions: [{ name: 'eu', edges: { minReplicas: 11 } }] }),
      ['regions', 0, 'edges', 'minReplicas'],
      'minReplicas must be less than or equal to maxReplicas',
    ],
    [
      'redis with url and secretRef',
      cdnSpec({ redis: { url: 'redis://r', secretRef: { name: 's', key: 'url' } } }),
      ['redis'],
      'exactly one of url or secretRef must be set',
    ],
    ['redis with neither', cdnSpec({ redis: {} }), ['redis'], 'exactly one of url or secretRef must be set'],
    [
      'duplicate region names',
      cdnSpec({ regions: [{ name: 'eu' }, { name: 'us' }, { name: 'eu' }] }),
      ['regions', 2, 'name'],
      'region names must be unique',
    ],
    [
      'duplicate profile names',
      cdnSpec({
        profiles: [
          { name: 'hd', width: 1280, height: 720, bitrate: 2_000_000 },
          { name: 'hd', width: 640, height: 360, bitrate: 800_000 },
        ],
      }),
      ['profiles', 1, 'name'],
      'profile names must be unique',
    ],
    [
      'ports beyond 65535',
      cdnSpec({ network: { rtcPortBase: 65534, workersPerNode: 4 } }),
      ['network', 'rtcPortBase'],
      'rtcPortBase + workersPerNode - 1 must not exceed 65535',
    ],
    ['no regions', cdnSpec({ regions: [] }), ['regions'], /expected array to have >=1 items/i],
    [
      'region not a DNS label',
      cdnSpec({ regions: [{ name: 'EU_West' }] }),
      ['regions', 0, 'name'],
      /DNS label/,
    ],
    [
      'odd width',
      cdnSpec({ profiles: [{ name: 'p', width: 641, height: 360, bitrate: 800_000 }] }),
      ['profiles', 0, 'width'],
      /must be even/,
    ],
    [
      'bitrate too low',
      cdnSpec({ profiles: [{ name: 'p', width: 640, height: 360, bitrate: 1000 }] }),
      ['profiles', 0, 'bitrate'],
      /50000/,
    ],
    [
      'unknown codec',
      cdnSpec({ profiles: [{ name: 'p', width: 640, height: 360, codec: 'AV1', bitrate: 800_000 }] }),
      ['profiles', 0, 'codec'],
      /VP8|H264/,
    ],
    [
      'bad quantity',
      cdnSpec({ resources: { edge: { requests: { cpu: 'two' } } } }),
      ['resources', 'edge', 'requests', 'cpu'],
      /quantity/,
    ],
  ])('CDN spec: rejects %s', (_name, spec, path, message) => {
    const found = issues(CDNSpecSchema, spec);
    expect(found).toContainEqual({
      path,
      message: typeof message === 'string' ? message : expect.stringMatching(message),
    });
  });

  it.each([
    [
      'a key with value and secretKeyRef',
      aclSpec({ keys: [{ id: 'a', value: '0123456789abcdef', secretKeyRef: { name: 's', key: 'k' } }] }),
      ['keys', 0],
      'exactly one of value or secretKeyRef must be set',
    ],
    [
      'a key with neither',
      aclSpec({ keys: [{ id: 'a' }] }),
      ['keys', 0],
      'exactly one of value or secretKeyRef must be set',
    ],
    [
      'duplicate key ids',
      aclSpec({
        keys: [
          { id: 'a', value: '0123456789abcdef' },
          { id: 'a', value: 'fedcba9876543210' },
        ],
      }),
      ['keys', 1, 'id'],
      'key ids must be unique',
    ],
    ['a short key', aclSpec({ keys: [{ id: 'a', value: 'short' }] }), ['keys', 0, 'value'], /16/],
    [
      'a bad expiresAt',
      aclSpec({ keys: [{ id: 'a', value: '0123456789abcdef', expiresAt: 'tomorrow' }] }),
      ['keys', 0, 'expiresAt'],
      /datetime/i,
    ],
    ['no keys', aclSpec({ keys: [] }), ['keys'], /expected array to have >=1 items/i],
  ])('StreamACL spec: rejects %s', (_name, spec, path, message) => {
    expect(issues(StreamACLSpecSchema, spec)).toContainEqual({
      path,
      message: typeof message === 'string' ? message : expect.stringMatching(message),
    });
  });

  it('StreamACL stream: exact names and prefix patterns', () => {
    const ok = (stream: string) => StreamACLSpecSchema.safeParse(aclSpec({ stream })).success;
    for (const stream of [
      'cam1',
      'sales-*',
      'sales*',
      '*',
      'a.b_c-d',
      'x'.repeat(128),
      `${'x'.repeat(127)}*`,
    ]) {
      expect([stream, ok(stream)]).toEqual([stream, true]);
    }
    for (const stream of [
      '',
      // `~` is the rendition separator: a rendition follows its source's ACL, never one of its own.
      'premium~360p',
      'sales-*-eu',
      '*sales',
      'a b',
      'a/b',
      'x'.repeat(129),
      `${'x'.repeat(128)}*`,
      'é',
    ]) {
      expect([stream, ok(stream)]).toEqual([stream, false]);
    }
    expect(issues(StreamACLSpecSchema, aclSpec({ stream: 'a/b' }))).toEqual([
      {
        path: ['stream'],
        message:
          'must be a stream name (1-128 of A-Z a-z 0-9 . _ ~ -) or a prefix followed by * (e.g. sales-*)',
      },
    ]);
  });

  it('Node: checks role, replicas and ports; the kind and apiVersion are fixed', () => {
    const node = {
      apiVersion: 'rtccdn.io/v1alpha1',
      kind: 'Node',
      metadata: { name: 'live-eu-edge' },
      spec: { cdnRef: { name: 'live' }, role: 'edge', region: 'eu' },
    };
    expect(CDNNodeSchema.parse(node).spec.replicas).toBe(1);
    expect(issues(CDNNodeSchema, { ...node, spec: { ...node.spec, role: 'relay', replicas: -1 } })).toEqual([
      { path: ['spec', 'role'], message: expect.stringMatching(/origin|edge|transcoder/) },
      { path: ['spec', 'replicas'], message: expect.stringMatching(/>=0/) },
    ]);
    expect(
      issues(CDNNodeSchema, { ...node, spec: { ...node.spec, ports: { rtcPortBase: 65535, workers: 2 } } }),
    ).toEqual([
      {
        path: ['spec', 'ports', 'rtcPortBase'],
        message: 'the ports (rtcPortBase + podSlots × workers - 1) must not exceed 65535',
      },
    ]);
    expect(issues(CDNNodeSchema, { ...node, kind: 'CDN' })[0]?.path).toEqual(['kind']);
    expect(issues(CDNNodeSchema, { ...node, apiVersion: 'rtccdn.io/v1' })[0]?.path).toEqual(['apiVersion']);
  });

  it('status: conditions follow metav1.Condition and are keyed by type', () => {
    const condition = {
      type: 'Ready',
      status: 'True',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      reason: 'AllNodesReady',
      message: '',
    };
    const cdn = { apiVersion: 'rtccdn.io/v1alpha1', kind: 'CDN', metadata: {}, spec: CDN_SPEC };
    expect(CDNSchema.safeParse({ ...cdn, status: { conditions: [condition], viewers: 3 } }).success).toBe(
      true,
    );
    expect(issues(CDNSchema, { ...cdn, status: { conditions: [condition, condition] } })).toEqual([
      { path: ['status', 'conditions', 1, 'type'], message: 'condition types must be unique' },
    ]);
    expect(
      issues(CDNSchema, { ...cdn, status: { conditions: [{ ...condition, status: 'Yes' }] } })[0]?.path,
    ).toEqual(['status', 'conditions', 0, 'status']);
  });
});
