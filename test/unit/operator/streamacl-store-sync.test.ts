/**
 * AclStoreSync: a store whose current data the operator has not fully written (a new or reset
 * Redis) gets every StreamACL of the CDNs on it rewritten, then is marked synced — and only then
 * do edges admit viewers. The stores are memory stores with the synced mark of a Redis store; the
 * CDNs and StreamACLs come from fake caches (the API server is not what this is about;
 * test/operator/streamacl.test.ts runs the real one with Redis losing its data).
 */
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type { AclStoreVersion } from '../../../media-node/contract/acl.js';
import { MemoryAclStore } from '../../../media-node/contract/acl.js';
import { redisPrefixFor } from '../../../operator/src/controllers/shared.js';
import { AclStoreSync } from '../../../operator/src/controllers/streamacl/AclStoreSync.js';
import type { KubeClient } from '../../../operator/src/kube/client.js';
import { OperatorMetrics } from '../../../operator/src/metrics.js';
import type { AclStores } from '../../../operator/src/redis/AclStores.js';
import { type CacheReader, InvalidObject } from '../../../operator/src/runtime/TypedCache.js';

/** A memory store that, like Redis, starts unsynced and keeps the epoch the operator marks. */
class MarkableStore extends MemoryAclStore {
  syncedEpoch = '';
  reachable = true;
  marks = 0;
  /** A Redis that has never been written: no epoch until ensureEpoch(). */
  noEpochYet = false;
  override async version(): Promise<AclStoreVersion> {
    if (!this.reachable) throw new Error('connection refused');
    const version = await super.version();
    return { ...version, epoch: this.noEpochYet ? '' : version.epoch, syncedEpoch: this.syncedEpoch };
  }
  override async ensureEpoch(): Promise<string> {
    this.noEpochYet = false;
    return super.ensureEpoch();
  }
  override async markSynced(epoch: string): Promise<boolean> {
    if (!(await super.markSynced(epoch))) return false;
    this.syncedEpoch = epoch;
    this.marks++;
    return true;
  }
}

const cdn = (namespace: string, name: string, url: string, deleting = false) => ({
  metadata: { namespace, name, ...(deleting ? { deletionTimestamp: '2026-12-01T00:00:00Z' } : {}) },
  spec: { redis: { url } },
});
const acl = (namespace: string, name: string, cdnName: string) => ({
  metadata: { namespace, name },
  spec: { cdnRef: { name: cdnName }, stream: name, keys: [] },
});

function cache<T extends { metadata: { namespace?: string; name: string } }>(
  objects: (T | InvalidObject)[],
): CacheReader<never> {
  const namespaceOf = (object: T | InvalidObject) => object.metadata?.namespace;
  return {
    get: () => undefined,
    lookup: () => undefined,
    list: (namespace?: string) =>
      objects.filter(
        (object) => !(object instanceof InvalidObject) && (!namespace || namespaceOf(object) === namespace),
      ),
    listAll: (namespace?: string) =>
      objects.filter((object) => !namespace || namespaceOf(object) === namespace),
  } as unknown as CacheReader<never>;
}

function setup(options: {
  cdns: (ReturnType<typeof cdn> | { metadata: { namespace: string; name: string }; spec: unknown })[];
  acls: (ReturnType<typeof acl> | InvalidObject)[];
  failing?: string[];
  /** Each StreamACL's sync waits for this (a pass in progress). */
  hold?: Promise<void>;
  fresh?: boolean;
}) {
  const stores = new Map<string, MarkableStore>();
  const synced: string[] = [];
  const metrics = new OperatorMetrics({ collectDefaults: false });
  const sync = new AclStoreSync({
    client: { get: async () => undefined } as unknown as KubeClient, // no Secrets on the API server
    cdns: cache(options.cdns as never[]),
    streamAcls: cache(options.acls as never[]),
    stores: {
      get: async (url: string, prefix: string) => {
        const key = `${prefix}\n${url}`;
        if (!stores.has(key)) {
          const created = new MarkableStore();
          created.noEpochYet = options.fresh ?? false;
          stores.set(key, created);
        }
        return stores.get(key)!;
      },
    } as unknown as AclStores,
    syncAcl: async (namespace, name) => {
      synced.push(`${namespace}/${name}`);
      await options.hold;
      return !(options.failing ?? []).includes(name);
    },
    intervalMs: 20,
    metrics,
    logger: pino({ level: 'silent' }),
  });
  const store = (namespace: string, name: string, url = 'redis://r:6379') =>
    stores.get(`${redisPrefixFor(namespace, name)}\n${url}`);
  return { sync, synced, stores, store, metrics };
}

const syncsCounted = async (metrics: OperatorMetrics) => (await metrics.aclStoreSyncs.get()).values[0]?.value;

describe('AclStoreSync', () => {
  it('rewrites every StreamACL of a CDN on an unsynced store, then marks it synced (once)', async () => {
    const { sync, synced, store, metrics } = setup({
      cdns: [cdn('media', 'cdn', 'redis://r:6379'), cdn('other', 'cdn', 'redis://r:6379')],
      acls: [
        acl('media', 'a', 'cdn'),
        acl('media', 'b', 'cdn'),
        acl('media', 'c', 'another-cdn'),
        acl('other', 'd', 'cdn'),
      ],
    });
    await sync.checkAll();
    expect(synced.sort()).toEqual(['media/a', 'media/b', 'other/d']);
    const media = store('media', 'cdn')!;
    expect(media.marks).toBe(1);
    expect((await media.version()).syncedEpoch).toBe(await media.ensureEpoch());
    expect(store('other', 'cdn')!.marks).toBe(1);
    expect(await syncsCounted(metrics)).toBe(2);
    // Synced now: the next pass writes nothing.
    synced.length = 0;
    await sync.checkAll();
    expect(synced).toEqual([]);
    expect(media.marks).toBe(1);
  });

  it('does not mark the store synced while a StreamACL cannot be written, and tries again', async () => {
    const failing = ['b'];
    const { sync, synced, store, metrics } = setup({
      cdns: [cdn('media', 'cdn', 'redis://r:6379')],
      acls: [acl('media', 'a', 'cdn'), acl('media', 'b', 'cdn')],
      failing,
    });
    await sync.checkAll();
    expect(synced).toEqual(['media/a', 'media/b']);
    expect(store('media', 'cdn')!.marks).toBe(0);
    expect(await syncsCounted(metrics)).toBe(0);
    failing.length = 0;
    await sync.checkAll();
    expect(store('media', 'cdn')!.marks).toBe(1);
  });

  it('counts a StreamACL that does not parse but names its CDN (it cannot be written: not synced)', async () => {
    const broken = new InvalidObject(
      {
        apiVersion: 'rtccdn.io/v1alpha1',
        kind: 'StreamACL',
        metadata: { namespace: 'media', name: 'broken' },
        spec: { cdnRef: { name: 'cdn' }, keys: 7 },
      },
      { path: ['spec', 'keys'], message: 'expected array' },
    );
    const unrelated = new InvalidObject(
      {
        apiVersion: 'rtccdn.io/v1alpha1',
        kind: 'StreamACL',
        metadata: { namespace: 'media', name: 'nocdn' },
        spec: {},
      },
      { path: ['spec', 'cdnRef'], message: 'required' },
    );
    const { sync, synced, store } = setup({
      cdns: [cdn('media', 'cdn', 'redis://r:6379')],
      acls: [acl('media', 'a', 'cdn'), broken, unrelated],
      failing: ['broken'],
    });
    await sync.checkAll();
    expect(synced).toEqual(['media/a', 'media/broken']);
    expect(store('media', 'cdn')!.marks).toBe(0);
  });

  it('leaves out CDNs being deleted and stores it cannot reach', async () => {
    const { sync, synced, stores, store } = setup({
      cdns: [cdn('media', 'gone', 'redis://r:6379', true), cdn('media', 'cdn', 'redis://down:6379')],
      acls: [acl('media', 'a', 'gone'), acl('media', 'b', 'cdn')],
    });
    await sync.checkAll(); // creates the store of `cdn`; unreachable from now on
    expect(synced).toEqual(['media/b']);
    synced.length = 0;
    const down = store('media', 'cdn', 'redis://down:6379')!;
    down.syncedEpoch = '';
    down.reachable = false;
    await sync.checkAll();
    expect(synced).toEqual([]);
    expect([...stores.keys()]).toEqual([`${redisPrefixFor('media', 'cdn')}\nredis://down:6379`]);
  });

  it('writes a Redis that has never been written (no epoch yet), and skips a CDN whose Redis it cannot resolve', async () => {
    const unresolved = {
      metadata: { namespace: 'media', name: 'secretless' },
      spec: { redis: { secretRef: { name: 'missing', key: 'url' } } },
    };
    const { sync, synced, store } = setup({
      cdns: [unresolved, cdn('media', 'cdn', 'redis://r:6379')],
      acls: [acl('media', 'a', 'secretless'), acl('media', 'b', 'cdn')],
      fresh: true,
    });
    await sync.checkAll();
    expect(synced).toEqual(['media/b']);
    expect(store('media', 'cdn')!.marks).toBe(1);
  });

  it('stops after the pass in progress when stop() comes during it', async () => {
    let release: () => void = () => undefined;
    const hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { sync, synced, store } = setup({
      cdns: [cdn('media', 'cdn', 'redis://r:6379')],
      acls: [acl('media', 'a', 'cdn')],
      hold,
    });
    sync.start();
    const deadline = Date.now() + 5000;
    while (synced.length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    const stopped = sync.stop();
    release();
    await stopped;
    expect(store('media', 'cdn')!.marks).toBe(1);
    store('media', 'cdn')!.syncedEpoch = ''; // a pass would now write again
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(synced).toEqual(['media/a']);
  });

  it('checks every interval once started, and not after stop()', async () => {
    const { sync, synced, store } = setup({
      cdns: [cdn('media', 'cdn', 'redis://r:6379')],
      acls: [acl('media', 'a', 'cdn')],
    });
    sync.start();
    const until = async (check: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      return check();
    };
    expect(await until(() => store('media', 'cdn')?.marks === 1)).toBe(true);
    // The store loses its data's mark: the next pass rewrites.
    store('media', 'cdn')!.syncedEpoch = '';
    expect(await until(() => store('media', 'cdn')?.marks === 2)).toBe(true);
    await sync.stop();
    const passes = synced.length;
    store('media', 'cdn')!.syncedEpoch = '';
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(synced.length).toBe(passes);
  });
});
