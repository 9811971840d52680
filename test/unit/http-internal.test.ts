/**
 * The internal port of a media node, in-process (fastify's inject): which routes need a
 * signature for this node, what a signed call may do, and that every answer to one is signed
 * for it — errors included. The media side is faked (support/fake-node.ts). The same attacks on
 * real node processes: test/security/internal-api.test.ts.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import type { InjectOptions } from 'fastify';
import { RtccdnError } from '../../media-node/contract/errors.js';
import {
  deriveSigningKey,
  RESPONSE_SIGNATURE_HEADER,
  signRequest,
  verifyResponse,
} from '../../media-node/contract/internal-api.js';
import { createInternalServer } from '../../media-node/src/http/internal.js';
import { fakeMediaNode } from './support/fake-node.js';

const SECRET = 'internal-test-cluster-secret';
const key = deriveSigningKey(SECRET);
const SELF = 'edge-a';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function internal(options: Parameters<typeof fakeMediaNode>[1] & { clustered?: boolean } = {}) {
  const { clustered = true, ...rest } = options;
  const fake = await fakeMediaNode(
    {},
    {
      ...rest,
      config: clustered ? { cluster: { clusterSecret: SECRET, nodeId: SELF } as never } : {},
    },
  );
  const app = await createInternalServer(fake.node);
  closers.push(
    () => fake.close(),
    () => app.close(),
  );
  return { app, fake };
}

/** A call signed for `target` (this node by default), and the nonce its answer must be signed with. */
function signed(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  body?: unknown,
  options: { target?: string; now?: number; headers?: Record<string, string> } = {},
): { request: InjectOptions; nonce: string } {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const { authorization, nonce } = signRequest(
    key,
    { method, path: url, target: options.target ?? SELF, body: text },
    options.now,
  );
  return {
    nonce,
    request: {
      method,
      url,
      headers: {
        authorization,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      ...(body === undefined ? {} : { payload: text }),
    },
  };
}

const isSignedFor = (
  response: { statusCode: number; body: string; headers: Record<string, unknown> },
  nonce: string,
) =>
  verifyResponse(
    key,
    nonce,
    response.statusCode,
    response.body,
    response.headers[RESPONSE_SIGNATURE_HEADER] as string | undefined,
  );

describe('internal port', () => {
  it('serves health, metrics and the full stream list without a signature', async () => {
    const { app } = await internal();
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/v1/streams' })).json()).toEqual({ streams: [] });
  });

  it('lists every live stream, protected ones included, and serves the metrics in Prometheus text', async () => {
    const { app, fake } = await internal({
      streams: [
        { name: 'free', producers: [] },
        {
          name: 'paid',
          producers: [{ kind: 'video', rtpParameters: { codecs: [{ mimeType: 'video/VP8' }] } }],
        },
      ],
      viewers: { paid: 2 },
    });
    await fake.access.store.update('paid', () => [{ id: 'k', hash: 'a'.repeat(64) }]);
    for (let tries = 0; fake.access.isPublic('paid') && tries < 500; tries++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(fake.access.isPublic('paid')).toBe(false);
    expect((await app.inject({ method: 'GET', url: '/api/v1/streams' })).json()).toEqual({
      streams: [
        { name: 'free', tracks: [], viewers: 0 },
        { name: 'paid', tracks: [{ kind: 'video', codec: 'video/VP8' }], viewers: 2 },
      ],
    });
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.headers['content-type']).toBe(fake.metrics.registry.contentType);
    expect(metrics.body).toContain('# TYPE rtccdn_admissions_total counter');
  });

  it('has no node-to-node routes on a standalone node', async () => {
    const { app } = await internal({ clustered: false });
    const { request } = signed('POST', '/internal/v1/drain', { draining: true });
    expect((await app.inject(request)).statusCode).toBe(404);
  });

  it('refuses unsigned, malformed, misaddressed, stale and tampered calls with 401 and a challenge', async () => {
    const { app, fake } = await internal();
    const refusedWith = async (request: InjectOptions, reason: string) => {
      const response = await app.inject(request);
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('RTCCDN-HMAC-SHA256');
      expect(response.json()).toMatchObject({
        code: 'UNAUTHENTICATED_CALL',
        message: `unauthenticated internal call: ${reason}`,
      });
      // Not signed: the caller must not take it for a member's answer.
      expect(response.headers[RESPONSE_SIGNATURE_HEADER]).toBeUndefined();
    };
    const body = { draining: true };
    const { request } = signed('POST', '/internal/v1/drain', body);
    const malformed = 'missing or malformed RTCCDN-HMAC-SHA256 authorization';
    await refusedWith({ ...request, headers: { 'content-type': 'application/json' } }, malformed);
    await refusedWith({ ...request, headers: { ...request.headers, authorization: 'Bearer x' } }, malformed);
    await refusedWith(
      signed('POST', '/internal/v1/drain', body, { target: 'edge-b' }).request,
      'request made for another node',
    );
    await refusedWith(
      signed('POST', '/internal/v1/drain', body, { now: Date.now() - 120_000 }).request,
      'request timestamp outside the allowed clock skew',
    );
    await refusedWith({ ...request, payload: JSON.stringify({ draining: false }) }, 'bad signature');
    await refusedWith({ ...request, url: '/internal/v1/drain?draining=false' }, 'bad signature');
    await refusedWith(
      { ...signed('DELETE', '/internal/v1/relays/r1').request, url: '/internal/v1/relays/r2' },
      'bad signature',
    );
    // Every route of the scope is guarded.
    for (const [method, url] of [
      ['GET', '/internal/v1/dump'],
      ['POST', '/internal/v1/relays'],
      ['DELETE', '/internal/v1/relays/r1'],
      ['POST', '/internal/v1/renditions'],
    ] as const)
      await refusedWith({ method, url }, malformed);
    expect(fake.drained).toEqual([]);
  });

  it('answers a signed call once, and signs its answer for that call', async () => {
    const { app, fake } = await internal();
    const { request, nonce } = signed('POST', '/internal/v1/drain', { draining: true });
    const response = await app.inject(request);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ draining: true, viewers: 7 });
    expect(isSignedFor(response, nonce)).toBe(true);
    expect(fake.drained).toEqual([true]);
    const replay = await app.inject(request);
    expect(replay.statusCode).toBe(401);
    expect(replay.json().message).toBe('unauthenticated internal call: replayed request');
    expect(fake.drained).toEqual([true]);
  });

  it('signs error answers to a signed call, and empty ones', async () => {
    const closed: [string, string][] = [];
    const { app } = await internal({
      relayServer: {
        close: (id: string, reason: string) => {
          closed.push([id, reason]);
          return id === 'r1';
        },
      },
    });
    const gone = signed('DELETE', '/internal/v1/relays/r2');
    const notFound = await app.inject(gone.request);
    expect(notFound.statusCode).toBe(404);
    expect(notFound.json()).toMatchObject({ code: 'RELAY_NOT_FOUND', message: 'no relay r2' });
    expect(isSignedFor(notFound, gone.nonce)).toBe(true);
    const ok = signed('DELETE', '/internal/v1/relays/r1');
    const closedOne = await app.inject(ok.request);
    expect(closedOne.statusCode).toBe(204);
    expect(closedOne.body).toBe('');
    expect(isSignedFor(closedOne, ok.nonce)).toBe(true);
    expect(closed).toEqual([
      ['r2', 'downstream closed it'],
      ['r1', 'downstream closed it'],
    ]);
  });

  it('refuses an unsigned call before reading its body', async () => {
    const { app, fake } = await internal();
    // Not JSON: were the body parsed first, this would be a 400; the signature check comes first.
    const response = await app.inject({
      method: 'POST',
      url: '/internal/v1/drain',
      headers: { 'content-type': 'application/json' },
      payload: '{"draining":',
    });
    expect(response.statusCode).toBe(401);
    expect(response.json().message).toBe(
      'unauthenticated internal call: missing or malformed RTCCDN-HMAC-SHA256 authorization',
    );
    expect(fake.drained).toEqual([]);
  });

  it('takes only JSON bodies, of at most 256 KiB, and does not log each request', async () => {
    const { app, fake } = await internal();
    const text = signed('POST', '/internal/v1/drain', 'draining', {
      headers: { 'content-type': 'text/plain' },
    });
    expect((await app.inject(text.request)).statusCode).toBe(415);
    const padding = 'x'.repeat(256 * 1024);
    const tooLarge = signed('POST', '/internal/v1/drain', { draining: true, padding });
    expect((await app.inject(tooLarge.request)).statusCode).toBe(413);
    const justUnder = signed('POST', '/internal/v1/drain', {
      draining: true,
      padding: padding.slice(0, 256 * 1024 - 40),
    });
    expect((await app.inject(justUnder.request)).statusCode).toBe(200);
    expect(fake.drained).toEqual([true]);
    // What the port logs reaches fake.logs (a refusal, say), but requests themselves are not logged.
    expect((await app.inject({ method: 'POST', url: '/internal/v1/drain' })).statusCode).toBe(401);
    expect(fake.logs.map((line) => line.msg)).toContain('internal call refused');
    expect(fake.logs.filter((line) => /incoming request|request completed/.test(line.msg))).toEqual([]);
  });

  it('refuses bodies that are not JSON or not what the route takes', async () => {
    const { app, fake } = await internal();
    const notJson = signed('POST', '/internal/v1/drain', '{"draining":');
    const response = await app.inject(notJson.request);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ code: 'INVALID_REQUEST', message: 'body is not valid JSON' });
    const wrong = await app.inject(signed('POST', '/internal/v1/drain', { draining: 'yes' }).request);
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().message).toBe('body must be {"draining": true|false, "deadlineMs"?: <ms>}');
    const rendition = await app.inject(
      signed('POST', '/internal/v1/renditions', { stream: 'a~b', profile: 'p' }).request,
    );
    expect(rendition.json().message).toBe('body must be {"stream": <name>, "profile": <profile>}');
    const relay = await app.inject(
      signed('POST', '/internal/v1/relays', { stream: 'show', nodeId: 'edge b' }).request,
    );
    expect(relay.statusCode).toBe(400);
    expect(relay.json().message).toBe(
      'invalid relay request: nodeId Invalid string: must match pattern /^[A-Za-z0-9._-]{1,128}$/',
    );
    // A nested field is named by its path.
    const nested = await app.inject(
      signed('POST', '/internal/v1/relays', {
        stream: 'show',
        nodeId: 'edge-b',
        pipe: {
          ip: '10.0.0.1',
          port: 0,
          srtpParameters: { cryptoSuite: 'AEAD_AES_256_GCM', sealedKey: 's' },
        },
      }).request,
    );
    expect(nested.json().message).toBe(
      'invalid relay request: pipe.port Too small: expected number to be >=1',
    );
    expect(fake.drained).toEqual([]);
  });

  it('opens relays on a node that serves them, and says so on one that does not', async () => {
    const opened: unknown[] = [];
    const relayServer = {
      open: async (request: unknown) => {
        opened.push(request);
        return { relayId: 'r1' };
      },
    };
    const endpoint = {
      ip: '10.0.0.1',
      port: 40000,
      srtpParameters: { cryptoSuite: 'AEAD_AES_256_GCM', sealedKey: 'sealed' },
    };
    const body = { stream: 'show', nodeId: 'edge-b', pipe: endpoint };
    const serving = await internal({ relayServer });
    const call = signed('POST', '/internal/v1/relays', body);
    const response = await serving.app.inject(call.request);
    expect(response.statusCode).toBe(201);
    expect(response.json()).toEqual({ relayId: 'r1' });
    expect(isSignedFor(response, call.nonce)).toBe(true);
    expect(opened).toEqual([body]);

    const notServing = await internal();
    const refused = await notServing.app.inject(signed('POST', '/internal/v1/relays', body).request);
    expect(refused.statusCode).toBe(421);
    expect(refused.json()).toMatchObject({ code: 'WRONG_NODE', message: 'this node does not serve relays' });
    const noRelay = await notServing.app.inject(signed('DELETE', '/internal/v1/relays/r1').request);
    expect(noRelay.statusCode).toBe(404);
  });

  it('starts renditions on a transcoder, and says so on another node', async () => {
    const started: string[][] = [];
    const transcoder = {
      start: async (stream: string, profile: string) => {
        started.push([stream, profile]);
        return { name: `${stream}~${profile}`, profile: { name: profile } };
      },
    };
    const body = { stream: 'show', profile: '360p' };
    const { app } = await internal({ transcoder });
    const response = await app.inject(signed('POST', '/internal/v1/renditions', body).request);
    expect(response.statusCode).toBe(201);
    expect(response.json()).toEqual({ rendition: 'show~360p', profile: '360p' });
    expect(started).toEqual([['show', '360p']]);
    const other = await internal();
    const refused = await other.app.inject(signed('POST', '/internal/v1/renditions', body).request);
    expect(refused.statusCode).toBe(421);
    expect(refused.json().message).toBe('this node does not transcode');
  });

  it('dumps the node state for a signed call', async () => {
    const { app } = await internal();
    const call = signed('GET', '/internal/v1/dump');
    const response = await app.inject(call.request);
    expect(response.json()).toEqual({ node: 'dumped' });
    expect(isSignedFor(response, call.nonce)).toBe(true);
  });
  it('serves an HLS file for another edge with the player’s address, its bytes signed for the call', async () => {
    // Not valid UTF-8: the signature must cover the bytes as sent.
    const part = Buffer.from([0x00, 0x00, 0x00, 0x10, 0x6d, 0x6f, 0x6f, 0x66, 0xff, 0xfe, 0x80]);
    const calls: unknown[][] = [];
    const hls = {
      file: async (...args: unknown[]) => {
        calls.push(['file', ...args]);
        return part;
      },
      mediaPlaylist: async (...args: unknown[]) => {
        calls.push(['media', ...args]);
        return '#EXTM3U\n';
      },
    };
    const { app } = await internal({ hls });
    const bytes = signed('GET', '/internal/v1/hls/live/source/part3.1.m4s?t=abc.def&ip=10.1.2.3');
    const served = await app.inject(bytes.request);
    expect([served.statusCode, served.headers['content-type']]).toEqual([200, 'video/mp4']);
    expect(served.rawPayload.equals(part)).toBe(true);
    expect(
      verifyResponse(
        key,
        bytes.nonce,
        200,
        served.rawPayload,
        served.headers[RESPONSE_SIGNATURE_HEADER] as string | undefined,
      ),
    ).toBe(true);
    expect(calls.at(-1)).toEqual(['file', 'live', 'source', 'part3.1.m4s', 'abc.def', '10.1.2.3']);

    const reload = signed(
      'GET',
      '/internal/v1/hls/live/source/media.m3u8?t=abc.def&_HLS_msn=7&_HLS_part=2&ip=::1',
    );
    const playlist = await app.inject(reload.request);
    expect([playlist.statusCode, playlist.body, playlist.headers['cache-control']]).toEqual([
      200,
      '#EXTM3U\n',
      'private, no-store',
    ]);
    expect(isSignedFor(playlist, reload.nonce)).toBe(true);
    expect(calls.at(-1)).toEqual(['media', 'live', 'source', 'abc.def', '::1', { msn: 7, part: 2 }]);

    // Without the player's address there is nothing to check the ACL with.
    const noIp = signed('GET', '/internal/v1/hls/live/source/part3.1.m4s?t=abc.def');
    const refused = await app.inject(noIp.request);
    expect([refused.statusCode, refused.json().code]).toEqual([400, 'INVALID_REQUEST']);
    expect(isSignedFor(refused, noIp.nonce)).toBe(true);
    // Unsigned: refused before anything is served.
    const unsigned = await app.inject({
      method: 'GET',
      url: '/internal/v1/hls/live/source/part3.1.m4s?t=a.b&ip=10.1.2.3',
    });
    expect(unsigned.statusCode).toBe(401);
    expect(calls).toHaveLength(2);
  });

  it('says so when asked for HLS on a node that does not serve it', async () => {
    const { app } = await internal();
    const call = signed('GET', '/internal/v1/hls/live/source/seg1.m4s?t=a.b&ip=10.1.2.3');
    const answer = await app.inject(call.request);
    expect([answer.statusCode, answer.json().code]).toEqual([421, 'WRONG_NODE']);
    expect(isSignedFor(answer, call.nonce)).toBe(true);
  });

  it('answers the failover probes: a relay this source still serves, a claim this node holds', async () => {
    const relays = new Map([
      ['r1', { id: 'r1', streamName: 'live', closed: false }],
      ['r2', { id: 'r2', streamName: 'live', closed: true }],
    ]);
    const { app } = await internal({
      relayServer: { relays },
      cluster: {
        registry: { heldStream: (name: string) => (name === 'live' ? { name, claimId: 'c-7' } : undefined) },
      },
    });
    const probe = async (url: string) => {
      const call = signed('GET', url);
      const answer = await app.inject(call.request);
      expect(isSignedFor(answer, call.nonce)).toBe(true);
      return [answer.statusCode, answer.json()];
    };
    expect(await probe('/internal/v1/relays/r1')).toEqual([200, { relayId: 'r1', stream: 'live' }]);
    for (const gone of ['r2', 'r3'])
      expect(await probe(`/internal/v1/relays/${gone}`)).toEqual([
        404,
        expect.objectContaining({ code: 'RELAY_NOT_FOUND', message: `no relay ${gone}` }),
      ]);
    expect(await probe('/internal/v1/claims/live')).toEqual([200, { stream: 'live', claimId: 'c-7' }]);
    expect(await probe('/internal/v1/claims/other')).toEqual([
      404,
      expect.objectContaining({ code: 'STREAM_NOT_LIVE', message: 'this node holds no claim on other' }),
    ]);
  });

  it('says no relay and no claim on a node without relays or a CDN', async () => {
    const { app } = await internal({ cluster: undefined });
    for (const [url, code] of [
      ['/internal/v1/relays/r1', 'RELAY_NOT_FOUND'],
      ['/internal/v1/claims/live', 'STREAM_NOT_LIVE'],
    ]) {
      const answer = await app.inject(signed('GET', url as string).request);
      expect([answer.statusCode, answer.json().code]).toEqual([404, code]);
    }
  });

  it('ends a WHIP or WHEP session a player’s DELETE reached another node for, and nothing else', async () => {
    const { app, fake } = await internal();
    for (const protocol of ['whip', 'whep']) {
      const answer = await app.inject(signed('DELETE', `/internal/v1/sessions/${protocol}/live/s-1`).request);
      expect(answer.statusCode).toBe(200);
    }
    expect(fake.ended).toEqual([
      { protocol: 'whip', stream: 'live', session: 's-1' },
      { protocol: 'whep', stream: 'live', session: 's-1' },
    ]);
    const other = await app.inject(signed('DELETE', '/internal/v1/sessions/rtmp/live/s-1').request);
    expect([other.statusCode, other.json().code, other.json().message]).toEqual([
      400,
      'INVALID_REQUEST',
      'unknown protocol "rtmp"',
    ]);
    expect(fake.ended).toHaveLength(2);
  });

  it('serves HLS for another edge only with one well-formed player address, and counts refusals (4xx) by code', async () => {
    let fail: Error | undefined;
    const hls = {
      file: async () => {
        if (fail) throw fail;
        return Buffer.from('part');
      },
    };
    const { app, fake } = await internal({ hls });
    for (const ip of ['', 'ip=not-an-address', 'ip=10.0.0.1&ip=10.0.0.2']) {
      const answer = await app.inject(
        signed('GET', `/internal/v1/hls/live/source/seg1.m4s?t=a.b&${ip}`).request,
      );
      expect([ip, answer.statusCode, answer.json().message]).toEqual([
        ip,
        400,
        '?ip= must be the player’s IP address',
      ]);
    }
    const served = async (query = 't=a.b&ip=10.0.0.1') => {
      const answer = await app.inject(
        signed('GET', `/internal/v1/hls/live/source/seg1.m4s?${query}`).request,
      );
      return [answer.statusCode, answer.statusCode === 200 ? undefined : answer.json().code];
    };
    for (const [code, status] of [
      ['HLS_URL_EXPIRED', 403],
      ['HLS_SEGMENT_NOT_FOUND', 404],
      ['INVALID_REQUEST', 400],
      ['NODE_DRAINING', 503],
      ['INTERNAL', 500],
    ] as const) {
      fail = new RtccdnError(code, 'refused by the holder');
      expect(await served()).toEqual([status, code]);
    }
    fail = undefined;
    // Reload parameters mean nothing on a segment: not read, so not refused.
    expect(await served('t=a.b&_HLS_msn=x&ip=10.0.0.1')).toEqual([200, undefined]);
    const refusals = await fake.metrics.registry.getSingleMetricAsString('rtccdn_hls_refusals_total');
    expect(refusals).toContain('rtccdn_hls_refusals_total{code="HLS_URL_EXPIRED"} 1');
    expect(refusals).toContain('rtccdn_hls_refusals_total{code="HLS_SEGMENT_NOT_FOUND"} 1');
    // A 400 of the holder is a refusal; the 400s of the ?ip= check above are the caller's fault.
    expect(refusals).toContain('rtccdn_hls_refusals_total{code="INVALID_REQUEST"} 1');
    expect(refusals).not.toContain('NODE_DRAINING');
    expect(refusals).not.toContain('INTERNAL');
  });
});
