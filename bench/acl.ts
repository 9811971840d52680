import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster } from '../scripts/harness/cluster.js';
import { postSdp, TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { round, type Summary, summarize } from './stats.js';

/**
 * Access control on a CDN of one origin and two edges (Redis, one process each):
 *
 *  - admission latency: WHEP POST → 201 at a steady request rate, for a public stream and for a
 *    protected one with a valid key (each session is deleted right after: admission is the
 *    answer, the session need not connect);
 *  - revocation cut-off: N libwebrtc viewers admitted with one key, spread over both edges, each
 *    through ICE and DTLS and decoding frames; the key is removed through the origin's REST API.
 *    Measured per trial, from the REST call: until both edges report no session left (polled
 *    back to back: the server-side close), and until the last frame the last viewer decoded
 *    (the client side: media stops at once, while libwebrtc reports the connection down only
 *    seconds later, when ICE consent fails).
 */

const whepOffer = readFileSync(new URL('../test/fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const ADMIN_TOKEN = 'bench-admin-token-0123456789';

export interface AclBenchResult {
  admission: {
    public: Summary;
    protected: Summary;
    ratioP50: number;
    /** Absent when either sample is too small to have a p99. */
    ratioP99?: number;
    ratePerSecond: number;
  };
  revocation: {
    /** REST call → both edges report no session (the last session closed, server side). */
    serverClosedMs: Summary;
    /** REST call → the last frame decoded by the last viewer still receiving (client side). */
    lastFrameMs: Summary;
    viewersPerTrial: number;
    edges: number;
    trials: number;
  };
}

export async function runAclBench(options: {
  seconds: number;
  viewers: number;
  trials: number;
}): Promise<AclBenchResult> {
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, { ADMIN_TOKEN, LOG_LEVEL: 'warn' });
  const publisher = new TestPublisher({ width: 320, height: 240 });
  try {
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'bench' },
      { id: 'edge-1', role: 'edge', region: 'bench', env: { REGIONAL_RELAY: 'false' } },
      { id: 'edge-2', role: 'edge', region: 'bench', env: { REGIONAL_RELAY: 'false' } },
    );
    const url = (id: string) => cluster.node(id).baseUrl;
    const api = async (method: string, path: string, body?: unknown) => {
      const response = await fetch(`${url('origin')}${path}`, {
        method,
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    };
    if ((await publisher.publish(url('origin'), 'public')).status !== 201) throw new Error('WHIP failed');
    const protectedPublisher = new TestPublisher({ width: 320, height: 240 });
    await api('PUT', '/api/v1/streams/paid/acl', { keys: [{ id: 'bench', key: 'bench-key-0123456789' }] });
    if ((await protectedPublisher.publish(url('origin'), 'paid')).status !== 201)
      throw new Error('WHIP failed');
    await sleep(1000);

    // Admission latency, alternating public and protected requests at a steady rate.
    const ratePerSecond = 20;
    const latencies = { public: [] as number[], protected: [] as number[] };
    const end = Date.now() + options.seconds * 1000;
    for (let i = 0; Date.now() < end; i++) {
      const kind = i % 2 === 0 ? 'public' : 'protected';
      const start = performance.now();
      const played = await postSdp(
        `${url('edge-1')}/whep/${kind === 'public' ? 'public' : 'paid'}`,
        whepOffer,
        kind === 'protected' ? { Authorization: 'Bearer bench-key-0123456789' } : {},
      );
      const elapsed = performance.now() - start;
      if (played.status !== 201) throw new Error(`WHEP ${kind}: ${played.status} ${played.body}`);
      if (i >= 10) latencies[kind].push(Math.round(elapsed * 100) / 100); // after warm-up (relays up)
      await fetch(`${url('edge-1')}${played.headers.get('location')}`, { method: 'DELETE' });
      await sleep(Math.max(0, 1000 / ratePerSecond - elapsed));
    }
    protectedPublisher.close();

    const revocation = await measureRevocation(cluster, api, options);

    const pub = summarize(latencies.public);
    const prot = summarize(latencies.protected);
    return {
      admission: {
        public: pub,
        protected: prot,
        ratioP50: round(prot.p50 / pub.p50, 2),
        // Only when both samples are large enough to have a p99 (see stats.ts).
        ...(prot.p99 !== undefined && pub.p99 !== undefined
          ? { ratioP99: round(prot.p99 / pub.p99, 2) }
          : {}),
        ratePerSecond,
      },
      revocation,
    };
  } finally {
    publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}

/**
 * Per trial: a fresh key on the public stream (which makes it protected), `viewers` real viewers
 * admitted with it on both edges and decoding, then the key removed.
 */
async function measureRevocation(
  cluster: TestCluster,
  api: (method: string, path: string, body?: unknown) => Promise<void>,
  options: { viewers: number; trials: number },
): Promise<AclBenchResult['revocation']> {
  const edges = ['edge-1', 'edge-2'];
  const serverClosed: number[] = [];
  const lastFrame: number[] = [];
  for (let trial = 0; trial < options.trials; trial++) {
    const key = `trial-${trial}-key-0123456789`;
    await api('PUT', '/api/v1/streams/public/acl', { keys: [{ id: `t${trial}`, key }] });
    await sleep(100);
    const viewers = Array.from({ length: options.viewers }, () => new TestViewer());
    try {
      await Promise.all(
        viewers.map(async (viewer, index) => {
          const played = await viewer.play(cluster.node(edges[index % 2]!).baseUrl, 'public', {
            key,
            audio: false,
          });
          if (played.status !== 201)
            throw new Error(`WHEP in trial ${trial}: ${played.status} ${played.body}`);
          await viewer.waitForFrames(10, 30_000);
        }),
      );
      const sessions = await sessionsOn(cluster, edges);
      if (sessions !== options.viewers)
        throw new Error(`${sessions} sessions on the edges, not ${options.viewers}`);

      const removedAt = performance.now();
      const removedAtWall = Date.now(); // TestViewer.lastFrameAt is wall-clock time
      await api('DELETE', `/api/v1/streams/public/acl/keys/t${trial}`);
      while ((await sessionsOn(cluster, edges)) > 0) {
        if (performance.now() - removedAt > 10_000) throw new Error('sessions not closed within 10 s');
      }
      serverClosed.push(Math.round(performance.now() - removedAt));
      await mediaStopped(viewers);
      lastFrame.push(Math.max(...viewers.map((viewer) => viewer.lastFrameAt!)) - removedAtWall);
    } finally {
      for (const viewer of viewers) viewer.close();
    }
    await api('DELETE', '/api/v1/streams/public/acl');
  }
  return {
    serverClosedMs: summarize(serverClosed),
    lastFrameMs: summarize(lastFrame),
    viewersPerTrial: options.viewers,
    edges: edges.length,
    trials: options.trials,
  };
}

async function sessionsOn(cluster: TestCluster, edges: string[]): Promise<number> {
  const dumps = await Promise.all(edges.map((edge) => cluster.dump(edge)));
  return dumps.reduce((sum, dump) => sum + dump.sessions, 0);
}

/**
 * Waits until no viewer has decoded a frame for a second (far longer than a frame interval or
 * the jitter buffer): their lastFrameAt is then final. Throws if one keeps playing.
 */
async function mediaStopped(viewers: TestViewer[]): Promise<void> {
  const quietMs = 1000;
  const deadline = Date.now() + 10_000;
  while (viewers.some((viewer) => Date.now() - viewer.lastFrameAt! < quietMs)) {
    if (Date.now() > deadline) throw new Error('a viewer still decodes frames 10 s after revocation');
    await sleep(100);
  }
}
