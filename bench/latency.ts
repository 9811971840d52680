import { setTimeout as sleep } from 'node:timers/promises';
import { spawnNode } from '../scripts/harness/node-process.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { type Summary, summarize } from './stats.js';

/**
 * Glass-to-glass latency: every frame carries its capture time (block code, see
 * scripts/harness/framecode.ts); the viewer decodes it and subtracts from its clock. Publisher and
 * viewer live in this process, so both read the same clock.
 *
 *  (a) baseline: libwebrtc publisher → libwebrtc viewer, direct peer-to-peer
 *  (b) via node: publisher → WHIP → media node (separate process) → WHEP → viewer
 */

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 30;

export interface LatencyResult {
  baseline: Summary;
  viaNode: Summary;
  ratioP50: number;
  deltaP50Ms: number;
  timeToFirstFrame: Summary;
  settings: { width: number; height: number; fps: number; seconds: number; joins: number };
}

export async function measureDirect(seconds: number): Promise<number[]> {
  const publisher = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
  const viewer = new TestViewer();
  try {
    const offer = await publisher.createOffer();
    const answer = await viewer.answerOffer(offer);
    await publisher.applyAnswer(answer);
    await viewer.waitForFrames(30, 20_000);
    viewer.latencies.length = 0; // drop warm-up (encoder ramp-up, first key frame)
    await sleep(seconds * 1000);
    return [...viewer.latencies];
  } finally {
    viewer.close();
    publisher.close();
  }
}

async function measureViaNode(baseUrl: string, seconds: number): Promise<number[]> {
  const publisher = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
  const viewer = new TestViewer();
  try {
    const published = await publisher.publish(baseUrl, 'bench-latency');
    if (published.status !== 201) throw new Error(`WHIP failed: ${published.status} ${published.body}`);
    const played = await viewer.play(baseUrl, 'bench-latency');
    if (played.status !== 201) throw new Error(`WHEP failed: ${played.status} ${played.body}`);
    await viewer.waitForFrames(30, 20_000);
    viewer.latencies.length = 0;
    await sleep(seconds * 1000);
    return [...viewer.latencies];
  } finally {
    viewer.close();
    publisher.close();
    await publisher.unpublish(baseUrl).catch(() => undefined);
  }
}

/** Time from a viewer's WHEP POST to its first decoded frame, joining a stream already live. */
async function measureTimeToFirstFrame(baseUrl: string, joins: number): Promise<number[]> {
  const publisher = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
  const results: number[] = [];
  try {
    const published = await publisher.publish(baseUrl, 'bench-ttff');
    if (published.status !== 201) throw new Error(`WHIP failed: ${published.status} ${published.body}`);
    await sleep(2000); // let the encoder settle so joins hit a steady stream
    for (let i = 0; i < joins; i++) {
      const viewer = new TestViewer();
      try {
        const start = Date.now();
        const played = await viewer.play(baseUrl, 'bench-ttff');
        if (played.status !== 201) throw new Error(`WHEP failed: ${played.status} ${played.body}`);
        await viewer.waitForFrames(1, 10_000);
        results.push(viewer.firstFrameAt! - start);
      } finally {
        await viewer.stop(baseUrl).catch(() => undefined);
        viewer.close();
      }
      await sleep(300);
    }
    return results;
  } finally {
    publisher.close();
  }
}

export async function runLatencyBench(options: {
  seconds: number;
  joins: number;
  rtcPort: number;
}): Promise<LatencyResult> {
  const baseline = await measureDirect(options.seconds);
  const node = await spawnNode({
    RTC_LISTEN_IP: '127.0.0.1',
    RTC_PORT: String(options.rtcPort),
    WORKERS: '1',
    PORT: '18080',
  });
  try {
    const viaNode = await measureViaNode(node.baseUrl, options.seconds);
    const ttff = await measureTimeToFirstFrame(node.baseUrl, options.joins);
    const a = summarize(baseline);
    const b = summarize(viaNode);
    return {
      baseline: a,
      viaNode: b,
      ratioP50: Math.round((b.p50 / a.p50) * 100) / 100,
      deltaP50Ms: b.p50 - a.p50,
      timeToFirstFrame: summarize(ttff),
      settings: { width: WIDTH, height: HEIGHT, fps: FPS, seconds: options.seconds, joins: options.joins },
    };
  } finally {
    await node.stop();
  }
}
