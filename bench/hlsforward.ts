import { TestCluster } from '../scripts/harness/cluster.js';
import { TestPublisher } from '../scripts/harness/peers.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { round, type Summary, summarize } from './stats.js';

const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const KEY = 'bench-hls-forward-key-0123456789';

export interface HlsForwardBenchResult {
  settings: { source: string; samples: number };
  /** A complete part (listed in the playlist) fetched from the holder, and through the other edge. */
  partMs: { direct: Summary; forwarded: Summary };
  /** A whole segment (~1 s) likewise. */
  segmentMs: { direct: Summary; forwarded: Summary };
  /** Blocking reloads for the next part sent to both at once: the forwarded answer's delay over the direct one. */
  blockingReloadExtraMs: Summary;
  /** Size of the segments fetched. */
  segmentBytes: Summary;
}

/**
 * HLS behind a load balancer (`BENCH_ONLY=hlsforward`): what passing a request on to the edge
 * that packages the player's stream costs. Origin and two edges on a real Redis; a player
 * admitted by edge-a; parts and segments fetched alternately from edge-a and through edge-b, and
 * blocking reloads for the same next part sent to both at once.
 */
export async function runHlsForwardBench(options: { samples: number }): Promise<HlsForwardBenchResult> {
  const size = { width: 640, height: 360 };
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, { ADMIN_TOKEN, LOG_LEVEL: 'warn', HLS_LINGER_MS: '5000' });
  const publisher = new TestPublisher(size);
  try {
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'bench' },
      { id: 'edge-a', role: 'edge', region: 'bench', env: { REGIONAL_RELAY: 'false' } },
      { id: 'edge-b', role: 'edge', region: 'bench', env: { REGIONAL_RELAY: 'false' } },
    );
    const url = (id: string) => cluster.node(id).baseUrl;
    const acl = await fetch(`${url('origin')}/api/v1/streams/fwd/acl`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ keys: [{ id: 'bench', key: KEY }] }),
    });
    if (!acl.ok) throw new Error(`ACL: ${acl.status} ${await acl.text()}`);
    if ((await publisher.publish(url('origin'), 'fwd')).status !== 201) throw new Error('WHIP failed');

    let multivariant: Response | undefined;
    for (let attempt = 0; attempt < 100; attempt++) {
      multivariant = await fetch(`${url('edge-a')}/hls/fwd/index.m3u8`, {
        headers: { Authorization: `Bearer ${KEY}` },
      });
      if (multivariant.ok) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (!multivariant?.ok) throw new Error(`multivariant: ${multivariant?.status}`);
    const source = (await multivariant.text()).split('\n').find((line) => line.startsWith('source/'));
    const mediaPath = `/hls/fwd/${source}`;
    const base = '/hls/fwd/source/';
    const playlist = async () => {
      const response = await fetch(`${url('edge-a')}${mediaPath}`);
      if (!response.ok) throw new Error(`media playlist: ${response.status} ${await response.text()}`);
      return response.text();
    };
    await playlist();
    // Warm: a few segments in the window.
    await new Promise((resolve) => setTimeout(resolve, 4000));

    const timed = async (edge: string, path: string) => {
      const started = performance.now();
      const response = await fetch(`${url(edge)}${path}`);
      const body = Buffer.from(await response.arrayBuffer());
      if (!response.ok) throw new Error(`${path}: ${response.status} ${body.toString().slice(0, 200)}`);
      // 0.1 ms: the loopback fetches take about a millisecond.
      return { ms: round(performance.now() - started, 1), bytes: body.length };
    };
    const part = { direct: [] as number[], forwarded: [] as number[] };
    const segment = { direct: [] as number[], forwarded: [] as number[] };
    const segmentBytes: number[] = [];
    const reloadExtra: number[] = [];
    for (let i = 0; i < options.samples; i++) {
      const text = await playlist();
      const parts = [...text.matchAll(/#EXT-X-PART:[^\n]*URI="(part\d+\.\d+\.m4s\?t=[^"]+)"/g)];
      const segments = [...text.matchAll(/^(seg\d+\.m4s\?t=\S+)$/gm)];
      const partPath = `${base}${parts.at(-1)?.[1]}`;
      const segmentPath = `${base}${segments.at(-1)?.[1]}`;
      // Alternate which goes first: neither profits from the other's warm caches.
      const order = i % 2 === 0 ? (['edge-a', 'edge-b'] as const) : (['edge-b', 'edge-a'] as const);
      for (const edge of order) {
        const key = edge === 'edge-a' ? 'direct' : 'forwarded';
        part[key].push((await timed(edge, partPath)).ms);
        const fetched = await timed(edge, segmentPath);
        segment[key].push(fetched.ms);
        if (edge === 'edge-a') segmentBytes.push(fetched.bytes);
      }
      const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s\?/.exec(text);
      if (hint) {
        const reload = `${mediaPath}&_HLS_msn=${hint[1]}&_HLS_part=${hint[2]}`;
        const [direct, forwarded] = await Promise.all([timed('edge-a', reload), timed('edge-b', reload)]);
        reloadExtra.push(round(forwarded.ms - direct.ms, 1));
      }
    }
    return {
      settings: {
        source: `${size.width}x${size.height}@30 VP8 (libwebrtc) → H.264 LL-HLS`,
        samples: options.samples,
      },
      partMs: { direct: summarize(part.direct), forwarded: summarize(part.forwarded) },
      segmentMs: { direct: summarize(segment.direct), forwarded: summarize(segment.forwarded) },
      blockingReloadExtraMs: summarize(reloadExtra),
      segmentBytes: summarize(segmentBytes),
    };
  } finally {
    publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}
