/**
 * What a stranger can make a node hold is bounded, with a clear answer (429 for a client's quota,
 * 503 for the node's) and a metric: sessions that never connect, rendition starts, payload-type
 * numberings per stream, open-ingest publishes, live streams. Per-stream series and protected
 * stream names are not served on the public port. Real mediasoup, FFmpeg and libwebrtc peers.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type RunningNode, sleep, startNode } from '../../scripts/harness/node.js';
import { postSdp, renumberPayloadTypes, TestPublisher, TestViewer } from '../../scripts/harness/peers.js';
import { rawRequest } from '../../scripts/harness/raw-http.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const whipOffer = readFileSync(new URL('../fixtures/libwebrtc-whip-offer.sdp', import.meta.url), 'utf8');
const PROFILES = JSON.stringify([
  { name: '360p', width: 640, height: 360, fps: 30, codec: 'VP8', bitrate: 500_000 },
  { name: '180p', width: 320, height: 180, fps: 15, codec: 'VP8', bitrate: 200_000 },
]);

describe('per-client and per-node limits (standalone node)', () => {
  let running: RunningNode;
  const peers: { close(): void }[] = [];
  /** A request as if from `client`: the node trusts X-Forwarded-For from loopback here. */
  const from = (client: string, headers: Record<string, string> = {}) => ({
    'X-Forwarded-For': client,
    ...headers,
  });
  const metric = async (name: string) =>
    (await (await fetch(`${running.internalUrl}/metrics`)).text())
      .split('\n')
      .filter((line) => line.startsWith(name));
  const publisher = () => {
    const created = new TestPublisher();
    peers.push(created);
    return created;
  };

  beforeAll(async () => {
    running = await startNode({
      ADMIN_TOKEN,
      PROFILES,
      TRUSTED_PROXIES: '127.0.0.1',
      CONNECT_TIMEOUT_MS: '1500',
      MAX_PENDING_SESSIONS_PER_CLIENT: '2',
      RENDITION_STARTS_PER_CLIENT: '1',
      MAX_NUMBERINGS_PER_STREAM: '1',
      MAX_PUBLISHES_PER_CLIENT: '3',
      MAX_STREAMS: '4',
      TRANSCODE_LINGER_MS: '60000',
    });
    // The stream most tests play, published from its own client.
    const source = new TestPublisher();
    peers.push(source);
    const published = await postSdp(
      `${running.baseUrl}/whip/live`,
      await source.createOffer(),
      from('192.0.2.1'),
    );
    expect(published.status).toBe(201);
    await source.applyAnswer(published.body);
  }, 30_000);
  afterEach(async () => {
    for (const peer of peers.splice(1)) peer.close();
  });
  afterAll(async () => {
    for (const peer of peers.splice(0)) peer.close();
    await running.close();
  });

  it('bounds the sessions a client holds that never connect, and reclaims them after CONNECT_TIMEOUT_MS', async () => {
    const offer = () => postSdp(`${running.baseUrl}/whep/live`, whepOffer, from('198.51.100.1'));
    expect((await offer()).status).toBe(201);
    expect((await offer()).status).toBe(201);
    const refused = await offer();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(JSON.parse(refused.body).message).toMatch(/still connecting/);
    // Another client is not affected.
    expect((await postSdp(`${running.baseUrl}/whep/live`, whepOffer, from('198.51.100.2'))).status).toBe(201);
    expect(await metric('rtccdn_limit_refusals_total{limit="pending-sessions"}')).toEqual([
      'rtccdn_limit_refusals_total{limit="pending-sessions"} 1',
    ]);
    // The node reclaims sessions that never connect; the client may try again.
    expect(
      await eventually(
        () =>
          ![...running.node.sessions.values()].some(
            (session) => session.protocol === 'whep' && !session.closed && session.streamName === 'live',
          ),
        5000,
      ),
    ).toBe(true);
    expect(
      await running.node.metrics.registry.getSingleMetricAsString('rtccdn_sessions_closed_total'),
    ).toMatch(/protocol="whep",reason="connect-timeout"\} 3/);
    expect((await offer()).status).toBe(201);
  }, 30_000);

  it('bounds the renditions a client starts, but not joining one that runs', async () => {
    const play = (profile: string, client: string) =>
      postSdp(`${running.baseUrl}/whep/live?profile=${profile}`, whepOffer, from(client));
    expect((await play('360p', '198.51.100.10')).status).toBe(201);
    const refused = await play('180p', '198.51.100.10');
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body).message).toMatch(/too many renditions/);
    // Joining the rendition that runs starts nothing.
    expect((await play('360p', '198.51.100.10')).status).toBe(201);
    expect([...running.node.transcoder!.jobs.keys()]).toEqual(['live~360p']);
  }, 30_000);

  it('bounds the payload-type numberings a stream serves besides the default', async () => {
    const firefox = renumberPayloadTypes(whepOffer, { 96: 120, 97: 124, 111: 109 });
    const other = renumberPayloadTypes(whepOffer, { 96: 98, 97: 99, 111: 110 });
    expect((await postSdp(`${running.baseUrl}/whep/live`, firefox, from('198.51.100.20'))).status).toBe(201);
    const refused = await postSdp(`${running.baseUrl}/whep/live`, other, from('198.51.100.21'));
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body).message).toMatch(/payload-type numberings/);
    // The default numbering and the one served already still work.
    expect((await postSdp(`${running.baseUrl}/whep/live`, whepOffer, from('198.51.100.22'))).status).toBe(
      201,
    );
    expect((await postSdp(`${running.baseUrl}/whep/live`, firefox, from('198.51.100.23'))).status).toBe(201);
  });

  it('bounds the streams an open-ingest client publishes, and the streams a node carries', async () => {
    const publish = async (stream: string, client: string) => {
      const created = publisher();
      const result = await postSdp(
        `${running.baseUrl}/whip/${stream}`,
        await created.createOffer(),
        from(client),
      );
      if (result.status === 201) await created.applyAnswer(result.body);
      return result;
    };
    expect((await publish('a1', '198.51.100.30')).status).toBe(201);
    expect((await publish('a2', '198.51.100.30')).status).toBe(201);
    expect((await publish('a3', '198.51.100.30')).status).toBe(201);
    const refused = await publish('a4', '198.51.100.30');
    expect(refused.status).toBe(429);
    // The node carries `live` and a1-a3: its limit of 4 is reached for everyone.
    const full = await publish('b1', '198.51.100.31');
    expect(full.status).toBe(503);
    expect(JSON.parse(full.body).message).toMatch(/maximum of 4 streams/);
    expect(await metric('rtccdn_limit_refusals_total{limit="publishes"}')).toHaveLength(1);
    expect(await metric('rtccdn_limit_refusals_total{limit="streams"}')).toHaveLength(1);
  }, 30_000);

  it('refuses an offer with more than two media sections with a 400 naming the limit', async () => {
    const threeSections = `${whipOffer.trimEnd()}\r\n${whipOffer
      .slice(whipOffer.indexOf('m=video'))
      .trimEnd()
      .replace(/a=mid:(\S+)/, 'a=mid:extra')}\r\n`;
    const result = await postSdp(`${running.baseUrl}/whip/many`, threeSections);
    expect(result.status).toBe(400);
    expect(JSON.parse(result.body).message).toMatch(/at most 2 are accepted/);
  });
});

describe('what the public port tells a stranger', () => {
  let running: RunningNode;
  const peers: { close(): void }[] = [];
  beforeAll(async () => {
    running = await startNode({ ADMIN_TOKEN });
  }, 30_000);
  afterAll(async () => {
    for (const peer of peers) peer.close();
    await running.close();
  });

  it('serves no metrics, lists only public streams, and removes a stream’s series when its viewers leave', async () => {
    for (const stream of ['open', 'premium']) {
      const publisher = new TestPublisher();
      peers.push(publisher);
      expect((await publisher.publish(running.baseUrl, stream)).status).toBe(201);
    }
    const put = await fetch(`${running.baseUrl}/api/v1/streams/premium/acl`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ keys: [{ id: 'k', key: 'premium-key-0123456789' }] }),
    });
    expect(put.status).toBe(200);
    expect((await fetch(`${running.baseUrl}/metrics`)).status).toBe(404);
    const names = async (base: string) =>
      ((await (await fetch(`${base}/api/v1/streams`)).json()) as { streams: { name: string }[] }).streams
        .map((stream) => stream.name)
        .sort();
    expect(await names(running.baseUrl)).toEqual(['open']);
    expect(await names(running.internalUrl)).toEqual(['open', 'premium']);

    const viewer = new TestViewer();
    peers.push(viewer);
    expect((await viewer.play(running.baseUrl, 'open')).status).toBe(201);
    await viewer.waitForFrames(3);
    const series = async () =>
      (await (await fetch(`${running.internalUrl}/metrics`)).text())
        .split('\n')
        .filter((line) => line.startsWith('rtccdn_viewers{'));
    expect(await series()).toEqual(['rtccdn_viewers{stream="open"} 1']);
    expect(await viewer.stop(running.baseUrl)).toBe(200);
    expect(await eventually(async () => (await series()).length === 0, 3000)).toBe(true);
  }, 30_000);

  it('logs and counts a %-encoded WHEP path as WHEP', async () => {
    const before = (await running.node.metrics.registry.getSingleMetricAsString('rtccdn_http_requests_total'))
      .split('\n')
      .find((line) => line.includes('protocol="whep",method="POST",status="404"'));
    const response = await rawRequest(running.baseUrl, 'POST', '/wh%65p/nothing-here', {
      headers: { 'Content-Type': 'application/sdp' },
      body: whepOffer,
    });
    expect(response.status).toBe(404);
    await sleep(50);
    const after = (await running.node.metrics.registry.getSingleMetricAsString('rtccdn_http_requests_total'))
      .split('\n')
      .find((line) => line.includes('protocol="whep",method="POST",status="404"'));
    expect(Number(after?.split(' ').at(-1))).toBe(Number(before?.split(' ').at(-1) ?? 0) + 1);
  });
});
