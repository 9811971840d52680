import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { eventually, startNode } from '../../scripts/harness/node.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';

describe('a rendition whose FFmpeg keeps failing (standalone node)', () => {
  it('is retried a bounded number of times, then its viewers are closed with the reason', async () => {
    // An "FFmpeg" that always fails the way a broken build or a bad argument would.
    const dir = mkdtempSync(join(tmpdir(), 'rtccdn-ffmpeg-'));
    const broken = join(dir, 'ffmpeg');
    writeFileSync(broken, '#!/bin/sh\necho "Unknown encoder \'libvpx\'" >&2\nexit 1\n');
    chmodSync(broken, 0o755);
    const running = await startNode({
      PROFILES: JSON.stringify([{ name: '180p', width: 320, height: 180, codec: 'VP8', bitrate: 200_000 }]),
      FFMPEG_PATH: broken,
    });
    const pub = new TestPublisher();
    const v = new TestViewer();
    try {
      expect((await pub.publish(running.baseUrl, 'doomed')).status).toBe(201);
      expect((await v.play(running.baseUrl, 'doomed', { query: '?profile=180p' })).status).toBe(201);
      const closed = new Promise<string>((resolve) => {
        for (const session of running.node.sessions.values()) {
          if (session.protocol === 'whep') session.once('close', resolve);
        }
      });
      expect(
        await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve('timeout'), 10_000))]),
      ).toMatch(/ffmpeg failed 4 times: .*Unknown encoder 'libvpx'/);
      expect(await eventually(() => running.node.transcoder!.jobs.size === 0, 2000)).toBe(true);
      expect(
        await running.node.metrics.registry.getSingleMetricAsString('rtccdn_transcode_job_failures_total'),
      ).toMatch(/profile="180p"\} 1/);
      // The source itself is untouched.
      expect(running.node.streams.find('doomed')?.closed).toBe(false);
    } finally {
      v.close();
      pub.close();
      await running.close();
    }
  }, 30_000);
});
