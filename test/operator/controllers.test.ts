/**
 * The CDN and Node controllers against a real kube-apiserver and a real redis-server:
 * a CDN becomes Nodes, StatefulSets, Services, a Secret and a ConfigMap with ownerReferences;
 * a second reconcile writes nothing; spec changes roll through; bad references and names become
 * conditions with reasons; Node status and the scale subresource work; and deleting a CDN
 * leaves everything to the garbage collector (which the test environment does not run: the
 * ownerReferences it would follow are checked instead).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { redisPrefixFor } from '../../operator/src/controllers/shared.js';
import type { KubeClient } from '../../operator/src/kube/client.js';
import type { Manager } from '../../operator/src/manager.js';
import type { OperatorMetrics } from '../../operator/src/metrics.js';
import type { KubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import {
  clientFor,
  counterValue,
  type FakeMediaNode,
  fakeMediaNode,
  kubectlApply,
  kubectlGet,
  ok,
  sleep,
  startApiServerWithCrds,
  testManager,
  waitFor,
} from './support.js';

const NS = 'media';
const API_VERSION = 'rtccdn.io/v1alpha1';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }[];
  };
  // biome-ignore lint/suspicious/noExplicitAny: test access to arbitrary object fields
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: test access to arbitrary object fields
  status?: any;
  data?: Record<string, string>;
}

describe('CDN and Node controllers on a real API server', () => {
  let env: KubeTestEnv;
  let redis: RedisServer;
  let client: KubeClient;
  let manager: Manager;
  let metrics: OperatorMetrics;
  const fakes: FakeMediaNode[] = [];

  const kubectl = (args: string[], input?: string) =>
    env.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
  const apply = (object: unknown) => kubectlApply(env, object);
  const get = (resource: string, name: string, namespace = NS) =>
    kubectlGet<Obj>(env, resource, name, namespace);
  const mustGet = async (resource: string, name: string) =>
    waitFor(`${resource} ${name}`, () => get(resource, name), 30_000, 200);
  const condition = (object: Obj | undefined, type: string) =>
    (
      object?.status?.conditions as
        | { type: string; status: string; reason: string; observedGeneration?: number }[]
        | undefined
    )?.find((c) => c.type === type);

  const cdn = (name: string, spec: Record<string, unknown>, annotations?: Record<string, string>) => ({
    apiVersion: API_VERSION,
    kind: 'CDN',
    metadata: { name, namespace: NS, ...(annotations ? { annotations } : {}) },
    spec: {
      image: 'ghcr.io/rtccdn/media-node:0.1.0',
      redis: { url: redis.url },
      regions: [{ name: 'eu-west' }],
      ...spec,
    },
  });

  beforeAll(async () => {
    [env, redis] = await Promise.all([startApiServerWithCrds(), startRedisServer()]);
    ok(await kubectl(['create', 'namespace', NS]));
    client = clientFor(env);
    ({ manager, metrics } = testManager({ client }));
    manager.start();
  }, 40 * 60_000);

  afterAll(async () => {
    await Promise.all(fakes.map((fake) => fake.close()));
    await manager?.stop();
    client?.transport.close();
    await Promise.all([env?.stop(), redis?.stop()]);
  }, 60_000);

  it('turns a CDN into Nodes, StatefulSets, Services, a Secret and a ConfigMap, all owned', async () => {
    await apply(
      cdn('live', {
        regions: [
          { name: 'eu-west', origins: { replicas: 1 }, edges: { minReplicas: 2, maxReplicas: 5 } },
          { name: 'us-east' },
        ],
        acl: { defaultPolicy: 'deny' },
      }),
    );
    const live = await mustGet('cdn', 'live');
    const ownedByCdn = {
      apiVersion: API_VERSION,
      kind: 'CDN',
      name: 'live',
      uid: live.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    };
    for (const region of ['eu-west', 'us-east']) {
      for (const role of ['origin', 'edge']) {
        const name = `live-${region}-${role}`;
        const node = await mustGet('nodes.rtccdn.io', name);
        expect(node.metadata.ownerReferences).toEqual([ownedByCdn]);
        expect(node.spec).toMatchObject({ cdnRef: { name: 'live' }, role, region });
        const set = await mustGet('statefulset', name);
        expect(set.metadata.ownerReferences).toEqual([
          {
            apiVersion: API_VERSION,
            kind: 'Node',
            name,
            uid: node.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ]);
        expect(set.spec.selector.matchLabels).toEqual({
          'app.kubernetes.io/name': 'rtccdn-media-node',
          'rtccdn.io/node': name,
        });
        const headless = await mustGet('service', `${name}-pods`);
        expect(headless.metadata.ownerReferences?.[0]?.uid).toBe(node.metadata.uid);
        expect(headless.spec.clusterIP).toBe('None');
        // A kubectl drain evicts one pod of the group at a time: the budget selects exactly the
        // StatefulSet's pods and goes with the Node.
        const budget = await mustGet('poddisruptionbudget', name);
        expect(budget.metadata.ownerReferences?.[0]?.uid).toBe(node.metadata.uid);
        expect(budget.spec).toMatchObject({
          maxUnavailable: 1,
          selector: { matchLabels: set.spec.selector.matchLabels },
          unhealthyPodEvictionPolicy: 'AlwaysAllow',
        });
        const service = await mustGet('service', name);
        expect(service.metadata.ownerReferences).toEqual([ownedByCdn]);
        expect(service.spec.type).toBe('ClusterIP');
        expect(service.spec.selector).toMatchObject({ 'rtccdn.io/region': region, 'rtccdn.io/role': role });
      }
    }
    const secret = await mustGet('secret', 'live-cluster');
    expect(secret.metadata.ownerReferences).toEqual([ownedByCdn]);
    expect(Buffer.from(secret.data!.clusterSecret!, 'base64').toString().length).toBeGreaterThanOrEqual(32);
    const config = await mustGet('configmap', 'live-config');
    expect(config.metadata.ownerReferences).toEqual([ownedByCdn]);
    expect(config.data).toMatchObject({
      ACL_DEFAULT_POLICY: 'deny',
      ADAPTIVE_LADDER: 'false',
      REDIS_PREFIX: redisPrefixFor(NS, 'live'),
    });
    // The edge count belongs to the autoscaler, which brings it into [min, max] at once.
    await waitFor(
      'eu-west edges at minReplicas',
      async () => (await get('nodes.rtccdn.io', 'live-eu-west-edge'))?.spec.replicas === 2,
    );
    const edgeSet = await waitFor('edge StatefulSet scaled', async () => {
      const set = await get('statefulset', 'live-eu-west-edge');
      return set?.spec.replicas === 2 ? set : undefined;
    });
    const env0 = Object.fromEntries(
      (
        edgeSet.spec.template.spec.containers[0].env as {
          name: string;
          value?: string;
          valueFrom?: unknown;
        }[]
      ).map((variable) => [variable.name, variable.value ?? variable.valueFrom]),
    );
    expect(env0).toMatchObject({
      ROLE: 'edge',
      REGION: 'eu-west',
      REDIS_URL: redis.url,
      NODE_ID: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } },
      CLUSTER_SECRET: { secretKeyRef: { name: 'live-cluster', key: 'clusterSecret' } },
    });
  });

  it('reports node readiness and Redis load in the Node and CDN status', async () => {
    // No kube-controller-manager here: play the StatefulSet controller by writing its status.
    for (const region of ['eu-west', 'us-east']) {
      for (const role of ['origin', 'edge']) {
        const name = `live-${region}-${role}`;
        const set = await mustGet('statefulset', name);
        const replicas = set.spec.replicas;
        await client.patchStatus(
          { group: 'apps', version: 'v1', kind: 'StatefulSet', plural: 'statefulsets', namespaced: true },
          NS,
          name,
          {
            replicas,
            readyReplicas: replicas,
            updatedReplicas: replicas,
            currentReplicas: replicas,
            availableReplicas: replicas,
            observedGeneration: set.metadata.generation,
          },
        );
      }
    }
    const prefix = redisPrefixFor(NS, 'live');
    for (const [id, viewers] of [
      ['live-eu-west-edge-0', 7],
      ['live-eu-west-edge-1', 5],
    ] as const) {
      fakes.push(
        await fakeMediaNode({
          redisUrl: redis.url,
          prefix,
          id,
          role: 'edge',
          region: 'eu-west',
          internalUrl: 'http://127.0.0.1:9',
          viewers,
        }),
      );
    }
    const origin = await fakeMediaNode({
      redisUrl: redis.url,
      prefix,
      id: 'live-eu-west-origin-0',
      role: 'origin',
      region: 'eu-west',
      internalUrl: 'http://127.0.0.1:9',
    });
    fakes.push(origin);
    await origin.registry.claimStream({ name: 'keynote', kinds: ['audio', 'video'] });

    const edge = await waitFor('edge Node status with load', async () => {
      const node = await get('nodes.rtccdn.io', 'live-eu-west-edge');
      return node?.status?.viewers === 12 && condition(node, 'Ready')?.status === 'True' ? node : undefined;
    });
    expect(edge.status).toMatchObject({
      replicas: 2,
      readyReplicas: 2,
      selector: 'app.kubernetes.io/name=rtccdn-media-node,rtccdn.io/node=live-eu-west-edge',
      viewers: 12,
      streams: 2,
      observedGeneration: edge.metadata.generation,
    });
    const live = await waitFor('CDN Ready with load', async () => {
      const object = await get('cdn', 'live');
      return condition(object, 'Ready')?.status === 'True' && object?.status?.liveStreams === 1
        ? object
        : undefined;
    });
    expect(live.status).toMatchObject({
      observedGeneration: live.metadata.generation,
      liveStreams: 1,
      viewers: 12,
      regions: [
        { name: 'eu-west', originsReady: 1, edgesReady: 2, edgesDesired: 2 },
        { name: 'us-east', originsReady: 1, edgesReady: 1, edgesDesired: 1 },
      ],
    });
    expect(condition(live, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    // The printer columns read the status.
    expect(ok(await kubectl(['get', 'cdn', 'live', '-n', NS]))).toMatch(/live\s+True\s+1\s+12/);
  });

  it('writes nothing on a second reconcile: every resourceVersion stays the same', async () => {
    const objects = [
      ['cdn', 'live'],
      ['configmap', 'live-config'],
      ['secret', 'live-cluster'],
      ...['eu-west', 'us-east'].flatMap((region) =>
        ['origin', 'edge'].flatMap((role) => [
          ['nodes.rtccdn.io', `live-${region}-${role}`],
          ['statefulset', `live-${region}-${role}`],
          ['service', `live-${region}-${role}`],
          ['service', `live-${region}-${role}-pods`],
          ['poddisruptionbudget', `live-${region}-${role}`],
        ]),
      ),
    ] as const;
    const versions = async () =>
      Object.fromEntries(
        await Promise.all(
          objects.map(async ([kind, name]) => [
            `${kind}/${name}`,
            (await get(kind, name))?.metadata.resourceVersion,
          ]),
        ),
      );
    // Settle first (the status writes of the previous test), then compare across reconciles.
    let before = await versions();
    await waitFor(
      'a quiet moment',
      async () => {
        await sleep(1_500);
        const now = await versions();
        const quiet = JSON.stringify(now) === JSON.stringify(before);
        before = now;
        return quiet;
      },
      30_000,
      0,
    );
    const reconcilesBefore = {
      cdn: await counterValue(metrics, 'reconciles', { controller: 'cdn' }),
      node: await counterValue(metrics, 'reconciles', { controller: 'node' }),
    };
    for (const controller of manager.term!.controllers) {
      for (const [kind, name = ''] of objects) {
        if (kind === 'cdn' && controller.name === 'cdn') controller.enqueue({ namespace: NS, name });
        if (kind === 'nodes.rtccdn.io' && controller.name !== 'cdn')
          controller.enqueue({ namespace: NS, name });
      }
    }
    await waitFor('more reconciles', async () => {
      const cdnNow = await counterValue(metrics, 'reconciles', { controller: 'cdn' });
      const nodeNow = await counterValue(metrics, 'reconciles', { controller: 'node' });
      return cdnNow >= reconcilesBefore.cdn + 2 && nodeNow >= reconcilesBefore.node + 8;
    });
    expect(await versions()).toEqual(before);
    expect(await counterValue(metrics, 'reconciles', { result: 'error' })).toBe(0);
  });

  it('rolls a spec change through: image, replicas, shared config; a removed region is cleaned up', async () => {
    const setBefore = await mustGet('statefulset', 'live-eu-west-origin');
    const hashBefore = setBefore.spec.template.metadata.annotations['rtccdn.io/config-hash'];
    await apply(
      cdn('live', {
        image: 'ghcr.io/rtccdn/media-node:0.2.0',
        regions: [{ name: 'eu-west', origins: { replicas: 3 }, edges: { minReplicas: 2, maxReplicas: 5 } }],
        acl: { defaultPolicy: 'allow' },
      }),
    );
    const set = await waitFor('origin StatefulSet updated', async () => {
      const object = await get('statefulset', 'live-eu-west-origin');
      return object?.spec.template.spec.containers[0].image === 'ghcr.io/rtccdn/media-node:0.2.0' &&
        object.spec.replicas === 3
        ? object
        : undefined;
    });
    expect(set.metadata.generation).toBeGreaterThan(setBefore.metadata.generation!);
    // The ACL default changed: pods read it at start, so the template changes and they roll.
    expect(set.spec.template.metadata.annotations['rtccdn.io/config-hash']).not.toBe(hashBefore);
    expect((await get('configmap', 'live-config'))?.data?.ACL_DEFAULT_POLICY).toBe('allow');
    expect((await get('nodes.rtccdn.io', 'live-eu-west-origin'))?.spec.replicas).toBe(3);
    for (const [kind, name] of [
      ['nodes.rtccdn.io', 'live-us-east-origin'],
      ['nodes.rtccdn.io', 'live-us-east-edge'],
      ['service', 'live-us-east-origin'],
      ['service', 'live-us-east-edge'],
    ] as const) {
      await waitFor(`${kind} ${name} deleted`, async () => (await get(kind, name)) === undefined);
    }
    const live = await waitFor('CDN observed the new generation', async () => {
      const object = await get('cdn', 'live');
      return object?.status?.observedGeneration === object?.metadata.generation ? object : undefined;
    });
    expect(live.status.regions.map((region: { name: string }) => region.name)).toEqual(['eu-west']);
    expect(condition(live, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'NodesNotReady',
      observedGeneration: live.metadata.generation,
    });
  });

  it('keeps exactly one writer of replicas: a CDN-owned origin count is restored, a standalone Node scales', async () => {
    ok(await kubectl(['scale', 'nodes.rtccdn.io/live-eu-west-origin', '-n', NS, '--replicas=5']));
    await waitFor('origin replicas restored from the CDN', async () => {
      const node = await get('nodes.rtccdn.io', 'live-eu-west-origin');
      return node?.spec.replicas === 3 && node.metadata.generation! > 1;
    });

    await apply({
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name: 'manual-edge', namespace: NS },
      spec: { cdnRef: { name: 'live' }, role: 'edge', region: 'eu-west', replicas: 1 },
    });
    await mustGet('statefulset', 'manual-edge');
    ok(await kubectl(['scale', 'cdnnode/manual-edge', '-n', NS, '--replicas=3']));
    await waitFor(
      'StatefulSet follows the scale subresource',
      async () => (await get('statefulset', 'manual-edge'))?.spec.replicas === 3,
    );
    const scale = JSON.parse(
      ok(
        await kubectl(['get', '--raw', `/apis/rtccdn.io/v1alpha1/namespaces/${NS}/nodes/manual-edge/scale`]),
      ),
    );
    expect(scale.spec.replicas).toBe(3);
    expect(scale.status.selector).toBe('app.kubernetes.io/name=rtccdn-media-node,rtccdn.io/node=manual-edge');
    const node = await waitFor('Node status observed the scale', async () => {
      const object = await get('nodes.rtccdn.io', 'manual-edge');
      return object?.status?.observedGeneration === object?.metadata.generation ? object : undefined;
    });
    expect(condition(node, 'Ready')).toMatchObject({ status: 'False', reason: 'PodsNotReady' });
    // Nothing scales it back: without a CDN owner, the autoscaler leaves it alone.
    await sleep(1_000);
    expect((await get('nodes.rtccdn.io', 'manual-edge'))?.spec.replicas).toBe(3);
  });

  it('leaves edge replicas to an external autoscaler when the CDN says so', async () => {
    await apply(
      cdn(
        'hpa',
        { regions: [{ name: 'eu-west', edges: { minReplicas: 2, maxReplicas: 4 } }] },
        { 'rtccdn.io/edge-autoscaler': 'external' },
      ),
    );
    await mustGet('statefulset', 'hpa-eu-west-edge');
    // The built-in autoscaler would have raised it to minReplicas; the CRD default stays.
    await sleep(1_000);
    expect((await get('nodes.rtccdn.io', 'hpa-eu-west-edge'))?.spec.replicas).toBe(1);
    ok(await kubectl(['scale', 'cdnnode/hpa-eu-west-edge', '-n', NS, '--replicas=7']));
    await waitFor(
      'edge StatefulSet at 7',
      async () => (await get('statefulset', 'hpa-eu-west-edge'))?.spec.replicas === 7,
    );
    await sleep(1_000);
    expect((await get('nodes.rtccdn.io', 'hpa-eu-west-edge'))?.spec.replicas).toBe(7);
  });

  it('turns bad references and names into conditions with reasons, and recovers when they are fixed', async () => {
    await apply(
      cdn('broken', {
        redis: { secretRef: { name: 'broken-redis', key: 'url' } },
        publishTokenSecretRef: { name: 'broken-token', key: 'token' },
        regions: [{ name: 'eu-west' }, { name: 'a-region-name-that-is-far-too-long-for-pods' }],
      }),
    );
    const broken = await waitFor('Degraded CDN', async () => {
      const object = await get('cdn', 'broken');
      return condition(object, 'Degraded')?.status === 'True' ? object : undefined;
    });
    expect(condition(broken, 'Ready')).toMatchObject({
      status: 'False',
      reason: 'InvalidName',
      observedGeneration: broken.metadata.generation,
    });
    const degraded = condition(broken, 'Degraded') as unknown as {
      reason: string;
      message: string;
      observedGeneration: number;
    };
    expect(degraded.reason).toBe('InvalidName');
    expect(degraded.observedGeneration).toBe(broken.metadata.generation);
    expect(degraded.message).toContain('Secret broken-redis not found (spec.redis.secretRef)');
    expect(degraded.message).toContain('Secret broken-token not found (spec.publishTokenSecretRef)');
    // The valid region is deployed anyway; the pods wait for the Secrets.
    await mustGet('statefulset', 'broken-eu-west-edge');
    const events = ok(
      await kubectl([
        'get',
        'events',
        '-n',
        NS,
        '--field-selector',
        'involvedObject.name=broken',
        '-o',
        'json',
      ]),
    );
    expect(
      (JSON.parse(events).items as { type: string; reason: string }[]).some(
        (e) => e.type === 'Warning' && e.reason === 'InvalidName',
      ),
    ).toBe(true);

    ok(
      await kubectl([
        'create',
        'secret',
        'generic',
        'broken-redis',
        '-n',
        NS,
        `--from-literal=url=${redis.url}`,
      ]),
    );
    ok(
      await kubectl([
        'create',
        'secret',
        'generic',
        'broken-token',
        '-n',
        NS,
        '--from-literal=token=0123456789abcdef',
      ]),
    );
    await apply(
      cdn('broken', {
        redis: { secretRef: { name: 'broken-redis', key: 'url' } },
        publishTokenSecretRef: { name: 'broken-token', key: 'token' },
      }),
    );
    const fixed = await waitFor('Degraded cleared', async () => {
      const object = await get('cdn', 'broken');
      return condition(object, 'Degraded')?.status === 'False' ? object : undefined;
    });
    expect(condition(fixed, 'Ready')).toMatchObject({ status: 'False', reason: 'NodesNotReady' });
  });

  it('reports an unreachable Redis and a broken cluster Secret without touching the Secret', async () => {
    await apply(cdn('offline', { redis: { url: 'redis://127.0.0.1:1' } }));
    const offline = await waitFor('RedisUnreachable', async () => {
      const object = await get('cdn', 'offline');
      return condition(object, 'Degraded')?.reason === 'RedisUnreachable' ? object : undefined;
    });
    expect(offline.status.liveStreams).toBeUndefined();

    // A cluster Secret the user broke is reported, never overwritten.
    ok(
      await kubectl([
        'create',
        'secret',
        'generic',
        'short-cluster',
        '-n',
        NS,
        '--from-literal=clusterSecret=tooshort',
      ]),
    );
    await apply(cdn('short', {}));
    await waitFor(
      'ClusterSecretInvalid',
      async () => condition(await get('cdn', 'short'), 'Degraded')?.reason === 'ClusterSecretInvalid',
    );
    const secret = await get('secret', 'short-cluster');
    expect(Buffer.from(secret!.data!.clusterSecret!, 'base64').toString()).toBe('tooshort');
  });

  it('reports a Node whose CDN does not exist', async () => {
    await apply({
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name: 'orphan', namespace: NS },
      spec: { cdnRef: { name: 'nowhere' }, role: 'origin', region: 'eu-west' },
    });
    const orphan = await waitFor('CDNNotFound', async () => {
      const object = await get('nodes.rtccdn.io', 'orphan');
      return condition(object, 'Ready')?.reason === 'CDNNotFound' ? object : undefined;
    });
    expect(condition(orphan, 'Ready')?.observedGeneration).toBe(orphan.metadata.generation);
    expect(await get('statefulset', 'orphan')).toBeUndefined();
  });

  it('gives every pod its own NodePorts with exposure nodePort, and moves a group that grew without touching the others', async () => {
    const regions = (edgeMax: number) => [
      { name: 'eu-west', edges: { minReplicas: 1, maxReplicas: edgeMax } },
      { name: 'us-east', edges: { minReplicas: 1, maxReplicas: 2 } },
    ];
    await apply(
      cdn('np', {
        regions: regions(2),
        network: { exposure: 'nodePort', rtcPortBase: 31000, workersPerNode: 2, serviceType: 'NodePort' },
      }),
    );
    const rtcPorts = async (service: string) => {
      const object = await mustGet('service', service);
      return (object.spec.ports as { protocol: string; port: number; nodePort: number }[]).map(
        (port) => `${port.protocol}/${port.port}/${port.nodePort}`,
      );
    };
    const edge = await waitFor('eu edge with a port block', async () => {
      const node = await get('nodes.rtccdn.io', 'np-eu-west-edge');
      return node?.spec?.ports?.podSlots === 2 ? node : undefined;
    });
    expect(edge.spec.ports).toEqual({ rtcPortBase: 31002, workers: 2, podSlots: 2 });
    // The apiserver allocated exactly the node ports asked for: pod 1 of the block owns 31004-31005.
    expect(await rtcPorts('np-eu-west-edge-rtc-1')).toEqual([
      'UDP/31004/31004',
      'TCP/31004/31004',
      'UDP/31005/31005',
      'TCP/31005/31005',
    ]);
    const set = await mustGet('statefulset', 'np-eu-west-edge');
    const env = set.spec.template.spec.containers[0].env as { name: string; valueFrom?: unknown }[];
    expect(env.find((variable) => variable.name === 'POD_INDEX')?.valueFrom).toEqual({
      fieldRef: { apiVersion: 'v1', fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" },
    });
    const usEdgeBefore = (await get('nodes.rtccdn.io', 'np-us-east-edge'))?.spec.ports;

    // The eu edges may now grow to 3: their group moves to a free block, the us groups stay.
    await apply(
      cdn('np', {
        regions: regions(3),
        network: { exposure: 'nodePort', rtcPortBase: 31000, workersPerNode: 2, serviceType: 'NodePort' },
      }),
    );
    const grown = await waitFor('eu edge with 3 slots', async () => {
      const node = await get('nodes.rtccdn.io', 'np-eu-west-edge');
      return node?.spec?.ports?.podSlots === 3 ? node : undefined;
    });
    expect((await get('nodes.rtccdn.io', 'np-us-east-edge'))?.spec.ports).toEqual(usEdgeBefore);
    expect(grown.spec.ports.rtcPortBase).toBeGreaterThanOrEqual(31000 + 2 * 2 + 2 * 2 + 2 * 2);
    await waitFor('slot 2 Service', () => get('service', 'np-eu-west-edge-rtc-2'));
    expect((await rtcPorts('np-eu-west-edge-rtc-0'))[0]).toBe(
      `UDP/${grown.spec.ports.rtcPortBase}/${grown.spec.ports.rtcPortBase}`,
    );

    // The WHEP Service is a NodePort: its URL in the status needs a Kubernetes node's address
    // (none here, the test API server has no nodes), the ClusterIP-less URL is not invented.
    const status = (await mustGet('cdn', 'np')).status;
    expect(status.regions[0].whepUrl).toBeUndefined();
  });

  it('refuses a NodePort the cluster cannot give, on the Node, with the API server message', async () => {
    // Outside the test API server's NodePort range (30000-32767).
    await apply(cdn('np-high', { network: { exposure: 'nodePort', rtcPortBase: 40000, workersPerNode: 1 } }));
    const origin = await waitFor('RtcPortsUnavailable', async () => {
      const node = await get('nodes.rtccdn.io', 'np-high-eu-west-origin');
      return condition(node, 'Ready')?.reason === 'RtcPortsUnavailable' ? node : undefined;
    });
    expect((condition(origin, 'Ready') as { message?: string }).message).toMatch(
      /np-high-eu-west-origin-rtc-0 refused: .*range/,
    );
  });

  it('quotes why pods do not run (image pull, crash loop) in the Node and CDN Ready conditions and events', async () => {
    await apply(cdn('broken', {}));
    const set = await mustGet('statefulset', 'broken-eu-west-origin');
    // No kubelet here: play it by creating the pod and writing the status it would report.
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'broken-eu-west-origin-0',
        namespace: NS,
        labels: set.spec.template.metadata.labels,
      },
      spec: { containers: [{ name: 'media-node', image: 'rtccdn/media-node:missing' }] },
    });
    const podType = { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true };
    await client.patchStatus(podType, NS, 'broken-eu-west-origin-0', {
      phase: 'Pending',
      containerStatuses: [
        {
          name: 'media-node',
          image: 'rtccdn/media-node:missing',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {
            waiting: {
              reason: 'ImagePullBackOff',
              message: 'Back-off pulling image "rtccdn/media-node:missing"',
            },
          },
        },
      ],
    });
    const node = await waitFor('Node ImagePullFailed', async () => {
      const object = await get('nodes.rtccdn.io', 'broken-eu-west-origin');
      return condition(object, 'Ready')?.reason === 'ImagePullFailed' ? object : undefined;
    });
    expect((condition(node, 'Ready') as { message?: string }).message).toContain(
      'pod broken-eu-west-origin-0: ImagePullBackOff: Back-off pulling image "rtccdn/media-node:missing"',
    );
    const broken = await waitFor('CDN ImagePullFailed', async () => {
      const object = await get('cdn', 'broken');
      return condition(object, 'Ready')?.reason === 'ImagePullFailed' ? object : undefined;
    });
    expect((condition(broken, 'Ready') as { message?: string }).message).toContain(
      'Node broken-eu-west-origin: 0/1 media nodes ready; pod broken-eu-west-origin-0',
    );
    const events = await waitFor('Warning events', async () => {
      const list = JSON.parse(
        ok(
          await kubectl([
            'get',
            'events',
            '-n',
            NS,
            '--field-selector',
            'reason=ImagePullFailed',
            '-o',
            'json',
          ]),
        ),
      ) as { items: { involvedObject: { kind: string; name: string }; type: string }[] };
      const kinds = list.items
        .filter((event) => event.type === 'Warning')
        .map((event) => event.involvedObject.kind);
      return kinds.includes('CDN') && kinds.includes('Node') ? kinds : undefined;
    });
    expect(events).toEqual(expect.arrayContaining(['CDN', 'Node']));

    // The media node keeps exiting: its last words (termination message) become the reason.
    await client.patchStatus(podType, NS, 'broken-eu-west-origin-0', {
      containerStatuses: [
        {
          name: 'media-node',
          image: 'rtccdn/media-node:0.1.0',
          imageID: '',
          ready: false,
          restartCount: 3,
          state: {
            waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' },
          },
          lastState: {
            terminated: {
              exitCode: 2,
              reason: 'Error',
              message: 'invalid configuration: REDIS_URL unreachable',
            },
          },
        },
      ],
    });
    const crashing = await waitFor('CDN CrashLooping', async () => {
      const object = await get('cdn', 'broken');
      return condition(object, 'Ready')?.reason === 'CrashLooping' ? object : undefined;
    });
    expect((condition(crashing, 'Ready') as { message?: string }).message).toContain(
      'exited with code 2: invalid configuration: REDIS_URL unreachable',
    );
  });

  it('deletes a CDN without a finalizer: what it owns is left to the garbage collector, with correct owner chains', async () => {
    const live = await mustGet('cdn', 'live');
    const owned = JSON.parse(
      ok(
        await kubectl([
          'get',
          'nodes.rtccdn.io,statefulsets,services,secrets,configmaps',
          '-n',
          NS,
          '-l',
          'rtccdn.io/cdn=live',
          '-o',
          'json',
        ]),
      ),
    ).items as Obj[];
    expect(owned.length).toBeGreaterThanOrEqual(10);
    // (The StatefulSets and Services of the region removed earlier are still here, their Node
    // gone: without a garbage collector nothing deletes them. Their chains end there.)
    // The Node created by hand (manual-edge) is not the CDN's: it and its StatefulSet stay.
    const notTheCdns = (object: Obj) =>
      object.metadata.labels?.['rtccdn.io/region'] === 'us-east' ||
      object.metadata.labels?.['rtccdn.io/node'] === 'manual-edge';
    const uids = new Map(owned.map((object) => [object.metadata.uid, object]));
    // Every object leads to the CDN through controller ownerReferences: GC deletes them all.
    for (const object of owned.filter((candidate) => !notTheCdns(candidate))) {
      let current: Obj | undefined = object;
      const chain: string[] = [];
      while (current && current.kind !== 'CDN') {
        const owner: { uid: string } | undefined = current.metadata.ownerReferences?.find(
          (reference) => reference.controller,
        );
        expect(owner).toMatchObject({ controller: true, blockOwnerDeletion: true });
        chain.push(`${current.kind}/${current.metadata.name}`);
        current = owner!.uid === live.metadata.uid ? live : uids.get(owner!.uid);
        expect(current).toBeDefined();
      }
      expect(chain.length).toBeGreaterThan(0);
    }
    ok(await kubectl(['delete', 'cdn', 'live', '-n', NS, '--wait=true', '--timeout=30s']));
    expect(await get('cdn', 'live')).toBeUndefined();
    // The operator neither recreates nor deletes anything itself (no GC runs in this environment).
    await sleep(1_500);
    expect(await get('nodes.rtccdn.io', 'live-eu-west-edge')).toBeDefined();
    expect(await counterValue(metrics, 'reconciles', { controller: 'cdn', result: 'error' })).toBe(0);
  });
});
