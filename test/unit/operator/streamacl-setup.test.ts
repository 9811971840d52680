/**
 * Which StreamACLs the StreamACL controller reconciles again when something changes
 * (controllers/streamacl/setup.ts): the StreamACL itself and those guarding the same streams of
 * the same CDN, every StreamACL of a CDN that changed, and those reading a Secret of keys that
 * changed (or of the CDN it is labelled with). A missed case is a key rotation or a revocation
 * the edges never learn. The caches are faked (events delivered by hand); what is checked is
 * the controller's work queue.
 */
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type { ControllerContext } from '../../../operator/src/controllers/context.js';
import { setupStreamAclController } from '../../../operator/src/controllers/streamacl/setup.js';
import { InvalidObject, type TypedCacheEvent } from '../../../operator/src/runtime/TypedCache.js';

interface Obj {
  metadata: {
    name: string;
    namespace: string;
    generation?: number;
    labels?: Record<string, string>;
  };
  spec?: unknown;
}

/** A cache whose events the test delivers. */
function fakeCache(objects: Obj[] = []) {
  const handlers: ((event: TypedCacheEvent<Obj>) => void)[] = [];
  return {
    type: { kind: 'Fake' },
    addHandler: (handler: (event: TypedCacheEvent<Obj>) => void) => handlers.push(handler),
    list: (namespace: string) => objects.filter((object) => object.metadata.namespace === namespace),
    lookup: (namespace: string, name: string) =>
      objects.find((object) => object.metadata.namespace === namespace && object.metadata.name === name),
    get: (namespace: string, name: string) =>
      objects.find((object) => object.metadata.namespace === namespace && object.metadata.name === name),
    emit: (event: TypedCacheEvent<Obj>) => {
      for (const handler of handlers) handler(event);
    },
  };
}

const acl = (
  name: string,
  options: {
    namespace?: string;
    cdn?: string;
    stream?: string;
    secrets?: string[];
    generation?: number;
  } = {},
): Obj => ({
  metadata: { name, namespace: options.namespace ?? 'media', generation: options.generation ?? 1 },
  spec: {
    cdnRef: { name: options.cdn ?? 'cdn' },
    stream: options.stream ?? 'show',
    keys: [
      { id: 'inline', value: 'inline-key-0123456789' },
      ...(options.secrets ?? []).map((secret) => ({ id: secret, secretKeyRef: { name: secret, key: 'k' } })),
    ],
  },
});

function setup(acls: Obj[]) {
  const caches = {
    streamAcls: fakeCache(acls),
    cdns: fakeCache(),
    keySecrets: fakeCache(),
    secrets: fakeCache(),
  };
  const { controller } = setupStreamAclController({
    caches,
    client: {},
    aclStores: {},
    events: { record: () => undefined },
    logger: pino({ level: 'silent' }),
    metrics: undefined,
    aclStoreCheckMs: 60_000,
  } as unknown as ControllerContext);
  /** What the events so far put in the queue (and empties it). */
  const queued = async (): Promise<string[]> => {
    const keys: string[] = [];
    while (controller.queue.length > 0) {
      const key = await controller.queue.get();
      keys.push(String(key)); // a malformed request shows as "undefined"
      if (key !== undefined) controller.queue.done(key);
    }
    return keys.sort();
  };
  return { caches, queued };
}

describe('StreamACL controller: what is reconciled again', () => {
  const acls = [
    acl('a'),
    acl('b', { secrets: ['keys-b'] }),
    acl('other-stream', { stream: 'news' }),
    acl('other-cdn', { cdn: 'cdn-2', secrets: ['keys-b'] }),
    acl('elsewhere', { namespace: 'other' }),
  ];

  it('a StreamACL, and every StreamACL of its CDN guarding the same streams (one of them owns them)', async () => {
    const { caches, queued } = setup(acls);
    caches.streamAcls.emit({ type: 'deleted', object: acls[0]! as never });
    expect(await queued()).toEqual(['media/a', 'media/b']);
    caches.streamAcls.emit({ type: 'added', object: acls[2]! as never });
    expect(await queued()).toEqual(['media/other-stream']);
  });

  it('not for a change of its status alone; for a change of its spec', async () => {
    const { caches, queued } = setup(acls);
    const before = acls[0]!;
    const statusOnly = { ...before, status: { syncedKeys: 1 } };
    caches.streamAcls.emit({ type: 'modified', object: statusOnly as never, previous: before as never });
    expect(await queued()).toEqual([]);
    const newSpec = { ...before, metadata: { ...before.metadata, generation: 2 } };
    caches.streamAcls.emit({ type: 'modified', object: newSpec as never, previous: before as never });
    expect(await queued()).toEqual(['media/a', 'media/b']);
  });

  it('an unreadable StreamACL: itself only (its streams are unknown)', async () => {
    const { caches, queued } = setup(acls);
    const invalid = new InvalidObject({ metadata: { name: 'bad', namespace: 'media' } } as never, {
      path: ['spec'],
      message: 'invalid',
    });
    caches.streamAcls.emit({ type: 'added', object: invalid as never });
    expect(await queued()).toEqual(['media/bad']);
  });

  it('every StreamACL of a CDN that changed (in its namespace), none of other CDNs', async () => {
    const { caches, queued } = setup(acls);
    caches.cdns.emit({ type: 'added', object: { metadata: { name: 'cdn', namespace: 'media' } } });
    expect(await queued()).toEqual(['media/a', 'media/b', 'media/other-stream']);
    const cdn2 = { metadata: { name: 'cdn-2', namespace: 'media', generation: 1 } };
    caches.cdns.emit({ type: 'modified', object: cdn2, previous: cdn2 });
    expect(await queued()).toEqual([]); // its status only
  });

  it('the StreamACLs reading a Secret of keys that changed, and those of the CDN it is labelled with', async () => {
    const { caches, queued } = setup(acls);
    caches.keySecrets.emit({
      type: 'modified',
      object: { metadata: { name: 'keys-b', namespace: 'media' } },
    });
    expect(await queued()).toEqual(['media/b', 'media/other-cdn']);
    caches.keySecrets.emit({ type: 'added', object: { metadata: { name: 'unread', namespace: 'media' } } });
    expect(await queued()).toEqual([]);
    caches.keySecrets.emit({
      type: 'added',
      object: { metadata: { name: 'api-keys', namespace: 'media', labels: { 'rtccdn.io/cdn': 'cdn-2' } } },
    });
    expect(await queued()).toEqual(['media/other-cdn']);
  });
});
