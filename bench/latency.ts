import { setTimeout as sleep } from 'node:timers/promises';
import { spawnNode } from '../scripts/harness/node-process.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { type Spread, type Summary, spread, summarize } from './stats.js';

/**
 * Glass-to-glass latency: every frame carries its capture time (block code, see
 * scripts/harness/framecode.ts); the viewer decodes it and subtracts from its clock. Publisher and
 * viewer live in this process, so both read the same clock.
 *
 *  (a) direct: libwebrtc publisher → libwebrtc viewer, peer-to-peer (the baseline)
 *  (b) via node: publisher → WHIP → media node (separate process) → WHEP → viewer
 *
 * (a) and (b) alternate in rounds of a few seconds, each with fresh peers, so that the shared
 * machine's load drifts over both alike; the figure is the difference (b − a) of the p50s of
 * each round, with its spread across rounds, next to the pooled summaries.
 */

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 30;

export interface LatencyRound {
  /** Which path ran first in this round (the order alternates). */
  first: 'direct' | 'viaNode';
  direct: Summary;
  viaNode: Summary;
  deltaP50Ms: number;
}

export interface LatencyResult {
  rounds: LatencyRound[];
  /** Via node minus direct, p50 of each round: how it varies from round to round. */
  deltaP50Ms: Spread;
  /** Every sample of every round, per path. */
  pooled: { direct: Summary; viaNode: Summary; deltaP50Ms: number; ratioP50: number };
  timeToFirstFrame: Summary;
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
 * Runs `a` and `b` once per round, in alternating order (a b, b a, a b, …): neither always runs
 * first, and slow drifts of the machine's load reach both.
 */
export async function alternating<A, B>(
  rounds: number,
  a: () => Promise<A>,
  b: () => Promise<B>,
): Promise<{ a: A; b: B; aFirst: boolean }[]> {
  const results: { a: A; b: B; aFirst: boolean }[] = [];
  for (let round = 0; round < rounds; round++) {
    const aFirst = round % 2 === 0;
    if (aFirst) {
      const first = await a();
      results.push({ a: first, b: await b(), aFirst });
    } else {
      const first = await b();
      results.push({ a: await a(), b: first, aFirst });
    }
  }
  return results;
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
    // Leave the node empty for the next round (a closed peer alone would linger until ICE times out).
    await viewer.stop(baseUrl).catch(() => undefined);
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
  rounds: number;
  roundSeconds: number;
  joins: number;
  rtcPort: number;
}): Promise<LatencyResult> {
  const node = await spawnNode({
    RTC_LISTEN_IP: '127.0.0.1',
    RTC_PORT: String(options.rtcPort),
    WORKERS: '1',
    PORT: '18080',
  });
  try {
    const results = await alternating(
      options.rounds,
      () => measureDirect(options.roundSeconds),
      () => measureViaNode(node.baseUrl, options.roundSeconds),
    );
    const rounds = results.map(({ a, b, aFirst }): LatencyRound => {
      const direct = summarize(a);
      const viaNode = summarize(b);
      return { first: aFirst ? 'direct' : 'viaNode', direct, viaNode, deltaP50Ms: viaNode.p50 - direct.p50 };
    });
    const direct = summarize(results.flatMap((round) => round.a));
    const viaNode = summarize(results.flatMap((round) => round.b));
    const ttff = await measureTimeToFirstFrame(node.baseUrl, options.joins);
    return {
      rounds,
      deltaP50Ms: spread(rounds.map((round) => round.deltaP50Ms)),
      pooled: {
        direct,
        viaNode,
        deltaP50Ms: viaNode.p50 - direct.p50,
        ratioP50: Math.round((viaNode.p50 / direct.p50) * 100) / 100,
      },
      timeToFirstFrame: summarize(ttff),
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
    await node.stop();
  }
}
