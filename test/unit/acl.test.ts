import { afterEach, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  type DefaultPolicy,
  findKey,
  governingAcl,
  hashAccessKey,
  MemoryAclStore,
  patternMatches,
  randomAclHashKey,
} from '../../media-node/contract/acl.js';
import { RtccdnError } from '../../media-node/contract/errors.js';
import { clientBucket } from '../../media-node/contract/http.js';
import { WindowLimiter } from '../../media-node/contract/runtime.js';
import { AccessController, type Guarded } from '../../media-node/src/acl/AccessController.js';
import { AclCache } from '../../media-node/src/acl/AclCache.js';
import { createLogger } from '../../media-node/src/logger.js';
import { MediaNodeMetrics } from '../../media-node/src/metrics.js';

const logger = createLogger('silent');
const streamName = fc.stringMatching(/^[A-Za-z0-9._~-]{1,20}$/);

describe('ACL patterns', () => {
  it('matches exact names and prefixes', () => {
    expect(patternMatches('webinar', 'webinar')).toBe(true);
    expect(patternMatches('webinar', 'webinar-2')).toBe(false);
    expect(patternMatches('sales-*', 'sales-q3')).toBe(true);
    expect(patternMatches('sales-*', 'sales-')).toBe(true);
    expect(patternMatches('sales-*', 'presales-q3')).toBe(false);
    expect(patternMatches('*', 'anything')).toBe(true);
  });

  it('lets the most specific ACL govern: exact beats prefix, longer prefix beats shorter', () => {
    fc.assert(
      fc.property(streamName, fc.integer({ min: 0, max: 20 }), fc.boolean(), (stream, cut, withExact) => {
        const prefix = stream.slice(0, Math.min(cut, stream.length));
        const records = [
          { pattern: '*' },
          { pattern: `${prefix}*` },
          ...(withExact ? [{ pattern: stream }] : []),
        ];
        const governing = governingAcl(records, stream)!;
        if (withExact) expect(governing.pattern).toBe(stream);
        else expect(governing.pattern).toBe(`${prefix}*`);
        // Order of the records never matters.
        expect(governingAcl([...records].reverse(), stream)!.pattern).toBe(governing.pattern);
      }),
    );
  });

  it('never lets a pattern govern a stream it does not cover', () => {
    fc.assert(
      fc.property(streamName, streamName, (pattern, stream) => {
        const governing = governingAcl([{ pattern: `${pattern}*` }, { pattern }], stream);
        if (governing) expect(patternMatches(governing.pattern, stream)).toBe(true);
        else expect(stream.startsWith(pattern)).toBe(false);
      }),
    );
  });
});

describe('key hashing', () => {
  it('finds a key by its keyed hash, and nothing for another key or another hash key', () => {
    const hashKey = randomAclHashKey();
    const keys = [
      { id: 'a', hash: hashAccessKey(hashKey, 'key-a-0123456789') },
      { id: 'b', hash: hashAccessKey(hashKey, 'key-b-0123456789') },
    ];
    expect(findKey(keys, hashAccessKey(hashKey, 'key-b-0123456789'))?.id).toBe('b');
    expect(findKey(keys, hashAccessKey(hashKey, 'key-c-0123456789'))).toBeUndefined();
    expect(findKey(keys, hashAccessKey(randomAclHashKey(), 'key-a-0123456789'))).toBeUndefined();
    expect(keys[0]!.hash).not.toContain('key-a');
  });
});

describe('WindowLimiter', () => {
  it('blocks a key after `limit` events within the window, until the oldest leaves it', () => {
    const limiter = new WindowLimiter(3, 1000);
    try {
      limiter.record('1.2.3.4', 0);
      limiter.record('1.2.3.4', 100);
      expect(limiter.blockedFor('1.2.3.4', 200)).toBe(0);
      limiter.record('1.2.3.4', 200);
      expect(limiter.blockedFor('1.2.3.4', 300)).toBe(700);
      expect(limiter.blockedFor('5.6.7.8', 300)).toBe(0);
      expect(limiter.blockedFor('1.2.3.4', 1000)).toBe(0);
      expect(limiter.size).toBe(1);
    } finally {
      limiter.close();
    }
  });
});

describe('AccessController (memory store)', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  async function setup(defaultPolicy: DefaultPolicy = 'allow', perStream = 100) {
    const store = new MemoryAclStore();
    const cache = new AclCache({ store, logger });
    await cache.start();
    const hashKey = randomAclHashKey();
    const metrics = new MediaNodeMetrics();
    const controller = new AccessController({
      cache,
      hashKey,
      defaultPolicy,
      maxStalenessMs: 60_000,
      requireStoreSynced: false,
      limits: { perClientIp: 3, perStream, windowMs: 60_000 },
      metrics,
      logger,
    });
    closers.push(
      () => controller.close(),
      () => cache.close(),
    );
    // Writes an ACL and waits until the cache has it (it learns changes asynchronously, as an
    // edge learns them from Redis).
    const put = async (pattern: string, keys: { id: string; key: string; expiresAt?: number }[]) => {
      const record = await store.update(pattern, () =>
        keys.map((key) => ({
          id: key.id,
          hash: hashAccessKey(hashKey, key.key),
          ...(key.expiresAt ? { expiresAt: key.expiresAt } : {}),
        })),
      );
      const { version } = await store.version();
      while (cache.version < version) await new Promise((resolve) => setImmediate(resolve));
      return record;
    };
    return { store, cache, controller, put, metrics };
  }

  const status = (run: () => unknown) => {
    try {
      run();
      return 200;
    } catch (error) {
      if (error instanceof RtccdnError) return error.status;
      throw error;
    }
  };

  class FakeSession implements Guarded {
    readonly id = Math.random().toString(36);
    closedWith: string | undefined;
    #listener: ((reason: string) => void) | undefined;
    close(reason: string) {
      if (this.closedWith) return;
      this.closedWith = reason;
      this.#listener?.(reason);
    }
    once(_event: 'close', listener: (reason: string) => void) {
      this.#listener = listener;
    }
  }

  it('admits public streams without a key and protected ones only with a valid key', async () => {
    const { controller, put } = await setup();
    await put('paid-*', [{ id: 'k1', key: 'secret-key-000001' }]);
    expect(status(() => controller.admit('free', undefined, '10.0.0.1'))).toBe(200);
    expect(status(() => controller.admit('paid-1', undefined, '10.0.0.1'))).toBe(401);
    expect(status(() => controller.admit('paid-1', 'wrong-key-00000001', '10.0.0.1'))).toBe(403);
    expect(controller.admit('paid-1', 'secret-key-000001', '10.0.0.1').keyId).toBe('k1');
  });

  it('treats expired keys like wrong ones', async () => {
    const { controller, put } = await setup();
    await put('s', [{ id: 'old', key: 'secret-key-000001', expiresAt: Date.now() - 1 }]);
    expect(status(() => controller.admit('s', 'secret-key-000001', '10.0.0.1'))).toBe(403);
  });

  it('makes every stream without an ACL private under the deny policy', async () => {
    const { controller } = await setup('deny');
    expect(status(() => controller.admit('anything', undefined, '10.0.0.1'))).toBe(401);
    expect(status(() => controller.admit('anything', 'some-key-0000000001', '10.0.0.1'))).toBe(403);
  });

  it('answers 429 to wrong keys once a client has failed too often, but lets its correct key in', async () => {
    const { controller, put } = await setup();
    await put('s', [{ id: 'k', key: 'secret-key-000001' }]);
    for (let i = 0; i < 3; i++)
      expect(status(() => controller.admit('s', `guess-${i}-0000000000`, '10.0.0.9'))).toBe(403);
    expect(status(() => controller.admit('s', 'guess-3-0000000000', '10.0.0.9'))).toBe(429);
    // A paying viewer who mistyped is not locked out, nor is anyone else.
    expect(status(() => controller.admit('s', 'secret-key-000001', '10.0.0.9'))).toBe(200);
    expect(status(() => controller.admit('s', 'secret-key-000001', '10.0.0.10'))).toBe(200);
  });

  it('does not let guesses against a stream lock its paying viewers out', async () => {
    const { controller, put } = await setup('allow', 5);
    await put('s', [{ id: 'k', key: 'secret-key-000001' }]);
    // Five clients, one guess each: the stream's limit is reached.
    for (let i = 0; i < 5; i++)
      expect(status(() => controller.admit('s', `guess-${i}-0000000000`, `10.0.1.${i}`))).toBe(403);
    expect(status(() => controller.admit('s', 'guess-x-0000000000', '10.0.2.1'))).toBe(429);
    expect(status(() => controller.admit('s', 'secret-key-000001', '10.0.2.2'))).toBe(200);
  });

  it('counts an IPv6 client per /64: rotating addresses inside it does not reset its failures', async () => {
    const { controller, put } = await setup();
    await put('s', [{ id: 'k', key: 'secret-key-000001' }]);
    for (let i = 1; i <= 3; i++)
      expect(status(() => controller.admit('s', `guess-${i}-0000000000`, `2001:db8:1:2::${i}`))).toBe(403);
    expect(status(() => controller.admit('s', 'guess-4-0000000000', '2001:db8:1:2:ffff::9'))).toBe(429);
    // Another /64 is another client.
    expect(status(() => controller.admit('s', 'guess-5-0000000000', '2001:db8:1:3::1'))).toBe(403);
  });

  it('refuses a session whose key was revoked while it was being set up', async () => {
    const { controller, put } = await setup();
    await put('s', [
      { id: 'a', key: 'secret-key-00000a' },
      { id: 'b', key: 'secret-key-00000b' },
    ]);
    const grant = controller.admit('s', 'secret-key-00000a', '10.0.0.1');
    const other = controller.admit('s', 'secret-key-00000b', '10.0.0.1');
    // The relay or rendition takes a moment; meanwhile key a is removed.
    await put('s', [{ id: 'b', key: 'secret-key-00000b' }]);
    expect(status(() => controller.watch(new FakeSession(), grant))).toBe(403);
    expect(status(() => controller.watch(new FakeSession(), other))).toBe(200);
    expect(controller.watchedCount).toBe(1);
  });

  it('refuses a keyless session whose stream became protected while it was being set up', async () => {
    const { controller, put } = await setup();
    const grant = controller.admit('launch', undefined, '10.0.0.1');
    await put('launch', [{ id: 'k', key: 'launch-key-00000001' }]);
    expect(status(() => controller.watch(new FakeSession(), grant))).toBe(401);
  });

  it('tells public streams (no key needed) from protected ones', async () => {
    const { controller, put } = await setup();
    await put('paid-*', [{ id: 'k', key: 'secret-key-000001' }]);
    expect(controller.isPublic('free')).toBe(true);
    expect(controller.isPublic('paid-1')).toBe(false);
  });

  it('closes sessions whose key is removed, keeps the others, and closes on expiry by its own timer', async () => {
    const { controller, put, metrics } = await setup();
    const soon = Date.now() + 300;
    await put('s', [
      { id: 'a', key: 'secret-key-00000a' },
      { id: 'b', key: 'secret-key-00000b' },
      { id: 'c', key: 'secret-key-00000c', expiresAt: soon },
    ]);
    const sessions = ['a', 'b', 'c'].map((id) => {
      const session = new FakeSession();
      controller.watch(session, controller.admit('s', `secret-key-00000${id}`, '10.0.0.1'));
      return session;
    });
    await put('s', [
      { id: 'b', key: 'secret-key-00000b' },
      { id: 'c', key: 'secret-key-00000c', expiresAt: soon },
    ]);
    expect(sessions.map((session) => session.closedWith)).toEqual([
      'revoked: key-removed',
      undefined,
      undefined,
    ]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(sessions.map((session) => session.closedWith)).toEqual([
      'revoked: key-removed',
      undefined,
      'revoked: key-expired',
    ]);
    expect(controller.watchedCount).toBe(1);
    expect(await metrics.registry.getSingleMetricAsString('rtccdn_revocations_total')).toMatch(
      /reason="key-expired"\} 1/,
    );
  });

  it('closes viewers admitted without a key when their stream becomes protected', async () => {
    const { controller, put } = await setup();
    const session = new FakeSession();
    controller.watch(session, controller.admit('was-public', undefined, '10.0.0.1'));
    await put('was-*', [{ id: 'k', key: 'secret-key-000001' }]);
    expect(session.closedWith).toBe('revoked: stream-protected');
  });

  it('keeps a viewer that presented a key before the ACL with that key reached this edge', async () => {
    const { controller, put } = await setup();
    const early = new FakeSession();
    const anonymous = new FakeSession();
    controller.watch(early, controller.admit('launch', 'launch-key-00000001', '10.0.0.1'));
    controller.watch(anonymous, controller.admit('launch', undefined, '10.0.0.2'));
    await put('launch', [{ id: 'k', key: 'launch-key-00000001' }]);
    expect(early.closedWith).toBeUndefined();
    expect(anonymous.closedWith).toBe('revoked: stream-protected');
  });

  it('refuses everything (503) until the ACLs are loaded', async () => {
    const store = new MemoryAclStore();
    const cache = new AclCache({ store, logger });
    const controller = new AccessController({
      cache,
      hashKey: randomAclHashKey(),
      defaultPolicy: 'allow',
      maxStalenessMs: 60_000,
      requireStoreSynced: false,
      limits: { perClientIp: 3, perStream: 100, windowMs: 60_000 },
      metrics: new MediaNodeMetrics(),
      logger,
    });
    closers.push(
      () => controller.close(),
      () => cache.close(),
    );
    expect(status(() => controller.admit('free', undefined, '10.0.0.1'))).toBe(503);
    await cache.start();
    expect(status(() => controller.admit('free', undefined, '10.0.0.1'))).toBe(200);
  });
});

describe('AclCache (memory store)', () => {
  /** A store whose reads take a while (a Redis round trip under load). */
  class SlowReadStore extends MemoryAclStore {
    override async get(pattern: string) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return super.get(pattern);
    }
  }

  it('applies changes one at a time, in order: a change arriving while the one before is being read is no gap', async () => {
    const store = new SlowReadStore();
    const cache = new AclCache({ store, checkIntervalMs: 600_000, logger });
    try {
      await cache.start();
      const changes: string[][] = [];
      cache.on('changed', (patterns) => changes.push([...patterns]));
      const hash = 'a'.repeat(64);
      await store.update('first', () => [{ id: 'k1', hash }]);
      await store.update('second', () => [{ id: 'k2', hash }]);
      const deadline = Date.now() + 5000;
      while (cache.version < 2 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 10));
      expect(cache.version).toBe(2);
      // Each change on its own (with its time, for the revocation metric), not one re-read of everything.
      expect(changes).toEqual([['first'], ['second']]);
      expect(cache.governing('first')?.keys[0]?.id).toBe('k1');
      expect(cache.governing('second')?.keys[0]?.id).toBe('k2');
    } finally {
      cache.close();
    }
  });
});

describe('clientBucket', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2::7', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
  ])('%s is counted as %s', (ip, bucket) => {
    expect(clientBucket(ip)).toBe(bucket);
  });
});
