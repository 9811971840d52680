import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type RunningNode, startNode } from '../../scripts/harness/node.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';

describe('a mediasoup worker that dies', () => {
  let running: RunningNode;
  beforeAll(async () => {
    running = await startNode({ WORKERS: '2' });
  });
  afterAll(async () => {
    await running.close();
  });

  it('is replaced on its port, its sessions are closed, and new viewers play again', async () => {
    const publisher = new TestPublisher();
    const doomed = new TestViewer();
    const fresh = new TestViewer();
    try {
      expect((await publisher.publish(running.baseUrl, 'resilient')).status).toBe(201);
      expect((await doomed.play(running.baseUrl, 'resilient')).status).toBe(201);
      await doomed.waitForFrames(5);
      const sessions = [...running.node.sessions.values()];
      const publisherWorker = sessions.find((s) => s.protocol === 'whip')!.worker;
      const viewerWorker = sessions.find((s) => s.protocol === 'whep')!.worker;
      expect(viewerWorker).not.toBe(publisherWorker);
      const { index, rtcPort, pid } = viewerWorker;

      process.kill(pid, 'SIGKILL');

      await doomed.waitForDisconnect(15_000);
      expect(await eventually(() => running.node.pool.workers.length === 2, 10_000)).toBe(true);
      const replacement = running.node.pool.workers.find((worker) => worker.index === index)!;
      expect(replacement.pid).not.toBe(pid);
      expect(replacement.rtcPort).toBe(rtcPort);
      expect([...running.node.sessions.values()].map((s) => s.protocol)).toEqual(['whip']);

      // The publisher's stream survived; a new viewer (on the replacement worker) plays it.
      expect((await fresh.play(running.baseUrl, 'resilient')).status).toBe(201);
      await fresh.waitForFrames(5);
      const metrics = await (await fetch(`${running.internalUrl}/metrics`)).text();
      expect(metrics).toMatch(/^rtccdn_worker_restarts_total 1$/m);
    } finally {
      fresh.close();
      doomed.close();
      publisher.close();
    }
  });
});
