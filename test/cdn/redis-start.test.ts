import { describe, expect, it } from '@jest/globals';
import { eventually, startNode } from '../../scripts/harness/node.js';
import { startRedisServer } from '../../scripts/harness/redis.js';

describe('a CDN node started while Redis is down', () => {
  it('reports not ready, keeps retrying, and becomes ready once Redis is up', async () => {
    const redis = await startRedisServer();
    await redis.kill();
    const running = await startNode({
      ROLE: 'edge',
      REDIS_URL: redis.url,
      CLUSTER_SECRET: 'test-cluster-secret-0123456789',
      NODE_ID: 'late-edge',
      INTERNAL_PORT: '18999',
    });
    try {
      const readyz = async () => (await fetch(`${running.baseUrl}/readyz`)).status;
      expect(await readyz()).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await readyz()).toBe(503);
      await redis.restart();
      expect(await eventually(async () => (await readyz()) === 200, 10_000)).toBe(true);
      const metrics = await (await fetch(`${running.internalUrl}/metrics`)).text();
      expect(metrics).toMatch(/^rtccdn_registry_up 1$/m);
    } finally {
      await running.close();
      await redis.stop();
    }
  }, 30_000);
});
