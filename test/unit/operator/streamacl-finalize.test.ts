import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { MemoryAclStore } from '../../../media-node/contract/acl.js';
import { StreamACLSchema } from '../../../operator/src/api/v1alpha1.js';
import {
  STREAM_ACL_FINALIZER,
  StreamAclReconciler,
} from '../../../operator/src/controllers/streamacl/reconciler.js';
import type { KubeClient } from '../../../operator/src/kube/client.js';
import type { EventSink } from '../../../operator/src/kube/events.js';
import type { AclStores } from '../../../operator/src/redis/AclStores.js';
import type { CacheReader } from '../../../operator/src/runtime/TypedCache.js';

/**
 * Finalizing acts on the live object, not on the cache: the cache can still show a StreamACL
 * whose finalizer an earlier pass removed. (The API server and Redis are faked here: the test
 * is about which copy the reconciler trusts; streamacl.test.ts runs the real ones.)
 */
describe('StreamACL finalizer and a stale cache', () => {
  const deleting = {
    apiVersion: 'rtccdn.io/v1alpha1',
    kind: 'StreamACL',
    metadata: {
      name: 'old',
      namespace: 'media',
      uid: 'uid-old',
      resourceVersion: '10',
      deletionTimestamp: '2026-11-25T00:00:00Z',
      finalizers: [STREAM_ACL_FINALIZER],
    },
    spec: {
      cdnRef: { name: 'cdn' },
      stream: 'show',
      keys: [{ id: 'k', value: 'a-key-of-16-chars-or-more' }],
    },
  };

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
    data: { clusterSecret: Buffer.from('a-cluster-secret-of-some-length').toString('base64') },
  };

  function reconcilerWith(live: unknown, withCdn?: { store: MemoryAclStore }) {
    const applied: unknown[] = [];
    const client = {
      get: async () => live,
      apply: async (_type: unknown, object: unknown) => {
        applied.push(object);
        return object;
      },
    } as unknown as KubeClient;
    const cache = (objects: unknown[]) =>
      ({
        get: (_namespace: string, name: string) =>
          objects.find((object) => (object as typeof deleting).metadata.name === name),
        list: () => objects,
      }) as unknown as CacheReader<never>;
    const reconciler = new StreamAclReconciler({
      client,
      streamAcls: cache([deleting]),
      // Without a CDN there is nothing to clean in Redis, only the finalizer to remove.
      cdns: cache(withCdn ? [cdn] : []),
      secrets: cache([]),
      managedSecrets: cache(withCdn ? [clusterSecret] : []),
      stores: { get: async () => withCdn?.store } as unknown as AclStores,
      events: {} as EventSink,
      logger: pino({ level: 'silent' }),
    });
    // What the controller hands over: the cached object, parsed.
    return { reconcile: () => reconciler.reconcile(StreamACLSchema.parse(deleting)), applied };
  }

  it('does nothing when the object is already gone from the API server', async () => {
    const { reconcile, applied } = reconcilerWith(undefined);
    expect(await reconcile()).toBeUndefined();
    expect(applied).toEqual([]); // an apply here would create the deleted object again
  });

  it('does nothing when the name now belongs to another object', async () => {
    // The record still carries the old owner (the new object has not synced yet): trusting the
    // cached copy would remove it — and the new object's finalizer with an apply by name.
    const store = new MemoryAclStore();
    await store.update('show', () => [{ id: 'k', hash: 'b'.repeat(64) }], { owner: 'uid-old' });
    const { reconcile, applied } = reconcilerWith(
      { ...deleting, metadata: { ...deleting.metadata, uid: 'uid-new', deletionTimestamp: undefined } },
      { store },
    );
    await reconcile();
    expect(applied).toEqual([]);
    expect((await store.get('show'))?.keys).toEqual([{ id: 'k', hash: 'b'.repeat(64) }]);
  });

  it('removes its finalizer when the live object still carries it', async () => {
    const { reconcile, applied } = reconcilerWith(deleting);
    await reconcile();
    expect(applied).toEqual([{ metadata: { name: 'old', namespace: 'media', finalizers: [] } }]);
  });

  it('leaves the keys a StreamACL created since has written for the same stream', async () => {
    const store = new MemoryAclStore();
    await store.update('show', () => [{ id: 'k', hash: 'b'.repeat(64) }], { owner: 'uid-new' });
    const { reconcile, applied } = reconcilerWith(deleting, { store });
    await reconcile();
    expect((await store.get('show'))?.owner).toBe('uid-new');
    expect(applied).toHaveLength(1); // and it lets the old object go
  });

  it('removes the keys it wrote itself', async () => {
    const store = new MemoryAclStore();
    await store.update('show', () => [{ id: 'k', hash: 'b'.repeat(64) }], { owner: 'uid-old' });
    const { reconcile, applied } = reconcilerWith(deleting, { store });
    await reconcile();
    expect(await store.get('show')).toBeUndefined();
    expect(applied).toHaveLength(1);
  });
});
