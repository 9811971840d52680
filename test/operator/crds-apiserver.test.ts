/**
 * The generated CRDs (crds/) against a REAL kube-apiserver + etcd (scripts/harness/kube-testenv.ts):
 * the API server accepts them only if their schemas are structural, evaluates their CEL rules,
 * applies their defaults, serves the status and scale subresources, the printer columns and the
 * `rtccdn` category. Each rejected object is also checked against the zod schemas, so the
 * operator and the API server agree on what is invalid and say it with the same words.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import type { z } from 'zod';
import {
  CDNNodeSchema,
  CDNNodeSpecSchema,
  CDNSchema,
  CDNSpecSchema,
  StreamACLSchema,
  StreamACLSpecSchema,
} from '../../operator/src/api/v1alpha1.js';
import { customResourceDefinitions } from '../../scripts/crds/crdgen.js';
import {
  ensureKubeTestEnvBinaries,
  type KubeTestEnv,
  startKubeTestEnv,
} from '../../scripts/harness/kube-testenv.js';
import { CRDS_DIR, ok, waitForCrdsEstablished } from './support.js';

const EXAMPLES_DIR = fileURLToPath(new URL('../../crds/examples/', import.meta.url));
const API_VERSION = 'rtccdn.io/v1alpha1';

function example(file: string): Record<string, unknown> & { spec: Record<string, unknown> } {
  return parse(readFileSync(`${EXAMPLES_DIR}${file}`, 'utf8'));
}

const cdn = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: 'CDN',
  metadata: { name },
  spec: {
    image: 'ghcr.io/rtccdn/media-node:0.1.0',
    redis: { url: 'redis://redis:6379' },
    regions: [{ name: 'eu-west' }],
    ...spec,
  },
});
const streamAcl = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: 'StreamACL',
  metadata: { name },
  spec: { cdnRef: { name: 'live' }, stream: 'cam', keys: [{ id: 'a', value: '0123456789abcdef' }], ...spec },
});
const cdnNode = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: 'Node',
  metadata: { name },
  spec: { cdnRef: { name: 'live' }, role: 'edge', region: 'eu-west', ...spec },
});

/** The row of `name` in kubectl's table output, split into columns by header. */
function row(table: string, name: string): Record<string, string> {
  const lines = table.trimEnd().split('\n');
  const header = lines[0]!;
  const starts = [...header.matchAll(/\S+/g)].map((match) => ({ name: match[0], at: match.index }));
  const line = lines.find((candidate) => candidate.split(/\s+/)[0] === name);
  if (!line) throw new Error(`no row ${name} in:\n${table}`);
  return Object.fromEntries(
    starts.map(({ name: column, at }, index) => [
      column,
      line.slice(at, starts[index + 1]?.at ?? line.length).trim(),
    ]),
  );
}

describe('CRDs on a real kube-apiserver', () => {
  let env: KubeTestEnv;
  const kubectl = (args: string[], input?: string) =>
    env.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
  const getJson = async (resource: string, name: string) =>
    JSON.parse(ok(await kubectl(['get', resource, name, '-o', 'json'])));

  beforeAll(async () => {
    const binDir = await ensureKubeTestEnvBinaries();
    env = await startKubeTestEnv({ binDir });
  }, 40 * 60_000);

  afterAll(async () => {
    await env?.stop();
  }, 60_000);

  it('applies crds/ and every CRD becomes Established (the API server takes only structural schemas)', async () => {
    const applied = ok(await kubectl(['apply', '-f', CRDS_DIR]));
    expect(applied).toContain('customresourcedefinition.apiextensions.k8s.io/cdns.rtccdn.io created');
    expect(applied).toContain('customresourcedefinition.apiextensions.k8s.io/nodes.rtccdn.io created');
    expect(applied).toContain('customresourcedefinition.apiextensions.k8s.io/streamacls.rtccdn.io created');
    await waitForCrdsEstablished(env);
    for (const generated of customResourceDefinitions()) {
      const crd = await getJson('crd', generated.metadata.name);
      const conditions = crd.status.conditions as { type: string; status: string; message: string }[];
      expect(conditions.find(({ type }) => type === 'NonStructuralSchema')).toBeUndefined();
      expect(conditions.find(({ type }) => type === 'NamesAccepted')?.status).toBe('True');
      // The server stored the schema as generated: nothing dropped or rewritten.
      expect(crd.spec.versions[0].schema).toEqual(generated.spec.versions[0]!.schema);
      expect(crd.spec.versions[0].additionalPrinterColumns).toEqual(
        generated.spec.versions[0]!.additionalPrinterColumns,
      );
    }
  }, 90_000);

  it('kubectl explain shows the descriptions from the zod schemas', async () => {
    const flat = (text: string) => text.replace(/\s+/g, ' ');
    // The API server publishes a new CRD's OpenAPI document (which explain reads) a moment after
    // the CRD is Established.
    const explain = async (field: string): Promise<string> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const result = await kubectl(['explain', field]);
        if (result.code === 0) return flat(result.stdout);
        if (Date.now() > deadline || !result.stderr.includes("couldn't find resource")) return ok(result);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    };
    const regions = await explain('cdns.spec.regions');
    expect(regions).toContain(flat(CDNSpecSchema.shape.regions.description!));
    expect(regions).toContain(flat(CDNSpecSchema.shape.regions.element.shape.name.description!));
    expect(regions).toMatch(/edges <Object>/);
    const replicas = await explain('cdnnode.spec.replicas');
    expect(replicas).toContain(flat(CDNNodeSpecSchema.shape.replicas.description!));
    const stream = await explain('streamacls.spec.stream');
    expect(stream).toContain(flat(StreamACLSpecSchema.shape.stream.description!));
  }, 60_000);

  const examples = [
    ['cdn-minimal.yaml', 'cdns', CDNSchema],
    ['cdn.yaml', 'cdns', CDNSchema],
    ['cdn-local.yaml', 'cdns', CDNSchema],
    ['node.yaml', 'cdnnodes', CDNNodeSchema],
    ['streamacl.yaml', 'streamacls', StreamACLSchema],
  ] as const;

  it('applies every example of crds/examples/ below', () => {
    expect(examples.map(([file]) => file).sort()).toEqual(
      readdirSync(EXAMPLES_DIR)
        .filter((file) => file.endsWith('.yaml'))
        .sort(),
    );
  });

  it.each(examples)(
    'accepts the example %s and applies the same defaults as zod',
    async (file, resource, schema) => {
      const object = example(file);
      const name = (object.metadata as { name: string }).name;
      ok(await kubectl(['apply', '-f', `${EXAMPLES_DIR}${file}`]));
      const stored = await getJson(resource, name);
      expect(stored.metadata.generation).toBe(1);
      // The API server's defaulting and zod's parse produce the same spec.
      expect(stored.spec).toEqual((schema as z.ZodType<{ spec: unknown }>).parse(object).spec);
    },
  );

  it('fills in the defaults of a minimal CDN', async () => {
    const stored = await getJson('cdns', 'minimal');
    expect(stored.spec).toEqual({
      image: 'ghcr.io/rtccdn/media-node:0.1.0',
      redis: { url: 'redis://redis.rtccdn:6379/0' },
      regions: [
        {
          name: 'default',
          origins: { replicas: 1 },
          edges: { minReplicas: 1, maxReplicas: 10, targetViewersPerEdge: 500 },
          transcoders: { replicas: 0 },
        },
      ],
      adaptiveLadder: false,
      acl: { defaultPolicy: 'allow' },
      network: { exposure: 'hostPort', serviceType: 'ClusterIP', rtcPortBase: 40000, workersPerNode: 2 },
      placement: { regionLabel: 'topology.kubernetes.io/region' },
    });
    const full = await getJson('cdns', 'live');
    expect(full.spec.regions[1]).toEqual({
      name: 'us-east',
      origins: { replicas: 1 },
      edges: { minReplicas: 1, maxReplicas: 10, targetViewersPerEdge: 500 },
      transcoders: { replicas: 0 },
    });
    expect(full.spec.profiles[0]).toMatchObject({ fps: 30, codec: 'VP8' });
    expect(full.spec.resources.origin.requests).toEqual({ cpu: 2, memory: '1Gi' });
  });

  const invalid: [string, Record<string, unknown>, z.ZodType, string | RegExp, string | undefined][] = [
    [
      'CDN edges with minReplicas > maxReplicas',
      cdn('bad-edges', { regions: [{ name: 'eu', edges: { minReplicas: 5, maxReplicas: 2 } }] }),
      CDNSchema,
      'spec.regions[0].edges.minReplicas: Invalid value: minReplicas must be less than or equal to maxReplicas',
      'minReplicas must be less than or equal to maxReplicas',
    ],
    [
      'CDN redis with both url and secretRef',
      cdn('bad-redis', { redis: { url: 'redis://r:6379', secretRef: { name: 'redis', key: 'url' } } }),
      CDNSchema,
      'spec.redis: Invalid value: exactly one of url or secretRef must be set',
      'exactly one of url or secretRef must be set',
    ],
    [
      'CDN redis with neither url nor secretRef',
      cdn('bad-redis-empty', { redis: {} }),
      CDNSchema,
      'spec.redis: Invalid value: exactly one of url or secretRef must be set',
      'exactly one of url or secretRef must be set',
    ],
    [
      'CDN with duplicate region names',
      cdn('bad-regions', { regions: [{ name: 'eu' }, { name: 'us' }, { name: 'eu' }] }),
      CDNSchema,
      'spec.regions: Invalid value: region names must be unique',
      'region names must be unique',
    ],
    [
      'CDN with duplicate profile names',
      cdn('bad-profiles', {
        profiles: [
          { name: 'hd', width: 1280, height: 720, bitrate: 2_000_000 },
          { name: 'hd', width: 640, height: 360, bitrate: 800_000 },
        ],
      }),
      CDNSchema,
      'spec.profiles: Invalid value: profile names must be unique',
      'profile names must be unique',
    ],
    [
      'CDN ports beyond 65535',
      cdn('bad-ports', { network: { rtcPortBase: 65534, workersPerNode: 4 } }),
      CDNSchema,
      'spec.network.rtcPortBase: Invalid value: rtcPortBase + workersPerNode - 1 must not exceed 65535',
      'rtcPortBase + workersPerNode - 1 must not exceed 65535',
    ],
    [
      'CDN without regions',
      cdn('bad-no-regions', { regions: [] }),
      CDNSchema,
      'spec.regions in body should have at least 1 items',
      undefined,
    ],
    [
      'CDN with an odd width and a tiny bitrate',
      cdn('bad-profile', { profiles: [{ name: 'p', width: 641, height: 360, bitrate: 1000 }] }),
      CDNSchema,
      /spec\.profiles\[0\]\.width in body should be a multiple of 2[\s\S]*spec\.profiles\[0\]\.bitrate in body should be greater than or equal to 50000/,
      undefined,
    ],
    [
      'CDN without image',
      cdn('bad-no-image', { image: undefined }),
      CDNSchema,
      'spec.image: Required value',
      undefined,
    ],
    [
      'StreamACL key with both value and secretKeyRef',
      streamAcl('bad-key', {
        keys: [{ id: 'a', value: '0123456789abcdef', secretKeyRef: { name: 's', key: 'k' } }],
      }),
      StreamACLSchema,
      'spec.keys[0]: Invalid value: exactly one of value or secretKeyRef must be set',
      'exactly one of value or secretKeyRef must be set',
    ],
    [
      'StreamACL with a bad stream pattern',
      streamAcl('bad-stream', { stream: 'sales-*-eu' }),
      StreamACLSchema,
      /spec\.stream: Invalid value: "sales-\*-eu": spec\.stream in body should match/,
      undefined,
    ],
    [
      'StreamACL with a stream name of 129 characters',
      streamAcl('bad-stream-long', { stream: 'x'.repeat(129) }),
      StreamACLSchema,
      'spec.stream in body should match',
      undefined,
    ],
    [
      'StreamACL with duplicate key ids',
      streamAcl('bad-key-ids', {
        keys: [
          { id: 'a', value: '0123456789abcdef' },
          { id: 'a', secretKeyRef: { name: 's', key: 'k' } },
        ],
      }),
      StreamACLSchema,
      'spec.keys: Invalid value: key ids must be unique',
      'key ids must be unique',
    ],
    [
      'StreamACL key with a bad expiresAt',
      streamAcl('bad-expiry', { keys: [{ id: 'a', value: '0123456789abcdef', expiresAt: 'tomorrow' }] }),
      StreamACLSchema,
      'spec.keys[0].expiresAt in body must be of type date-time',
      undefined,
    ],
    [
      'Node with an unknown role and negative replicas',
      cdnNode('bad-node', { role: 'relay', replicas: -1 }),
      CDNNodeSchema,
      /spec\.replicas: Invalid value: -1: spec\.replicas in body should be greater than or equal to 0[\s\S]*spec\.role: Unsupported value: "relay"/,
      undefined,
    ],
  ];

  it.each(invalid)('rejects a %s, as zod does', async (_name, object, schema, serverMessage, celMessage) => {
    const result = await kubectl(['create', '-f', '-'], JSON.stringify(object));
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('is invalid');
    if (typeof serverMessage === 'string') expect(result.stderr).toContain(serverMessage);
    else {
      // The server lists several errors in no fixed order: each part must be there, anywhere.
      for (const part of serverMessage.source.split('[\\s\\S]*')) {
        expect(result.stderr).toMatch(new RegExp(part));
      }
    }
    const name = (object.metadata as { name: string }).name;
    const resource = `${(object.kind as string).toLowerCase()}.rtccdn.io`;
    expect((await kubectl(['get', resource, name])).stderr).toMatch(/NotFound|not found/);

    const parsed = schema.safeParse(object);
    expect(parsed.success).toBe(false);
    if (celMessage) expect(parsed.error?.issues.map(({ message }) => message)).toContain(celMessage);
  });

  it('rejects unknown fields when kubectl validates, and prunes them silently when it does not', async () => {
    const object = { ...cdn('unknown-field', {}), spec: { ...cdn('x', {}).spec, replica: 3 } };
    const strict = await kubectl(['create', '-f', '-'], JSON.stringify(object));
    expect(strict.code).not.toBe(0);
    expect(strict.stderr).toContain('unknown field "spec.replica"');
    ok(await kubectl(['create', '--validate=false', '-f', '-'], JSON.stringify(object)));
    expect((await getJson('cdns', 'unknown-field')).spec.replica).toBeUndefined();
  });

  it('keeps a Node role, region and CDN immutable', async () => {
    const patch = async (spec: Record<string, unknown>) =>
      kubectl(['patch', 'cdnnode', 'live-eu-west-edge', '--type=merge', '-p', JSON.stringify({ spec })]);
    const role = await patch({ role: 'origin' });
    expect(role.code).not.toBe(0);
    expect(role.stderr).toContain('spec.role: Invalid value: "origin": role is immutable');
    expect((await patch({ region: 'us-east' })).stderr).toContain('region is immutable');
    expect((await patch({ cdnRef: { name: 'other' } })).stderr).toContain('cdnRef is immutable');
    ok(await patch({ ports: { rtcPortBase: 41000, workers: 4 } }));
  });

  it('scales a Node through the scale subresource (kubectl scale, autoscalers)', async () => {
    const scalePath = '/apis/rtccdn.io/v1alpha1/namespaces/default/nodes/live-eu-west-edge/scale';
    expect(ok(await kubectl(['scale', 'cdnnode/live-eu-west-edge', '--replicas=3']))).toContain('scaled');
    expect((await getJson('cdnnodes', 'live-eu-west-edge')).spec.replicas).toBe(3);

    ok(
      await kubectl([
        'patch',
        'cdnnode',
        'live-eu-west-edge',
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({
          status: {
            replicas: 3,
            readyReplicas: 2,
            selector: 'rtccdn.io/node=live-eu-west-edge',
            viewers: 1200,
          },
        }),
      ]),
    );
    const scale = JSON.parse(ok(await kubectl(['get', '--raw', scalePath])));
    expect(scale.kind).toBe('Scale');
    expect(scale.spec).toEqual({ replicas: 3 });
    expect(scale.status).toEqual({ replicas: 3, selector: 'rtccdn.io/node=live-eu-west-edge' });

    const negative = await kubectl(['scale', 'cdnnode/live-eu-west-edge', '--replicas=-1']);
    expect(negative.code).not.toBe(0);
  });

  it('writes status only through the status subresource, with conditions keyed by type', async () => {
    const condition = (type: string, status: string) => ({
      type,
      status,
      reason: status === 'True' ? 'AllNodesReady' : 'NodesNotReady',
      message: '',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      observedGeneration: 1,
    });
    const status = {
      observedGeneration: 1,
      conditions: [condition('Ready', 'True')],
      regions: [{ name: 'eu-west', originsReady: 2, edgesReady: 2, edgesDesired: 2 }],
      liveStreams: 3,
      viewers: 42,
    };
    const patchStatus = (resource: string, name: string, value: unknown) =>
      kubectl([
        'patch',
        resource,
        name,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status: value }),
      ]);
    ok(await patchStatus('cdns', 'live', status));
    const stored = await getJson('cdns', 'live');
    expect(stored.status).toEqual(status);
    expect(stored.metadata.generation).toBe(1);
    expect(CDNSchema.parse(stored).status).toEqual(status);
    // A status sent to the main resource is ignored (and does not bump the generation).
    ok(
      await kubectl([
        'patch',
        'cdns',
        'live',
        '--type=merge',
        '-p',
        JSON.stringify({ status: { viewers: 0 } }),
      ]),
    );
    expect(await getJson('cdns', 'live')).toMatchObject({
      metadata: { generation: 1 },
      status: { viewers: 42 },
    });

    const duplicate = await patchStatus('cdns', 'live', {
      conditions: [condition('Ready', 'True'), condition('Ready', 'False')],
    });
    expect(duplicate.code).not.toBe(0);
    expect(duplicate.stderr).toContain('status.conditions[1]: Duplicate value');
    const badStatus = await patchStatus('cdns', 'live', { conditions: [{ ...condition('Ready', 'Yes') }] });
    expect(badStatus.stderr).toContain('status.conditions[0].status: Unsupported value: "Yes"');

    ok(
      await patchStatus('streamacls', 'sales', {
        observedGeneration: 1,
        conditions: [{ ...condition('Synced', 'True'), reason: 'KeysSynced' }],
        syncedKeys: 2,
        lastSyncTime: '2026-01-01T00:00:01Z',
      }),
    );
  });

  it('shows the printer columns in kubectl get', async () => {
    const cdns = ok(await kubectl(['get', 'cdns']));
    expect(cdns.split('\n')[0]).toMatch(/^NAME\s+READY\s+STREAMS\s+VIEWERS\s+AGE$/);
    expect(row(cdns, 'live')).toMatchObject({ NAME: 'live', READY: 'True', STREAMS: '3', VIEWERS: '42' });
    expect(ok(await kubectl(['get', 'cdns', '-o', 'wide'])).split('\n')[0]).toMatch(/AGE\s+IMAGE$/);

    const nodes = ok(await kubectl(['get', 'cdnnodes']));
    expect(nodes.split('\n')[0]).toMatch(/^NAME\s+ROLE\s+REGION\s+REPLICAS\s+READY\s+VIEWERS\s+AGE$/);
    expect(row(nodes, 'live-eu-west-edge')).toMatchObject({
      ROLE: 'edge',
      REGION: 'eu-west',
      REPLICAS: '3',
      READY: '2',
      VIEWERS: '1200',
    });

    const acls = ok(await kubectl(['get', 'streamacls']));
    expect(acls.split('\n')[0]).toMatch(/^NAME\s+STREAM\s+KEYS\s+SYNCED\s+AGE$/);
    expect(row(acls, 'sales')).toMatchObject({ STREAM: 'sales-*', KEYS: '2', SYNCED: 'True' });
    // The short name works too.
    expect(row(ok(await kubectl(['get', 'sacl'])), 'sales')).toMatchObject({ STREAM: 'sales-*' });
  });

  it('lists every kind with kubectl get rtccdn (the category)', async () => {
    const all = ok(await kubectl(['get', 'rtccdn']));
    expect(all).toContain('cdn.rtccdn.io/live');
    expect(all).toContain('cdn.rtccdn.io/minimal');
    expect(all).toContain('node.rtccdn.io/live-eu-west-edge');
    expect(all).toContain('streamacl.rtccdn.io/sales');
    // `nodes` alone is the core kind; the CDN's Node needs its group or a short name.
    const core = await kubectl(['get', 'nodes']);
    expect(core.stdout).not.toContain('live-eu-west-edge');
    expect(ok(await kubectl(['get', 'nodes.rtccdn.io']))).toContain('live-eu-west-edge');
  });
});
