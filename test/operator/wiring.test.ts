/**
 * The operator's wiring against a real kube-apiserver (and a real redis-server):
 *
 * - TypedCache parses objects as they enter, keeps the ones that do not parse aside, and hands
 *   its handlers typed events;
 * - ControllerBuilder maps the primary kind, owned objects and watched caches to requests, and
 *   hands the reconciler parsed objects, invalid ones and deletions apart;
 * - objects the API server accepts but the operator's schema does not (a CRD newer than the
 *   operator, simulated by loosening the installed CRDs) are reported InvalidSpec in one shared
 *   way, count as absent for other kinds, and are reconciled normally once they parse again; an
 *   unreadable StreamACL keeps its CDN's ACL store from being marked synced (fail closed).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { z } from 'zod';
import { RedisAclStore } from '../../media-node/contract/acl.js';
import { redisPrefixFor } from '../../operator/src/controllers/shared.js';
import { AclStoreSync } from '../../operator/src/controllers/streamacl/AclStoreSync.js';
import type { KubeClient } from '../../operator/src/kube/client.js';
import { KubeObjectSchema } from '../../operator/src/kube/objects.js';
import { CONFIG_MAP_TYPE, SECRET_TYPE } from '../../operator/src/kube/resources.js';
import type { Manager } from '../../operator/src/manager.js';
import type { ReconcileRequest } from '../../operator/src/runtime/Controller.js';
import { ControllerBuilder } from '../../operator/src/runtime/ControllerBuilder.js';
import { ListWatch } from '../../operator/src/runtime/ListWatch.js';
import { InvalidObject, type TypedCacheEvent, typedCache } from '../../operator/src/runtime/TypedCache.js';
import { customResourceDefinitions } from '../../scripts/crds/crdgen.js';
import type { KubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import {
  clientFor,
  kubectlApply,
  kubectlGet,
  ok,
  startApiServerWithCrds,
  testLogger,
  testManager,
  waitFor,
  waitForCrdsEstablished,
} from './support.js';

const NS = 'wiring';
const API_VERSION = 'rtccdn.io/v1alpha1';

/** ConfigMaps whose `data.size` must be digits: "three" is accepted by the server, not by this schema. */
const SizedConfigMapSchema = KubeObjectSchema.extend({
  data: z.object({ size: z.string().regex(/^\d+$/, 'must be digits') }),
});

interface Obj {
  metadata: { name: string; uid: string; generation?: number };
  // biome-ignore lint/suspicious/noExplicitAny: test access to arbitrary object fields
  status?: any;
}

describe('typed caches, the controller builder and InvalidSpec on a real API server', () => {
  let env: KubeTestEnv;
  let redis: RedisServer;
  let client: KubeClient;
  const stops: (() => Promise<void>)[] = [];

  const kubectl = (args: string[], input?: string) =>
    env.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
  const apply = (object: unknown) => kubectlApply(env, object);
  const get = (resource: string, name: string) => kubectlGet<Obj>(env, resource, name, NS);
  const condition = (object: Obj | undefined, type: string) =>
    (
      object?.status?.conditions as
        | { type: string; status: string; reason: string; message: string }[]
        | undefined
    )?.find((candidate) => candidate.type === type);
  const configMap = (name: string, size: string, labels: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: NS, labels },
    data: { size },
  });
  const listWatch = (type: typeof CONFIG_MAP_TYPE, labelSelector: string, resyncMs = 0) => {
    const source = new ListWatch({
      client,
      type,
      namespace: NS,
      labelSelector,
      logger: testLogger(),
      resyncMs,
    });
    stops.push(() => source.stop());
    return source;
  };

  beforeAll(async () => {
    [env, redis] = await Promise.all([startApiServerWithCrds(), startRedisServer()]);
    ok(await kubectl(['create', 'namespace', NS]));
    client = clientFor(env);
  }, 120_000);

  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
    client?.transport.close();
    await Promise.all([env?.stop(), redis?.stop()]);
  }, 60_000);

  it('parses objects as they enter, keeps the ones that do not parse aside, and reuses a parse on resync', async () => {
    const labels = { test: 'typed' };
    await apply(configMap('good', '3', labels));
    await apply(configMap('bad', 'three', labels));
    const cache = typedCache(
      listWatch(CONFIG_MAP_TYPE, 'test=typed', 300),
      SizedConfigMapSchema,
      testLogger(),
    );
    const events: TypedCacheEvent<z.output<typeof SizedConfigMapSchema>>[] = [];
    cache.addHandler((event) => events.push(event));
    cache.start();
    expect(await cache.waitForSync()).toBe(true);

    expect(cache.get(NS, 'good')?.data.size).toBe('3');
    expect(cache.get(NS, 'bad')).toBeUndefined();
    const bad = cache.lookup(NS, 'bad');
    expect(bad).toBeInstanceOf(InvalidObject);
    expect((bad as InvalidObject).problem).toBe('data.size: must be digits');
    expect(cache.list(NS).map((object) => object.metadata.name)).toEqual(['good']);
    expect(
      cache
        .listAll(NS)
        .map((object) => object.metadata.name)
        .sort(),
    ).toEqual(['bad', 'good']);

    // A resync re-delivers the very object parsed before: nothing is parsed twice.
    const parsed = cache.get(NS, 'good');
    const resynced = await waitFor('a resync of good', () =>
      events.find((event) => event.type === 'resync' && event.object.metadata.name === 'good'),
    );
    expect(resynced.object).toBe(parsed);

    // Fixed, it parses: the event carries both entries, the handler sees the cache updated.
    let seenInHandler: unknown;
    cache.addHandler((event) => {
      if (event.type === 'modified' && event.object.metadata.name === 'bad')
        seenInHandler = cache.get(NS, 'bad');
    });
    await apply(configMap('bad', '4', labels));
    const fixed = await waitFor('bad modified', () =>
      events.find((event) => event.type === 'modified' && event.object.metadata.name === 'bad'),
    );
    expect(fixed.previous).toBeInstanceOf(InvalidObject);
    expect(fixed.object).not.toBeInstanceOf(InvalidObject);
    expect(seenInHandler).toBe(fixed.object);
    expect(cache.get(NS, 'bad')?.data.size).toBe('4');
  });

  it('builds a controller: its kind, the objects it owns and its watches become parsed reconciles', async () => {
    const labels = { test: 'builder' };
    const primary = typedCache(
      listWatch(CONFIG_MAP_TYPE, 'test=builder'),
      SizedConfigMapSchema,
      testLogger(),
    );
    const owned = typedCache(listWatch(SECRET_TYPE, 'test=builder'), KubeObjectSchema, testLogger());
    const calls: string[] = [];
    const controller = new ControllerBuilder('test', { logger: testLogger(), workers: 1 })
      .for(primary, { predicate: (event) => event.object.metadata.labels?.['skip'] !== 'true' })
      .owns(owned)
      // Secrets name the ConfigMap they concern in a label.
      .watches(owned, ({ object }) => {
        const target = object.metadata.labels?.['target'];
        return target ? [{ namespace: NS, name: target }] : [];
      })
      .complete({
        async reconcile(object) {
          calls.push(`reconcile ${object.metadata.name} size=${object.data.size}`);
          return undefined;
        },
        async reconcileInvalid(object) {
          calls.push(`invalid ${object.metadata.name}: ${object.problem}`);
          return undefined;
        },
        forget({ name }: ReconcileRequest) {
          calls.push(`forget ${name}`);
        },
      });
    stops.push(() => controller.stop());
    for (const cache of [primary, owned]) cache.start();
    expect(await Promise.all([primary.waitForSync(), owned.waitForSync()])).toEqual([true, true]);
    controller.start();
    const called = (call: string) => waitFor(call, () => calls.includes(call));

    await apply(configMap('a', '1', labels));
    await called('reconcile a size=1');
    await apply(configMap('b', 'one', labels));
    await called('invalid b: data.size: must be digits');

    // Owned by `a` (controller ownerReference): a change to it reconciles `a`.
    const a = await waitFor('a cached', () => primary.get(NS, 'a'));
    const reconcilesOfA = () => calls.filter((call) => call.startsWith('reconcile a ')).length;
    const before = reconcilesOfA();
    await apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'owned-by-a',
        namespace: NS,
        labels,
        ownerReferences: [
          { apiVersion: 'v1', kind: 'ConfigMap', name: 'a', uid: a.metadata.uid, controller: true },
        ],
      },
    });
    await waitFor('a reconciled for its Secret', () => reconcilesOfA() > before);

    // A watched object maps to the ConfigMap it names.
    await apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'points-at-b', namespace: NS, labels: { ...labels, target: 'b' } },
    });
    await waitFor('b reported again', () => calls.filter((call) => call.startsWith('invalid b')).length > 1);

    // The predicate drops `skipped`; one worker takes keys in order, so once `c` (created after
    // it) is reconciled, `skipped` would have been too.
    await apply(configMap('skipped', '2', { ...labels, skip: 'true' }));
    await apply(configMap('c', '3', labels));
    await called('reconcile c size=3');
    expect(calls.filter((call) => call.includes('skipped'))).toEqual([]);

    ok(await kubectl(['delete', 'configmap', 'a', '-n', NS]));
    await called('forget a');
  });

  describe('objects the operator cannot read', () => {
    let manager: Manager;

    beforeAll(async () => {
      // A CRD of a later operator version: the API server accepts any spec, this operator does not.
      for (const crd of customResourceDefinitions().filter((candidate) =>
        ['cdns', 'streamacls'].includes(candidate.spec.names.plural),
      )) {
        const schema = crd.spec.versions[0]!.schema.openAPIV3Schema;
        schema.properties!['spec'] = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
        await apply(crd);
      }
      await waitForCrdsEstablished(env);
      ({ manager } = testManager({ client, aclStoreCheckMs: 200 }));
      manager.start();
    });

    afterAll(async () => {
      await manager?.stop();
    });

    it('reports a CDN InvalidSpec (conditions and a Warning Event), treats it as absent elsewhere, and deploys it once it parses', async () => {
      const broken = {
        apiVersion: API_VERSION,
        kind: 'CDN',
        metadata: { name: 'broken', namespace: NS },
        spec: { image: 'rtccdn/media-node:test', redis: { url: redis.url }, regions: [{ name: 'EU_West' }] },
      };
      await apply(broken);
      await apply({
        apiVersion: API_VERSION,
        kind: 'Node',
        metadata: { name: 'manual', namespace: NS },
        spec: { cdnRef: { name: 'broken' }, role: 'origin', region: 'eu-west' },
      });
      const reported = await waitFor('InvalidSpec', async () => {
        const object = await get('cdn', 'broken');
        return condition(object, 'Ready')?.reason === 'InvalidSpec' ? object : undefined;
      });
      const message =
        'the operator cannot read this CDN: spec.regions.0.name: must be a DNS label (lowercase letters, digits and -)';
      expect(condition(reported, 'Ready')).toMatchObject({ status: 'False', message });
      expect(condition(reported, 'Degraded')).toMatchObject({
        status: 'True',
        reason: 'InvalidSpec',
        message,
      });
      expect(reported.status.observedGeneration).toBe(reported.metadata.generation);
      const events = JSON.parse(
        ok(
          await kubectl([
            'get',
            'events',
            '-n',
            NS,
            '--field-selector',
            'involvedObject.name=broken,reason=InvalidSpec',
            '-o',
            'json',
          ]),
        ),
      ).items as { type: string; message: string }[];
      expect(events).toEqual([expect.objectContaining({ type: 'Warning', message })]);
      // Nothing was deployed from it, and a Node that references it says so.
      expect(await get('nodes.rtccdn.io', 'broken-eu-west-origin')).toBeUndefined();
      await waitFor(
        'CDNInvalid',
        async () => condition(await get('nodes.rtccdn.io', 'manual'), 'Ready')?.reason === 'CDNInvalid',
      );

      await apply({ ...broken, spec: { ...broken.spec, regions: [{ name: 'eu-west' }] } });
      await waitFor('the Nodes of the fixed CDN', () => get('nodes.rtccdn.io', 'broken-eu-west-origin'));
      await waitFor(
        'the CDN reconciled',
        async () => condition(await get('cdn', 'broken'), 'Ready')?.reason !== 'InvalidSpec',
      );
      await waitFor(
        'the Node to find its CDN',
        async () => condition(await get('nodes.rtccdn.io', 'manual'), 'Ready')?.reason !== 'CDNInvalid',
      );
    });

    it('keeps the ACL store unsynced while one of its StreamACLs cannot be read (fail closed)', async () => {
      await apply({
        apiVersion: API_VERSION,
        kind: 'CDN',
        metadata: { name: 'acl', namespace: NS },
        spec: { image: 'rtccdn/media-node:test', redis: { url: redis.url }, regions: [{ name: 'eu-west' }] },
      });
      const store = new RedisAclStore({
        redisUrl: redis.url,
        prefix: redisPrefixFor(NS, 'acl'),
        subscribe: false,
        logger: pino({ level: 'silent' }),
      });
      stops.push(() => store.close());
      await store.connected(5_000);
      const synced = async () => {
        const version = await store.version();
        return version.epoch !== '' && version.syncedEpoch === version.epoch;
      };
      await waitFor('the store marked synced', synced);

      await apply({
        apiVersion: API_VERSION,
        kind: 'StreamACL',
        metadata: { name: 'unreadable', namespace: NS },
        spec: { cdnRef: { name: 'acl' }, stream: 'not a stream name', keys: [] },
      });
      const reported = await waitFor('InvalidSpec', async () => {
        const found = condition(await get('streamacls.rtccdn.io', 'unreadable'), 'Synced');
        return found?.reason === 'InvalidSpec' ? found : undefined;
      });
      expect(reported).toMatchObject({
        status: 'False',
        message: expect.stringMatching(/^the operator cannot read this StreamACL: spec\.stream: /),
      });

      // Redis loses its data: every StreamACL of the CDN must be rewritten before edges admit.
      const direct = new Redis(redis.url);
      await direct.flushall();
      direct.disconnect();
      const storeSync = manager.term?.runnables.find((runnable) => runnable instanceof AclStoreSync);
      expect(storeSync).toBeInstanceOf(AclStoreSync);
      await (storeSync as AclStoreSync).checkAll();
      expect(await synced()).toBe(false);

      ok(await kubectl(['delete', 'streamacls.rtccdn.io', 'unreadable', '-n', NS, '--wait=true']));
      await waitFor('the store marked synced without it', synced);
    });
  });
});
