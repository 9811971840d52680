/**
 * The StreamACL reconciler at its public surface (reconcile, reconcileInvalid, syncAcl) on the
 * paths streamacl-sync.test.ts does not take: objects it cannot read, the store sync's entry
 * point, the CDN's Secrets (cluster secret, Redis URL) and key Secrets read from the API server
 * when the cache lacks them, keys with an expiry it cannot enforce, the Events of Synced
 * transitions, and the finalizer's hand-over and failure paths.
 *
 * The API server is faked (objects in memory; status merge patches applied to them, so the next
 * pass sees its own status, as after a watch event) and the store is a memory store;
 * test/operator/streamacl.test.ts runs the real API server, Redis and edges.
 */
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import {
  deriveAclHashKey,
  hashAccessKey,
  InvalidAclError,
  MemoryAclStore,
  UnreadableAclError,
} from '../../../media-node/contract/acl.js';
import { StreamACLSchema } from '../../../operator/src/api/v1alpha1.js';
import {
  STREAM_ACL_FINALIZER,
  StreamAclReconciler,
} from '../../../operator/src/controllers/streamacl/reconciler.js';
import type { KubeClient } from '../../../operator/src/kube/client.js';
import type { EventSink } from '../../../operator/src/kube/events.js';
import type { KubeObject } from '../../../operator/src/kube/objects.js';
import type { AclStores } from '../../../operator/src/redis/AclStores.js';
import { type CacheReader, InvalidObject } from '../../../operator/src/runtime/TypedCache.js';

const CLUSTER_SECRET = 'a-cluster-secret-of-some-length';
const hashWith = (secret: string, key: string) => hashAccessKey(deriveAclHashKey(secret), key);
const b64 = (value: string) => Buffer.from(value).toString('base64');
const KEY = 'inline-key-0123456789';

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string; [field: string]: unknown };
  [field: string]: unknown;
}

const cdn = (redis: object = { url: 'redis://127.0.0.1:6379' }): Obj => ({
  apiVersion: 'rtccdn.io/v1alpha1',
  kind: 'CDN',
  metadata: { name: 'cdn', namespace: 'media', uid: 'uid-cdn' },
  spec: { image: 'rtccdn/media-node:test', redis, regions: [{ name: 'a' }] },
});
const secret = (name: string, data: Record<string, string>, labels?: Record<string, string>): Obj => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: 'media', ...(labels ? { labels } : {}) },
  data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, b64(value)])),
});
const clusterSecret = (value = CLUSTER_SECRET) => secret('cdn-cluster', { clusterSecret: value });
const ACCESS_KEYS = { 'rtccdn.io/access-keys': 'true' };

function streamAcl(
  name: string,
  keys: unknown[],
  extra: { deleting?: boolean; finalizers?: string[]; creationTimestamp?: string; status?: object } = {},
): Obj {
  return {
    apiVersion: 'rtccdn.io/v1alpha1',
    kind: 'StreamACL',
    metadata: {
      name,
      namespace: 'media',
      uid: `uid-${name}`,
      generation: 3,
      resourceVersion: '1',
      creationTimestamp: extra.creationTimestamp ?? '2026-12-01T00:00:00Z',
      finalizers: extra.finalizers ?? [STREAM_ACL_FINALIZER],
      ...(extra.deleting ? { deletionTimestamp: '2026-12-01T11:00:00Z' } : {}),
    },
    spec: { cdnRef: { name: 'cdn' }, stream: 'show', keys },
    ...(extra.status ? { status: extra.status } : {}),
  };
}

const byName = (objects: Obj[], name: string, namespace = 'media') =>
  objects.find((object) => object.metadata.name === name && object.metadata.namespace === namespace);
/** A cache over a list the test can change (namespaced, as the operator's caches are). */
const cache = (objects: Obj[]) =>
  ({
    get: (namespace: string, name: string) => byName(objects, name, namespace),
    lookup: (namespace: string, name: string) => byName(objects, name, namespace),
    list: (namespace: string) => objects.filter((object) => object.metadata.namespace === namespace),
    listAll: () => objects,
  }) as unknown as CacheReader<never>;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

function setup(
  options: {
    acls?: Obj[];
    cdns?: Obj[];
    /** Secrets in the operator's caches. */
    secrets?: Obj[];
    managedSecrets?: Obj[];
    /** Objects only the API server has (what a cache has not seen yet). */
    live?: Obj[];
    store?: MemoryAclStore;
    /** StreamACLs the cache holds but cannot read. */
    invalid?: InvalidObject[];
    /** The reconciler's own clock instead of a fixed one. */
    realClock?: boolean;
  } = {},
) {
  const acls = options.acls ?? [];
  const store = options.store ?? new MemoryAclStore();
  const live = options.live ?? [];
  const gets: string[] = [];
  const applied: unknown[] = [];
  const fieldManagers: (string | undefined)[] = [];
  const patches: { name: string; patch: Record<string, unknown> }[] = [];
  const events: { name: string; type: string; reason: string; message: string }[] = [];
  const storesAsked: { url: string; prefix: string }[] = [];
  const client = {
    get: async (type: { kind: string }, namespace: string, name: string) => {
      gets.push(`${type.kind}/${name}`);
      // The API server holds the StreamACLs and whatever only it has.
      return [...acls, ...live].find(
        (object) =>
          object.kind === type.kind &&
          object.metadata.name === name &&
          object.metadata.namespace === namespace,
      );
    },
    apply: async (_type: unknown, object: unknown, applyOptions: { fieldManager?: string }) => {
      applied.push(object);
      fieldManagers.push(applyOptions.fieldManager);
      return object;
    },
    patchStatus: async (_type: unknown, _namespace: string, name: string, patch: Record<string, unknown>) => {
      patches.push({ name, patch });
      const target = byName(acls, name);
      if (!target) return;
      // A merge patch: null deletes a field.
      const status = { ...(target['status'] as object), ...patch } as Record<string, unknown>;
      for (const [field, value] of Object.entries(status)) if (value === null) delete status[field];
      target['status'] = status;
    },
  } as unknown as KubeClient;
  const reconciler = new StreamAclReconciler({
    client,
    streamAcls: {
      ...cache(acls),
      lookup: (_namespace: string, name: string) =>
        options.invalid?.find((object) => object.metadata.name === name) ?? byName(acls, name),
    } as unknown as CacheReader<never>,
    cdns: cache(options.cdns ?? [cdn()]),
    secrets: cache(options.secrets ?? []),
    managedSecrets: cache(options.managedSecrets ?? [clusterSecret()]),
    stores: {
      get: async (url: string, prefix: string) => {
        storesAsked.push({ url, prefix });
        return store;
      },
    } as unknown as AclStores,
    events: {
      record: (subject: { metadata: { name: string } }, type: string, reason: string, message: string) =>
        events.push({ name: subject.metadata.name, type, reason, message }),
    } as unknown as EventSink,
    logger: pino({ level: 'silent' }),
    ...(options.realClock ? {} : { now: () => new Date('2026-12-01T12:00:00Z') }),
  });
  /** Reconciles the object as it is now (with the status earlier passes wrote). */
  const reconcile = (name: string) => reconciler.reconcile(StreamACLSchema.parse(byName(acls, name)));
  const synced = (name: string) =>
    (byName(acls, name)?.['status'] as { conditions?: Condition[] } | undefined)?.conditions?.find(
      (condition) => condition.type === 'Synced',
    );
  return {
    reconciler,
    store,
    acls,
    reconcile,
    synced,
    gets,
    applied,
    fieldManagers,
    patches,
    events,
    storesAsked,
  };
}

describe('StreamACL reconciler: an object it cannot read', () => {
  const unreadable = () => {
    const object = streamAcl('bad', [{ id: 'k', value: KEY }]);
    (object['spec'] as { keys: unknown }).keys = 'not a list';
    return object;
  };
  const problem = { path: ['spec', 'keys'], message: 'expected array, received string' };

  it('reconcileInvalid: Synced=False InvalidSpec saying where, one Warning, nothing written', async () => {
    const { reconciler, store, patches, events, applied } = setup();
    const invalid = new InvalidObject(unreadable() as unknown as KubeObject, problem);
    expect(await reconciler.reconcileInvalid(invalid)).toBeUndefined();
    const message = 'the operator cannot read this StreamACL: spec.keys: expected array, received string';
    expect(patches).toEqual([
      {
        name: 'bad',
        patch: {
          observedGeneration: 3,
          conditions: [
            {
              type: 'Synced',
              status: 'False',
              reason: 'InvalidSpec',
              message,
              observedGeneration: 3,
              lastTransitionTime: '2026-12-01T12:00:00Z',
            },
          ],
        },
      },
    ]);
    expect(events).toEqual([{ name: 'bad', type: 'Warning', reason: 'InvalidSpec', message }]);
    expect(applied).toEqual([]); // not even the finalizer: the object is not reconciled
    expect((await store.version()).version).toBe(0);
  });

  it('syncAcl: an unreadable StreamACL leaves the store unsynced (false) and is reported', async () => {
    const invalid = new InvalidObject(unreadable() as unknown as KubeObject, problem);
    const { reconciler, patches, events, store } = setup({ invalid: [invalid] });
    expect(await reconciler.syncAcl('media', 'bad')).toBe(false);
    expect(patches.map((entry) => entry.name)).toEqual(['bad']);
    expect(events.map((event) => event.reason)).toEqual(['InvalidSpec']);
    expect((await store.version()).version).toBe(0);
  });
});

describe('StreamACL reconciler: syncAcl (the store sync after a Redis reset)', () => {
  it('says whether Redis is as closed as each StreamACL asks', async () => {
    const written = streamAcl('written', [{ id: 'k', value: KEY }]);
    const conflicting = streamAcl('conflicting', [{ id: 'k', value: KEY }], {
      creationTimestamp: '2026-12-01T06:00:00Z',
    });
    const { reconciler, store, synced } = setup({ acls: [written, conflicting] });
    // Unknown: nothing to enforce, nothing reported.
    expect(await reconciler.syncAcl('media', 'gone')).toBe(true);
    expect(await store.get('show')).toBeUndefined();
    expect(await reconciler.syncAcl('media', 'written')).toBe(true);
    expect((await store.get('show'))?.owner).toBe('uid-written');
    // The older StreamACL writes the pattern: the conflicting one counts as enforced.
    expect(await reconciler.syncAcl('media', 'conflicting')).toBe(true);
    expect(synced('conflicting')).toMatchObject({ status: 'False', reason: 'PatternConflict' });
  });

  it('false when nothing could be written (no CDN), true when written without keys it cannot read', async () => {
    const orphan = streamAcl('orphan', [{ id: 'k', value: KEY }]);
    (orphan['spec'] as { cdnRef: { name: string } }).cdnRef.name = 'nope';
    const partial = streamAcl('partial', [
      { id: 'k', value: KEY },
      { id: 'missing', secretKeyRef: { name: 'absent', key: 'k' } },
    ]);
    const { reconciler, store } = setup({ acls: [orphan, partial] });
    expect(await reconciler.syncAcl('media', 'orphan')).toBe(false);
    expect(await reconciler.syncAcl('media', 'partial')).toBe(true);
    expect((await store.get('show'))?.keys.map((key) => key.id)).toEqual(['k']);
  });
});

describe("StreamACL reconciler: the CDN's Secrets", () => {
  it('writes nothing without the cluster secret, and says so (retried)', async () => {
    for (const managedSecrets of [[], [secret('cdn-cluster', { other: 'x' })]]) {
      const { reconcile, synced, store, storesAsked } = setup({
        acls: [streamAcl('acl', [{ id: 'k', value: KEY }])],
        managedSecrets,
      });
      expect(await reconcile('acl')).toEqual({ requeueAfterMs: 5000 });
      expect(synced('acl')).toMatchObject({
        status: 'False',
        reason: 'ClusterSecretMissing',
        message: 'Secret cdn-cluster (created by the CDN controller) has no clusterSecret yet',
      });
      expect(storesAsked).toEqual([]);
      expect(await store.get('show')).toBeUndefined();
    }
  });

  it('reads the cluster secret from the API server when the cache has not seen it yet', async () => {
    const { reconcile, synced, store, gets } = setup({
      acls: [streamAcl('acl', [{ id: 'k', value: KEY }])],
      managedSecrets: [],
      live: [clusterSecret('another-cluster-secret-value')],
    });
    expect(await reconcile('acl')).toBeUndefined();
    expect(gets).toContain('Secret/cdn-cluster');
    expect((await store.get('show'))?.keys).toEqual([
      { id: 'k', hash: hashWith('another-cluster-secret-value', KEY) },
    ]);
    expect(synced('acl')).toMatchObject({ status: 'True' });
  });

  it('takes a live object that is not a Secret for none', async () => {
    const notASecret = {
      kind: 'Secret',
      metadata: { name: 'cdn-cluster', namespace: 'media' },
      data: 'not a map',
    };
    const { reconcile, synced } = setup({
      acls: [streamAcl('acl', [{ id: 'k', value: KEY }])],
      managedSecrets: [],
      live: [notASecret],
    });
    expect(await reconcile('acl')).toEqual({ requeueAfterMs: 5000 });
    expect(synced('acl')).toMatchObject({ reason: 'ClusterSecretMissing' });
  });

  it("writes to the Redis a CDN's secretRef names, under the CDN's prefix; reports a missing one", async () => {
    const viaSecret = cdn({ secretRef: { name: 'redis', key: 'url' } });
    const ok = setup({
      acls: [streamAcl('acl', [{ id: 'k', value: KEY }])],
      cdns: [viaSecret],
      live: [secret('redis', { url: 'redis://redis.media:6380/2' })],
    });
    expect(await ok.reconcile('acl')).toBeUndefined();
    expect(ok.storesAsked).toEqual([{ url: 'redis://redis.media:6380/2', prefix: 'rtccdn:media.cdn:' }]);
    expect((await ok.store.get('show'))?.owner).toBe('uid-acl');

    const missing = setup({ acls: [streamAcl('acl', [{ id: 'k', value: KEY }])], cdns: [viaSecret] });
    expect(await missing.reconcile('acl')).toEqual({ requeueAfterMs: 5000 });
    expect(missing.synced('acl')).toMatchObject({
      status: 'False',
      reason: 'RedisSecretMissing',
      message: 'Secret redis not found (spec.redis.secretRef)',
    });
    expect(missing.storesAsked).toEqual([]);
  });
});

describe('StreamACL reconciler: keys', () => {
  it('reads a key Secret from the API server when the cache has not seen it yet (labels still checked)', async () => {
    const { reconcile, synced, store } = setup({
      acls: [
        streamAcl('acl', [
          { id: 'live', secretKeyRef: { name: 'keys', key: 'viewer' } },
          { id: 'plain', secretKeyRef: { name: 'plain', key: 'viewer' } },
        ]),
      ],
      live: [
        secret('keys', { viewer: 'live-secret-key-0123' }, ACCESS_KEYS),
        secret('plain', { viewer: 'plain-secret-key-0123' }),
      ],
    });
    await reconcile('acl');
    expect((await store.get('show'))?.keys).toEqual([
      { id: 'live', hash: hashWith(CLUSTER_SECRET, 'live-secret-key-0123') },
    ]);
    expect(synced('acl')).toMatchObject({ status: 'False', reason: 'KeySecretNotLabelled' });
  });

  it('leaves out a key whose expiry is not after 1970 (it could never be enforced); takes the others', async () => {
    const { reconcile, synced, store } = setup({
      acls: [
        streamAcl('acl', [
          { id: 'epoch', value: KEY, expiresAt: '1970-01-01T00:00:00Z' },
          { id: 'before', value: KEY, expiresAt: '1969-07-20T20:17:40Z' },
          { id: 'after', value: KEY, expiresAt: '1970-01-01T00:00:01Z' },
          { id: 'offset', value: KEY, expiresAt: '2030-01-01T01:00:00+01:00' },
        ]),
      ],
    });
    expect(await reconcile('acl')).toEqual({ requeueAfterMs: 5000 });
    expect((await store.get('show'))?.keys).toEqual([
      { id: 'after', hash: hashWith(CLUSTER_SECRET, KEY), expiresAt: 1000 },
      { id: 'offset', hash: hashWith(CLUSTER_SECRET, KEY), expiresAt: Date.parse('2030-01-01T00:00:00Z') },
    ]);
    expect(synced('acl')).toMatchObject({
      status: 'False',
      reason: 'InvalidKey',
      message:
        'key epoch: expiresAt must be after 1970-01-01T00:00:00Z; key before: expiresAt must be after ' +
        '1970-01-01T00:00:00Z; the stream admits only the 2 other key(s)',
    });
  });

  it('rewrites a record Redis holds but cannot read', async () => {
    class UnreadableStore extends MemoryAclStore {
      override async get(pattern: string): Promise<undefined> {
        throw new UnreadableAclError(pattern, 'record version 9');
      }
    }
    const store = new UnreadableStore();
    const { reconcile, synced } = setup({ acls: [streamAcl('acl', [{ id: 'k', value: KEY }])], store });
    expect(await reconcile('acl')).toBeUndefined();
    expect((await store.snapshot()).records.map((record) => record.owner)).toEqual(['uid-acl']);
    expect(synced('acl')).toMatchObject({ status: 'True', reason: 'Synced' });
  });

  it('reports a write the store refuses as InvalidSpec', async () => {
    class RefusingStore extends MemoryAclStore {
      override async update(): Promise<never> {
        throw new InvalidAclError('pattern show: too many keys');
      }
    }
    const { reconcile, synced } = setup({
      acls: [streamAcl('acl', [{ id: 'k', value: KEY }])],
      store: new RefusingStore(),
    });
    expect(await reconcile('acl')).toEqual({ requeueAfterMs: 5000 });
    expect(synced('acl')).toMatchObject({
      status: 'False',
      reason: 'InvalidSpec',
      message: 'pattern show: too many keys',
    });
  });
});

describe('StreamACL reconciler: status and Events', () => {
  it('a Warning when sync is lost (also the first time), a Normal event when it is back, none while unchanged', async () => {
    const acl = streamAcl('acl', [{ id: 'k', value: KEY }]);
    const cdns: Obj[] = [];
    const { reconcile, events, patches, synced } = setup({ acls: [acl], cdns });
    await reconcile('acl');
    expect(events).toEqual([
      { name: 'acl', type: 'Warning', reason: 'CDNNotFound', message: 'CDN cdn not found in media' },
    ]);
    await reconcile('acl'); // same status: not written again, no second Event
    expect(patches).toHaveLength(1);
    expect(events).toHaveLength(1);
    cdns.push(cdn());
    await reconcile('acl');
    expect(synced('acl')).toMatchObject({ status: 'True' });
    expect(events.at(-1)).toEqual({
      name: 'acl',
      type: 'Normal',
      reason: 'Synced',
      message: '1 key(s) enforced by the edges of CDN cdn',
    });
    expect(events).toHaveLength(2);
  });

  it('no Event for a StreamACL that is synced from the start', async () => {
    const { reconcile, events, synced } = setup({ acls: [streamAcl('acl', [{ id: 'k', value: KEY }])] });
    await reconcile('acl');
    expect(synced('acl')).toMatchObject({ status: 'True' });
    expect(events).toEqual([]);
  });
});

describe('StreamACL reconciler: deletion', () => {
  const mineInRedis = async () => {
    const store = new MemoryAclStore();
    await store.update('show', () => [{ id: 'k', hash: 'a'.repeat(64) }], { owner: 'uid-old' });
    return store;
  };
  const removedFinalizer = { metadata: { name: 'old', namespace: 'media', finalizers: [] } };

  it('leaves the keys to a StreamACL that guards the same streams, and lets the object go', async () => {
    const store = await mineInRedis();
    const old = streamAcl('old', [{ id: 'k', value: KEY }], { deleting: true });
    const successor = streamAcl('successor', [{ id: 'k', value: KEY }]);
    const { reconcile, applied } = setup({ acls: [old, successor], store });
    expect(await reconcile('old')).toBeUndefined();
    expect((await store.get('show'))?.owner).toBe('uid-old'); // the successor rewrites it
    expect(applied).toEqual([removedFinalizer]);
  });

  it('removes its keys when the only other claimant is being deleted too', async () => {
    const store = await mineInRedis();
    const old = streamAcl('old', [{ id: 'k', value: KEY }], { deleting: true });
    const alsoGoing = streamAcl('also-going', [{ id: 'k', value: KEY }], { deleting: true });
    const { reconcile, applied } = setup({ acls: [old, alsoGoing], store });
    expect(await reconcile('old')).toBeUndefined();
    expect(await store.get('show')).toBeUndefined();
    expect(applied).toEqual([removedFinalizer]);
  });

  it('keeps its finalizer and retries when Redis refuses the removal; syncAcl says not enforced', async () => {
    class DownStore extends MemoryAclStore {
      override async update(): Promise<never> {
        throw new Error('connection refused');
      }
    }
    const old = streamAcl('old', [{ id: 'k', value: KEY }], { deleting: true });
    const { reconciler, reconcile, applied, synced } = setup({ acls: [old], store: new DownStore() });
    expect(await reconcile('old')).toEqual({ requeueAfterMs: 5000 });
    expect(applied).toEqual([]);
    expect(synced('old')).toMatchObject({
      status: 'False',
      reason: 'RedisUnavailable',
      message: 'cannot remove the ACL: connection refused',
    });
    expect(await reconciler.syncAcl('media', 'old')).toBe(false);
  });

  it('keeps its finalizer while the Redis cannot be reached for want of a Secret; lets go once the CDN is gone', async () => {
    const store = await mineInRedis();
    const cdns = [cdn()];
    const old = streamAcl('old', [{ id: 'k', value: KEY }], { deleting: true });
    const { reconciler, reconcile, applied, synced, storesAsked } = setup({
      acls: [old],
      cdns,
      managedSecrets: [],
      store,
    });
    expect(await reconcile('old')).toEqual({ requeueAfterMs: 5000 });
    expect(applied).toEqual([]);
    expect(synced('old')).toMatchObject({ status: 'False', reason: 'ClusterSecretMissing' });
    expect((await store.get('show'))?.owner).toBe('uid-old');
    // No CDN, no Redis to clean (it went with the CDN): the object may go.
    cdns.length = 0;
    expect(await reconciler.syncAcl('media', 'old')).toBe(true);
    expect(applied).toEqual([removedFinalizer]);
    expect(storesAsked).toEqual([]);
  });

  it('does not touch the API server or Redis for an object whose finalizer is already gone', async () => {
    const store = await mineInRedis();
    const old = streamAcl('old', [{ id: 'k', value: KEY }], { deleting: true, finalizers: [] });
    const { reconcile, applied, gets, patches } = setup({ acls: [old], store });
    expect(await reconcile('old')).toBeUndefined();
    expect([gets, applied, patches]).toEqual([[], [], []]);
    expect((await store.get('show'))?.owner).toBe('uid-old');
  });

  it('lets the object go without touching Redis when the live object no longer carries the finalizer', async () => {
    const store = await mineInRedis();
    const cached = streamAcl('old', [{ id: 'k', value: KEY }], { deleting: true });
    const { reconciler, applied } = setup({
      acls: [{ ...cached, metadata: { ...cached.metadata, finalizers: [] } }],
      store,
    });
    expect(await reconciler.reconcile(StreamACLSchema.parse(cached))).toBeUndefined();
    expect(applied).toEqual([]);
    expect((await store.get('show'))?.owner).toBe('uid-old');
  });
});

describe('StreamACL reconciler: namespaces, the finalizer, the clock', () => {
  it('reads Secrets and finds conflicts in the StreamACL’s own namespace only', async () => {
    const elsewhere = (object: Obj): Obj => ({
      ...object,
      metadata: { ...object.metadata, namespace: 'other' },
    });
    const olderElsewhere = elsewhere(
      streamAcl('older', [{ id: 'k', value: KEY }], { creationTimestamp: '2026-01-01T00:00:00Z' }),
    );
    const { reconcile, synced, store } = setup({
      acls: [olderElsewhere, streamAcl('acl', [{ id: 'mine', secretKeyRef: { name: 'keys', key: 'k' } }])],
      cdns: [cdn(), elsewhere(cdn())],
      secrets: [
        elsewhere(secret('keys', { k: 'someone-elses-key-0123' }, ACCESS_KEYS)),
        secret('keys', { k: 'my-own-secret-key-0123' }, ACCESS_KEYS),
      ],
    });
    expect(await reconcile('acl')).toBeUndefined();
    expect(synced('acl')).toMatchObject({ status: 'True' });
    expect((await store.get('show'))?.keys).toEqual([
      { id: 'mine', hash: hashWith(CLUSTER_SECRET, 'my-own-secret-key-0123') },
    ]);
  });

  it('adds its finalizer with its own field manager, once: not again on every resync', async () => {
    const acl = streamAcl('acl', [{ id: 'k', value: KEY }]);
    delete (acl.metadata as { finalizers?: string[] }).finalizers; // as created by a user
    const { reconcile, applied, fieldManagers, acls } = setup({ acls: [acl] });
    await reconcile('acl');
    expect(applied).toEqual([
      { metadata: { name: 'acl', namespace: 'media', finalizers: [STREAM_ACL_FINALIZER] } },
    ]);
    expect(fieldManagers).toEqual(['rtccdn-operator-streamacl-finalizer']);
    acls[0]!.metadata['finalizers'] = [STREAM_ACL_FINALIZER];
    await reconcile('acl');
    expect(applied).toHaveLength(1);
  });

  it('lets a deleted StreamACL go without Redis when no finalizer (cached or live) is left', async () => {
    const store = new MemoryAclStore();
    await store.update('show', () => [{ id: 'k', hash: 'a'.repeat(64) }], { owner: 'uid-old' });
    const cached = streamAcl('old', [{ id: 'k', value: KEY }], { deleting: true });
    const withoutFinalizers = (object: Obj): Obj => {
      const copy = structuredClone(object);
      delete (copy.metadata as { finalizers?: string[] }).finalizers;
      return copy;
    };
    // The cached copy has none: not even the API server is asked.
    const none = setup({ acls: [withoutFinalizers(cached)], store });
    expect(await none.reconcile('old')).toBeUndefined();
    expect([none.gets, none.applied]).toEqual([[], []]);
    // The live object has none any more (an earlier pass removed it).
    const gone = setup({ acls: [withoutFinalizers(cached)], store });
    expect(await gone.reconciler.reconcile(StreamACLSchema.parse(cached))).toBeUndefined();
    expect(gone.applied).toEqual([]);
    expect((await store.get('show'))?.owner).toBe('uid-old');
  });

  it('lets a deleted StreamACL go when Redis has no record of it (never written)', async () => {
    const old = streamAcl('old', [{ id: 'k', value: KEY }], { deleting: true });
    const { reconcile, applied, patches } = setup({ acls: [old] });
    expect(await reconcile('old')).toBeUndefined();
    expect(applied).toEqual([{ metadata: { name: 'old', namespace: 'media', finalizers: [] } }]);
    expect(patches).toEqual([]);
  });

  it('syncAcl: false while Redis cannot be read or written', async () => {
    class DownStore extends MemoryAclStore {
      override async get(): Promise<undefined> {
        throw new Error('connection refused');
      }
    }
    const { reconciler } = setup({
      acls: [streamAcl('acl', [{ id: 'k', value: KEY }])],
      store: new DownStore(),
    });
    expect(await reconciler.syncAcl('media', 'acl')).toBe(false);
  });

  it('stamps its status with the current time when given no clock', async () => {
    const before = Date.now();
    const { reconcile, synced } = setup({
      acls: [streamAcl('acl', [{ id: 'k', value: KEY }])],
      realClock: true,
    });
    await reconcile('acl');
    const stamped = Date.parse((synced('acl') as { lastTransitionTime?: string }).lastTransitionTime ?? '');
    // RFC 3339 in whole seconds.
    expect(stamped).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(stamped).toBeLessThanOrEqual(Date.now());
  });
});
