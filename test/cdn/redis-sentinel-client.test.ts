/**
 * The contract's Redis client behind Sentinel (real redis-server + redis-sentinel): a connection
 * attempt cut while the client is still asking the Sentinels for the primary — what ioredis'
 * failover detector does when a failover is announced mid-reconnect — must not end the client
 * for good (ioredis 6 leaves it in status `end`, every later command failing with "Connection is
 * closed."); one its owner closes stays closed.
 */
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createRedis } from '../../media-node/contract/redis.js';
import { eventually, sleep } from '../../scripts/harness/node.js';
import { type SentinelRedis, startSentinelRedis } from '../../scripts/harness/redis-sentinel.js';

describe('a Redis client behind Sentinel', () => {
  let sentinel: SentinelRedis;

  beforeAll(async () => {
    sentinel = await startSentinelRedis();
  }, 90_000);
  afterAll(async () => {
    await sentinel?.stop();
  });

  it('connects again when a reconnection is cut while it asks the Sentinels for the primary', async () => {
    const client = createRedis(sentinel.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    try {
      await once(client, 'ready');
      // Drop the connection (reconnecting), and cut the next attempt as soon as it starts: it is
      // then resolving the primary through a Sentinel.
      const ended = new Promise((resolve) => client.once('end', resolve));
      client.once('connecting', () => client.disconnect(true));
      client.disconnect(true);
      await ended;
      expect(
        await eventually(async () => (await client.ping().catch(() => undefined)) === 'PONG', 10_000),
      ).toBe(true);
    } finally {
      client.disconnect();
    }
  }, 30_000);

  it('stays closed once its owner closes it', async () => {
    const client = createRedis(sentinel.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    await once(client, 'ready');
    await client.quit();
    await sleep(1_500);
    expect(client.status).toBe('end');
  }, 30_000);
});
