import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { AclStores } from '../../operator/src/redis/AclStores.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';

/** The operator's connections to CDNs' ACL stores, against a real redis-server. */
describe('AclStores', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('lets the first write on a new connection succeed (it does not race the connect)', async () => {
    const stores = new AclStores(pino({ level: 'silent' }));
    try {
      const store = await stores.get(redis.url, 'first-write:');
      const written = await store.update('show', () => [{ id: 'k', hash: 'a'.repeat(64) }]);
      expect(written?.keys).toEqual([{ id: 'k', hash: 'a'.repeat(64) }]);
      expect(await stores.get(redis.url, 'first-write:')).toBe(store); // one connection per CDN
    } finally {
      await stores.closeAll();
    }
  });

  it('gives up waiting for an unreachable Redis, so the write fails with a reason', async () => {
    const stores = new AclStores(pino({ level: 'silent' }));
    try {
      const store = await stores.get('redis://127.0.0.1:1', 'unreachable:');
      await expect(store.get('show')).rejects.toThrow(/ACL store get show failed/);
    } finally {
      await stores.closeAll();
    }
  }, 15_000);
});
