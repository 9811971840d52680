import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type RunningNode, startNode } from '../../scripts/harness/node.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';

/** Counts what the mediasoup workers themselves hold (their dumps), not what our maps say. */
async function workerObjects(running: RunningNode): Promise<{ routers: number; webRtcTransports: number }> {
  let routers = 0;
  let webRtcTransports = 0;
  for (const worker of running.node.pool.workers) {
    routers += (await worker.worker.dump()).routerIds.length;
    webRtcTransports += (await worker.webRtcServer.dump()).webRtcTransportIds.length;
  }
  return { routers, webRtcTransports };
}

describe('viewer churn', () => {
  let running: RunningNode;
  beforeAll(async () => {
    running = await startNode({ WORKERS: '2', FANOUT_LINGER_MS: '300' });
  });
  afterAll(async () => {
    await running.close();
  });

  it('leaves no transport or fan-out router behind after viewers join and leave', async () => {
    const publisher = new TestPublisher();
    try {
      expect((await publisher.publish(running.baseUrl, 'churn')).status).toBe(201);
      // Publisher alone: its origin router and its transport.
      expect(await workerObjects(running)).toEqual({ routers: 1, webRtcTransports: 1 });

      for (let round = 0; round < 5; round++) {
        const viewers = [new TestViewer(), new TestViewer(), new TestViewer()];
        try {
          for (const viewer of viewers)
            expect((await viewer.play(running.baseUrl, 'churn')).status).toBe(201);
          await Promise.all(viewers.map((viewer) => viewer.waitForFrames(2)));
          // Viewers spread over both workers: a fan-out router exists on the second one.
          expect(running.node.streams.find('churn')!.fanoutRouters).toHaveLength(1);
          const ended = await Promise.all(viewers.map((viewer) => viewer.stop(running.baseUrl)));
          expect(ended).toEqual([200, 200, 200]);
        } finally {
          for (const viewer of viewers) viewer.close();
        }
      }
      expect([...running.node.sessions.values()].map((s) => s.protocol)).toEqual(['whip']);
      // After the linger period the idle fan-out router (and its pipe) is gone too.
      expect(
        await eventually(async () => {
          const objects = await workerObjects(running);
          return objects.routers === 1 && objects.webRtcTransports === 1;
        }, 5000),
      ).toBe(true);
      expect(running.node.streams.find('churn')!.fanoutRouters).toHaveLength(0);
      expect(running.node.pool.workers.map((worker) => worker.sessionCount).sort()).toEqual([0, 1]);
    } finally {
      publisher.close();
    }
  });
});
