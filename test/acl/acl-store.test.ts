import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { AclCache } from '../../media-node/src/acl/AclCache.js';
import { RedisAclStore, UNCHANGED } from '../../media-node/src/acl/AclStore.js';
import type { StoredKey } from '../../media-node/src/acl/model.js';
import { ClusterKeys } from '../../media-node/src/cluster/keys.js';
import { createLogger } from '../../media-node/src/logger.js';
import { eventually } from '../helpers/node.js';
import { type RedisServer, startRedisServer, startSubscribeHoldingProxy } from '../helpers/redis.js';

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
    const created = await store('sub:');
    const [, subscribers] = (await probe.pubsub('NUMSUB', created.keys.aclEvents)) as [string, number];
    expect(Number(subscribers)).toBe(1);
  });

  it('subscribes again when its SUBSCRIBE timed out', async () => {
    const proxy = await startSubscribeHoldingProxy(redis.port, 1500); // command timeout: 1 s
    closers.push(() => proxy.close());
    const probe = new Redis(redis.url);
    closers.push(() => probe.disconnect());
    const created = new RedisAclStore({ redisUrl: proxy.url, prefix: 'retry:', subscribe: true, logger });
    closers.push(() => created.close());
    await created.connected(10_000);
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
});
