import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { deriveSigningKey, signRequest } from '../../media-node/contract/internal-api.js';
import { TEST_CLUSTER_SECRET, workerTotal } from '../../scripts/harness/cluster.js';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually, sleep } from '../../scripts/harness/node.js';
import { postSdp, type TestViewer } from '../../scripts/harness/peers.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');

/**
 * A CDN on loopback: Redis, two origins and three edges in two regions, each node its own OS
 * process with a real mediasoup worker; publishers and viewers are real libwebrtc peers.
 */
describe('multi-node CDN (origins, edges, regions, Redis)', () => {
  const fixture = useTestCluster(
    { RELAY_LINGER_MS: '1500', FANOUT_LINGER_MS: '500' },
    { id: 'origin-1', role: 'origin', region: 'a' },
    { id: 'origin-2', role: 'origin', region: 'b' },
    { id: 'edge-a1', role: 'edge', region: 'a' },
    { id: 'edge-a2', role: 'edge', region: 'a' },
    { id: 'edge-b1', role: 'edge', region: 'b' },
  );
  const { url, publisher, viewer } = fixture;

  it('plays a stream published on an origin from every edge; the origin sends one copy per region', async () => {
    const pub = publisher({ audio: true });
    expect((await pub.publish(url('origin-1'), 'live')).status).toBe(201);

    // Sequential joins make the relay tree deterministic: edge-a1 takes region a's relay lease.
    const viewers: TestViewer[] = [];
    for (const edge of ['edge-a1', 'edge-a2', 'edge-b1']) {
      const v = viewer();
      const played = await v.play(url(edge), 'live');
      expect(played.status).toBe(201);
      await v.waitForFrames(5);
      viewers.push(v);
    }
    for (const v of viewers) expect(v.audioTracks).toBe(1);

    const origin = await fixture.cluster.dump('origin-1');
    expect(origin.relaysOut).toBe(2); // edge-a1 (for region a) and edge-b1 (region b)
    const [a1, a2, b1] = await Promise.all(
      ['edge-a1', 'edge-a2', 'edge-b1'].map((id) => fixture.cluster.dump(id)),
    );
    expect(a1!.relayedStreams).toEqual([expect.objectContaining({ name: 'live', upstream: 'origin-1' })]);
    expect(a1!.relaysOut).toBe(1);
    expect(a2!.relayedStreams).toEqual([expect.objectContaining({ name: 'live', upstream: 'edge-a1' })]);
    expect(b1!.relayedStreams).toEqual([expect.objectContaining({ name: 'live', upstream: 'origin-1' })]);
    expect(await pub.unpublish(url('origin-1'))).toBe(200);
  }, 60_000);

  it('refuses WHIP on an edge and WHEP on an origin with 421 naming the role', async () => {
    const onEdge = await postSdp(`${url('edge-a1')}/whip/x`, whepOffer);
    expect(onEdge.status).toBe(421);
    expect(JSON.parse(onEdge.body).message).toMatch(/this node is an edge.*publish to an origin/);
    const onOrigin = await postSdp(`${url('origin-1')}/whep/x`, whepOffer);
    expect(onOrigin.status).toBe(421);
    expect(JSON.parse(onOrigin.body).message).toMatch(/this node is an origin.*play from an edge/);
  });

  it('refuses unauthenticated, wrongly signed and replayed internal API calls', async () => {
    const internal = fixture.cluster.node('origin-1').internalUrl;
    const path = '/internal/v1/relays';
    const body = JSON.stringify({
      stream: 'live',
      nodeId: 'intruder',
      pipe: {
        ip: '127.0.0.1',
        port: 9,
        srtpParameters: { cryptoSuite: 'AEAD_AES_256_GCM', sealedKey: 'AA==' },
      },
    });
    const call = (authorization?: string) =>
      fetch(`${internal}${path}`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          ...(authorization ? { Authorization: authorization } : {}),
        },
        body,
      });
    const unauthenticated = await call();
    expect(unauthenticated.status).toBe(401);
    expect((await unauthenticated.json()).message).toMatch(/unauthenticated internal call/);
    const sign = (secret: string) =>
      signRequest(deriveSigningKey(secret), { method: 'POST', path, target: 'origin-1', body }).authorization;
    expect((await call(sign('not-the-cluster-secret'))).status).toBe(401);
    // A correctly signed call passes authentication (then fails on content: no such stream).
    const signed = sign(TEST_CLUSTER_SECRET);
    expect((await call(signed)).status).toBe(404);
    const replayed = await call(signed);
    expect(replayed.status).toBe(401);
    expect((await replayed.json()).message).toMatch(/replayed/);
  });

  it('refuses a second origin for a live name with 409 naming the holder', async () => {
    const first = publisher();
    expect((await first.publish(url('origin-1'), 'unique')).status).toBe(201);
    const second = publisher();
    const refused = await second.publish(url('origin-2'), 'unique');
    expect(refused.status).toBe(409);
    expect(JSON.parse(refused.body).message).toMatch(/already being published on origin-1/);
    expect((await fixture.cluster.dump('origin-2')).streams).not.toContain('unique');
    expect(await first.unpublish(url('origin-1'))).toBe(200);
  });

  it('opens exactly one relay when many first viewers arrive at a cold edge at once', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-2'), 'burst')).status).toBe(201);
    const results = await Promise.all(
      Array.from({ length: 8 }, () => postSdp(`${url('edge-b1')}/whep/burst`, whepOffer)),
    );
    expect(results.map((result) => result.status)).toEqual(Array(8).fill(201));
    expect((await fixture.cluster.dump('origin-2')).relaysOut).toBe(1);
    expect(
      (await fixture.cluster.dump('edge-b1')).relayedStreams.filter((relayed) => relayed.name === 'burst'),
    ).toHaveLength(1);
    for (const result of results) {
      const response = await fetch(`${url('edge-b1')}${result.headers.get('location')}`, {
        method: 'DELETE',
      });
      expect(response.status).toBe(200);
    }
    expect(await pub.unpublish(url('origin-2'))).toBe(200);
  }, 30_000);

  it('closes viewers on every edge when the publisher unpublishes; the stream is then 404', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-1'), 'ending')).status).toBe(201);
    const viewers = [viewer(), viewer()];
    await viewers[0]!.play(url('edge-a1'), 'ending');
    await viewers[1]!.play(url('edge-b1'), 'ending');
    await Promise.all(viewers.map((v) => v.waitForFrames(5)));

    expect(await pub.unpublish(url('origin-1'))).toBe(200);
    for (const edge of ['edge-a1', 'edge-b1']) {
      expect(await eventually(async () => (await fixture.cluster.dump(edge)).sessions === 0, 5000)).toBe(
        true,
      );
    }
    expect((await postSdp(`${url('edge-a1')}/whep/ending`, whepOffer)).status).toBe(404);
    expect(await viewers[0]!.stop(url('edge-a1'))).toBe(404);
  }, 30_000);

  it('drains an edge on request: existing viewers keep playing, new ones get 503, readiness turns false', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-2'), 'draining')).status).toBe(201);
    const v = viewer();
    await v.play(url('edge-b1'), 'draining');
    await v.waitForFrames(5);
    const drain = (draining: boolean) =>
      fixture.cluster.client.request<{ draining: boolean; viewers: number }>(
        'POST',
        fixture.cluster.target('edge-b1'),
        '/internal/v1/drain',
        { draining },
      );
    expect(await drain(true)).toEqual({ draining: true, viewers: 1 });
    expect((await fetch(`${url('edge-b1')}/readyz`)).status).toBe(503);
    const refused = await postSdp(`${url('edge-b1')}/whep/draining`, whepOffer);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    await v.waitForFrames(v.framesWithCode + 10);
    expect(await drain(false)).toEqual({ draining: false, viewers: 1 });
    expect((await fetch(`${url('edge-b1')}/readyz`)).status).toBe(200);
    expect(await pub.unpublish(url('origin-2'))).toBe(200);
  }, 30_000);

  it('leaves no transport, router or relay behind after 200 viewer join/leave cycles', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-2'), 'churn')).status).toBe(201);
    const before = {
      edge: await fixture.cluster.dump('edge-b1'),
      origin: await fixture.cluster.dump('origin-2'),
    };
    for (let cycle = 0; cycle < 200; cycle++) {
      const played = await postSdp(`${url('edge-b1')}/whep/churn`, whepOffer);
      expect(played.status).toBe(201);
      const ended = await fetch(`${url('edge-b1')}${played.headers.get('location')}`, { method: 'DELETE' });
      expect(ended.status).toBe(200);
    }
    // One real viewer in the middle of it plays normally.
    const v = viewer();
    expect((await v.play(url('edge-b1'), 'churn')).status).toBe(201);
    await v.waitForFrames(5);
    expect(await v.stop(url('edge-b1'))).toBe(200);

    // After the relay linger, the edge is back where it started, and so is the origin.
    const settled = await eventually(async () => {
      const edge = await fixture.cluster.dump('edge-b1');
      const origin = await fixture.cluster.dump('origin-2');
      return (
        edge.relayedStreams.length === 0 &&
        workerTotal(edge, 'routers') === workerTotal(before.edge, 'routers') &&
        workerTotal(edge, 'transports') === workerTotal(before.edge, 'transports') &&
        origin.relaysOut === before.origin.relaysOut &&
        workerTotal(origin, 'transports') === workerTotal(before.origin, 'transports')
      );
    }, 10_000);
    const edge = await fixture.cluster.dump('edge-b1');
    expect({ settled, edge: edge.workers, relayed: edge.relayedStreams }).toEqual({
      settled: true,
      edge: before.edge.workers,
      relayed: [],
    });
    expect(await pub.unpublish(url('origin-2'))).toBe(200);
  }, 90_000);

  it('keeps viewers playing, without renegotiation, when their regional relay edge dies', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-1'), 'failover')).status).toBe(201);
    const onA1 = viewer();
    await onA1.play(url('edge-a1'), 'failover');
    await onA1.waitForFrames(5);
    const onA2 = viewer();
    await onA2.play(url('edge-a2'), 'failover');
    await onA2.waitForFrames(5);
    expect((await fixture.cluster.dump('edge-a2')).relayedStreams[0]?.upstream).toBe('edge-a1');

    fixture.cluster.kill('edge-a1');
    // edge-a2 moves to a new upstream (the origin, taking over the region's lease) ...
    expect(
      await eventually(
        async () => (await fixture.cluster.dump('edge-a2')).relayedStreams[0]?.upstream === 'origin-1',
        10_000,
      ),
    ).toBe(true);
    // ... and its viewer keeps decoding frames on the same peer connection.
    const framesAtSwitch = onA2.framesWithCode;
    await onA2.waitForFrames(framesAtSwitch + 30, 10_000);
    expect(onA2.pc.connectionState).toBe('connected');
    // The origin reaps its relay to the dead edge.
    expect(
      await eventually(async () => (await fixture.cluster.dump('origin-1')).relaysOut === 1, 10_000),
    ).toBe(true);
    expect(await pub.unpublish(url('origin-1'))).toBe(200);
  }, 60_000);

  it('closes viewers within 5 s when the origin dies, and plays again once republished on another origin', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-1'), 'resilient')).status).toBe(201);
    const v = viewer();
    await v.play(url('edge-b1'), 'resilient');
    await v.waitForFrames(5);

    const killedAt = Date.now();
    fixture.cluster.kill('origin-1');
    pub.close();
    expect(await eventually(async () => (await fixture.cluster.dump('edge-b1')).sessions === 0, 10_000)).toBe(
      true,
    );
    console.log(`edge closed the viewers ${Date.now() - killedAt} ms after the origin was killed`);
    expect((await postSdp(`${url('edge-b1')}/whep/resilient`, whepOffer)).status).toBe(404);

    const again = publisher();
    expect((await again.publish(url('origin-2'), 'resilient')).status).toBe(201);
    const late = viewer();
    expect((await late.play(url('edge-b1'), 'resilient')).status).toBe(201);
    await late.waitForFrames(5);
    await sleep(100);
    expect(await again.unpublish(url('origin-2'))).toBe(200);
  }, 60_000);
});
