import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster } from '../scripts/harness/cluster.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { type Summary, summarize } from './stats.js';

/**
 * Failover as a viewer sees it: the freeze — the last frame decoded before an upstream failure
 * to the first decoded after it, at a real libwebrtc viewer on another node — when
 *
 *  - relayEdgeKilled: the region's relay edge is SIGKILLed (the viewer's edge pulls from it);
 *  - transcoderKilled: the transcoder making the watched rendition is SIGKILLed (another one of
 *    the region can take it over);
 *  - publisherMoved: the origin holding the publisher is SIGKILLed and the publisher (a WHIP
 *    client that reconnects at once, as the demo page's does) publishes again on another origin.
 *
 * Each trial also says whether the viewer kept its session (its peer connection stayed
 * connected and frames resumed on it). A viewer whose session ended counts as dropped, without
 * a freeze number. Every node is its own process (one mediasoup worker each), all on loopback.
 */

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 30;
/** Frames resume "for good" once this many are decoded after the last long gap. */
const RECOVERED_FRAMES = 30;
/** A gap longer than this between decoded frames is a freeze, not jitter. */
const GAP_MS = 250;
/** A viewer with no frames this long after the failure is counted as not resumed. */
const GIVE_UP_MS = 20_000;
/** Extra environment for every node (BENCH_FAILOVER_ENV, JSON), e.g. to compare settings. */
const NODE_ENV: Record<string, string> = JSON.parse(process.env.BENCH_FAILOVER_ENV ?? '{}');
const PROFILES = [{ name: '180p', width: 320, height: 180, fps: 30, codec: 'VP8', bitrate: 300_000 }];

export interface FailoverTrial {
  /** Longest gap between decoded frames from the failure on (ms); undefined when dropped. */
  freezeMs: number | undefined;
  /** The viewer's session ended (or frames never came back on it). */
  dropped: boolean;
}

export interface FailoverScenario {
  freezeMs: Summary;
  dropped: number;
  trials: FailoverTrial[];
}

export interface FailoverResult {
  relayEdgeKilled: FailoverScenario;
  transcoderKilled: FailoverScenario;
  publisherMoved: FailoverScenario;
  settings: { width: number; height: number; fps: number; trials: number; rendition: string };
}

/** Runs `failure` and measures the viewer's freeze around it. */
async function measureFreeze(
  viewer: TestViewer,
  failure: () => void | Promise<void>,
): Promise<FailoverTrial> {
  await waitSteady(viewer);
  const from = Date.now();
  const firstIndex = viewer.frameTimes.length;
  await failure();
  const deadline = from + GIVE_UP_MS;
  for (;;) {
    await sleep(50);
    if (viewer.pc.connectionState !== 'connected') return { freezeMs: undefined, dropped: true };
    const times = viewer.frameTimes;
    // Frames after the last long gap since the failure (or since the failure, if none).
    let lastGapEnd = firstIndex;
    for (let index = Math.max(firstIndex, 1); index < times.length; index++) {
      if (times[index]! - times[index - 1]! > GAP_MS) lastGapEnd = index;
    }
    const resumed = times.length - lastGapEnd >= RECOVERED_FRAMES && Date.now() - from > 2000;
    if (resumed) {
      let freezeMs = times[firstIndex]! - (times[firstIndex - 1] ?? from);
      for (let index = firstIndex + 1; index < times.length; index++) {
        freezeMs = Math.max(freezeMs, times[index]! - times[index - 1]!);
      }
      return { freezeMs, dropped: false };
    }
    if (Date.now() > deadline) return { freezeMs: undefined, dropped: true };
  }
}

/** Until the viewer decodes frames at a steady pace (the last second had no freeze). */
async function waitSteady(viewer: TestViewer): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const now = Date.now();
    const recent = viewer.frameTimes.filter((time) => now - time < 1000);
    if (recent.length >= FPS / 2 && now - recent[recent.length - 1]! < GAP_MS) return;
    if (now > deadline) throw new Error('the viewer is not decoding frames steadily');
    await sleep(100);
  }
}

function scenario(trials: FailoverTrial[]): FailoverScenario {
  return {
    freezeMs: summarize(trials.flatMap((trial) => (trial.freezeMs === undefined ? [] : [trial.freezeMs]))),
    dropped: trials.filter((trial) => trial.dropped).length,
    trials,
  };
}

async function play(viewer: TestViewer, baseUrl: string, stream: string, query = ''): Promise<void> {
  const played = await viewer.play(baseUrl, stream, { query });
  if (played.status !== 201) throw new Error(`WHEP ${stream}${query}: ${played.status} ${played.body}`);
  await viewer.waitForFrames(30, 20_000);
}

async function publish(publisher: TestPublisher, baseUrl: string, stream: string): Promise<void> {
  const published = await publisher.publish(baseUrl, stream);
  if (published.status !== 201) throw new Error(`WHIP ${stream}: ${published.status} ${published.body}`);
}

/**
 * Edges of one region: the viewer's edge pulls a stream from the region's relay edge, which is
 * killed. Each trial plays a new stream (so that leases of earlier trials do not matter): the
 * surviving edge of the previous trial is the relay edge (its viewer joins first), a new edge
 * pulls from it.
 */
async function relayEdgeKilled(trials: number): Promise<FailoverTrial[]> {
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, { LOG_LEVEL: 'warn', ...NODE_ENV });
  const viewers: TestViewer[] = [];
  const publishers: TestPublisher[] = [];
  const results: FailoverTrial[] = [];
  try {
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'bench' },
      { id: 'edge-0', role: 'edge', region: 'bench' },
      { id: 'edge-1', role: 'edge', region: 'bench' },
    );
    let relayEdge = 'edge-0';
    for (let trial = 0; trial < trials; trial++) {
      const viewerEdge = `edge-${trial + 1}`;
      if (trial > 0) await cluster.add({ id: viewerEdge, role: 'edge', region: 'bench' });
      for (const earlier of publishers) earlier.close();
      const stream = `live-${trial}`;
      const publisher = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
      publishers.push(publisher);
      await publish(publisher, cluster.node('origin').baseUrl, stream);
      // Sequential joins: the relay edge takes the region's relay lease, the other pulls from it.
      for (const edge of [relayEdge, viewerEdge]) {
        const viewer = new TestViewer();
        viewers.push(viewer);
        await play(viewer, cluster.node(edge).baseUrl, stream);
      }
      const upstream = (await cluster.dump(viewerEdge)).relayedStreams.find(
        (r) => r.name === stream,
      )?.upstream;
      if (upstream !== relayEdge) throw new Error(`${viewerEdge} pulls from ${upstream}, not ${relayEdge}`);
      results.push(await measureFreeze(viewers.at(-1)!, () => cluster.kill(relayEdge)));
      relayEdge = viewerEdge;
    }
    return results;
  } finally {
    for (const viewer of viewers) viewer.close();
    for (const publisher of publishers) publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}

/** Two transcoders; the one making the watched rendition is killed, and replaced for the next trial. */
async function transcoderKilled(trials: number): Promise<FailoverTrial[]> {
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, {
    LOG_LEVEL: 'warn',
    PROFILES: JSON.stringify(PROFILES),
    TRANSCODE_LINGER_MS: '2000',
    ...NODE_ENV,
  });
  const publisher = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
  const viewer = new TestViewer();
  const results: FailoverTrial[] = [];
  try {
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'bench' },
      { id: 'edge', role: 'edge', region: 'bench' },
      { id: 'transcoder-0', role: 'transcoder', region: 'bench' },
      { id: 'transcoder-1', role: 'transcoder', region: 'bench' },
    );
    await publish(publisher, cluster.node('origin').baseUrl, 'live');
    await sleep(1000);
    await play(viewer, cluster.node('edge').baseUrl, 'live', '?profile=180p');
    let next = 2;
    for (let trial = 0; trial < trials; trial++) {
      const transcoders = [...cluster.nodes.values()].filter((node) => node.spec.role === 'transcoder');
      let making: string | undefined;
      for (const node of transcoders) {
        if ((await cluster.dump(node.spec.id)).renditions.length > 0) making = node.spec.id;
      }
      if (!making) throw new Error('no transcoder makes the rendition');
      results.push(await measureFreeze(viewer, () => cluster.kill(making)));
      if (results.at(-1)!.dropped) break; // the viewer is gone: nothing left to measure
      if (trial + 1 < trials) {
        await sleep(5000);
        await cluster.add({ id: `transcoder-${next++}`, role: 'transcoder', region: 'bench' });
      }
    }
    return results;
  } finally {
    viewer.close();
    publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}

/**
 * The origin holding the publisher is killed; the publisher publishes again at once on the
 * other origin (retrying while it is refused, as a WHIP client would). A new origin replaces the
 * dead one for the next trial.
 */
async function publisherMoved(trials: number): Promise<FailoverTrial[]> {
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, { LOG_LEVEL: 'warn', ...NODE_ENV });
  const publishers: TestPublisher[] = [];
  const viewer = new TestViewer();
  const results: FailoverTrial[] = [];
  try {
    await cluster.add(
      { id: 'origin-0', role: 'origin', region: 'bench' },
      { id: 'origin-1', role: 'origin', region: 'bench' },
      { id: 'edge', role: 'edge', region: 'bench' },
    );
    let current = 'origin-0';
    let spare = 'origin-1';
    const first = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
    publishers.push(first);
    await publish(first, cluster.node(current).baseUrl, 'live');
    await play(viewer, cluster.node('edge').baseUrl, 'live');
    for (let trial = 0; trial < trials; trial++) {
      const target = cluster.node(spare).baseUrl;
      let moved: Promise<void> = Promise.resolve();
      results.push(
        await measureFreeze(viewer, () => {
          cluster.kill(current);
          publishers.at(-1)!.close();
          moved = (async () => {
            const deadline = Date.now() + GIVE_UP_MS;
            for (;;) {
              const next = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
              publishers.push(next);
              const published = await next.publish(target, 'live');
              if (published.status === 201) return;
              next.close();
              if (Date.now() > deadline) throw new Error(`republish refused: ${published.status}`);
              await sleep(100);
            }
          })();
        }),
      );
      await moved;
      if (results.at(-1)!.dropped) break;
      current = spare;
      spare = `origin-${trial + 2}`;
      if (trial + 1 < trials) {
        await sleep(5000);
        await cluster.add({ id: spare, role: 'origin', region: 'bench' });
      }
    }
    return results;
  } finally {
    viewer.close();
    for (const publisher of publishers) publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}

export async function runFailoverBench(options: { trials: number }): Promise<FailoverResult> {
  const only = new Set(
    (process.env.BENCH_FAILOVER ?? 'relay,transcoder,publisher').split(',').map((name) => name.trim()),
  );
  const run = async (name: string, body: (trials: number) => Promise<FailoverTrial[]>) =>
    scenario(only.has(name) ? await body(options.trials) : []);
  return {
    relayEdgeKilled: await run('relay', relayEdgeKilled),
    transcoderKilled: await run('transcoder', transcoderKilled),
    publisherMoved: await run('publisher', publisherMoved),
    settings: {
      width: WIDTH,
      height: HEIGHT,
      fps: FPS,
      trials: options.trials,
      rendition: `${PROFILES[0]!.name} VP8 ${PROFILES[0]!.width}x${PROFILES[0]!.height}@${PROFILES[0]!.fps}`,
    },
  };
}
