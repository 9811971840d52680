import { setTimeout as sleep } from 'node:timers/promises';
import { netnsAvailable } from '../scripts/harness/netns.js';
import { TestViewer } from '../scripts/harness/peers.js';
import { startShapedEdgeCdn } from '../scripts/harness/shaped-edge.js';
import { launchChromium } from '../test/e2e/chromium.js';
import { noiseVideoFile, publishSimulcast, sentLayers } from '../test/e2e/simulcast-publisher.js';
import { type Summary, summarize } from './stats.js';

/**
 * Automatic bitrate adaptation as a constrained viewer sees it (issue 16 §1): Chromium publishes
 * three simulcast layers (1280×720 noise: q ≤150, h ≤500, f ≤1500 kbit/s) to an origin; a
 * libwebrtc viewer plays from an edge in a network namespace whose outgoing link is shaped with
 * tc (tbf) from unlimited to `lowRate` and back, `trials` times. Per trial:
 *
 *  - downMs: from the limit to the viewer's consumer sending the lowest layer;
 *  - upMs: from lifting it to the top layer, counted to the start of a 10 s stay there;
 *  - freezeDownMs / freezeUpMs: the longest gap between decoded frames in the 15 s after the
 *    limit, and from the lift until the top layer held;
 *  - unconstrainedFreezeMs, before the trials: the longest gap in 15 s without any limit (on a
 *    busy machine the publisher's own frame rate makes gaps too).
 *
 * Needs root (netns, tc) and Chromium. Opt-in (BENCH_ONLY=abr): it takes a few minutes.
 */

const TOP_HOLD_MS = 10_000;
const GIVE_UP_MS = 120_000;

export interface AbrTrial {
  downMs: number | undefined;
  upMs: number | undefined;
  freezeDownMs: number;
  /** When that longest freeze began, ms after the limit (0: at once; later: a failed step up). */
  freezeDownStartMs: number;
  freezeUpMs: number;
}

export interface AbrResult {
  /** The longest gap between frames over 15 s with no limit at all: what the machine allows. */
  unconstrainedFreezeMs: number;
  downMs: Summary;
  upMs: Summary;
  freezeDownMs: Summary;
  freezeUpMs: Summary;
  trials: AbrTrial[];
  settings: { trials: number; lowRate: string; layersKbps: number[]; source: string };
}

export async function runAbrBench(options: { trials: number; lowRate: string }): Promise<AbrResult> {
  if (!netnsAvailable()) throw new Error('the abr bench needs root and iproute2 (ip netns, tc)');
  const cdn = await startShapedEdgeCdn({
    hostNodes: [{ id: 'origin', role: 'origin', region: 'a', env: { DEMO_PAGE: 'true' } }],
  });
  const { netns, cluster } = cdn;
  const viewer = new TestViewer();
  let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    chromium = await launchChromium({
      fakeVideoFile: await noiseVideoFile(),
      secureOrigins: [cluster.node('origin').baseUrl],
    });
    const page = await chromium.context.newPage();
    await page.goto(`${cluster.node('origin').baseUrl}/`);
    if ((await publishSimulcast(page, `${cluster.node('origin').baseUrl}/whip/abr`)) !== 201)
      throw new Error('simulcast publish refused');
    await until(async () => (await sentLayers(page)).length === 3, 30_000, 'the publisher sending 3 layers');
    const played = await viewer.play(cluster.node('edge').baseUrl, 'abr', { audio: false });
    if (played.status !== 201) throw new Error(`WHEP ${played.status}: ${played.body}`);
    const layer = async () => (await cluster.dump('edge')).viewers[0]?.video?.spatialLayer;
    await until(async () => (await layer()) === 2, 60_000, 'the viewer on the top layer');

    const baselineFrom = Date.now();
    await sleep(15_000);
    const unconstrainedFreezeMs = largestGap(viewer.frameTimes, baselineFrom, Date.now());
    const trials: AbrTrial[] = [];
    for (let trial = 0; trial < options.trials; trial++) {
      await netns.shape(options.lowRate);
      const shapedAt = Date.now();
      const downAt = await waitFor(async () => (await layer()) === 0, GIVE_UP_MS);
      await sleep(Math.max(0, shapedAt + 15_000 - Date.now()));
      const freezeDown = longestGap(viewer.frameTimes, shapedAt, Date.now());

      await netns.shape(undefined);
      const liftedAt = Date.now();
      let topSince: number | undefined;
      const held = await waitFor(async () => {
        topSince = (await layer()) === 2 ? (topSince ?? Date.now()) : undefined;
        return topSince !== undefined && Date.now() - topSince >= TOP_HOLD_MS;
      }, GIVE_UP_MS);
      const upAt = held === undefined ? undefined : topSince;
      trials.push({
        downMs: downAt === undefined ? undefined : downAt - shapedAt,
        upMs: upAt === undefined ? undefined : upAt - liftedAt,
        freezeDownMs: freezeDown.gapMs,
        freezeDownStartMs: freezeDown.startMs,
        freezeUpMs: largestGap(viewer.frameTimes, liftedAt, upAt ?? Date.now()),
      });
      console.log(`  trial ${trial + 1}: ${JSON.stringify(trials[trials.length - 1])}`);
    }
    const defined = (values: (number | undefined)[]) => values.filter((value) => value !== undefined);
    return {
      unconstrainedFreezeMs,
      downMs: summarize(defined(trials.map((one) => one.downMs))),
      upMs: summarize(defined(trials.map((one) => one.upMs))),
      freezeDownMs: summarize(trials.map((one) => one.freezeDownMs)),
      freezeUpMs: summarize(trials.map((one) => one.freezeUpMs)),
      trials,
      settings: {
        trials: options.trials,
        lowRate: options.lowRate,
        layersKbps: [150, 500, 1500],
        source: 'Chromium fake camera: 1280x720 30 fps testsrc2 under noise, VP8 simulcast q/h/f',
      },
    };
  } finally {
    viewer.close();
    await chromium?.close();
    await cdn.close();
  }
}

/** When `condition` first held (ms since epoch), or undefined after `timeoutMs`. */
async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return Date.now();
    await sleep(200);
  }
  return undefined;
}

async function until(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  if ((await waitFor(condition, timeoutMs)) === undefined) throw new Error(`timed out waiting for ${what}`);
}

/** The longest stretch without a decoded frame within [from, to]. */
function largestGap(frameTimes: readonly number[], from: number, to: number): number {
  return longestGap(frameTimes, from, to).gapMs;
}

/** The longest stretch without a decoded frame within [from, to], and when (ms after `from`) it began. */
function longestGap(
  frameTimes: readonly number[],
  from: number,
  to: number,
): { gapMs: number; startMs: number } {
  let previous = from;
  let longest = { gapMs: 0, startMs: 0 };
  for (const time of [...frameTimes.filter((frame) => frame >= from && frame <= to), to]) {
    if (time - previous > longest.gapMs) longest = { gapMs: time - previous, startMs: previous - from };
    previous = time;
  }
  return longest;
}
