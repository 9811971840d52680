/**
 * The StreamACL reconciler's sync, at its public surface (reconcile): what it writes to the
 * CDN's ACL store (hashed keys, owner, fail closed on keys it cannot read), and what the status
 * says. The API server is faked (objects in memory, status patches recorded) and the store is
 * a memory store; test/operator/streamacl.test.ts runs the real API server, Redis and edges.
 */
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { deriveAclHashKey, hashAccessKey, MemoryAclStore } from '../../../media-node/contract/acl.js';
import { StreamACLSchema } from '../../../operator/src/api/v1alpha1.js';
import {
  STREAM_ACL_FINALIZER,
  StreamAclReconciler,
} from '../../../operator/src/controllers/streamacl/reconciler.js';
import type { KubeClient } from '../../../operator/src/kube/client.js';
import type { EventSink } from '../../../operator/src/kube/events.js';
import type { AclStores } from '../../../operator/src/redis/AclStores.js';
import type { CacheReader } from '../../../operator/src/runtime/TypedCache.js';

const CLUSTER_SECRET = 'a-cluster-secret-of-some-length';
const hash = (key: string) => hashAccessKey(deriveAclHashKey(CLUSTER_SECRET), key);
const b64 = (value: string) => Buffer.from(value).toString('base64');

const cdn = {
  apiVersion: 'rtccdn.io/v1alpha1',
  kind: 'CDN',
  metadata: { name: 'cdn', namespace: 'media', uid: 'uid-cdn' },
  spec: {
    image: 'rtccdn/media-node:test',
    redis: { url: 'redis://127.0.0.1:6379' },
    regions: [{ name: 'a' }],
  },
};
const clusterSecret = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'cdn-cluster', namespace: 'media' },
  data: { clusterSecret: b64(CLUSTER_SECRET) },
};
const keySecret = (name: string, labelled: boolean, data: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: {
    name,
    namespace: 'media',
    ...(labelled ? { labels: { 'rtccdn.io/access-keys': 'true' } } : {}),
  },
  data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, b64(value)])),
});

function streamAcl(
  name: string,
  keys: unknown[],
  extra: { uid?: string; creationTimestamp?: string; cdnName?: string } = {},
) {
  return {
    apiVersion: 'rtccdn.io/v1alpha1',
    kind: 'StreamACL',
    metadata: {
      name,
      namespace: 'media',
      uid: extra.uid ?? `uid-${name}`,
      generation: 1,
      resourceVersion: '1',
      creationTimestamp: extra.creationTimestamp ?? '2026-12-01T00:00:00Z',
      finalizers: [STREAM_ACL_FINALIZER],
    },
    spec: { cdnRef: { name: extra.cdnName ?? 'cdn' }, stream: 'show', keys },
  };
}

type Named = { metadata: { name: string; namespace?: string } };
const cache = (objects: Named[]) =>
  ({
    get: (_namespace: string, name: string) => objects.find((object) => object.metadata.name === name),
    lookup: (_namespace: string, name: string) => objects.find((object) => object.metadata.name === name),
    list: () => objects,
    listAll: () => objects,
  }) as unknown as CacheReader<never>;

function setup(options: { acls: Named[]; secrets?: Named[]; cdns?: Named[]; store?: MemoryAclStore }) {
  const store = options.store ?? new MemoryAclStore();
  const statuses: { name: string; status: Record<string, unknown> }[] = [];
  const applied: unknown[] = [];
  const client = {
    get: async () => undefined, // nothing more on the API server than in the caches
    apply: async (_type: unknown, object: unknown) => {
      applied.push(object);
      return object;
    },
    patchStatus: async (
      _type: unknown,
      _namespace: string,
      name: string,
      status: Record<string, unknown>,
    ) => {
      statuses.push({ name, status });
    },
  } as unknown as KubeClient;
  const reconciler = new StreamAclReconciler({
    client,
    streamAcls: cache(options.acls),
    cdns: cache(options.cdns ?? [cdn]),
    secrets: cache(options.secrets ?? []),
    managedSecrets: cache([clusterSecret]),
    stores: { get: async () => store } as unknown as AclStores,
    events: { record: () => undefined } as unknown as EventSink,
    logger: pino({ level: 'silent' }),
    now: () => new Date('2026-12-01T12:00:00Z'),
  });
  const reconcile = (name: string) =>
    reconciler.reconcile(StreamACLSchema.parse(options.acls.find((acl) => acl.metadata.name === name)));
  const synced = (name: string) => {
    const status = statuses.filter((entry) => entry.name === name).at(-1)?.status as
      | {
          conditions: { type: string; status: string; reason: string; message: string }[];
          syncedKeys?: number;
        }
      | undefined;
    return {
      ...status?.conditions.find((condition) => condition.type === 'Synced'),
      syncedKeys: status?.syncedKeys,
    };
  };
  return { store, reconcile, synced, applied, statuses };
}

describe('StreamACL reconciler: sync', () => {
  it('writes the hashed keys (inline and from a labelled Secret) with its uid as owner, once', async () => {
    const acl = streamAcl('show-acl', [
      { id: 'inline', value: 'inline-key-0123456789' },
      { id: 'secret', secretKeyRef: { name: 'keys', key: 'viewer' }, expiresAt: '2030-01-01T00:00:00Z' },
    ]);
    const { store, reconcile, synced, statuses } = setup({
      acls: [acl],
      secrets: [keySecret('keys', true, { viewer: 'secret-key-0123456789' })],
    });
    expect(await reconcile('show-acl')).toBeUndefined();
    const record = await store.get('show');
    expect(record?.owner).toBe('uid-show-acl');
    expect(record?.keys).toEqual([
      { id: 'inline', hash: hash('inline-key-0123456789') },
      { id: 'secret', hash: hash('secret-key-0123456789'), expiresAt: Date.parse('2030-01-01T00:00:00Z') },
    ]);
    expect(synced('show-acl')).toMatchObject({ status: 'True', reason: 'Synced', syncedKeys: 2 });
    expect(synced('show-acl').message).toBe('2 key(s) enforced by the edges of CDN cdn');
    expect(statuses[0]?.status).toMatchObject({
      observedGeneration: 1,
      lastSyncTime: '2026-12-01T12:00:00Z',
    });
    // Redis already holds exactly these keys: nothing is written again.
    const { version } = await store.version();
    await reconcile('show-acl');
    expect((await store.version()).version).toBe(version);
  });

  it('rewrites a record another StreamACL (another uid) wrote with the same keys', async () => {
    const store = new MemoryAclStore();
    await store.update('show', () => [{ id: 'inline', hash: hash('inline-key-0123456789') }], {
      owner: 'uid-gone',
    });
    const { reconcile } = setup({
      acls: [streamAcl('show-acl', [{ id: 'inline', value: 'inline-key-0123456789' }])],
      store,
    });
    await reconcile('show-acl');
    expect((await store.get('show'))?.owner).toBe('uid-show-acl');
  });

  it('fails closed: keys it cannot read are left out, and the status says which and why', async () => {
    const acl = streamAcl('show-acl', [
      { id: 'ok', value: 'inline-key-0123456789' },
      { id: 'unlabelled', secretKeyRef: { name: 'plain', key: 'k' } },
      { id: 'nokey', secretKeyRef: { name: 'keys', key: 'absent' } },
      { id: 'nosecret', secretKeyRef: { name: 'missing', key: 'k' } },
      { id: 'short', secretKeyRef: { name: 'keys', key: 'short' } },
    ]);
    const { store, reconcile, synced } = setup({
      acls: [acl],
      secrets: [
        keySecret('plain', false, { k: 'plain-secret-value-0123' }),
        keySecret('keys', true, { short: 'too-short' }),
      ],
    });
    expect(await reconcile('show-acl')).toEqual({ requeueAfterMs: 5000 });
    expect((await store.get('show'))?.keys.map((key) => key.id)).toEqual(['ok']);
    const condition = synced('show-acl');
    expect(condition).toMatchObject({ status: 'False', reason: 'KeySecretNotLabelled' });
    expect(condition.message).toBe(
      'key unlabelled: Secret plain is not labelled rtccdn.io/access-keys=true, so its keys are not read; ' +
        'key nokey: Secret keys has no key absent; key nosecret: Secret missing not found; ' +
        'key short: the value must be at least 16 characters; the stream admits only the 1 other key(s)',
    );
  });

  it('reports a missing CDN and a pattern guarded by an older StreamACL, writing nothing for either', async () => {
    const orphan = streamAcl('orphan', [{ id: 'k', value: 'inline-key-0123456789' }], { cdnName: 'nope' });
    const older = streamAcl('older', [{ id: 'a', value: 'older-key-0123456789' }], {
      creationTimestamp: '2026-11-01T00:00:00Z',
    });
    const newer = streamAcl('newer', [{ id: 'b', value: 'newer-key-0123456789' }]);
    const { store, reconcile, synced } = setup({ acls: [orphan, older, newer] });
    expect(await reconcile('orphan')).toEqual({ requeueAfterMs: 5000 });
    expect(synced('orphan')).toMatchObject({
      status: 'False',
      reason: 'CDNNotFound',
      message: 'CDN nope not found in media',
    });
    expect(await store.get('show')).toBeUndefined();
    expect(await reconcile('newer')).toEqual({ requeueAfterMs: 5000 });
    expect(synced('newer')).toMatchObject({
      status: 'False',
      reason: 'PatternConflict',
      message: 'StreamACL older already guards "show" on CDN cdn',
    });
    expect(await store.get('show')).toBeUndefined();
    await reconcile('older');
    expect((await store.get('show'))?.keys.map((key) => key.id)).toEqual(['a']);
  });

  it('takes a key of exactly the minimum length, and ignores older StreamACLs of other streams or CDNs', async () => {
    const mine = streamAcl('mine', [{ id: 'k', value: 'exactly-16-chars' }]);
    const otherStream = { ...streamAcl('other-stream', [], { creationTimestamp: '2026-01-01T00:00:00Z' }) };
    otherStream.spec = { ...otherStream.spec, stream: 'another-show' };
    const otherCdn = streamAcl('other-cdn', [], {
      creationTimestamp: '2026-01-01T00:00:00Z',
      cdnName: 'cdn-2',
    });
    const { store, reconcile, synced } = setup({ acls: [otherStream, otherCdn, mine] });
    expect(await reconcile('mine')).toBeUndefined();
    expect(synced('mine')).toMatchObject({ status: 'True', syncedKeys: 1 });
    expect((await store.get('show'))?.keys.map((key) => key.id)).toEqual(['k']);
  });

  it('reports Redis refusing the write and asks to be retried', async () => {
    class DownStore extends MemoryAclStore {
      override async get(): Promise<undefined> {
        throw new Error('ACL store read show failed: connection refused');
      }
    }
    const { reconcile, synced } = setup({
      acls: [streamAcl('show-acl', [{ id: 'k', value: 'inline-key-0123456789' }])],
      store: new DownStore(),
    });
    expect(await reconcile('show-acl')).toEqual({ requeueAfterMs: 5000 });
    expect(synced('show-acl')).toMatchObject({
      status: 'False',
      reason: 'RedisUnavailable',
      message: 'ACL store read show failed: connection refused',
    });
  });

  it('adds its finalizer before writing, when the object does not carry it yet', async () => {
    const acl = streamAcl('show-acl', [{ id: 'k', value: 'inline-key-0123456789' }]);
    acl.metadata.finalizers = [];
    const { reconcile, applied, store } = setup({ acls: [acl] });
    await reconcile('show-acl');
    expect(applied).toEqual([
      { metadata: { name: 'show-acl', namespace: 'media', finalizers: [STREAM_ACL_FINALIZER] } },
    ]);
    expect(await store.get('show')).toBeDefined();
  });
});
