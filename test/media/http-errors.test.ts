import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type RunningNode, startNode } from '../../scripts/harness/node.js';
import { postSdp, TestPublisher } from '../../scripts/harness/peers.js';

const libwebrtcOffer = readFileSync(new URL('../fixtures/libwebrtc-whip-offer.sdp', import.meta.url), 'utf8');
const vp9OnlyOffer = readFileSync(new URL('../fixtures/obs-h264-whip-offer.sdp', import.meta.url), 'utf8')
  .replace('m=audio 9 UDP/TLS/RTP/SAVPF 111', 'm=audio 9 UDP/TLS/RTP/SAVPF 0')
  .replace('a=rtpmap:111 opus/48000/2', 'a=rtpmap:0 PCMU/8000')
  .replace('m=video 9 UDP/TLS/RTP/SAVPF 96', 'm=video 9 UDP/TLS/RTP/SAVPF 98')
  .replace('a=rtpmap:96 H264/90000', 'a=rtpmap:98 VP9/90000');

/** Every router/transport the node's workers hold, from the workers' own dumps. */
async function mediasoupObjects(running: RunningNode): Promise<{ routers: number; transports: number }> {
  let routers = 0;
  let transports = 0;
  for (const worker of running.node.pool.workers) {
    const dump = await worker.worker.dump();
    routers += dump.routerIds.length;
    transports += (await worker.webRtcServer.dump()).webRtcTransportIds.length;
  }
  return { routers, transports };
}

describe('WHIP/WHEP HTTP contract and error cases', () => {
  let running: RunningNode;
  const TOKEN = 'publish-secret';

  beforeAll(async () => {
    running = await startNode({ PUBLISH_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await running.close();
  });

  const whip = (stream: string, body: string, headers: Record<string, string> = {}) =>
    postSdp(`${running.baseUrl}/whip/${stream}`, body, { Authorization: `Bearer ${TOKEN}`, ...headers });

  it('requires the publish token: 401 with a Bearer challenge when missing or wrong', async () => {
    const missing = await postSdp(`${running.baseUrl}/whip/secure`, libwebrtcOffer);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(JSON.parse(missing.body).message).toBe('missing bearer token');
    const wrong = await whip('secure', libwebrtcOffer, { Authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body).message).toBe('invalid bearer token');
  });

  it.each([
    ['a space', 'bad%20name'],
    ['a slash-free but too long name', 'x'.repeat(129)],
    ['a forbidden character', 'semi%3Bcolon'],
  ])('rejects a stream name with %s as 400', async (_label, name) => {
    const result = await whip(name, libwebrtcOffer);
    expect(result.status).toBe(400);
    expect(JSON.parse(result.body).message).toMatch(/stream name must be 1-128 characters/);
  });

  it('rejects malformed SDP as 400 with a reason', async () => {
    const result = await whip('malformed', 'this is not sdp');
    expect(result.status).toBe(400);
    expect(JSON.parse(result.body).message).toMatch(/not an SDP offer/);
  });

  it('rejects an offer without a supported codec as 422 naming the supported ones', async () => {
    const result = await whip('vp9only', vp9OnlyOffer);
    expect(result.status).toBe(422);
    expect(JSON.parse(result.body).message).toMatch(/no supported codec.*Opus.*VP8.*H\.264/);
  });

  it('rejects a body over 64 KiB as 413', async () => {
    const result = await whip('huge', `${libwebrtcOffer}a=x-padding:${'x'.repeat(70 * 1024)}\r\n`);
    expect(result.status).toBe(413);
  });

  it('rejects a non-SDP Content-Type as 415', async () => {
    const response = await fetch(`${running.baseUrl}/whip/json`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ sdp: libwebrtcOffer }),
    });
    expect(response.status).toBe(415);
    expect((await response.json()).message).toMatch(/application\/sdp/);
  });

  it('answers 409 to a second publisher of a live stream', async () => {
    const publisher = new TestPublisher({ token: TOKEN });
    try {
      expect((await publisher.publish(running.baseUrl, 'taken')).status).toBe(201);
      const second = new TestPublisher({ token: TOKEN });
      try {
        const result = await second.publish(running.baseUrl, 'taken');
        expect(result.status).toBe(409);
        expect(JSON.parse(result.body).message).toMatch(/already being published/);
      } finally {
        second.close();
      }
      expect(await publisher.unpublish(running.baseUrl)).toBe(200);
    } finally {
      publisher.close();
    }
  });

  it('answers 404 to WHEP for a stream that is not live, and to unknown sessions', async () => {
    const play = await postSdp(`${running.baseUrl}/whep/nobody-here`, libwebrtcOffer);
    expect(play.status).toBe(404);
    expect(JSON.parse(play.body).message).toMatch(/not live/);
    const unknown = await fetch(`${running.baseUrl}/whep/nobody-here/8c1f1f53-6f3e-4a51-9a6e-1f0f3b1c2d3e`, {
      method: 'DELETE',
    });
    expect(unknown.status).toBe(404);
    const garbage = await fetch(`${running.baseUrl}/whip/x/not-a-uuid`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
    expect(garbage.status).toBe(404);
  });

  it('answers CORS preflight with Accept-Post and exposes Location to browsers', async () => {
    const response = await fetch(`${running.baseUrl}/whep/any`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://player.example',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,authorization',
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('accept-post')).toBe('application/sdp');
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-allow-methods')).toMatch(/POST/);
    expect(response.headers.get('access-control-allow-headers')).toMatch(/Authorization/i);
    const post = await fetch(`${running.baseUrl}/whep/any`, {
      method: 'POST',
      headers: { Origin: 'https://player.example', 'Content-Type': 'application/sdp' },
      body: libwebrtcOffer,
    });
    expect(post.headers.get('access-control-expose-headers')).toMatch(/Location/);
  });

  it('answers PATCH (trickle ICE) with 405', async () => {
    const response = await fetch(`${running.baseUrl}/whip/any/8c1f1f53-6f3e-4a51-9a6e-1f0f3b1c2d3e`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' },
      body: 'a=end-of-candidates',
    });
    expect(response.status).toBe(405);
  });

  it('leaves no router or transport behind after all the refusals above', async () => {
    expect(running.node.sessions.size).toBe(0);
    expect(await eventually(async () => (await mediasoupObjects(running)).routers === 0, 5000)).toBe(true);
    expect(await mediasoupObjects(running)).toEqual({ routers: 0, transports: 0 });
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`${running.baseUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${running.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, workers: 2 });
    const metrics = await (await fetch(`${running.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^rtccdn_http_requests_total\{protocol="whip",method="POST",status="401"\} 2$/m);
    expect(metrics).toMatch(/^rtccdn_http_requests_total\{protocol="whip",method="POST",status="409"\} 1$/m);
    expect(metrics).toMatch(/^rtccdn_workers 2$/m);
    expect(metrics).toMatch(/^rtccdn_publishers 0$/m);
    expect(metrics).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });
});
