import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster } from '../scripts/harness/cluster.js';
import { postSdp, TestPublisher } from '../scripts/harness/peers.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { type Summary, summarize } from './stats.js';

/**
 * Access control on a CDN of one origin and two edges (Redis, one process each):
 *
 *  - admission latency: WHEP POST → 201 at a steady request rate, for a public stream and for a
 *    protected one with a valid key (each session is deleted right after);
 *  - revocation cut-off: N sessions admitted with one key, spread over both edges; the key is
 *    removed through the origin's REST API; time until the last of them is closed (polling
 *    both edges every few ms), over several trials.
 */

const whepOffer = readFileSync(new URL('../test/fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const ADMIN_TOKEN = 'bench-admin-token-0123456789';

export interface AclBenchResult {
  admission: {
    public: Summary;
    protected: Summary;
    ratioP50: number;
    ratioP99: number;
    ratePerSecond: number;
  };
  revocation: { lastViewerCutMs: Summary; viewersPerTrial: number; edges: number; trials: number };
}

export async function runAclBench(options: {
  seconds: number;
  viewers: number;
  trials: number;
}): Promise<AclBenchResult> {
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, { ADMIN_TOKEN, LOG_LEVEL: 'warn', CONNECT_TIMEOUT_MS: '60000' });
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

    // Revocation cut-off.
    const cuts: number[] = [];
    for (let trial = 0; trial < options.trials; trial++) {
      const key = `trial-${trial}-key-0123456789`;
      await api('PUT', '/api/v1/streams/public/acl', { keys: [{ id: `t${trial}`, key }] });
      await sleep(100);
      const sessions = await Promise.all(
        Array.from({ length: options.viewers }, (_, index) =>
          postSdp(`${url(index % 2 === 0 ? 'edge-1' : 'edge-2')}/whep/public`, whepOffer, {
            Authorization: `Bearer ${key}`,
          }),
        ),
      );
      if (sessions.some((session) => session.status !== 201)) throw new Error('admission failed in trial');
      const removedAt = performance.now();
      await api('DELETE', `/api/v1/streams/public/acl/keys/t${trial}`);
      for (;;) {
        const [one, two] = await Promise.all([cluster.dump('edge-1'), cluster.dump('edge-2')]);
        if (one.sessions === 0 && two.sessions === 0) break;
        if (performance.now() - removedAt > 10_000) throw new Error('sessions not cut within 10 s');
      }
      cuts.push(Math.round(performance.now() - removedAt));
      await api('DELETE', '/api/v1/streams/public/acl');
    }

    const pub = summarize(latencies.public);
    const prot = summarize(latencies.protected);
    return {
      admission: {
        public: pub,
        protected: prot,
        ratioP50: Math.round((prot.p50 / pub.p50) * 100) / 100,
        ratioP99: Math.round((prot.p99 / pub.p99) * 100) / 100,
        ratePerSecond,
      },
      revocation: {
        lastViewerCutMs: summarize(cuts),
        viewersPerTrial: options.viewers,
        edges: 2,
        trials: options.trials,
      },
    };
  } finally {
    publisher.close();
    await cluster.stopAll();
    await redis.stop();
  }
}
