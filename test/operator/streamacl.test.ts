/**
 * The StreamACL controller end to end: a real kube-apiserver, a real redis-server, the operator's
 * manager, and real media nodes (an origin and an edge, as processes) configured from what the
 * operator created (cluster Secret, ConfigMap). A StreamACL applied with kubectl is enforced by
 * the edge; deleting it (kubectl delete) revokes its keys; a rotated Secret re-syncs; Redis down
 * shows in the status; conflicting StreamACLs are reported.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { ClusterKeys } from '../../media-node/contract/redis.js';
import { createLogger } from '../../media-node/src/logger.js';
import { streamAclName } from '../../operator/src/aclapi/objects.js';
import { createAclApiServer } from '../../operator/src/aclapi/server.js';
import { redisPrefixFor } from '../../operator/src/controllers/shared.js';
import type { Manager } from '../../operator/src/manager.js';
import { TestCluster } from '../../scripts/harness/cluster.js';
import type { KubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { eventually } from '../../scripts/harness/node.js';
import { postSdp, TestPublisher, TestViewer } from '../../scripts/harness/peers.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import {
  clientFor,
  kubectlApply,
  kubectlGet,
  ok,
  startApiServerWithCrds,
  testManager,
  waitFor,
} from './support.js';

const NS = 'media';
const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const ACME_KEY = 'acme-key-from-a-secret-01';
const INLINE_KEY = 'inline-key-0123456789';
const ADMIN_TOKEN = 'operator-admin-token-0123';

interface Obj {
  metadata: { name: string; finalizers?: string[]; generation?: number };
  status?: {
    syncedKeys?: number;
    lastSyncTime?: string;
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
  data?: Record<string, string>;
}

describe('StreamACL → Redis → edge (real apiserver, Redis, media nodes)', () => {
  let env: KubeTestEnv;
  let redis: RedisServer;
  let manager: Manager;
  let cluster: TestCluster;
  let direct: Redis;
  const peers: { close(): void }[] = [];

  const kubectl = (args: string[], input?: string) =>
    env.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
  const apply = (object: unknown) => kubectlApply(env, object);
  const get = (resource: string, name: string) => kubectlGet<Obj>(env, resource, name, NS);
  const synced = (object: Obj | undefined) => object?.status?.conditions?.find((c) => c.type === 'Synced');
  const streamAcl = (name: string, stream: string, keys: unknown[]) => ({
    apiVersion: 'rtccdn.io/v1alpha1',
    kind: 'StreamACL',
    metadata: { name, namespace: NS },
    spec: { cdnRef: { name: 'cdn' }, stream, keys },
  });
  const keySecret = (value: string, name = 'partner-keys', labelled = true) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: NS, ...(labelled ? { labels: { 'rtccdn.io/access-keys': 'true' } } : {}) },
    stringData: { acme: value },
  });
  const edge = () => cluster.node('edge').baseUrl;
  const whep = (stream: string, key?: string) =>
    postSdp(`${edge()}/whep/${stream}`, whepOffer, key ? { Authorization: `Bearer ${key}` } : {});
  const aclVersion = async () =>
    Number((await direct.get(new ClusterKeys(redisPrefixFor(NS, 'cdn')).aclVersion)) ?? 0);

  beforeAll(async () => {
    [env, redis] = await Promise.all([startApiServerWithCrds(), startRedisServer()]);
    direct = new Redis(redis.url);
    ok(await kubectl(['create', 'namespace', NS]), 'create namespace');
    ({ manager } = testManager({ client: clientFor(env) }));
    manager.start();
    await apply({
      apiVersion: 'rtccdn.io/v1alpha1',
      kind: 'CDN',
      metadata: { name: 'cdn', namespace: NS },
      spec: {
        image: 'rtccdn/media-node:test',
        redis: { url: redis.url },
        regions: [{ name: 'a' }],
        // Streams without an ACL are private: deleting a StreamACL must shut its stream.
        acl: { defaultPolicy: 'deny' },
      },
    });
    // Media nodes configured exactly as the operator configures its pods.
    const secret = await waitFor('the cluster Secret', () => get('secret', 'cdn-cluster'));
    const config = await waitFor('the CDN ConfigMap', () => get('configmap', 'cdn-config'));
    const clusterSecret = Buffer.from(secret.data!.clusterSecret!, 'base64').toString('utf8');
    cluster = new TestCluster(
      redis.url,
      {
        REDIS_PREFIX: config.data!.REDIS_PREFIX!,
        ACL_DEFAULT_POLICY: config.data!.ACL_DEFAULT_POLICY!,
        ACL_FAILURES_PER_CLIENT: '1000',
        // As the operator configures its pods: ACL changes go through Kubernetes.
        ACL_API: 'kubernetes',
        ADMIN_TOKEN: ADMIN_TOKEN,
      },
      clusterSecret,
    );
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'a' },
      { id: 'edge', role: 'edge', region: 'a' },
    );
    const publisher = new TestPublisher();
    peers.push(publisher);
    expect((await publisher.publish(cluster.node('origin').baseUrl, 'webinar')).status).toBe(201);
    // Edges of an operator-managed CDN admit nobody until the operator has marked the store synced.
    await waitFor('the ACL store marked synced', async () => (await whep('webinar')).status !== 503);
  }, 120_000);

  afterEach(() => {
    for (const peer of peers.splice(1)) peer.close();
  });

  afterAll(async () => {
    for (const peer of peers) peer.close();
    await cluster?.stopAll();
    await manager?.stop();
    direct?.disconnect();
    await Promise.all([env?.stop(), redis?.stop()]);
  });

  it('syncs a StreamACL (Secret-backed and inline keys) that the edge then enforces', async () => {
    expect((await whep('webinar')).status).toBe(401); // deny by default, before any StreamACL
    await apply(keySecret(ACME_KEY));
    await apply(
      streamAcl('webinar', 'webinar', [
        { id: 'acme', secretKeyRef: { name: 'partner-keys', key: 'acme' } },
        { id: 'inline', value: INLINE_KEY },
      ]),
    );
    const acl = await waitFor('Synced=True', async () => {
      const object = await get('streamacls.rtccdn.io', 'webinar');
      return synced(object)?.status === 'True' ? object : undefined;
    });
    expect(acl.status).toMatchObject({ syncedKeys: 2, observedGeneration: acl.metadata.generation });
    expect(acl.status?.lastSyncTime).toBeDefined();
    expect(acl.metadata.finalizers).toContain('rtccdn.io/streamacl-cleanup');
    expect(JSON.stringify(await direct.keys('*acl:stream:webinar'))).not.toBe('[]');

    await waitFor(
      'the edge to admit the Secret key',
      async () => (await whep('webinar', ACME_KEY)).status === 201,
    );
    expect((await whep('webinar', INLINE_KEY)).status).toBe(201);
    expect((await whep('webinar', 'wrong-key-0123456789')).status).toBe(403);
    const printed = ok(await kubectl(['get', 'streamacls', '-n', NS]), 'kubectl get streamacls');
    expect(printed).toMatch(/webinar\s+webinar\s+2\s+True/);
  }, 60_000);

  it('writes nothing when Redis already holds the keys (resync is free)', async () => {
    const before = await aclVersion();
    // An annotation change re-runs the reconcile without changing the keys.
    ok(await kubectl(['annotate', 'streamacls.rtccdn.io', 'webinar', '-n', NS, 'touched=yes']), 'annotate');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await aclVersion()).toBe(before);
  });

  it('re-syncs when a key is rotated in its Secret', async () => {
    const rotated = 'acme-key-rotated-000002';
    await apply(keySecret(rotated));
    expect(await eventually(async () => (await whep('webinar', ACME_KEY)).status === 403, 10_000)).toBe(true);
    expect((await whep('webinar', rotated)).status).toBe(201);
  }, 30_000);

  it('reports a second StreamACL for the same streams as a conflict', async () => {
    await apply(streamAcl('webinar-copy', 'webinar', [{ id: 'other', value: 'another-key-0123456789' }]));
    const conflict = await waitFor('PatternConflict', async () => {
      const condition = synced(await get('streamacls.rtccdn.io', 'webinar-copy'));
      return condition?.reason === 'PatternConflict' ? condition : undefined;
    });
    expect(conflict).toMatchObject({
      status: 'False',
      message: expect.stringMatching(/StreamACL webinar already guards/),
    });
    expect((await whep('webinar', 'another-key-0123456789')).status).toBe(403);
    ok(
      await kubectl(['delete', 'streamacls.rtccdn.io', 'webinar-copy', '-n', NS, '--wait=true']),
      'delete copy',
    );
  }, 40_000);

  it('reports a StreamACL whose CDN does not exist as CDNNotFound, and lets it be deleted', async () => {
    await apply({
      ...streamAcl('orphan', 'orphan', [{ id: 'k', value: 'an-orphan-key-0123456789' }]),
      spec: {
        cdnRef: { name: 'nowhere' },
        stream: 'orphan',
        keys: [{ id: 'k', value: 'an-orphan-key-0123456789' }],
      },
    });
    const notFound = await waitFor('CDNNotFound', async () => {
      const condition = synced(await get('streamacls.rtccdn.io', 'orphan'));
      return condition?.reason === 'CDNNotFound' ? condition : undefined;
    });
    expect(notFound).toMatchObject({ status: 'False', message: `CDN nowhere not found in ${NS}` });
    // Without a CDN there is no Redis to clean: the finalizer lets the object go.
    ok(await kubectl(['delete', 'streamacls.rtccdn.io', 'orphan', '-n', NS, '--wait=true']), 'delete orphan');
    expect(await get('streamacls.rtccdn.io', 'orphan')).toBeUndefined();
  }, 40_000);

  it('reads keys only from Secrets labelled for them, and leaves the others out (fail closed)', async () => {
    const unlabelledKey = 'unlabelled-key-0123456789';
    const publisher = new TestPublisher();
    peers.push(publisher);
    expect((await publisher.publish(cluster.node('origin').baseUrl, 'members')).status).toBe(201);
    await apply(keySecret(unlabelledKey, 'team-secrets', false));
    await apply(
      streamAcl('members', 'members', [
        { id: 'team', secretKeyRef: { name: 'team-secrets', key: 'acme' } },
        { id: 'inline', value: INLINE_KEY },
      ]),
    );
    const condition = await waitFor('KeySecretNotLabelled', async () => {
      const found = synced(await get('streamacls.rtccdn.io', 'members'));
      return found?.reason === 'KeySecretNotLabelled' ? found : undefined;
    });
    expect(condition).toMatchObject({
      status: 'False',
      message: expect.stringMatching(
        /Secret team-secrets is not labelled rtccdn\.io\/access-keys=true.*admits only the 1 other key/,
      ),
    });
    // What could be read is enforced; what could not is not a key.
    await waitFor('the inline key admitted', async () => (await whep('members', INLINE_KEY)).status === 201);
    expect((await whep('members', unlabelledKey)).status).toBe(403);
    // Labelling the Secret is enough: it enters the cache and its StreamACLs re-sync.
    ok(await kubectl(['label', 'secret', 'team-secrets', '-n', NS, 'rtccdn.io/access-keys=true']), 'label');
    await waitFor(
      'the Secret key admitted',
      async () => (await whep('members', unlabelledKey)).status === 201,
    );
    expect(synced(await get('streamacls.rtccdn.io', 'members'))?.status).toBe('True');
  }, 60_000);

  it('rewrites every StreamACL at once when Redis loses its data, and only then lets edges admit', async () => {
    const publisher = new TestPublisher();
    peers.push(publisher);
    expect((await publisher.publish(cluster.node('origin').baseUrl, 'reset-show')).status).toBe(201);
    await apply(streamAcl('reset-show', 'reset-show', [{ id: 'k', value: 'reset-key-0123456789' }]));
    await waitFor(
      'the key admitted',
      async () => (await whep('reset-show', 'reset-key-0123456789')).status === 201,
    );
    const keys = new ClusterKeys(redisPrefixFor(NS, 'cdn'));
    const oldEpoch = await direct.get(keys.aclEpoch);
    expect(await direct.get(keys.aclSynced)).toBe(oldEpoch);
    await direct.flushall();
    // Not at the next resync (10 minutes): within seconds, every StreamACL is back and the new
    // epoch is marked complete.
    const newEpoch = await waitFor(
      'a new epoch marked synced',
      async () => {
        const [epoch, syncedEpoch] = await direct.mget(keys.aclEpoch, keys.aclSynced);
        return epoch && epoch !== oldEpoch && syncedEpoch === epoch ? epoch : undefined;
      },
      15_000,
    );
    expect(newEpoch).toBeDefined();
    expect(await direct.get(keys.aclRecord('reset-show'))).not.toBeNull();
    expect(await direct.get(keys.aclRecord('members'))).not.toBeNull();
    await waitFor(
      'the key admitted again',
      async () => (await whep('reset-show', 'reset-key-0123456789')).status === 201,
    );
    expect((await whep('reset-show', 'wrong-key-0123456789')).status).toBe(403);
  }, 60_000);

  it('cuts viewers and refuses the keys once the StreamACL is deleted (finalizer cleans Redis)', async () => {
    const viewer = new TestViewer();
    peers.push(viewer);
    expect((await viewer.play(edge(), 'webinar', { key: INLINE_KEY })).status).toBe(201);
    await viewer.waitForFrames(5);
    const deletedAt = Date.now();
    ok(
      await kubectl(['delete', 'streamacls.rtccdn.io', 'webinar', '-n', NS, '--wait=true']),
      'kubectl delete',
    );
    expect(await eventually(async () => (await cluster.dump('edge')).sessions === 0, 5000)).toBe(true);
    console.log(`kubectl delete streamacl → viewer cut after ${Date.now() - deletedAt} ms`);
    expect((await whep('webinar', INLINE_KEY)).status).toBe(403);
    expect(await direct.keys('*acl:stream:webinar')).toEqual([]);
    expect(await get('streamacls.rtccdn.io', 'webinar')).toBeUndefined();
  }, 40_000);

  it('reports Redis being down in the status, and recovers', async () => {
    await apply(streamAcl('outage', 'outage-*', [{ id: 'k', value: 'outage-key-0123456789' }]));
    await waitFor(
      'Synced=True',
      async () => synced(await get('streamacls.rtccdn.io', 'outage'))?.status === 'True',
    );
    await redis.kill();
    try {
      ok(
        await kubectl([
          'patch',
          'streamacls.rtccdn.io',
          'outage',
          '-n',
          NS,
          '--type=merge',
          '-p',
          '{"spec":{"keys":[{"id":"k2","value":"outage-key-9876543210"}]}}',
        ]),
        'patch',
      );
      const down = await waitFor('Synced=False', async () => {
        const condition = synced(await get('streamacls.rtccdn.io', 'outage'));
        return condition?.status === 'False' ? condition : undefined;
      });
      expect(down.reason).toBe('RedisUnavailable');
    } finally {
      await redis.restart();
    }
    await waitFor(
      'Synced=True again',
      async () => synced(await get('streamacls.rtccdn.io', 'outage'))?.status === 'True',
      30_000,
    );
    // The restarted Redis is empty: edges admit again once the operator has rewritten every
    // StreamACL and marked the new epoch (404: admitted, the stream is not live).
    await waitFor(
      'edges admitting again',
      async () => (await whep('outage-1', 'outage-key-9876543210')).status === 404,
    );
  }, 60_000);

  it('serves the media nodes’ ACL REST API from the operator, backed by StreamACLs and Secrets', async () => {
    const api = await createAclApiServer({
      client: clientFor(env),
      adminToken: ADMIN_TOKEN,
      logger: createLogger('silent'),
    });
    await api.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(api.server.address() as { port: number }).port}`;
    const call = async (method: string, path: string, body?: unknown) => {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    };
    try {
      // The origin's own API refuses: StreamACLs are the truth in Kubernetes.
      const local = await fetch(`${cluster.node('origin').baseUrl}/api/v1/streams/x/acl`, {
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(local.status).toBe(421);
      expect((await fetch(`${base}/api/v1/streams/x/acl`)).status).toBe(401);

      const put = await call('PUT', '/api/v1/streams/webinar/acl', {
        keys: [{ id: 'alice', key: 'alice-key-0123456789' }],
      });
      expect(put).toMatchObject({ status: 200, body: { stream: 'webinar', keys: [{ id: 'alice' }] } });
      // Synced when the call returns: the edge admits the key at once.
      const admitted = await whep('webinar', 'alice-key-0123456789');
      expect(`${admitted.status} ${admitted.status === 201 ? '' : admitted.body}`).toBe('201 ');
      const acl = JSON.stringify(await get('streamacls.rtccdn.io', streamAclName('webinar')));
      expect(acl).toContain('secretKeyRef');
      expect(acl).not.toContain('alice-key-0123456789');

      expect(
        (
          await call('POST', '/api/v1/streams/webinar/acl/keys', {
            keys: [{ id: 'bob', key: 'bob-key-0123456789' }],
          })
        ).status,
      ).toBe(201);
      expect((await whep('webinar', 'bob-key-0123456789')).status).toBe(201);
      expect(
        (await call('GET', '/api/v1/streams/webinar/acl')).body.keys.map((key: { id: string }) => key.id),
      ).toEqual(['alice', 'bob']);
      expect((await call('DELETE', '/api/v1/streams/webinar/acl/keys/alice')).status).toBe(200);
      expect((await whep('webinar', 'alice-key-0123456789')).status).toBe(403);
      expect(
        (
          await call('PUT', '/api/v1/streams/webinar/acl', {
            keys: [{ id: 'Upper', key: 'x-key-0123456789ab' }],
          })
        ).status,
      ).toBe(400);
      expect(
        (
          await call('PUT', '/api/v1/streams/outage-*/acl', {
            keys: [{ id: 'k', key: 'x-key-0123456789ab' }],
          })
        ).status,
      ).toBe(409);
      expect((await call('DELETE', '/api/v1/streams/webinar/acl')).status).toBe(204);
      expect(
        await eventually(async () => (await whep('webinar', 'bob-key-0123456789')).status === 403, 5000),
      ).toBe(true);
    } finally {
      await api.close();
    }
  }, 60_000);
});
