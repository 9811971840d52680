import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { FfmpegHlsPlayer } from '../scripts/harness/hls-client.js';
import { startNode } from '../scripts/harness/node.js';
import { TestPublisher } from '../scripts/harness/peers.js';
import { launchChromium } from '../test/e2e/chromium.js';
import { type Summary, summarize } from './stats.js';

/**
 * HLS on a standalone node (this process; real mediasoup and the packager's FFmpeg), a libwebrtc
 * publisher 640×360@30 VP8 whose frames carry their capture time, FFmpeg as the HLS player:
 *
 *  - time to the first part and segment: cold packager, multivariant GET → its first LL-HLS
 *    part exists, → the media playlist answered (the route waits for the first complete
 *    segment), and → the player's first decoded frame;
 *  - glass-to-glass latency of a player reading at the stream's pace (`-re`), starting 3
 *    segments behind the live edge (FFmpeg's and hls.js' default) and 1 segment behind; of
 *    hls.js in Chromium without LL-HLS (`lowLatencyMode: false`: whole segments) and with it
 *    (parts, blocking playlist reloads);
 *  - revocation cut-off: a player with a key; the key is removed; when the next media playlist
 *    request is refused (403), and when the player decodes its last frame (it still plays what
 *    it had downloaded); and when a blocking reload held for a part to come is refused.
 */

const SIZE = { width: 640, height: 360 };
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const KEY = 'bench-hls-key-0123456789';

export interface HlsBenchResult {
  /** Multivariant GET (cold) → the source variant's first LL-HLS part exists. */
  coldFirstPartMs: Summary;
  coldMediaPlaylistMs: Summary;
  coldFirstFrameMs: Summary;
  latency: {
    behind3Segments: Summary;
    behind1Segment: Summary;
    /** hls.js in headless Chromium without LL-HLS: whole segments, 3 target durations behind. */
    hlsJs: Summary | { error: string };
    /** hls.js in headless Chromium with `lowLatencyMode`: parts, PART-HOLD-BACK behind. */
    hlsJsLowLatency: Summary | { error: string };
  };
  revocation: {
    refusedAfterMs: Summary;
    /** A blocking reload waiting for a part two segments ahead: revoked → answered 403. */
    blockedRefusedAfterMs: Summary;
    lastFrameAfterMs: Summary;
    playerExitAfterMs: Summary;
  };
  settings: {
    source: string;
    segmentSeconds: number;
    seconds: number;
    coldStarts: number;
    revocations: number;
  };
}

export async function runHlsBench(options: {
  seconds: number;
  coldStarts: number;
  revocations: number;
}): Promise<HlsBenchResult> {
  const running = await startNode({ ADMIN_TOKEN, HLS_LINGER_MS: '1000', LOG_LEVEL: 'warn' });
  const publishers: TestPublisher[] = [];
  const players: FfmpegHlsPlayer[] = [];
  const publish = async (stream: string) => {
    const publisher = new TestPublisher({ ...SIZE, fps: 30 });
    publishers.push(publisher);
    const result = await publisher.publish(running.baseUrl, stream);
    if (result.status !== 201) throw new Error(`WHIP ${stream}: ${result.status} ${result.body}`);
    return publisher;
  };
  const play = (path: string, extra: { liveStartIndex?: number; realtime?: boolean } = {}) => {
    const player = new FfmpegHlsPlayer(`${running.baseUrl}${path}`, { ...SIZE, ...extra });
    players.push(player);
    return player;
  };
  const until = async (condition: () => boolean, timeoutMs: number, what: string | (() => string)) => {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline)
        throw new Error(`${typeof what === 'string' ? what : what()}: not within ${timeoutMs} ms`);
      await sleep(5);
    }
  };
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${running.baseUrl}${path}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  try {
    // Cold starts: a fresh stream each time (no packager running).
    const mediaPlaylist: number[] = [];
    const firstPart: number[] = [];
    const firstFrame: number[] = [];
    for (let trial = 0; trial < options.coldStarts; trial++) {
      const stream = `cold-${trial}`;
      const publisher = await publish(stream);
      await sleep(1000);
      const started = performance.now();
      const startedAt = Date.now();
      const multivariant = await (await fetch(`${running.baseUrl}/hls/${stream}/index.m3u8`)).text();
      const job = running.node.hls!.jobs.get(stream)!;
      const partAfter = new Promise<number>((resolve) =>
        job.once('firstpart', (afterMs) => resolve(afterMs + (job.startedAt - startedAt))),
      );
      const mediaPath = `/hls/${stream}/${multivariant.split('\n').find((line) => line.startsWith('source/'))}`;
      const media = await fetch(`${running.baseUrl}${mediaPath}`);
      if (media.status !== 200) throw new Error(`media playlist: ${media.status}`);
      mediaPlaylist.push(Math.round(performance.now() - started));
      firstPart.push(await partAfter);
      // The player's first frame, on another cold packager (the one above is warm now).
      const other = `cold-player-${trial}`;
      const otherPublisher = await publish(other);
      await sleep(1000);
      const playerStarted = Date.now();
      const player = play(`/hls/${other}/index.m3u8`);
      await until(
        () => player.firstFrameAt !== undefined,
        30_000,
        () => `first HLS frame (player: ${player.stderr.slice(-300)})`,
      );
      firstFrame.push(player.firstFrameAt! - playerStarted);
      player.close();
      publisher.close();
      otherPublisher.close();
    }

    // Latency at the player's pace: after a warm-up, the age of every frame presented.
    const latencyOf = async (liveStartIndex: number) => {
      // A stream of its own, its packager running for a while: the playlist is full.
      const stream = `latency${liveStartIndex}`;
      await publish(stream);
      await fetch(`${running.baseUrl}/hls/${stream}/index.m3u8`);
      await sleep(7000);
      const player = play(`/hls/${stream}/index.m3u8`, { liveStartIndex, realtime: true });
      await until(
        () => player.framesWithCode > 0,
        30_000,
        () => `HLS frames (player: ${player.stderr.slice(-300)})`,
      );
      await sleep(3000);
      const from = player.ages.length;
      await sleep(options.seconds * 1000);
      player.close();
      return summarize(player.ages.slice(from));
    };
    const behind3Segments = await latencyOf(-3);
    const behind1Segment = await latencyOf(-1);
    await publish('latency-hlsjs');
    const hlsJs = await hlsJsLatency(running.baseUrl, 'latency-hlsjs', options.seconds, false).catch(
      (error: Error) => ({ error: error.message }),
    );
    await publish('latency-llhls');
    const hlsJsLowLatency = await hlsJsLatency(running.baseUrl, 'latency-llhls', options.seconds, true).catch(
      (error: Error) => ({ error: error.message }),
    );

    // Revocation: a protected stream, a player with a key, the key removed.
    const refusedAfter: number[] = [];
    const blockedRefusedAfter: number[] = [];
    const lastFrameAfter: number[] = [];
    const exitAfter: number[] = [];
    await publish('premium');
    for (let trial = 0; trial < options.revocations; trial++) {
      const put = await api('PUT', '/api/v1/streams/premium/acl', { keys: [{ id: 'viewer', key: KEY }] });
      if (put.status !== 200) throw new Error(`ACL PUT: ${put.status}`);
      const player = play(`/hls/premium/index.m3u8?key=${KEY}`, { realtime: true });
      await until(
        () => player.framesWithCode >= 30,
        30_000,
        () =>
          `HLS frames of revocation trial ${trial} (${player.framesDecoded} decoded; player: ${player.stderr.slice(-300)})`,
      );
      const multivariant = await (
        await fetch(`${running.baseUrl}/hls/premium/index.m3u8`, {
          headers: { Authorization: `Bearer ${KEY}` },
        })
      ).text();
      const mediaPath = `/hls/premium/${multivariant.split('\n').find((line) => line.startsWith('source/'))}`;
      // A blocking reload for a segment two ahead: held about two seconds unless cut.
      const playlist = await (await fetch(`${running.baseUrl}${mediaPath}`)).text();
      const newest = Number(/#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\./.exec(playlist)?.[1] ?? 0);
      let blockedAnsweredAt = 0;
      const blocked = fetch(`${running.baseUrl}${mediaPath}&_HLS_msn=${newest + 2}`).then((response) => {
        blockedAnsweredAt = Date.now();
        return response.status;
      });
      await sleep(100);
      await api('DELETE', '/api/v1/streams/premium/acl/keys/viewer');
      const revokedAt = Date.now();
      while ((await fetch(`${running.baseUrl}${mediaPath}`)).status !== 403) await sleep(5);
      refusedAfter.push(Date.now() - revokedAt);
      const blockedStatus = await blocked;
      if (blockedStatus !== 403)
        throw new Error(`blocked reload after revocation: ${blockedStatus}, not 403`);
      blockedRefusedAfter.push(blockedAnsweredAt - revokedAt);
      let frames = player.framesDecoded;
      let lastFrameAt = revokedAt;
      while (player.running && Date.now() - revokedAt < 30_000) {
        if (player.framesDecoded !== frames) {
          frames = player.framesDecoded;
          lastFrameAt = Date.now();
        }
        await sleep(5);
      }
      lastFrameAfter.push(lastFrameAt - revokedAt);
      exitAfter.push(Date.now() - revokedAt);
      player.close();
      await api('DELETE', '/api/v1/streams/premium/acl');
    }

    return {
      coldFirstPartMs: summarize(firstPart),
      coldMediaPlaylistMs: summarize(mediaPlaylist),
      coldFirstFrameMs: summarize(firstFrame),
      latency: { behind3Segments, behind1Segment, hlsJs, hlsJsLowLatency },
      revocation: {
        refusedAfterMs: summarize(refusedAfter),
        blockedRefusedAfterMs: summarize(blockedRefusedAfter),
        lastFrameAfterMs: summarize(lastFrameAfter),
        playerExitAfterMs: summarize(exitAfter),
      },
      settings: {
        source: '640x360@30 VP8 (libwebrtc) → H.264 fMP4 LL-HLS (0.2 s parts), FFmpeg player',
        segmentSeconds: 1,
        seconds: options.seconds,
        coldStarts: options.coldStarts,
        revocations: options.revocations,
      },
    };
  } finally {
    for (const player of players) player.close();
    for (const publisher of publishers) publisher.close();
    await running.close();
  }
}

/**
 * Glass-to-glass of hls.js in headless Chromium (with or without its LL-HLS mode): every presented frame (requestVideoFrameCallback)
 * is drawn on a canvas and its code (framecode.ts's grid, read from the red channel: the frames are
 * grey) dated against the clock, after a warm-up of 5 s.
 */
async function hlsJsLatency(
  baseUrl: string,
  stream: string,
  seconds: number,
  lowLatencyMode: boolean,
): Promise<Summary> {
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.setContent('<video id="v" muted autoplay playsinline></video>');
    await page.addScriptTag({ path: createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js') });
    // Plain JavaScript as text: the bench runs through tsx, whose helpers (e.g. __name) a
    // function passed to evaluate() would carry into the page, where they do not exist.
    await page.addScriptTag({
      content: `
        window.ages = [];
        const url = ${JSON.stringify(`${baseUrl}/hls/${stream}/index.m3u8`)};
        const video = document.getElementById('v');
        const canvas = document.createElement('canvas');
        const context = canvas.getContext('2d', { willReadFrequently: true });
        function read() {
          const width = video.videoWidth, height = video.videoHeight;
          if (width === 0) return undefined;
          canvas.width = width;
          canvas.height = height;
          context.drawImage(video, 0, 0);
          const pixels = context.getImageData(0, 0, width, height).data;
          const bits = [];
          for (let bit = 0; bit < 64; bit++) {
            const x = Math.floor(((bit % 8) + 0.5) * (width / 8));
            const y = Math.floor((Math.floor(bit / 8) + 0.5) * (height / 8));
            bits.push(pixels[(y * width + x) * 4] > 128 ? 1 : 0);
          }
          let value = 0;
          for (let bit = 0; bit < 32; bit++) {
            if (bits[bit] === bits[bit + 32]) return undefined;
            value |= (bits[bit] << bit) >>> 0;
          }
          return value >>> 0;
        }
        function onFrame() {
          const code = read();
          if (code !== undefined) {
            const now = (Date.now() % 0x100000000) >>> 0;
            window.ages.push((now - code + 0x100000000) % 0x100000000);
          }
          video.requestVideoFrameCallback(onFrame);
        }
        video.requestVideoFrameCallback(onFrame);
        const hls = new Hls({ lowLatencyMode: ${lowLatencyMode} });
        hls.loadSource(url);
        hls.attachMedia(video);
      `,
    });
    const ages = () => page.evaluate(() => (window as unknown as { ages: number[] }).ages.length);
    const deadline = Date.now() + 30_000;
    while ((await ages()) === 0) {
      if (Date.now() > deadline) throw new Error('hls.js presented no frame with a readable code');
      await sleep(200);
    }
    await sleep(5000);
    const from = await ages();
    await sleep(seconds * 1000);
    const all = await page.evaluate(() => (window as unknown as { ages: number[] }).ages);
    return summarize(all.slice(from));
  } finally {
    await browser.close();
  }
}
