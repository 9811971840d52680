import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster } from '../scripts/harness/cluster.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { type Summary, summarize } from './stats.js';

/**
 * Renditions on a CDN of one origin, one edge and one transcoder (Redis, one process each, real
 * FFmpeg), source 640×480@30 VP8 from a libwebrtc publisher:
 *
 *  - glass-to-glass latency of a rendition vs its source, both watched at the same time;
 *  - time to the first frame of a cold rendition (no job running: WHEP POST → first frame);
 *  - FFmpeg CPU per rendition, per profile (VP8 profiles: the libwebrtc viewer used here has no
 *    H.264 decoder, so an H.264 rendition cannot be held open by a real viewer in this bench).
 */

const PROFILES = [
  { name: '360p', width: 640, height: 360, fps: 30, codec: 'VP8', bitrate: 600_000 },
  { name: '180p', width: 320, height: 180, fps: 15, codec: 'VP8', bitrate: 200_000 },
] as const;

export interface TranscodeBenchResult {
  latency: { source: Summary; rendition360p: Summary; addedP50Ms: number; ratioP50: number };
  coldFirstFrameMs: Summary;
  ffmpegCpuCores: Record<string, number>;
  settings: { source: string; seconds: number; coldStarts: number };
}

export async function runTranscodeBench(options: {
  seconds: number;
  coldStarts: number;
}): Promise<TranscodeBenchResult> {
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, {
    PROFILES: JSON.stringify(PROFILES),
    RELAY_LINGER_MS: '300',
    TRANSCODE_LINGER_MS: '300',
    LOG_LEVEL: 'warn',
  });
  const publisher = new TestPublisher({ width: 640, height: 480, fps: 30 });
  const viewers: TestViewer[] = [];
  const watch = async (query: string) => {
    const viewer = new TestViewer();
    viewers.push(viewer);
    const played = await viewer.play(cluster.node('edge').baseUrl, 'bench', { query });
    if (played.status !== 201) throw new Error(`WHEP ${query}: ${played.status} ${played.body}`);
    await viewer.waitForFrames(30, 20_000);
    return viewer;
  };
  const stop = async (viewer: TestViewer) => {
    await viewer.stop(cluster.node('edge').baseUrl).catch(() => undefined);
    viewer.close();
  };
  const scrapeCpu = async () => {
    const text = await (await fetch(`${cluster.node('transcoder').internalUrl}/metrics`)).text();
    return Number(/^rtccdn_transcode_ffmpeg_cpu_cores (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
  };
  try {
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'bench' },
      { id: 'edge', role: 'edge', region: 'bench' },
      { id: 'transcoder', role: 'transcoder', region: 'bench' },
    );
    if ((await publisher.publish(cluster.node('origin').baseUrl, 'bench')).status !== 201)
      throw new Error('WHIP failed');
    await sleep(1500);

    // Latency: source and 360p rendition side by side.
    const source = await watch('');
    const rendition = await watch('?profile=360p');
    source.latencies.length = 0;
    rendition.latencies.length = 0;
    await sleep(options.seconds * 1000);
    const sourceLatency = summarize(source.latencies);
    const renditionLatency = summarize(rendition.latencies);
    await stop(rendition);

    // FFmpeg CPU per profile: one rendition at a time, averaged over a window.
    const ffmpegCpuCores: Record<string, number> = {};
    for (const profile of PROFILES) {
      await sleep(1500); // the previous job lingers out
      const viewer = await watch(`?profile=${profile.name}`);
      await scrapeCpu(); // starts the sampling window
      await sleep(Math.max(5, options.seconds / 2) * 1000);
      ffmpegCpuCores[profile.name] = Math.round((await scrapeCpu()) * 1000) / 1000;
      await stop(viewer);
    }
    await stop(source);

    // Cold rendition starts: WHEP POST → first decoded frame, with no job running.
    const cold: number[] = [];
    for (let i = 0; i < options.coldStarts; i++) {
      await sleep(1500);
      const dump = await cluster.dump('transcoder');
      if (dump.renditions.length > 0) throw new Error('a rendition still runs: not a cold start');
      const viewer = new TestViewer();
      const started = Date.now();
      const played = await viewer.play(cluster.node('edge').baseUrl, 'bench', { query: '?profile=180p' });
      if (played.status !== 201) throw new Error(`WHEP failed: ${played.status}`);
      await viewer.waitForFrames(1, 20_000);
      cold.push(viewer.firstFrameAt! - started);
      await stop(viewer);
    }

    return {
      latency: {
        source: sourceLatency,
        rendition360p: renditionLatency,
        addedP50Ms: renditionLatency.p50 - sourceLatency.p50,
        ratioP50: Math.round((renditionLatency.p50 / sourceLatency.p50) * 100) / 100,
      },
      coldFirstFrameMs: summarize(cold),
      ffmpegCpuCores,
      settings: {
        source: '640x480@30 VP8 (libwebrtc)',
        seconds: options.seconds,
        coldStarts: options.coldStarts,
      },
    };
  } finally {
    for (const viewer of viewers) viewer.close();
    publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}
