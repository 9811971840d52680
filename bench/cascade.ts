import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster } from '../scripts/harness/cluster.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { alternating, measureDirect } from './latency.js';
import { type Spread, type Summary, spread, summarize } from './stats.js';

/**
 * The multi-node CDN on loopback (Redis + origin + three edges of one region, each node its own
 * process with one mediasoup worker):
 *
 *  - glass-to-glass latency of (a) a direct peer-to-peer baseline, (b) origin → edge and
 *    (c) origin → regional relay edge → edge, (b) and (c) watched at the same time; (a) and
 *    (b + c) alternate in rounds (as in bench/latency.ts), each round a fresh stream;
 *  - time to first frame on a cold edge (stream not yet relayed there) and a warm one;
 *  - the origin's relay egress as edges of one region are added (regional relay: flat).
 */

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 30;

interface HopsPerRound {
  originToEdge: number;
  relayHop: number;
}

export interface CascadeRound {
  first: 'direct' | 'cascade';
  direct: Summary;
  originToEdge: Summary;
  originToRelayEdgeToEdge: Summary;
  /** origin→edge p50 minus direct p50; relay edge→edge p50 minus origin→edge p50. */
  addedP50Ms: HopsPerRound;
}

export interface CascadeResult {
  rounds: CascadeRound[];
  /** The added p50 per hop, round by round: how it varies. */
  addedP50PerHopMs: { originToEdge: Spread; relayHop: Spread };
  /** Every sample of every round, per path. */
  pooled: {
    direct: Summary;
    originToEdge: Summary;
    originToRelayEdgeToEdge: Summary;
    addedP50PerHopMs: HopsPerRound;
  };
  timeToFirstFrame: { coldEdge: Summary; warmEdge: Summary };
  originEgressAsEdgesJoin: { edges: number; originRelays: number; originRelayEgressKbps: number }[];
  settings: {
    width: number;
    height: number;
    fps: number;
    rounds: number;
    roundSeconds: number;
    joins: number;
  };
}

/**
 * One cascade round on a stream of its own: a viewer on edge-1 (which pulls from the origin and
 * so becomes the region's relay edge), then one on edge-2 (which pulls from edge-1), watched at
 * the same time.
 */
async function measureCascade(
  cluster: TestCluster,
  stream: string,
  seconds: number,
): Promise<{ originToEdge: number[]; originToRelayEdgeToEdge: number[] }> {
  const url = (id: string) => cluster.node(id).baseUrl;
  const publisher = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS });
  const viewers = { 'edge-1': new TestViewer(), 'edge-2': new TestViewer() };
  try {
    const published = await publisher.publish(url('origin'), stream);
    if (published.status !== 201) throw new Error(`WHIP failed: ${published.status} ${published.body}`);
    for (const [edge, viewer] of Object.entries(viewers)) {
      const played = await viewer.play(url(edge), stream);
      if (played.status !== 201) throw new Error(`WHEP failed: ${played.status} ${played.body}`);
      await viewer.waitForFrames(30, 20_000);
    }
    const upstream = (await cluster.dump('edge-2')).relayedStreams.find((r) => r.name === stream)?.upstream;
    if (upstream !== 'edge-1') throw new Error(`edge-2 relays ${stream} from ${upstream}, not from edge-1`);
    viewers['edge-1'].latencies.length = 0; // drop warm-up
    viewers['edge-2'].latencies.length = 0;
    await sleep(seconds * 1000);
    return {
      originToEdge: [...viewers['edge-1'].latencies],
      originToRelayEdgeToEdge: [...viewers['edge-2'].latencies],
    };
  } finally {
    for (const [edge, viewer] of Object.entries(viewers)) {
      await viewer.stop(url(edge)).catch(() => undefined);
      viewer.close();
    }
    publisher.close();
    await publisher.unpublish(url('origin')).catch(() => undefined);
  }
}

/** Runs the alternating rounds and summarizes them per round and pooled. */
async function measureLatency(
  cluster: TestCluster,
  options: { rounds: number; roundSeconds: number },
): Promise<Pick<CascadeResult, 'rounds' | 'addedP50PerHopMs' | 'pooled'>> {
  let stream = 0;
  const results = await alternating(
    options.rounds,
    () => measureDirect(options.roundSeconds),
    () => measureCascade(cluster, `bench-latency-${stream++}`, options.roundSeconds),
  );
  const hops = (direct: Summary, edge: Summary, relay: Summary): HopsPerRound => ({
    originToEdge: edge.p50 - direct.p50,
    relayHop: relay.p50 - edge.p50,
  });
  const rounds = results.map(({ a, b, aFirst }): CascadeRound => {
    const direct = summarize(a);
    const originToEdge = summarize(b.originToEdge);
    const originToRelayEdgeToEdge = summarize(b.originToRelayEdgeToEdge);
    return {
      first: aFirst ? 'direct' : 'cascade',
      direct,
      originToEdge,
      originToRelayEdgeToEdge,
      addedP50Ms: hops(direct, originToEdge, originToRelayEdgeToEdge),
    };
  });
  const direct = summarize(results.flatMap((round) => round.a));
  const originToEdge = summarize(results.flatMap((round) => round.b.originToEdge));
  const originToRelayEdgeToEdge = summarize(results.flatMap((round) => round.b.originToRelayEdgeToEdge));
  return {
    rounds,
    addedP50PerHopMs: {
      originToEdge: spread(rounds.map((round) => round.addedP50Ms.originToEdge)),
      relayHop: spread(rounds.map((round) => round.addedP50Ms.relayHop)),
    },
    pooled: {
      direct,
      originToEdge,
      originToRelayEdgeToEdge,
      addedP50PerHopMs: hops(direct, originToEdge, originToRelayEdgeToEdge),
    },
  };
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

export async function runCascadeBench(options: {
  rounds: number;
  roundSeconds: number;
  joins: number;
}): Promise<CascadeResult> {
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

    // Latency first, alone on the machine: the stream below is not published yet.
    const latency = await measureLatency(cluster, options);

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
      ...latency,
      timeToFirstFrame: { coldEdge: summarize(cold), warmEdge: summarize(warm) },
      originEgressAsEdgesJoin,
      settings: {
        width: WIDTH,
        height: HEIGHT,
        fps: FPS,
        rounds: options.rounds,
        roundSeconds: options.roundSeconds,
        joins: options.joins,
      },
    };
  } finally {
    for (const viewer of viewers) viewer.close();
    publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}
