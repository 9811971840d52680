/**
 * Redis high availability (issue 15): a CDN on a Sentinel-managed Redis — a primary, two replicas
 * and three Sentinels (Debian's redis-server and redis-sentinel) — whose primary is killed while
 * viewers play and ACLs change. Viewers keep playing; no acknowledged ACL write is lost or
 * applied out of order (ACL writes wait for a replica); a key revoked before the failover stays
 * revoked; the registry comes back with one owner per stream. Real node processes and peers.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { ClusterKeys, createRedis, StreamRecordSchema } from '../../media-node/contract/redis.js';
import { createLogger } from '../../operator/src/logger.js';
import { ClusterReader } from '../../operator/src/redis/ClusterReader.js';
import { TestCluster } from '../../scripts/harness/cluster.js';
import { eventually, sleep } from '../../scripts/harness/node.js';
import { postSdp, TestPublisher, TestViewer } from '../../scripts/harness/peers.js';
import { type SentinelRedis, startSentinelRedis } from '../../scripts/harness/redis-sentinel.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const churnKey = (index: number) => `churn-key-value-${String(index).padStart(6, '0')}`;

describe('a CDN on Sentinel-managed Redis, its primary killed mid-run', () => {
  let sentinel: SentinelRedis;
  let cluster: TestCluster;
  const peers: { close(): void }[] = [];
  const url = (id: string) => cluster.node(id).baseUrl;
  const keys = new ClusterKeys();

  beforeAll(async () => {
    sentinel = await startSentinelRedis();
    // Every test client is 127.0.0.1: failed key attempts must not hit the per-client limit.
    cluster = new TestCluster(sentinel.url, {
      ADMIN_TOKEN,
      RELAY_LINGER_MS: '1500',
      ACL_FAILURES_PER_CLIENT: '1000',
    });
    await cluster.add(
      { id: 'origin-1', role: 'origin', region: 'a' },
      { id: 'origin-2', role: 'origin', region: 'a' },
      { id: 'edge-1', role: 'edge', region: 'a' },
      { id: 'edge-2', role: 'edge', region: 'a' },
    );
  }, 90_000);
  afterEach(() => {
    for (const peer of peers.splice(0)) peer.close();
  });
  afterAll(async () => {
    await cluster?.stopAll();
    await sentinel?.stop();
  });

  const publisher = () => {
    const peer = new TestPublisher();
    peers.push(peer);
    return peer;
  };
  const viewer = () => {
    const peer = new TestViewer();
    peers.push(peer);
    return peer;
  };
  /** The ACL REST API of origin-1 (writes go through the media node's ACL store). */
  async function api(method: string, path: string, body?: unknown) {
    const response = await fetch(`${url('origin-1')}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${ADMIN_TOKEN}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }
  /** WHEP status with `key`: 403 refused by the ACL; 201 (or 404 when not live) admitted. */
  const whep = async (edge: string, stream: string, key: string) =>
    (await postSdp(`${url(edge)}/whep/${stream}`, whepOffer, { Authorization: `Bearer ${key}` })).status;
  const withRedis = async <T>(use: (redis: ReturnType<typeof createRedis>) => Promise<T>): Promise<T> => {
    const redis = createRedis(sentinel.url);
    redis.on('error', () => undefined);
    try {
      return await use(redis);
    } finally {
      redis.disconnect();
    }
  };

  it('refuses to acknowledge an ACL write that no replica has (a failover could lose it)', async () => {
    const primary = await sentinel.primaryPort();
    const paused = sentinel
      .dataUrls()
      .map((data) => Number(new URL(data).port))
      .filter((port) => port !== primary);
    expect(paused).toHaveLength(2);
    for (const port of paused) sentinel.pause(port);
    try {
      const refused = await api('PUT', '/api/v1/streams/unreplicated/acl', {
        keys: [{ id: 'a', key: 'key-value-00000aa' }],
      });
      expect(refused.status).toBe(503);
      expect(refused.body.message).toMatch(/on 0 of 1 replicas.*not acknowledged, write it again/);
    } finally {
      for (const port of paused) sentinel.resume(port);
    }
    const written = await api('PUT', '/api/v1/streams/unreplicated/acl', {
      keys: [{ id: 'a', key: 'key-value-00000aa' }],
    });
    expect(written.status).toBe(200);
  }, 30_000);

  it('keeps viewers playing, every acknowledged ACL write, a revoked key revoked and one owner per stream', async () => {
    const paidPublisher = publisher();
    expect((await paidPublisher.publish(url('origin-1'), 'paid')).status).toBe(201);
    const freePublisher = publisher();
    expect((await freePublisher.publish(url('origin-2'), 'free')).status).toBe(201);
    const granted = await api('PUT', '/api/v1/streams/paid/acl', {
      keys: [
        { id: 'ok', key: 'key-value-0000ok0' },
        { id: 'rev', key: 'key-value-000rev0' },
      ],
    });
    expect(granted.status).toBe(200);
    const onEdge1 = viewer();
    expect((await onEdge1.play(url('edge-1'), 'paid', { key: 'key-value-0000ok0' })).status).toBe(201);
    const revokedViewer = viewer();
    expect((await revokedViewer.play(url('edge-2'), 'paid', { key: 'key-value-000rev0' })).status).toBe(201);
    const onEdge2 = viewer();
    expect((await onEdge2.play(url('edge-2'), 'free')).status).toBe(201);
    await Promise.all([onEdge1, revokedViewer, onEdge2].map((v) => v.waitForFrames(10)));

    // Revoked (acknowledged: on a replica too) just before the failover.
    expect((await api('DELETE', '/api/v1/streams/paid/acl/keys/rev')).status).toBe(200);
    await revokedViewer.waitForDisconnect();
    const claimsBefore = await withRedis((redis) => redis.mget(keys.stream('paid'), keys.stream('free')));
    // The operator reads the registry through the Sentinels too.
    const reader = new ClusterReader(sentinel.url, keys.prefix, createLogger('silent'));
    expect((await reader.snapshot()).nodes).toHaveLength(4);

    // ACL writes go on through the failover: one key at a time replaces the last.
    let attempted = -1;
    let acknowledged = -1;
    let writing = true;
    /** Writes not acknowledged, with the answer: what a failure reports. */
    const refusals: string[] = [];
    const writes = (async () => {
      for (let index = 0; writing; index++) {
        attempted = index;
        const result = await api('PUT', '/api/v1/streams/churn/acl', {
          keys: [{ id: `w${index}`, key: churnKey(index) }],
        }).catch((error: Error) => ({ status: 0, body: error.message }));
        if (result.status === 200) acknowledged = index;
        else refusals.push(`w${index}: ${result.status} ${JSON.stringify(result.body)}`);
        await sleep(50);
      }
    })();
    await sleep(500);
    const acknowledgedBeforeKill = acknowledged;
    expect(acknowledgedBeforeKill).toBeGreaterThanOrEqual(0);
    const oldPrimary = await sentinel.killPrimary();
    await sentinel.waitForFailover(oldPrimary);
    // Writes are acknowledged again once the nodes reach the new primary.
    const resumed = await eventually(
      () => acknowledged >= attempted - 1 && acknowledged > acknowledgedBeforeKill + 5,
      30_000,
    );
    expect({ resumed, refusals: resumed ? [] : refusals.slice(-5) }).toEqual({ resumed: true, refusals: [] });
    writing = false;
    await writes;

    // Viewers played through it, on their sessions.
    for (const v of [onEdge1, onEdge2]) {
      await v.waitForFrames(v.framesWithCode + 30);
      expect(v.pc.connectionState).toBe('connected');
    }

    // Every node is registered again; each stream has exactly the owner it had.
    expect(
      await eventually(async () => {
        const states = await Promise.all(
          ['origin-1', 'origin-2', 'edge-1', 'edge-2'].map(
            async (id) => (await fetch(`${url(id)}/readyz`)).status,
          ),
        );
        return states.every((status) => status === 200);
      }, 20_000),
    ).toBe(true);
    const claimsAfter = await withRedis((redis) => redis.mget(keys.stream('paid'), keys.stream('free')));
    expect(claimsAfter.map((value) => StreamRecordSchema.parse(JSON.parse(value ?? '{}')).claimId)).toEqual(
      claimsBefore.map((value) => StreamRecordSchema.parse(JSON.parse(value ?? '{}')).claimId),
    );
    expect((await publisher().publish(url('origin-2'), 'paid')).status).toBe(409);
    expect(
      await eventually(
        async () => (await reader.snapshot().catch(() => undefined))?.nodes.length === 4,
        10_000,
      ),
    ).toBe(true);
    reader.close();
    expect((await cluster.dump('origin-1')).streams).toContain('paid');
    expect((await cluster.dump('origin-2')).streams).toContain('free');

    // No acknowledged write lost or reordered: the store holds the last acknowledged key (or a
    // later attempt's, whose answer did not come), and both edges admit exactly that one.
    const stored = await withRedis((redis) => redis.get(keys.aclRecord('churn')));
    const latest = Number(/"id":"w(\d+)"/.exec(stored ?? '')?.[1]);
    console.log(
      `ACL writes through the failover: ${attempted + 1} attempted, last acknowledged w${acknowledged}, stored w${latest}`,
    );
    expect(latest).toBeGreaterThanOrEqual(acknowledged);
    expect(latest).toBeLessThanOrEqual(attempted);
    for (const edge of ['edge-1', 'edge-2']) {
      // The answers seen, so that a failure says what the edge answered instead.
      const answers: number[] = [];
      const admitted = await eventually(async () => {
        answers.push(await whep(edge, 'churn', churnKey(latest)));
        return answers.at(-1) === 404;
      }, 5000);
      expect(`${edge}: ${admitted ? 'admitted' : `answered ${[...new Set(answers)].join(', ')}`}`).toBe(
        `${edge}: admitted`,
      );
      expect(await whep(edge, 'churn', churnKey(latest - 1))).toBe(403);
      // The key revoked before the failover stays revoked; the other one still opens the stream.
      expect(await whep(edge, 'paid', 'key-value-000rev0')).toBe(403);
      expect(await whep(edge, 'paid', 'key-value-0000ok0')).toBe(201);
    }

    // And the CDN takes new work.
    const later = publisher();
    expect((await later.publish(url('origin-2'), 'after')).status).toBe(201);
    const lateViewer = viewer();
    expect((await lateViewer.play(url('edge-1'), 'after')).status).toBe(201);
    await lateViewer.waitForFrames(5);
    await sentinel.restartKilled();
  }, 120_000);
});
