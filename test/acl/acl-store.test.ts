import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import type { StoredKey } from '../../media-node/contract/acl.js';
import {
  type AclChange,
  AclStoreError,
  InvalidAclError,
  RedisAclStore,
  UNCHANGED,
  UnreadableAclError,
} from '../../media-node/contract/acl.js';
import { RtccdnError } from '../../media-node/contract/errors.js';
import { ClusterKeys } from '../../media-node/contract/redis.js';
import { AclCache } from '../../media-node/src/acl/AclCache.js';
import { StreamAccess } from '../../media-node/src/acl/StreamAccess.js';
import { loadConfig } from '../../media-node/src/config.js';
import { createLogger } from '../../media-node/src/logger.js';
import { MediaNodeMetrics } from '../../media-node/src/metrics.js';
import { eventually } from '../../scripts/harness/node.js';
import {
  type RedisServer,
  startHoldingProxy,
  startRedisServer,
  startSubscribeHoldingProxy,
} from '../../scripts/harness/redis.js';
import { type SentinelRedis, startSentinelRedis } from '../../scripts/harness/redis-sentinel.js';

const logger = createLogger('silent');
const key = (id: string): StoredKey => ({ id, hash: id.padEnd(64, '0').replace(/[^0-9a-f]/g, 'a') });

/** The ACL layout in a real Redis: atomic writes, change messages, the edges' cache. */
describe('ACL store and cache (real redis-server)', () => {
  let redis: RedisServer;
  const closers: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await redis.stop();
  });

  async function store(prefix: string) {
    const created = new RedisAclStore({ redisUrl: redis.url, prefix, subscribe: true, logger });
    closers.push(() => created.close());
    await created.connected(5000);
    return created;
  }

  async function cache(prefix: string) {
    const created = new AclCache({ store: await store(prefix), checkIntervalMs: 200, logger });
    closers.push(() => created.close());
    await created.start();
    return created;
  }

  it('keeps concurrent writers from losing each other’s keys', async () => {
    const [a, b] = [await store('t1:'), await store('t1:')];
    await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        (index % 2 === 0 ? a : b).update('shared', (current) => [...(current?.keys ?? []), key(`k${index}`)]),
      ),
    );
    const record = await a.get('shared');
    expect(record?.keys.map((stored) => stored.id).sort()).toEqual(
      Array.from({ length: 10 }, (_, index) => `k${index}`).sort(),
    );
    expect((await a.version()).version).toBe(10);
  });

  it('reads a store nobody has written as empty, and the first write starts an epoch at version 1', async () => {
    const fresh = await store('fresh:');
    const empty = { epoch: '', version: 0, syncedEpoch: '', head: '' };
    expect(await fresh.version()).toEqual(empty);
    expect(await fresh.snapshot()).toEqual({ ...empty, records: [], unreadable: [] });
    await fresh.update('first', () => [key('k1')]);
    const written = await fresh.version();
    expect(written.version).toBe(1);
    expect(written.epoch).not.toBe('');
    expect(written.head).not.toBe('');
    expect(await fresh.snapshot()).toMatchObject({
      ...written,
      records: [{ pattern: 'first' }],
      unreadable: [],
    });
  });

  it('gives up after 20 attempts against a writer that changes the record every time, and writes nothing', async () => {
    const a = await store('contended:');
    await a.update('hot', () => [key('k0')]);
    const before = await a.version();
    let attempts = 0;
    const change = a.update('hot', (current) => {
      attempts++;
      // Another writer gets in between this read and its write, every time (synchronously, so
      // surely before the write: trailing blanks keep the record valid JSON but not the same).
      execFileSync('redis-cli', ['-u', redis.url, 'APPEND', a.keys.aclRecord('hot'), ' ']);
      return [...(current?.keys ?? []), key('mine')];
    });
    await expect(change).rejects.toThrow(AclStoreError);
    await expect(change).rejects.toThrow(/gave up after 20 attempts/);
    expect(attempts).toBe(20);
    expect((await a.get('hot'))?.keys.map((stored) => stored.id)).toEqual(['k0']);
    expect((await a.version()).version).toBe(before.version);
  });

  it('stamps the writer as owner, and leaves a record alone when the change says UNCHANGED', async () => {
    const a = await store('owner:');
    const written = await a.update('show', () => [key('k1')], { owner: 'uid-new' });
    expect(written?.owner).toBe('uid-new');
    expect((await a.get('show'))?.owner).toBe('uid-new');
    const before = await a.version();

    // A removal on behalf of another owner (a deleted StreamACL) must not take it.
    const kept = await a.update('show', (current) => (current?.owner === 'uid-old' ? undefined : UNCHANGED));
    expect(kept?.keys).toEqual([key('k1')]);
    expect(await a.version()).toEqual(before); // no write, no change message
    await a.update('show', (current) => (current?.owner === 'uid-new' ? undefined : UNCHANGED));
    expect(await a.get('show')).toBeUndefined();

    const unowned = await a.update('other', () => [key('k2')]);
    expect(unowned).not.toHaveProperty('owner');
  });

  it('is connected only once it receives change messages (subscribed)', async () => {
    const probe = new Redis(redis.url);
    closers.push(() => probe.disconnect());
    const created = new RedisAclStore({ redisUrl: redis.url, prefix: 'sub:', subscribe: true, logger });
    closers.push(() => created.close());
    // Resolves when subscribed, not at its timeout (longer than the test's own).
    await created.connected(10 * 60_000);
    const [, subscribers] = (await probe.pubsub('NUMSUB', created.keys.aclEvents)) as [string, number];
    expect(Number(subscribers)).toBe(1);
  });

  it('does not subscribe when it only writes (subscribe: false, as the operator)', async () => {
    const probe = new Redis(redis.url);
    closers.push(() => probe.disconnect());
    const writer = new RedisAclStore({ redisUrl: redis.url, prefix: 'writer:', subscribe: false, logger });
    closers.push(() => writer.close());
    await writer.connected(5000);
    await writer.update('show', () => [{ id: 'k', hash: 'a'.repeat(64) }]);
    const [, subscribers] = (await probe.pubsub('NUMSUB', writer.keys.aclEvents)) as [string, number];
    expect(Number(subscribers)).toBe(0);
  });

  it('subscribes again when its SUBSCRIBE timed out', async () => {
    const proxy = await startSubscribeHoldingProxy(redis.port, 1500); // command timeout: 1 s
    closers.push(() => proxy.close());
    const probe = new Redis(redis.url);
    closers.push(() => probe.disconnect());
    const created = new RedisAclStore({ redisUrl: proxy.url, prefix: 'retry:', subscribe: true, logger });
    closers.push(() => created.close());
    // Resolved by the second SUBSCRIBE, not at its timeout (longer than the test's): the held
    // first one reaches Redis late, which subscribes the connection without the store knowing.
    await created.connected(10 * 60_000);
    expect(proxy.held()).toBe(1);
    const [, subscribers] = (await probe.pubsub('NUMSUB', created.keys.aclEvents)) as [string, number];
    expect(Number(subscribers)).toBe(1);
  });

  it('keeps an edge cache current through change messages, most specific pattern first', async () => {
    const writer = await store('t2:');
    const edge = await cache('t2:');
    const changes: string[][] = [];
    edge.on('changed', (patterns) => changes.push([...patterns]));
    await writer.update('sales-*', () => [key('a')]);
    await writer.update('sales-q3', () => [key('b')]);
    expect(await eventually(() => edge.version === 2, 2000)).toBe(true);
    expect(edge.governing('sales-q3')?.pattern).toBe('sales-q3');
    expect(edge.governing('sales-q4')?.pattern).toBe('sales-*');
    expect(edge.governing('support')).toBeUndefined();
    await writer.update('sales-q3', () => undefined);
    expect(await eventually(() => edge.governing('sales-q3')?.pattern === 'sales-*', 2000)).toBe(true);
    expect(changes).toEqual([['sales-*'], ['sales-q3'], ['sales-q3']]);
  });

  it('notices a change whose message it never got, and resynchronises', async () => {
    const edge = await cache('t3:');
    const keys = new ClusterKeys('t3:');
    const direct = new Redis(redis.url);
    closers.push(() => void direct.disconnect());
    // A write without a message (as if the message were lost): record, index and version only.
    await direct
      .multi()
      .set(
        keys.aclRecord('lost'),
        JSON.stringify({ v: 1, pattern: 'lost', keys: [key('x')], updatedAt: Date.now() }),
      )
      .sadd(keys.aclPatterns, 'lost')
      .incr(keys.aclVersion)
      .set(keys.aclEpoch, 'test-epoch', 'NX')
      .exec();
    expect(await eventually(() => edge.governing('lost') !== undefined, 3000)).toBe(true);
    // A message from the future (a gap) makes it re-read everything as well.
    await direct.incr(keys.aclVersion);
    await direct.publish(
      keys.aclEvents,
      JSON.stringify({ v: 1, version: 2, epoch: 'test-epoch', pattern: 'lost', op: 'put', at: Date.now() }),
    );
    expect(await eventually(() => edge.version === 2, 3000)).toBe(true);
  });

  it('follows the store when a failover takes it back and hands the same version numbers to other writes', async () => {
    const writer = await store('t-back:');
    const edge = await cache('t-back:');
    const direct = new Redis(redis.url);
    closers.push(() => void direct.disconnect());
    const ids = (pattern: string) => edge.governing(pattern)?.keys.map((stored) => stored.id);
    await writer.update('a', () => [key('k1')]);
    expect(await eventually(() => edge.version === 1, 3000)).toBe(true);
    // What a replica has when it is promoted before the next write reached it.
    const aclKeys = await direct.keys('t-back:acl:*');
    const dumps = await Promise.all(
      aclKeys.map(async (name) => [name, await direct.dumpBuffer(name)] as const),
    );

    await writer.update('a', () => [key('k2')]); // version 2, lost in the failover
    expect(await eventually(() => ids('a')?.[0] === 'k2', 3000)).toBe(true);
    await direct.del(...(await direct.keys('t-back:acl:*')));
    for (const [name, dump] of dumps) if (dump) await direct.restore(name, 0, dump);

    // The next write gets version 2 again, with other contents: the edge must not take it for
    // the version 2 it has, nor keep the lost write.
    await writer.update('b', () => [key('k3')]);
    expect(await eventually(() => ids('a')?.[0] === 'k1' && ids('b')?.[0] === 'k3', 5000)).toBe(true);
    expect(edge.version).toBe(2);
    // Later writes apply on top, one by one.
    await writer.update('a', () => [key('k4')]);
    expect(await eventually(() => ids('a')?.[0] === 'k4' && edge.version === 3, 3000)).toBe(true);
  });

  it('locks what it protected when the store loses its data, until the ACL is written again or deleted', async () => {
    const writer = await store('t4:');
    const edge = await cache('t4:');
    await writer.update('vip', () => [key('a')]);
    await writer.update('team-*', () => [key('b')]);
    expect(await eventually(() => edge.version === 2, 2000)).toBe(true);
    const resets: string[][] = [];
    edge.on('reset', (locked) => resets.push([...locked].sort()));

    const direct = new Redis(redis.url);
    closers.push(() => void direct.disconnect());
    for (const stale of await direct.keys('t4:*')) await direct.del(stale);
    expect(await eventually(() => resets.length === 1, 3000)).toBe(true);
    expect(resets[0]).toEqual(['team-*', 'vip']);
    expect(edge.isLocked('vip')).toBe(true);
    expect(edge.isLocked('team-red')).toBe(true);
    expect(edge.isLocked('public')).toBe(false);

    await writer.update('vip', () => [key('a')]);
    expect(await eventually(() => !edge.isLocked('vip'), 3000)).toBe(true);
    expect(edge.isLocked('team-red')).toBe(true);
    await writer.update('team-*', () => undefined); // explicit delete of an absent ACL unlocks
    expect(await eventually(() => !edge.isLocked('team-red'), 3000)).toBe(true);
  });

  it('stops confirming freshness while Redis is down, and catches up when it is back', async () => {
    const writer = await store('t5:');
    const edge = await cache('t5:');
    await writer.update('s', () => [key('a')]);
    expect(await eventually(() => edge.version === 1, 2000)).toBe(true);
    await redis.kill();
    const confirmedAt = edge.confirmedAt!;
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(edge.confirmedAt).toBe(confirmedAt);
    await expect(writer.update('s', () => [])).rejects.toThrow(/ACL store read s failed/);
    await redis.restart();
    expect(await eventually(() => (edge.confirmedAt ?? 0) > confirmedAt, 5000)).toBe(true);
  });

  describe('fails closed on what it cannot read', () => {
    /** Writes a record the way a buggy or newer writer might, with its change message. */
    async function writeRaw(prefix: string, pattern: string, value: string) {
      const keys = new ClusterKeys(prefix);
      const direct = new Redis(redis.url);
      closers.push(() => void direct.disconnect());
      await direct.set(keys.aclEpoch, 'raw-epoch', 'NX');
      const epoch = await direct.get(keys.aclEpoch);
      const [, [, version]] = (await direct
        .multi()
        .set(keys.aclRecord(pattern), value)
        .incr(keys.aclVersion)
        .sadd(keys.aclPatterns, pattern)
        .exec()) as [unknown, [unknown, number], unknown];
      await direct.publish(
        keys.aclEvents,
        JSON.stringify({ v: 1, version, epoch, pattern, op: 'put', at: Date.now() }),
      );
    }
    const record = (pattern: string, extra: Record<string, unknown>) =>
      JSON.stringify({ v: 1, pattern, keys: [key('a')], updatedAt: Date.now(), ...extra });

    it.each([
      // The record, and what the error says of it (after "the stored ACL of paid cannot be read: ").
      [
        'expiresAt at the epoch',
        (p: string) => record(p, { keys: [{ ...key('a'), expiresAt: 0 }] }),
        /^keys\.0\.expiresAt: /,
      ],
      ['a newer record version', (p: string) => record(p, { v: 2 }), /^v: /],
      ['not JSON', () => '{"v":1,', /^not JSON$/],
      ['another pattern inside', () => record('other', {}), /^it names other$/],
    ])(
      'locks a pattern whose record has %s (heard by message and read by snapshot)',
      async (_label, value, reason) => {
        const prefix = `u-${Math.random().toString(36).slice(2, 8)}:`;
        const writer = await store(prefix);
        const live = await cache(prefix);
        await writer.update('fine', () => [key('b')]);
        await writeRaw(prefix, 'paid', value('paid'));
        expect(await eventually(() => live.lockOf('paid') === 'unreadable', 3000)).toBe(true);
        expect(live.governing('paid')).toBeUndefined();
        // A cache started now reads the same from the snapshot.
        const late = await cache(prefix);
        expect(late.lockOf('paid')).toBe('unreadable');
        expect(late.governing('fine')?.pattern).toBe('fine');
        expect((await writer.snapshot()).unreadable).toEqual(['paid']);
        const error = await writer.get('paid').then(
          () => undefined,
          (rejected: Error) => rejected.message,
        );
        const prefixOf = 'the stored ACL of paid cannot be read: ';
        expect(error?.startsWith(prefixOf)).toBe(true);
        expect(error?.slice(prefixOf.length)).toMatch(reason);
        // Rewriting it (what the operator and the API do) repairs it.
        await writer.update('paid', () => [key('c')]);
        expect(
          await eventually(
            () => live.lockOf('paid') === undefined && late.lockOf('paid') === undefined,
            3000,
          ),
        ).toBe(true);
        expect(live.governing('paid')?.keys).toEqual([key('c')]);
      },
    );

    it('refuses to write a record edges could not read, and writes nothing', async () => {
      const writer = await store('v1:');
      const before = await writer.version();
      await expect(writer.update('s', () => [{ ...key('a'), expiresAt: 0 }])).rejects.toBeInstanceOf(
        InvalidAclError,
      );
      await expect(writer.update('s', () => [{ ...key('a'), hash: 'not-hex' }])).rejects.toBeInstanceOf(
        InvalidAclError,
      );
      expect(await writer.version()).toEqual(before);
      expect(await writer.get('s')).toBeUndefined();
    });
  });

  it('tells whether the operator has written every ACL for the store’s current data', async () => {
    const writer = await store('sync:');
    const edge = await cache('sync:');
    expect(edge.storeSynced).toBe(false); // an empty store: nothing says it is complete
    const epoch = await writer.ensureEpoch();
    expect(await writer.ensureEpoch()).toBe(epoch);
    expect(await writer.markSynced(epoch)).toBe(true);
    // Both reads say so (the cache takes it from either).
    expect(await writer.version()).toMatchObject({ epoch, syncedEpoch: epoch });
    expect(await writer.snapshot()).toMatchObject({ epoch, syncedEpoch: epoch });
    expect(await eventually(() => edge.storeSynced, 3000)).toBe(true);
    // Redis loses its data: not synced any more, and the old epoch cannot be marked again.
    const direct = new Redis(redis.url);
    closers.push(() => void direct.disconnect());
    for (const stale of await direct.keys('sync:*')) await direct.del(stale);
    const next = await writer.ensureEpoch();
    expect(next).not.toBe(epoch);
    expect(await eventually(() => !edge.storeSynced, 3000)).toBe(true);
    expect(await writer.markSynced(epoch)).toBe(false);
    expect(await writer.markSynced(next)).toBe(true);
    expect(await eventually(() => edge.storeSynced, 3000)).toBe(true);
  });
  describe('its connections', () => {
    /** Connections opened after `since` (a client id), by name: this test's store's. */
    async function clientsAfter(probe: Redis, since: number) {
      return ((await probe.client('LIST')) as string)
        .split('\n')
        .map((line) => ({ id: Number(/\bid=(\d+)/.exec(line)?.[1]), name: /\bname=(\S*)/.exec(line)?.[1] }))
        .filter((client) => client.id > since)
        .map((client) => client.name)
        .sort();
    }
    async function lastClientId(probe: Redis) {
      return Number(await probe.client('ID'));
    }
    const subscribers = async (probe: Redis, store: RedisAclStore) =>
      Number(((await probe.pubsub('NUMSUB', store.keys.aclEvents)) as [string, number])[1]);
    /** 'pending' unless `promise` settles within a second. */
    const settledSoon = (promise: Promise<unknown>) =>
      Promise.race([
        promise.then(() => 'resolved'),
        new Promise((resolve) => setTimeout(() => resolve('pending'), 1000)),
      ]);
    const isSubscribe = (text: string) => /\r\nsubscribe\r\n/i.test(text);
    /** The commands connection's CLIENT SETNAME (not rtccdn-acl-events). */
    const isCommandConnection = (text: string) => text.includes('$10\r\nrtccdn-acl\r\n');

    async function throughProxy(prefix: string) {
      const proxy = await startHoldingProxy(redis.port);
      closers.push(() => proxy.close());
      const probe = new Redis(redis.url);
      closers.push(() => probe.disconnect());
      // Commands may wait while the test holds them: not the subject here.
      const created = new RedisAclStore({
        redisUrl: proxy.url,
        prefix,
        subscribe: true,
        commandTimeoutMs: 60_000,
        logger,
      });
      closers.push(() => created.close());
      await created.connected(10 * 60_000);
      return { proxy, probe, store: created };
    }

    it('after a lost connection, is connected only once it is subscribed again, and then hears changes', async () => {
      const { proxy, probe, store: edge } = await throughProxy('lost-sub:');
      const heard: AclChange[] = [];
      edge.on('change', (change) => heard.push(change));
      proxy.hold(isSubscribe);
      proxy.cut();
      // It has noticed the loss (reconnected) and its SUBSCRIBE is held.
      expect(await eventually(() => proxy.held() >= 1, 10_000)).toBe(true);
      const connected = edge.connected(10 * 60_000);
      expect(await settledSoon(connected)).toBe('pending');
      expect(await subscribers(probe, edge)).toBe(0);
      proxy.release();
      await connected; // not at its timeout: longer than the test's
      expect(await subscribers(probe, edge)).toBe(1);
      // Subscribed now: resolves at once.
      await edge.connected(10 * 60_000);
      const writer = await store('lost-sub:');
      await writer.update('after', () => [key('a')]);
      expect(await eventually(() => heard.some((change) => change.pattern === 'after'), 5000)).toBe(true);
    });

    it('after a lost connection, is connected only once its command connection is back too', async () => {
      const { proxy, store: edge } = await throughProxy('lost-cmd:');
      proxy.hold(isCommandConnection);
      proxy.cut();
      expect(await eventually(() => proxy.held() >= 1, 10_000)).toBe(true);
      const connected = edge.connected(10 * 60_000);
      expect(await settledSoon(connected)).toBe('pending');
      proxy.release();
      await connected;
      expect(await edge.version()).toMatchObject({ version: 0 }); // answers (no offline queue)
    });

    it('resolves connected() at its timeout, not subscribed, when it cannot subscribe (as documented)', async () => {
      const proxy = await startHoldingProxy(redis.port);
      closers.push(() => proxy.close());
      const probe = new Redis(redis.url);
      closers.push(() => probe.disconnect());
      proxy.hold(isSubscribe);
      const edge = new RedisAclStore({
        redisUrl: proxy.url,
        prefix: 'no-sub:',
        subscribe: true,
        commandTimeoutMs: 60_000,
        logger,
      });
      closers.push(() => edge.close());
      await edge.connected(300);
      expect(await subscribers(probe, edge)).toBe(0);
      expect(proxy.held()).toBe(1);
      proxy.release();
      await edge.connected(10 * 60_000);
      expect(await subscribers(probe, edge)).toBe(1);
    });

    it('fails a command that Redis does not answer after the default command timeout, naming it', async () => {
      const proxy = await startHoldingProxy(redis.port);
      closers.push(() => proxy.close());
      const writer = new RedisAclStore({ redisUrl: proxy.url, prefix: 'hang:', subscribe: false, logger });
      closers.push(() => writer.close());
      await writer.connected(5000);
      proxy.hold((text) => /\r\nmget\r\n/i.test(text));
      const failed = (await writer.version().catch((error: unknown) => error)) as AclStoreError;
      expect(failed).toBeInstanceOf(AclStoreError);
      expect(failed.name).toBe('AclStoreError');
      expect(failed.message).toMatch(/^ACL store version failed: Command timed out/);
      expect((failed.cause as Error).message).toMatch(/Command timed out/);
      proxy.release();
    });

    it('closes every connection it opened: a writer its one, a subscriber both', async () => {
      const probe = new Redis(redis.url);
      closers.push(() => probe.disconnect());
      let since = await lastClientId(probe);
      const writer = new RedisAclStore({ redisUrl: redis.url, prefix: 'close-w:', subscribe: false, logger });
      await writer.connected(5000);
      await writer.update('s', () => [key('a')]);
      expect(await clientsAfter(probe, since)).toEqual(['rtccdn-acl']);
      await writer.close();
      expect(await eventually(async () => (await clientsAfter(probe, since)).length === 0, 3000)).toBe(true);

      since = await lastClientId(probe);
      const edge = new RedisAclStore({ redisUrl: redis.url, prefix: 'close-s:', subscribe: true, logger });
      await edge.connected(10 * 60_000);
      expect(await clientsAfter(probe, since)).toEqual(['rtccdn-acl', 'rtccdn-acl-events']);
      await edge.close();
      expect(await eventually(async () => (await clientsAfter(probe, since)).length === 0, 3000)).toBe(true);
      expect(await subscribers(probe, edge)).toBe(0);
    });

    it('closes within its grace time when Redis does not answer, leaving no connection, and when Redis is gone', async () => {
      const probe = new Redis(redis.url);
      closers.push(() => probe.disconnect());
      const since = await lastClientId(probe);
      const hung = await startHoldingProxy(redis.port);
      closers.push(() => hung.close());
      const edge = new RedisAclStore({
        redisUrl: hung.url,
        prefix: 'close-hung:',
        subscribe: true,
        commandTimeoutMs: 60_000,
        logger,
      });
      await edge.connected(10 * 60_000);
      expect(await clientsAfter(probe, since)).toEqual(['rtccdn-acl', 'rtccdn-acl-events']);
      hung.hold(() => true); // QUIT is never answered (nor does it time out first: 60 s)
      await edge.close();
      expect(await eventually(async () => (await clientsAfter(probe, since)).length === 0, 5000)).toBe(true);

      const gone = await startHoldingProxy(redis.port);
      const orphan = new RedisAclStore({
        redisUrl: gone.url,
        prefix: 'close-gone:',
        subscribe: true,
        logger,
      });
      closers.push(() => orphan.close());
      await orphan.connected(10 * 60_000);
      await gone.close(); // connections cut, nothing listening: the store keeps reconnecting
      await expect(orphan.close()).resolves.toBeUndefined();
    });

    it('ignores a change message it cannot read, and goes on with the next', async () => {
      const edge = await store('bad-msg:');
      const heard: AclChange[] = [];
      edge.on('change', (change) => heard.push(change));
      const direct = new Redis(redis.url);
      closers.push(() => void direct.disconnect());
      await direct.publish(edge.keys.aclEvents, 'not json');
      await direct.publish(edge.keys.aclEvents, JSON.stringify({ v: 1, version: 'x' }));
      await edge.update('after', () => [key('a')]);
      expect(await eventually(() => heard.length > 0, 5000)).toBe(true);
      expect(heard).toEqual([expect.objectContaining({ pattern: 'after', op: 'put', version: 1 })]);
    });
  });

  describe('snapshot and record edge cases', () => {
    it('leaves out a pattern indexed without a record (deleted outside the store): absent, not unreadable', async () => {
      const writer = await store('ghost:');
      await writer.update('real', () => [key('a')]);
      const direct = new Redis(redis.url);
      closers.push(() => void direct.disconnect());
      await direct.sadd(writer.keys.aclPatterns, 'ghost');
      const snapshot = await writer.snapshot();
      expect(snapshot.records.map((record) => record.pattern)).toEqual(['real']);
      expect(snapshot.unreadable).toEqual([]);
      expect(await writer.get('ghost')).toBeUndefined();
    });

    it('says where a stored record cannot be read, and where a new one is invalid', async () => {
      const writer = await store('where:');
      const direct = new Redis(redis.url);
      closers.push(() => void direct.disconnect());
      const unreadable = async (pattern: string, value: string) => {
        await direct.set(writer.keys.aclRecord(pattern), value);
        const error = (await writer.get(pattern).catch((caught: unknown) => caught)) as UnreadableAclError;
        expect(error).toBeInstanceOf(UnreadableAclError);
        expect(error.name).toBe('UnreadableAclError');
        expect(error.pattern).toBe(pattern);
        return error.message;
      };
      expect(await unreadable('root', '[]')).toMatch(/^the stored ACL of root cannot be read: \(record\): /);
      expect(
        await unreadable(
          'hash',
          JSON.stringify({ v: 1, pattern: 'hash', keys: [{ id: 'k', hash: 'no' }], updatedAt: 1 }),
        ),
      ).toMatch(/^the stored ACL of hash cannot be read: keys\.0\.hash: /);
      expect(
        await unreadable('mine', JSON.stringify({ v: 1, pattern: 'theirs', keys: [], updatedAt: 1 })),
      ).toBe('the stored ACL of mine cannot be read: it names theirs');
      const invalid = (await writer
        .update('s', () => [{ ...key('a'), expiresAt: 0 }])
        .catch((caught: unknown) => caught)) as InvalidAclError;
      expect(invalid).toBeInstanceOf(InvalidAclError);
      expect(invalid.name).toBe('InvalidAclError');
      expect(invalid.message).toMatch(/^ACL s: keys\.0\.expiresAt: /);
    });
  });

  describe('StreamAccess on it (a media node of a CDN)', () => {
    const secret = 'cluster-secret-'.padEnd(32, 'x');
    function access(prefix: string, operatorManaged = false) {
      const metrics = new MediaNodeMetrics();
      const created = new StreamAccess({
        config: { ...loadConfig({}).access, operatorManaged },
        redis: { url: redis.url, prefix, clusterSecret: secret },
        metrics,
        logger,
      });
      closers.push(() => created.close());
      return { access: created, metrics };
    }

    it('keeps ACLs in Redis, where another node reads them and admits the same keys', async () => {
      const { access: origin } = access('sa1:');
      await origin.start();
      await origin.replaceKeys('paid', [{ id: 'k1', key: 'secret-key-000000001' }]);
      const { access: edge } = access('sa1:');
      await edge.start();
      expect((await edge.get('paid'))?.keys).toEqual([{ id: 'k1' }]);
      expect(edge.admit('paid', 'secret-key-000000001', '10.0.0.1').keyId).toBe('k1');
    });

    it('answers ACL_UNREADABLE for a stored record it cannot read, and a PUT repairs it', async () => {
      const { access: origin } = access('sa2:');
      await origin.start();
      const direct = new Redis(redis.url);
      closers.push(() => void direct.disconnect());
      await direct.set(new ClusterKeys('sa2:').aclRecord('broken'), '{"v":99}');
      const refused = await origin.get('broken').then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(RtccdnError);
      expect((refused as RtccdnError).code).toBe('ACL_UNREADABLE');
      expect((refused as RtccdnError).message).toMatch(
        /^the stored ACL of broken cannot be read: .+; replace it \(PUT\) or delete it$/,
      );
      await origin.replaceKeys('broken', [{ id: 'k1', key: 'secret-key-000000001' }]);
      expect((await origin.get('broken'))?.keys).toEqual([{ id: 'k1' }]);
    });

    it('reports an operator-managed store as synced only once the operator has marked it', async () => {
      const writer = await store('sa3:');
      await writer.update('paid', () => [key('a')]); // data, but no full sync by the operator yet
      const { access: edge, metrics } = access('sa3:', true);
      await edge.start();
      expect(edge.cache.confirmedAt).toBeDefined();
      expect(metrics.aclStoreSyncedSampler()).toBe(0);
      expect(await writer.markSynced(await writer.ensureEpoch())).toBe(true);
      expect(await eventually(() => metrics.aclStoreSyncedSampler() === 1, 5000)).toBe(true);
    });

    it('closes its Redis connections on close()', async () => {
      const probe = new Redis(redis.url);
      closers.push(() => void probe.disconnect());
      const names = async () =>
        ((await probe.client('LIST')) as string)
          .split('\n')
          .map((line) => /\bname=(\S*)/.exec(line)?.[1])
          .filter((name) => name?.startsWith('rtccdn-acl'));
      const before = (await names()).length;
      const { access: edge } = access('sa4:');
      await edge.start();
      expect((await names()).length).toBe(before + 2); // commands and change messages
      await edge.close();
      expect(await eventually(async () => (await names()).length === before, 3000)).toBe(true);
    });
  });
});

/**
 * Behind Sentinel (a primary, two replicas, three Sentinels, all real), a write is acknowledged
 * only once it has reached the URL's `acks` replicas (WAIT).
 */
describe('ACL store behind Sentinel: writes acknowledged by replicas (real redis-sentinel)', () => {
  let sentinel: SentinelRedis;
  const closers: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    sentinel = await startSentinelRedis();
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await sentinel.stop();
  });

  async function writer(acks: number) {
    const created = new RedisAclStore({
      redisUrl: `${sentinel.url}?acks=${acks}`,
      prefix: 'acks:',
      subscribe: false,
      logger,
    });
    closers.push(() => created.close());
    await created.connected(10_000);
    return created;
  }
  async function replicaPorts() {
    const primary = await sentinel.primaryPort();
    return sentinel
      .dataUrls()
      .map((url) => Number(new URL(url).port))
      .filter((port) => port !== primary);
  }

  it('acknowledges a write once every replica asked for has it', async () => {
    const store = await writer(2);
    await store.update('both', () => [key('a')]);
    for (const port of await replicaPorts()) {
      const replica = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
      closers.push(() => replica.disconnect());
      expect(await replica.get(store.keys.aclRecord('both'))).toContain('"both"');
    }
  });

  it('fails a write that did not reach the replicas asked for in time (written on the primary only)', async () => {
    const store = await writer(2);
    const [paused] = await replicaPorts();
    sentinel.pause(paused!);
    closers.push(() => sentinel.resume(paused!));
    const refused = (await store.update('one', () => [key('a')]).catch((error: unknown) => error)) as Error;
    expect(refused).toBeInstanceOf(AclStoreError);
    expect(refused.message).toBe(
      'ACL one: written on the Redis primary but on 1 of 2 replicas within 500 ms, so a failover could lose it: not acknowledged, write it again',
    );
    // What the message says: the primary has it (a later write or read follows the store).
    expect((await store.get('one'))?.keys).toEqual([key('a')]);
    // One replica is enough for acks=1.
    const one = await writer(1);
    await one.update('one', () => [key('b')]);
  });
});
