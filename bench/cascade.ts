import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster } from '../scripts/harness/cluster.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { measureDirect } from './latency.js';
import { type Summary, summarize } from './stats.js';

/**
 * The multi-node CDN on loopback (Redis + origin + three edges of one region, each node its own
 * process with one mediasoup worker):
 *
 *  - glass-to-glass latency of (a) a direct peer-to-peer baseline, (b) origin → edge and
 *    (c) origin → regional relay edge → edge, (b) and (c) watched at the same time;
 *  - time to first frame on a cold edge (stream not yet relayed there) and a warm one;
 *  - the origin's relay egress as edges of one region are added (regional relay: flat).
 */

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 30;

export interface CascadeResult {
  baseline: Summary;
  originToEdge: Summary;
  originToRelayEdgeToEdge: Summary;
  addedP50PerHopMs: { originToEdge: number; relayHop: number };
  timeToFirstFrame: { coldEdge: Summary; warmEdge: Summary };
  originEgressAsEdgesJoin: { edges: number; originRelays: number; originRelayEgressKbps: number }[];
  settings: { width: number; height: number; fps: number; seconds: number; joins: number };
}

async function firstFrameMs(baseUrl: string, stream: string): Promise<number> {
  const viewer = new TestViewer();
  try {
    const start = Date.now();
    const played = await viewer.play(baseUrl, stream);
    if (played.status !== 201) throw new Error(`WHEP failed: ${played.status} ${played.body}`);
    await viewer.waitForFrames(1, 10_000);
    return viewer.firstFrameAt! - start;
  } finally {
    await viewer.stop(baseUrl).catch(() => undefined);
    viewer.close();
  }
}

export async function runCascadeBench(options: { seconds: number; joins: number }): Promise<CascadeResult> {
  const baseline = await measureDirect(options.seconds);
  const redis = await startRedisServer();
  const lingerMs = 300;
  const cluster = new TestCluster(redis.url, { RELAY_LINGER_MS: String(lingerMs), LOG_LEVEL: 'warn' });
  const publisher = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
  const viewers: TestViewer[] = [];
  try {
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'bench' },
      { id: 'edge-1', role: 'edge', region: 'bench' },
      { id: 'edge-2', role: 'edge', region: 'bench' },
      { id: 'edge-3', role: 'edge', region: 'bench' },
    );
    const url = (id: string) => cluster.node(id).baseUrl;
    const published = await publisher.publish(url('origin'), 'bench');
    if (published.status !== 201) throw new Error(`WHIP failed: ${published.status} ${published.body}`);
    await sleep(1500);

    // Origin egress as edges join (each edge gets one viewer, joined in order).
    const originEgressAsEdgesJoin: CascadeResult['originEgressAsEdgesJoin'] = [];
    for (const [index, edge] of ['edge-1', 'edge-2', 'edge-3'].entries()) {
      const viewer = new TestViewer();
      viewers.push(viewer);
      const played = await viewer.play(url(edge), 'bench');
      if (played.status !== 201) throw new Error(`WHEP failed: ${played.status} ${played.body}`);
      await viewer.waitForFrames(30, 20_000);
      await sleep(2000); // let mediasoup's bitrate estimate settle
      const origin = await cluster.dump('origin');
      originEgressAsEdgesJoin.push({
        edges: index + 1,
        originRelays: origin.relaysOut,
        originRelayEgressKbps: Math.round(origin.relayEgressBps / 1000),
      });
    }

    // Latency: edge-1 pulls from the origin, edge-2 from edge-1 (the region's relay edge).
    const [onEdge1, onEdge2] = viewers as [TestViewer, TestViewer];
    onEdge1.latencies.length = 0;
    onEdge2.latencies.length = 0;
    await sleep(options.seconds * 1000);
    const originToEdge = summarize(onEdge1.latencies);
    const originToRelayEdgeToEdge = summarize(onEdge2.latencies);

    // Time to first frame: cold = the edge must relay first (edge-3, after its relay lingered
    // out); warm = the edge already relays the stream (edge-1). Joins 700 ms apart: libwebrtc
    // publishers ignore key frame requests closer than 300 ms to the previous one.
    for (const viewer of viewers.splice(2)) {
      await viewer.stop(url('edge-3')).catch(() => undefined);
      viewer.close();
    }
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < options.joins; i++) {
      await sleep(lingerMs + 1200);
      const relayed = (await cluster.dump('edge-3')).relayedStreams.length;
      if (relayed !== 0) throw new Error('edge-3 still relays the stream: not a cold join');
      cold.push(await firstFrameMs(url('edge-3'), 'bench'));
      await sleep(700);
      warm.push(await firstFrameMs(url('edge-1'), 'bench'));
    }

    return {
      baseline: summarize(baseline),
      originToEdge,
      originToRelayEdgeToEdge,
      addedP50PerHopMs: {
        originToEdge: originToEdge.p50 - summarize(baseline).p50,
        relayHop: originToRelayEdgeToEdge.p50 - originToEdge.p50,
      },
      timeToFirstFrame: { coldEdge: summarize(cold), warmEdge: summarize(warm) },
      originEgressAsEdgesJoin,
      settings: { width: WIDTH, height: HEIGHT, fps: FPS, seconds: options.seconds, joins: options.joins },
    };
  } finally {
    for (const viewer of viewers) viewer.close();
    publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}
