import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TestCluster } from '../helpers/cluster.js';
import { eventually, sleep } from '../helpers/node.js';
import { TestPublisher, TestViewer } from '../helpers/peers.js';
import { type RedisServer, startRedisServer } from '../helpers/redis.js';

/**
 * SOURCE_LOSS_GRACE_MS: an edge keeps the viewers of a stream whose publish went away, and when
 * the publisher comes back — on another origin — they resume on their existing WebRTC sessions.
 */
describe('viewers resume without renegotiation when the publisher comes back (grace period)', () => {
  let redis: RedisServer;
  let cluster: TestCluster;

  beforeAll(async () => {
    redis = await startRedisServer();
    cluster = new TestCluster(redis.url);
    await cluster.add(
      { id: 'origin-1', role: 'origin', region: 'a' },
      { id: 'origin-2', role: 'origin', region: 'a' },
      { id: 'edge', role: 'edge', region: 'a', env: { SOURCE_LOSS_GRACE_MS: '15000' } },
    );
  }, 60_000);

  afterAll(async () => {
    await cluster?.stopAll();
    await redis?.stop();
  });

  it('keeps the viewer through an unpublish and a republish on another origin', async () => {
    const first = new TestPublisher();
    const second = new TestPublisher();
    const viewer = new TestViewer();
    try {
      expect((await first.publish(cluster.node('origin-1').baseUrl, 'comeback')).status).toBe(201);
      expect((await viewer.play(cluster.node('edge').baseUrl, 'comeback')).status).toBe(201);
      await viewer.waitForFrames(10);

      expect(await first.unpublish(cluster.node('origin-1').baseUrl)).toBe(200);
      first.close();
      await sleep(2000);
      // Nothing arrives meanwhile, but the session stays.
      expect((await cluster.dump('edge')).sessions).toBe(1);
      const framesWhileGone = viewer.framesWithCode;

      expect((await second.publish(cluster.node('origin-2').baseUrl, 'comeback')).status).toBe(201);
      await viewer.waitForFrames(framesWhileGone + 20, 15_000);
      expect(viewer.pc.connectionState).toBe('connected');
      expect(
        await eventually(
          async () => (await cluster.dump('edge')).relayedStreams[0]?.upstream === 'origin-2',
          5000,
        ),
      ).toBe(true);
      const metrics = await (await fetch(`${cluster.node('edge').baseUrl}/metrics`)).text();
      expect(metrics).toMatch(/^rtccdn_upstream_switches_total\{reason="republished"\} 1$/m);
    } finally {
      viewer.close();
      first.close();
      second.close();
    }
  }, 60_000);
});
