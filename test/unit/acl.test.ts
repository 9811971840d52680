import { afterEach, describe, expect, it, jest } from '@jest/globals';
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

  it('checks a grant again without watching anything (HLS requests): key removed, expired, stream protected', async () => {
    const { controller, put } = await setup();
    await put('s', [
      { id: 'a', key: 'secret-key-00000a' },
      { id: 'b', key: 'secret-key-00000b', expiresAt: Date.now() + 60_000 },
    ]);
    const a = controller.admit('s', 'secret-key-00000a', '10.0.0.1');
    const b = controller.admit('s', 'secret-key-00000b', '10.0.0.1');
    const keyless = controller.admit('open', undefined, '10.0.0.1');
    expect([status(() => controller.check(a)), status(() => controller.check(b))]).toEqual([200, 200]);
    expect(status(() => controller.check(keyless))).toBe(200);
    expect(controller.watchedCount).toBe(0);
    await put('s', [{ id: 'b', key: 'secret-key-00000b', expiresAt: Date.now() - 1 }]);
    expect(status(() => controller.check(a))).toBe(403);
    expect(status(() => controller.check(b))).toBe(403);
    await put('open', [{ id: 'k', key: 'open-key-000000001' }]);
    expect(status(() => controller.check(keyless))).toBe(401);
  });

  it('refuses checks while the rules of the stream cannot be known', async () => {
    const { controller, put } = await setup();
    await put('s', [{ id: 'a', key: 'secret-key-00000a' }]);
    const grant = controller.admit('s', 'secret-key-00000a', '10.0.0.1');
    // Another node whose ACL cache never loaded: it cannot tell whether the grant holds.
    const unloaded = new AclCache({ store: new MemoryAclStore(), logger });
    const blind = new AccessController({
      cache: unloaded,
      hashKey: randomAclHashKey(),
      defaultPolicy: 'allow',
      maxStalenessMs: 60_000,
      requireStoreSynced: false,
      limits: { perClientIp: 3, perStream: 100, windowMs: 60_000 },
      metrics: new MediaNodeMetrics(),
      logger,
    });
    closers.push(() => blind.close());
    expect(status(() => blind.check(grant))).toBe(503);
  });

  it('finds the governing ACL’s key a predicate picks (HLS grants name a key by id and fingerprint)', async () => {
    const { controller, put } = await setup();
    await put('team-*', [
      { id: 'a', key: 'secret-key-00000a' },
      { id: 'b', key: 'secret-key-00000b' },
    ]);
    const b = controller.admit('team-red', 'secret-key-00000b', '10.0.0.1');
    expect(controller.findGrantedKey('team-red', (key) => key.hash === b.keyHash)).toEqual({
      id: 'b',
      hash: b.keyHash,
    });
    expect(controller.findGrantedKey('team-red', (key) => key.id === 'c')).toBeUndefined();
    expect(controller.findGrantedKey('other', () => true)).toBeUndefined();
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
    expect(() => controller.admit('free', undefined, '10.0.0.1')).toThrow(
      'access rules are not loaded yet; try again',
    );
    await cache.start();
    expect(status(() => controller.admit('free', undefined, '10.0.0.1'))).toBe(200);
  });
});

describe('AccessController: what a refused viewer is told, what is counted, and when keys expire', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  /** A memory store that can pretend the operator has not synced it, or that a record is unreadable. */
  class ReportingStore extends MemoryAclStore {
    synced = true;
    unreadable: string[] = [];
    /** Changes are announced as made this long ago (the writer's clock). */
    changeAgeMs = 0;
    /** Change messages are lost (as pub/sub messages can be). */
    silent = false;
    protected override emit(...[event, change]: Parameters<MemoryAclStore['emit']>) {
      if (!this.silent) super.emit(event, { ...change, at: change.at - this.changeAgeMs });
    }
    /** Set: the store answers as if its data were lost (a new epoch, no records). */
    lostTo: string | undefined;
    override async version() {
      const version = await super.version();
      if (this.lostTo) return { epoch: this.lostTo, version: 0, syncedEpoch: this.lostTo, head: '' };
      return { ...version, syncedEpoch: this.synced ? version.syncedEpoch : '' };
    }
    override async snapshot() {
      const snapshot = await super.snapshot();
      return {
        ...snapshot,
        ...(await this.version()),
        records: this.lostTo ? [] : snapshot.records,
        unreadable: this.unreadable,
      };
    }
  }

  async function setup(
    options: { defaultPolicy?: DefaultPolicy; maxStalenessMs?: number; requireStoreSynced?: boolean } = {},
    store = new ReportingStore(),
  ) {
    const cache = new AclCache({ store, checkIntervalMs: 600_000, logger });
    await cache.start();
    const hashKey = randomAclHashKey();
    const metrics = new MediaNodeMetrics();
    const controller = new AccessController({
      cache,
      hashKey,
      defaultPolicy: options.defaultPolicy ?? 'allow',
      maxStalenessMs: options.maxStalenessMs ?? 60_000,
      requireStoreSynced: options.requireStoreSynced ?? false,
      limits: { perClientIp: 2, perStream: 100, windowMs: 60_000 },
      metrics,
      logger,
    });
    closers.push(
      () => controller.close(),
      () => cache.close(),
    );
    const put = async (
      pattern: string,
      keys: { id: string; key: string; expiresAt?: number }[] | undefined,
    ) => {
      await store.update(pattern, () =>
        keys?.map((key) => ({
          id: key.id,
          hash: hashAccessKey(hashKey, key.key),
          ...(key.expiresAt ? { expiresAt: key.expiresAt } : {}),
        })),
      );
      const { version } = await store.version();
      while (cache.version < version) await new Promise((resolve) => setImmediate(resolve));
    };
    return { store, cache, controller, metrics, put };
  }

  const refusal = (run: () => unknown): RtccdnError => {
    try {
      run();
    } catch (error) {
      if (error instanceof RtccdnError) return error;
      throw error;
    }
    throw new Error('admitted');
  };

  class Viewer implements Guarded {
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

  const until = async (check: () => boolean, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    return check();
  };

  it('tells a viewer without a key to bring one, and a wrong key only "access denied", with their Bearer challenges', async () => {
    const { controller, put } = await setup();
    await put('paid', [{ id: 'k1', key: 'secret-key-000001' }]);
    const required = refusal(() => controller.admit('paid', undefined, '10.0.0.1'));
    expect(required).toMatchObject({
      code: 'ACCESS_KEY_REQUIRED',
      status: 401,
      message: 'this stream requires an access key',
      details: { challenge: 'Bearer realm="rtccdn"' },
    });
    expect(refusal(() => controller.admit('paid', '', '10.0.0.1')).code).toBe('ACCESS_KEY_REQUIRED');
    expect(refusal(() => controller.admit('paid', 'wrong-key-0000001', '10.0.0.1'))).toMatchObject({
      code: 'ACCESS_DENIED',
      status: 403,
      message: 'access denied',
      details: { challenge: 'Bearer realm="rtccdn", error="invalid_token"' },
    });
    expect(refusal(() => controller.admit('paid', 'wrong-key-0000002', '10.0.0.1')).code).toBe(
      'ACCESS_DENIED',
    );
    const limited = refusal(() => controller.admit('paid', 'wrong-key-0000003', '10.0.0.1'));
    expect(limited).toMatchObject({
      code: 'RATE_LIMITED',
      message: 'too many failed attempts; try again later',
    });
    expect(limited.details.retryAfterMs).toBeGreaterThan(59_000);
    expect(limited.details.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('counts admissions by result', async () => {
    const { controller, metrics, put } = await setup();
    await put('paid', [{ id: 'k1', key: 'secret-key-000001' }]);
    controller.admit('free', undefined, '10.0.0.1');
    controller.admit('paid', 'secret-key-000001', '10.0.0.1');
    refusal(() => controller.admit('paid', undefined, '10.0.0.1'));
    refusal(() => controller.admit('paid', 'wrong-key-0000001', '10.0.0.1'));
    const counted = Object.fromEntries(
      (await metrics.admissions.get()).values.map((sample) => [sample.labels.result, sample.value]),
    );
    expect(counted).toEqual({ ok: 2, '401': 1, '403': 1 });
  });

  it('refuses protected streams (503, retry in 5 s) once the rules are older than the staleness limit, public ones not', async () => {
    const { controller, put } = await setup({ maxStalenessMs: 100 });
    await put('paid', [{ id: 'k1', key: 'secret-key-000001' }]);
    expect(controller.admit('paid', 'secret-key-000001', '10.0.0.1').keyId).toBe('k1');
    await new Promise((resolve) => setTimeout(resolve, 250)); // no check confirms the cache meanwhile
    expect(refusal(() => controller.admit('paid', 'secret-key-000001', '10.0.0.1'))).toMatchObject({
      code: 'ACCESS_RULES_UNAVAILABLE',
      status: 503,
      message: 'access rules cannot be verified right now; try again',
      details: { retryAfterMs: 5000 },
    });
    expect(controller.admit('free', undefined, '10.0.0.1').keyHash).toBeUndefined();
  });

  it('admits nobody on an operator-managed store until the operator has written it (503), then by the rules', async () => {
    const store = new ReportingStore();
    store.synced = false;
    const { controller, cache, put } = await setup({ requireStoreSynced: true }, store);
    await put('paid', [{ id: 'k1', key: 'secret-key-000001' }]);
    for (const [stream, key] of [
      ['free', undefined],
      ['paid', 'secret-key-000001'],
    ] as const) {
      expect(refusal(() => controller.admit(stream, key, '10.0.0.1'))).toMatchObject({
        code: 'ACCESS_RULES_UNAVAILABLE',
        message: 'access rules are being restored by the operator; try again',
        details: { retryAfterMs: 2000 },
      });
    }
    expect(controller.isPublic('free')).toBe(false);
    store.synced = true;
    await put('other', [{ id: 'k2', key: 'secret-key-000002' }]); // a write; then a full read
    await cache.start();
    expect(cache.storeSynced).toBe(true);
    expect(controller.admit('paid', 'secret-key-000001', '10.0.0.1').keyId).toBe('k1');
    expect(controller.isPublic('free')).toBe(true);
  });

  it('refuses (503) a stream whose stored ACL cannot be read, and no other', async () => {
    const store = new ReportingStore();
    store.unreadable = ['broken'];
    const { controller } = await setup({}, store);
    expect(refusal(() => controller.admit('broken', undefined, '10.0.0.1'))).toMatchObject({
      code: 'ACCESS_RULES_UNAVAILABLE',
      message: 'the access rules of this stream cannot be read right now; try again',
      details: { retryAfterMs: 2000 },
    });
    expect(controller.isPublic('broken')).toBe(false);
    expect(controller.admit('fine', undefined, '10.0.0.1').stream).toBe('fine');
  });

  it('refuses (503) a stream whose ACL the store lost, until it is written again', async () => {
    const store = new ReportingStore();
    const { controller, cache, put } = await setup({}, store);
    await put('paid', [{ id: 'k1', key: 'secret-key-000001' }]);
    store.lostTo = 'another-epoch';
    await cache.start(); // a full read, as the periodic check would do
    expect(refusal(() => controller.admit('paid', undefined, '10.0.0.1'))).toMatchObject({
      code: 'ACCESS_RULES_UNAVAILABLE',
      message: 'the access rules of this stream were lost and are being restored; try again',
      details: { retryAfterMs: 2000 },
    });
    expect(controller.admit('free', undefined, '10.0.0.1').stream).toBe('free');
  });

  it('refuses to watch a session whose stream’s rules were lost while it was being set up', async () => {
    const store = new ReportingStore();
    const { controller, cache, put } = await setup({}, store);
    await put('paid', [{ id: 'k1', key: 'secret-key-000001' }]);
    const grant = controller.admit('paid', 'secret-key-000001', '10.0.0.1');
    store.lostTo = 'another-epoch';
    await cache.start();
    expect(refusal(() => controller.watch(new Viewer(), grant))).toMatchObject({
      code: 'ACCESS_RULES_UNAVAILABLE',
      message: 'the access rules of this stream were lost and are being restored; try again',
    });
    expect(controller.watchedCount).toBe(0);
  });

  it('measures the cutoff from when the change was made, in seconds; a re-read of everything has no such time', async () => {
    const store = new ReportingStore();
    const { controller, cache, put, metrics } = await setup({}, store);
    await put('paid', [
      { id: 'k1', key: 'secret-key-000001' },
      { id: 'k2', key: 'secret-key-000002' },
    ]);
    const histogram = async () => {
      const values = (await metrics.revocationSeconds.get()).values;
      const named = (suffix: string) => values.find((sample) => sample.metricName?.endsWith(suffix))?.value;
      return { count: named('_count'), sum: named('_sum') };
    };
    // A resync (no change time): revoked, not measured.
    // Two viewers with the key: one re-read revokes both (an error measuring the first, which
    // has no change time, must not leave the second open).
    const first = new Viewer();
    const firstToo = new Viewer();
    controller.watch(first, controller.admit('paid', 'secret-key-000001', '10.0.0.1'));
    controller.watch(firstToo, controller.admit('paid', 'secret-key-000001', '10.0.0.2'));
    store.silent = true;
    await store.update('paid', (current) => current!.keys.filter((key) => key.id !== 'k1'));
    store.silent = false;
    await cache.start(); // the full read the periodic check does when a message was lost
    expect(await until(() => first.closedWith !== undefined)).toBe(true);
    expect(first.closedWith).toBe('revoked: key-removed');
    expect(firstToo.closedWith).toBe('revoked: key-removed');
    expect(await histogram()).toEqual({ count: 0, sum: 0 });
    // A change made 1.5 s ago (writer's clock): 1.5 s, not 1500, not 0.
    const second = new Viewer();
    controller.watch(second, controller.admit('paid', 'secret-key-000002', '10.0.0.1'));
    store.changeAgeMs = 1500;
    await put('paid', []);
    expect(second.closedWith).toBe('revoked: key-removed');
    const { count, sum } = await histogram();
    expect(count).toBe(1);
    expect(sum).toBeGreaterThanOrEqual(1.5);
    expect(sum).toBeLessThan(4);
  });

  it('shows no stream as public under the deny policy, or before the rules are loaded', async () => {
    const { controller } = await setup({ defaultPolicy: 'deny' });
    expect(controller.isPublic('anything')).toBe(false);
    const cache = new AclCache({ store: new MemoryAclStore(), checkIntervalMs: 600_000, logger });
    closers.push(() => cache.close());
    const unloaded = new AccessController({
      cache,
      hashKey: randomAclHashKey(),
      defaultPolicy: 'allow',
      maxStalenessMs: 60_000,
      requireStoreSynced: false,
      limits: { perClientIp: 2, perStream: 100, windowMs: 60_000 },
      metrics: new MediaNodeMetrics(),
      logger,
    });
    closers.push(() => unloaded.close());
    expect(unloaded.isPublic('anything')).toBe(false);
  });

  it('under the deny policy, closes a keyed viewer when its ACL is deleted', async () => {
    const { controller, put, metrics } = await setup({ defaultPolicy: 'deny' });
    await put('paid', [{ id: 'k1', key: 'secret-key-000001' }]);
    const viewer = new Viewer();
    controller.watch(viewer, controller.admit('paid', 'secret-key-000001', '10.0.0.1'));
    await put('paid', undefined);
    expect(viewer.closedWith).toBe('revoked: key-removed');
    expect(controller.watchedCount).toBe(0);
    // How long the cutoff took from the change: one observation, in seconds (not ms).
    const histogram = (await metrics.revocationSeconds.get()).values;
    expect(histogram.find((sample) => sample.metricName?.endsWith('_count'))?.value).toBe(1);
    const sum = histogram.find((sample) => sample.metricName?.endsWith('_sum'))?.value ?? -1;
    expect(sum).toBeGreaterThanOrEqual(0);
    expect(sum).toBeLessThan(5);
  });

  it('counts a viewer refused because its key went while its session was set up', async () => {
    const { controller, put, metrics } = await setup();
    await put('paid', [{ id: 'k1', key: 'secret-key-000001' }]);
    const grant = controller.admit('paid', 'secret-key-000001', '10.0.0.1');
    await put('paid', []);
    expect(refusal(() => controller.watch(new Viewer(), grant)).code).toBe('ACCESS_DENIED');
    expect(controller.watchedCount).toBe(0);
    const revoked = (await metrics.revocations.get()).values;
    expect(revoked.map((sample) => [sample.labels.reason, sample.value])).toEqual([['key-removed', 1]]);
  });

  it('closes a viewer when its key expires, with no change to the ACL, and follows a changed expiry', async () => {
    const { controller, put, metrics } = await setup();
    const viewer = new Viewer();
    await put('paid', [{ id: 'k1', key: 'secret-key-000001', expiresAt: Date.now() + 200 }]);
    controller.watch(viewer, controller.admit('paid', 'secret-key-000001', '10.0.0.1'));
    expect(await until(() => viewer.closedWith !== undefined)).toBe(true);
    expect(viewer.closedWith).toBe('revoked: key-expired');
    expect(controller.watchedCount).toBe(0);
    // The histogram counts the cutoff from the expiry time.
    const count = (await metrics.revocationSeconds.get()).values.find((sample) =>
      sample.metricName?.endsWith('_count'),
    );
    expect(count?.value).toBe(1);

    // A key whose expiry is brought forward closes at the new time, not the old one.
    const later = new Viewer();
    await put('paid', [{ id: 'k2', key: 'secret-key-000002', expiresAt: Date.now() + 600_000 }]);
    controller.watch(later, controller.admit('paid', 'secret-key-000002', '10.0.0.1'));
    await put('paid', [{ id: 'k2', key: 'secret-key-000002', expiresAt: Date.now() + 200 }]);
    expect(await until(() => later.closedWith !== undefined)).toBe(true);
    expect(later.closedWith).toBe('revoked: key-expired');
  });

  it('close() leaves no timer of its own running: key expiries and the failure limiters’ sweeps', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    try {
      const { controller, cache, put } = await setup();
      await put('paid', [{ id: 'k1', key: 'secret-key-000001', expiresAt: Date.now() + 600_000 }]);
      const cacheOnly = 1; // the cache's periodic check, closed with the cache
      expect(jest.getTimerCount()).toBe(cacheOnly + 2);
      controller.watch(new Viewer(), controller.admit('paid', 'secret-key-000001', '10.0.0.1'));
      expect(jest.getTimerCount()).toBe(cacheOnly + 3);
      controller.close();
      expect(jest.getTimerCount()).toBe(cacheOnly);
      cache.close();
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });

  it('stops watching on close(): an expiring key closes no session afterwards', async () => {
    const { controller, put } = await setup();
    const viewer = new Viewer();
    await put('paid', [{ id: 'k1', key: 'secret-key-000001', expiresAt: Date.now() + 200 }]);
    controller.watch(viewer, controller.admit('paid', 'secret-key-000001', '10.0.0.1'));
    expect(controller.watchedCount).toBe(1);
    controller.close();
    expect(controller.watchedCount).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(viewer.closedWith).toBeUndefined();
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
