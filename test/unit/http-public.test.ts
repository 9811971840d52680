/**
 * The public HTTP API of a media node, in-process (fastify's inject): WHIP/WHEP routing, the
 * viewer's key, publish authentication, the ACL REST API's authentication and operations, CORS
 * per route, limits and request logging. The media side is faked (support/fake-node.ts); the
 * ACLs are real (memory store). Real sockets and real WebRTC: test/security, test/media.
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { RtccdnError } from '../../media-node/contract/errors.js';
import { createHttpServer, MAX_SDP_BYTES, routedPath } from '../../media-node/src/http/server.js';
import { type FakeMediaNode, fakeMediaNode, SESSION_ID } from './support/fake-node.js';

const OFFER = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n';
const ADMIN = 'admin-token-0123456789';
const KEY = 'viewer-key-0123456789';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function server(
  env: Record<string, string> = {},
  options: Parameters<typeof fakeMediaNode>[1] = {},
): Promise<{ app: FastifyInstance; fake: FakeMediaNode }> {
  const fake = await fakeMediaNode(env, options);
  const app = await createHttpServer(fake.node);
  closers.push(
    () => fake.close(),
    () => app.close(),
  );
  return { app, fake };
}

const sdpPost = (url: string, headers: Record<string, string> = {}, body = OFFER): InjectOptions => ({
  method: 'POST',
  url,
  headers: { 'content-type': 'application/sdp', ...headers },
  payload: body,
});

describe('WHIP and WHEP', () => {
  it('answers an offer with 201, the SDP answer, the session resource and its ETag', async () => {
    const { app, fake } = await server();
    for (const protocol of ['whip', 'whep']) {
      const response = await app.inject(sdpPost(`/${protocol}/show`));
      expect(response.statusCode).toBe(201);
      expect(response.headers['content-type']).toBe('application/sdp');
      expect(response.headers.location).toBe(`/${protocol}/show/${SESSION_ID}`);
      expect(response.headers.etag).toBe(`"${SESSION_ID}"`);
      expect(response.body).toBe('v=0 answer for show');
    }
    expect(fake.published).toEqual([{ stream: 'show', sdp: OFFER, ip: '127.0.0.1' }]);
    expect(fake.played).toEqual([
      { stream: 'show', sdp: OFFER, key: undefined, clientIp: '127.0.0.1', profile: undefined },
    ]);
  });

  it('takes application/sdp in any case and with parameters, and answers 415 to anything else', async () => {
    const { app, fake } = await server();
    for (const type of ['application/sdp; charset=utf-8', 'Application/SDP', 'application/sdp ;x=1'])
      expect((await app.inject(sdpPost('/whep/show', { 'content-type': type }))).statusCode).toBe(201);
    for (const type of ['text/plain', 'application/sdpx', 'application/json']) {
      const response = await app.inject(sdpPost('/whep/show', { 'content-type': type }));
      expect(response.statusCode).toBe(415);
      expect(response.json()).toMatchObject({
        code: 'UNSUPPORTED_MEDIA_TYPE',
        message: `unsupported Content-Type ${JSON.stringify(type)}; use application/sdp`,
      });
      expect(response.headers['accept-post']).toBe('application/sdp');
    }
    const none = await app.inject({ method: 'POST', url: '/whip/show', payload: OFFER });
    expect(none.statusCode).toBe(415);
    expect(none.json().message).toBe('unsupported Content-Type ""; use application/sdp');
    expect(fake.played).toHaveLength(3);
    expect(fake.published).toHaveLength(0);
  });

  it('refuses an empty offer, and an offer over 64 KiB', async () => {
    const { app } = await server();
    const empty = await app.inject(sdpPost('/whep/show', {}, ''));
    expect(empty.statusCode).toBe(400);
    expect(empty.json()).toMatchObject({
      code: 'INVALID_SDP',
      message: 'request body must be an SDP offer (Content-Type: application/sdp)',
    });
    expect(MAX_SDP_BYTES).toBe(65536);
    expect((await app.inject(sdpPost('/whep/show', {}, 'x'.repeat(MAX_SDP_BYTES)))).statusCode).toBe(201);
    const large = await app.inject(sdpPost('/whep/show', {}, 'x'.repeat(MAX_SDP_BYTES + 1)));
    expect(large.statusCode).toBe(413);
  });

  it('checks stream names (a long one gets the naming rule, not 414 or 404)', async () => {
    const { app } = await server();
    const long = await app.inject(sdpPost(`/whep/${'x'.repeat(1000)}`));
    expect(long.statusCode).toBe(400);
    expect(long.json().message).toBe(
      'stream name must be 1-128 characters of [A-Za-z0-9._-] (~ is reserved for renditions: play one with ?profile=)',
    );
    const bad = await app.inject(sdpPost('/whep/a%20b'));
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('INVALID_REQUEST');
    // A name with the rendition separator is not published.
    const rendition = await app.inject(sdpPost('/whip/show~360p'));
    expect(rendition.statusCode).toBe(400);
    expect(rendition.json().code).toBe('INVALID_REQUEST');
  });

  it('plays a rendition named `name~profile` or `name?profile=`, and refuses the two disagreeing', async () => {
    const { app, fake } = await server();
    expect((await app.inject(sdpPost('/whep/show~360p'))).statusCode).toBe(201);
    expect((await app.inject(sdpPost('/whep/show?profile=720p'))).statusCode).toBe(201);
    expect((await app.inject(sdpPost('/whep/show~360p?profile=360p'))).statusCode).toBe(201);
    expect((await app.inject(sdpPost('/whep/show?profile='))).statusCode).toBe(201);
    // A repeated ?profile= is no profile (not a list handed to playback).
    expect((await app.inject(sdpPost('/whep/show?profile=360p&profile=720p'))).statusCode).toBe(201);
    expect(fake.played.map(({ stream, profile }) => [stream, profile])).toEqual([
      ['show', '360p'],
      ['show', '720p'],
      ['show', '360p'],
      ['show', undefined],
      ['show', undefined],
    ]);
    const disagree = await app.inject(sdpPost('/whep/show~360p?profile=720p'));
    expect(disagree.statusCode).toBe(400);
    expect(disagree.json().message).toBe('"show~360p" names profile "360p" but ?profile= asks for "720p"');
    // The source of `a~b~c` is `a~b`, which is no published name.
    expect((await app.inject(sdpPost('/whep/a~b~c'))).statusCode).toBe(400);
    expect(fake.played).toHaveLength(5);
  });

  it('gives playback the viewer key from the Bearer header, or from ?key= when allowed', async () => {
    const { app, fake } = await server();
    await app.inject(sdpPost('/whep/show', { authorization: `Bearer ${KEY}` }));
    await app.inject(sdpPost('/whep/show', { authorization: `bearer   ${KEY}  ` }));
    await app.inject(sdpPost(`/whep/show?key=${KEY}`));
    await app.inject(sdpPost('/whep/show?key=from-query-000000', { authorization: `Bearer ${KEY}` }));
    await app.inject(sdpPost('/whep/show?key=a&key=b'));
    await app.inject(sdpPost('/whep/show', { authorization: `Basic ${KEY}` }));
    await app.inject(sdpPost('/whep/show', { authorization: `NotBearer ${KEY}` }));
    expect(fake.played.map((play) => play.key)).toEqual([
      KEY,
      KEY,
      KEY,
      KEY,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('ignores ?key= with ACL_QUERY_KEY=false', async () => {
    const { app, fake } = await server({ ACL_QUERY_KEY: 'false' });
    await app.inject(sdpPost(`/whep/show?key=${KEY}`));
    await app.inject(sdpPost('/whep/show', { authorization: `Bearer ${KEY}` }));
    expect(fake.played.map((play) => play.key)).toEqual([undefined, KEY]);
  });

  it('takes the client address from X-Forwarded-For only from a trusted proxy', async () => {
    const forwarded = { 'x-forwarded-for': '203.0.113.7' };
    const direct = await server();
    await direct.app.inject(sdpPost('/whep/show', forwarded));
    const proxied = await server({}, { config: { trustedProxies: ['127.0.0.1'] } });
    await proxied.app.inject(sdpPost('/whep/show', forwarded));
    expect(direct.fake.played[0]?.clientIp).toBe('127.0.0.1');
    expect(proxied.fake.played[0]?.clientIp).toBe('203.0.113.7');
  });

  it('requires PUBLISH_TOKEN to publish and to end a publication, never to play', async () => {
    const { app, fake } = await server({ PUBLISH_TOKEN: 'publish-token-0123' });
    const missing = await app.inject(sdpPost('/whip/show'));
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="whip"');
    expect(
      (await app.inject(sdpPost('/whip/show', { authorization: 'Bearer wrong-token-000000' }))).statusCode,
    ).toBe(401);
    expect(
      (await app.inject(sdpPost('/whip/show', { authorization: 'Bearer publish-token-0123' }))).statusCode,
    ).toBe(201);
    expect((await app.inject(sdpPost('/whep/show'))).statusCode).toBe(201);
    const end = (headers: Record<string, string>) =>
      app.inject({ method: 'DELETE', url: `/whip/show/${SESSION_ID}`, headers });
    expect((await end({})).statusCode).toBe(401);
    expect((await end({ authorization: 'Bearer publish-token-0123' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'DELETE', url: `/whep/show/${SESSION_ID}` })).statusCode).toBe(200);
    expect(fake.published).toHaveLength(1);
    expect(fake.ended).toEqual([
      { protocol: 'whip', stream: 'show', session: SESSION_ID },
      { protocol: 'whep', stream: 'show', session: SESSION_ID },
    ]);
  });

  it('ends a session by its resource, including a rendition viewer’s, and 404s an unknown one', async () => {
    const { app, fake } = await server();
    expect((await app.inject({ method: 'DELETE', url: `/whep/show~360p/${SESSION_ID}` })).statusCode).toBe(
      200,
    );
    expect(fake.ended).toEqual([{ protocol: 'whep', stream: 'show~360p', session: SESSION_ID }]);
    const notUuid = await app.inject({ method: 'DELETE', url: '/whep/show/not-a-session' });
    expect(notUuid.statusCode).toBe(404);
    expect(notUuid.json()).toMatchObject({
      code: 'SESSION_NOT_FOUND',
      message: 'no WHEP session not-a-session on stream "show"',
    });
    expect(fake.ended).toHaveLength(1);
    expect((await app.inject({ method: 'DELETE', url: `/whep/a%20b/${SESSION_ID}` })).statusCode).toBe(400);

    const gone = await server({}, { sessionExists: false });
    const response = await gone.app.inject({ method: 'DELETE', url: `/whip/show/${SESSION_ID}` });
    expect(response.statusCode).toBe(404);
    expect(response.json().message).toBe(`no WHIP session ${SESSION_ID} on stream "show"`);

    // One the server ended itself (a drained edge) says why: the player re-joins.
    const drained = await server(
      {},
      { sessionExists: false, endedReasons: { [SESSION_ID]: 'node-draining' } },
    );
    const ended = await drained.app.inject({ method: 'DELETE', url: `/whep/show/${SESSION_ID}` });
    expect(ended.statusCode).toBe(410);
    expect(ended.json()).toMatchObject({
      code: 'SESSION_ENDED',
      message: 'the server ended this session (node-draining): play again at the same URL',
      data: { reason: 'node-draining' },
    });
    // A session id that is no UUID has no ended reason to look up.
    const malformed = await drained.app.inject({ method: 'DELETE', url: '/whep/show/undefined' });
    expect(malformed.statusCode).toBe(404);
  });

  it('names the holder in a CDN (?node=) and passes a DELETE of another node’s session on to it', async () => {
    const forwarded: unknown[][] = [];
    let remoteError: Error | undefined;
    const cluster = {
      endRemoteSession: async (...args: unknown[]) => {
        forwarded.push(args);
        if (remoteError) throw remoteError;
      },
    };
    const { app, fake } = await server(
      { PUBLISH_TOKEN: 'publish-token-0123' },
      { config: { cluster: { nodeId: 'edge-1' } as never }, cluster },
    );
    expect((await app.inject(sdpPost('/whep/show'))).headers.location).toBe(
      `/whep/show/${SESSION_ID}?node=edge-1`,
    );
    const end = (url: string, headers: Record<string, string> = {}) =>
      app.inject({ method: 'DELETE', url, headers });
    // Another node's: passed on, nothing ended here.
    expect((await end(`/whep/show~360p/${SESSION_ID}?node=edge-2`)).statusCode).toBe(200);
    expect(forwarded).toEqual([['edge-2', 'whep', 'show~360p', SESSION_ID]]);
    expect(fake.ended).toEqual([]);
    // Its own, or no node named: ended here.
    expect((await end(`/whep/show/${SESSION_ID}?node=edge-1`)).statusCode).toBe(200);
    expect((await end(`/whep/show/${SESSION_ID}?node=`)).statusCode).toBe(200);
    expect(fake.ended).toHaveLength(2);
    expect(forwarded).toHaveLength(1);
    // The holder's answer is the answer.
    remoteError = new RtccdnError('SESSION_NOT_FOUND', 'no WHEP session on edge-3');
    const notThere = await end(`/whep/show/${SESSION_ID}?node=edge-3`);
    expect(notThere.statusCode).toBe(404);
    expect(notThere.json().message).toBe('no WHEP session on edge-3');
    remoteError = undefined;
    // Checked before it is passed on: the publish token, and the node id.
    expect((await end(`/whip/show/${SESSION_ID}?node=edge-2`)).statusCode).toBe(401);
    const badNode = await end(`/whep/show/${SESSION_ID}?node=edge%202`);
    expect(badNode.statusCode).toBe(400);
    expect(badNode.json()).toMatchObject({
      code: 'INVALID_REQUEST',
      message: '?node= is not a node id: node id must be 1-128 characters of [A-Za-z0-9._-]',
    });
    expect(forwarded).toHaveLength(2);
    expect(fake.ended).toHaveLength(2);

    // A standalone node has no one to pass it to: its Location names no node, and it ends its own.
    const standalone = await server();
    expect((await standalone.app.inject(sdpPost('/whep/show'))).headers.location).toBe(
      `/whep/show/${SESSION_ID}`,
    );
    expect(
      (await standalone.app.inject({ method: 'DELETE', url: `/whep/show/${SESSION_ID}?node=edge-2` }))
        .statusCode,
    ).toBe(200);
    expect(standalone.fake.ended).toHaveLength(1);
  });

  it('answers OPTIONS (a CORS preflight) with Accept-Post, and PATCH (trickle ICE) with 405', async () => {
    const { app } = await server();
    const preflight = { origin: 'https://player.example', 'access-control-request-method': 'POST' };
    const options = await app.inject({ method: 'OPTIONS', url: '/whep/show', headers: preflight });
    expect(options.statusCode).toBe(204);
    expect(options.headers['accept-post']).toBe('application/sdp');
    const session = await app.inject({
      method: 'OPTIONS',
      url: `/whip/show/${SESSION_ID}`,
      headers: preflight,
    });
    expect(session.statusCode).toBe(204);
    expect(session.headers.allow).toBe('DELETE, PATCH, OPTIONS');
    const patch = await app.inject({
      method: 'PATCH',
      url: `/whep/show/${SESSION_ID}`,
      payload: 'a=candidate',
    });
    expect(patch.statusCode).toBe(405);
    expect(patch.headers.allow).toBe('DELETE');
    expect(patch.json()).toMatchObject({
      code: 'METHOD_NOT_ALLOWED',
      message: 'trickle ICE and ICE restarts are not supported',
    });
  });

  it('passes refusals of the media side through in the error model', async () => {
    const { app, fake } = await server();
    fake.failNext.error = new RtccdnError('STREAM_NOT_LIVE', 'stream "show" is not live');
    const response = await app.inject(sdpPost('/whep/show'));
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ code: 'STREAM_NOT_LIVE', message: 'stream "show" is not live' });
  });
});

describe('CORS', () => {
  const preflight = (app: FastifyInstance, url: string, method: string) =>
    app.inject({
      method: 'OPTIONS',
      url,
      headers: {
        origin: 'https://player.example',
        'access-control-request-method': method,
        'access-control-request-headers': 'authorization,content-type',
      },
    });

  it('lets browser players on any origin use WHIP, WHEP and the public stream list', async () => {
    const { app } = await server();
    for (const [url, method] of [
      ['/whip/show', 'POST'],
      ['/whep/show', 'POST'],
      [`/whip/show/${SESSION_ID}`, 'DELETE'],
      [`/whep/show/${SESSION_ID}`, 'DELETE'],
    ] as const) {
      const response = await preflight(app, url, method);
      expect(`${url} ${response.headers['access-control-allow-origin']}`).toBe(`${url} *`);
      expect(response.headers['access-control-allow-methods']).toBe('GET, POST, DELETE, PATCH, OPTIONS');
      expect(response.headers['access-control-allow-headers']).toBe('Authorization, Content-Type, If-Match');
      expect(response.headers['access-control-max-age']).toBe('86400');
    }
    // The routes answer their own OPTIONS after the CORS headers (WHIP's Accept-Post).
    expect((await preflight(app, '/whep/show', 'POST')).headers['accept-post']).toBe('application/sdp');
    // The stream list is a simple GET (no preflight).
    const list = await app.inject({
      method: 'GET',
      url: '/api/v1/streams',
      headers: { origin: 'https://x.example' },
    });
    expect(list.headers['access-control-allow-origin']).toBe('*');
    const post = await app.inject(sdpPost('/whep/show', { origin: 'https://player.example' }));
    expect(post.headers['access-control-allow-origin']).toBe('*');
    expect(post.headers['access-control-expose-headers']).toBe(
      'Location, ETag, Link, Accept-Post, Accept-Patch, Retry-After, WWW-Authenticate',
    );
  });

  it('never answers a cross-origin request of the ACL API', async () => {
    const { app } = await server({ ADMIN_TOKEN: ADMIN });
    const response = await preflight(app, '/api/v1/streams/show/acl', 'PUT');
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
    const get = await app.inject({
      method: 'GET',
      url: '/api/v1/streams/show/acl',
      headers: { origin: 'https://evil.example', authorization: `Bearer ${ADMIN}` },
    });
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('request logging and metrics', () => {
  it('counts and logs each WHIP/WHEP request once, with the decoded path and never the query', async () => {
    const { app, fake } = await server();
    await app.inject(sdpPost(`/wh%65p/show?key=${KEY}`));
    fake.failNext.error = new Error('a bug');
    await app.inject(sdpPost('/whip/show'));
    await app.inject({ method: 'GET', url: '/api/v1/streams' });
    const counted = await fake.metrics.registry.getSingleMetricAsString('rtccdn_http_requests_total');
    expect(counted).toContain('rtccdn_http_requests_total{protocol="whep",method="POST",status="201"} 1');
    expect(counted).toContain('rtccdn_http_requests_total{protocol="whip",method="POST",status="500"} 1');
    expect(counted).not.toContain('api');
    const requests = fake.logs.filter((line) => 'status' in line);
    expect(
      requests.map(({ level, msg, url, method, status }) => ({ level, msg, url, method, status })),
    ).toEqual([
      { level: 30, msg: 'POST /whep/show 201', url: '/whep/show', method: 'POST', status: 201 },
      { level: 50, msg: 'POST /whip/show 500', url: '/whip/show', method: 'POST', status: 500 },
    ]);
    // fastify's own request logging is off: nothing else mentions a request.
    expect(JSON.stringify(fake.logs)).not.toContain(KEY);
    expect(fake.logs.filter((line) => 'req' in line || 'res' in line)).toEqual([]);
  });

  it('serves HLS through its routes, counting each request by kind and status and each refusal by code', async () => {
    // An HlsPlayback stand-in: the playlist for the right key, a refusal for any other.
    const hls = {
      multivariant: async (_stream: string, key: string | undefined) => {
        if (key !== KEY) throw new RtccdnError('ACCESS_DENIED', 'no access to this stream');
        return '#EXTM3U\n';
      },
      holderOf: () => undefined,
      mediaPlaylist: async () => '#EXTM3U\n#EXT-X-TARGETDURATION:1\n',
      file: async () => Buffer.from('fmp4 bytes'),
    };
    const { app, fake } = await server({}, { hls });
    const multivariant = await app.inject({ method: 'GET', url: `/hls/show/index.m3u8?key=${KEY}` });
    expect(multivariant.statusCode).toBe(200);
    expect(multivariant.headers['content-type']).toBe('application/vnd.apple.mpegurl');
    expect(multivariant.headers['cache-control']).toBe('private, no-store');
    expect(
      (await app.inject({ method: 'GET', url: '/hls/show/index.m3u8?key=wrong-key-0123' })).statusCode,
    ).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/hls/show/v0/media.m3u8?t=signed' })).body).toContain(
      'TARGETDURATION',
    );
    for (const file of ['init.mp4', 'part4.1.m4s', 'seg4.m4s']) {
      const response = await app.inject({ method: 'GET', url: `/hls/show/v0/${file}?t=signed` });
      expect([response.statusCode, response.headers['content-type'], response.body]).toEqual([
        200,
        'video/mp4',
        'fmp4 bytes',
      ]);
    }
    const counted = await fake.metrics.registry.getSingleMetricAsString('rtccdn_hls_requests_total');
    for (const [kind, status] of [
      ['multivariant', 200],
      ['multivariant', 403],
      ['media', 200],
      ['init', 200],
      ['part', 200],
      ['segment', 200],
    ])
      expect(counted).toContain(`rtccdn_hls_requests_total{kind="${kind}",status="${status}"} 1`);
    // HLS requests are not WHIP/WHEP requests.
    expect(await fake.metrics.registry.getSingleMetricAsString('rtccdn_http_requests_total')).not.toContain(
      'hls',
    );
    expect(await fake.metrics.registry.getSingleMetricAsString('rtccdn_hls_refusals_total')).toContain(
      'rtccdn_hls_refusals_total{code="ACCESS_DENIED"} 1',
    );
    const logged = fake.logs.filter((line) => 'status' in line).map((line) => line.msg);
    expect(logged).toContain('GET /hls/show/index.m3u8 403');
    expect(logged).toContain('GET /hls/show/v0/part4.1.m4s 200');
    // Neither the viewer's key nor the signed token reaches the log.
    expect(JSON.stringify(fake.logs)).not.toContain(KEY);
    expect(JSON.stringify(fake.logs)).not.toContain('signed');
  });

  it('logs an error raised after the response was sent (fastify would drop it), without the query', async () => {
    const { app, fake } = await server();
    fake.metrics.requests.inc = () => {
      throw new Error('counter broke');
    };
    const response = await app.inject(sdpPost(`/whep/show?key=${KEY}`));
    expect(response.statusCode).toBe(201);
    const failures = fake.logs.filter((line) => line.msg === 'request failed after its response was sent');
    expect(failures.map(({ level, url, method, status }) => ({ level, url, method, status }))).toEqual([
      { level: 50, url: '/whep/show', method: 'POST', status: 201 },
    ]);
    expect(JSON.stringify(failures)).toContain('counter broke');
    expect(JSON.stringify(fake.logs)).not.toContain(KEY);
  });

  it('reduces a request target to its %-decoded path', () => {
    expect(routedPath('/whep/a%7Eb?key=secret')).toBe('/whep/a~b');
    expect(routedPath('/whep/show')).toBe('/whep/show');
    // Not decodable: the raw path, still without the query.
    expect(routedPath('/whep/%E0%A4%A?key=secret')).toBe('/whep/%E0%A4%A');
  });
});

describe('routes by role and settings', () => {
  it('serves health, readiness and the public stream list', async () => {
    const { app } = await server();
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/v1/streams' })).json()).toEqual({ streams: [] });
  });

  it('says not ready (503) and draining on /readyz, and lists only the live streams anyone may watch', async () => {
    const track = (kind: string, mimeType: string) => ({ kind, rtpParameters: { codecs: [{ mimeType }] } });
    const { app, fake } = await server(
      { ADMIN_TOKEN: ADMIN },
      {
        streams: [
          { name: 'free', producers: [track('audio', 'audio/opus'), track('video', 'video/VP8')] },
          { name: 'paid', producers: [track('video', 'video/H264')] },
        ],
        viewers: { free: 3, paid: 5 },
      },
    );
    const readyz = () => app.inject({ method: 'GET', url: '/readyz' });
    expect((await readyz()).json()).toEqual({ ready: true, workers: 1 });
    fake.node.setDraining(true);
    expect((await readyz()).json()).toEqual({ ready: true, workers: 1, draining: true });
    (fake.node as { ready: boolean }).ready = false;
    const notReady = await readyz();
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual({ ready: false, workers: 1, draining: true });

    const put = await app.inject({
      method: 'PUT',
      url: '/api/v1/streams/paid/acl',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ keys: [{ id: 'k', key: KEY }] }),
    });
    expect(put.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/v1/streams' })).json()).toEqual({
      streams: [
        {
          name: 'free',
          tracks: [
            { kind: 'audio', codec: 'audio/opus' },
            { kind: 'video', codec: 'video/VP8' },
          ],
          viewers: 3,
        },
      ],
    });
  });

  it('serves the ACL API only where streams are published, and the demo page only when asked', async () => {
    const edge = await server({ ADMIN_TOKEN: ADMIN }, { accepts: false });
    const acl = {
      method: 'GET' as const,
      url: '/api/v1/streams/show/acl',
      headers: { authorization: `Bearer ${ADMIN}` },
    };
    expect((await edge.app.inject(acl)).statusCode).toBe(404);
    expect((await edge.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).statusCode).toBe(404);
    const origin = await server({ ADMIN_TOKEN: ADMIN, DEMO_PAGE: 'false' });
    expect((await origin.app.inject(acl)).json().code).toBe('ACL_NOT_FOUND');
    expect((await origin.app.inject({ method: 'GET', url: '/' })).statusCode).toBe(404);
    const demo = await server({ DEMO_PAGE: 'true' });
    const page = await demo.app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.body).toContain('<html');
    for (const script of ['/demo/app.js', '/demo/whip-whep.js', '/demo/clock.js']) {
      const response = await demo.app.inject({ method: 'GET', url: script });
      expect([response.statusCode, response.headers['content-type']]).toEqual([
        200,
        'text/javascript; charset=utf-8',
      ]);
    }
  });
});

describe('ACL REST API', () => {
  /** `token` null: no Authorization header. */
  const json = (method: InjectOptions['method'], url: string, body?: unknown, token: string | null = ADMIN) =>
    ({
      method,
      url,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    }) as InjectOptions;
  const keys = (...ids: string[]) => ({ keys: ids.map((id) => ({ id, key: `${id}-key-0123456789` })) });

  it('replaces, shows, adds, removes keys and deletes ACLs, never showing key values', async () => {
    const { app, fake } = await server({ ADMIN_TOKEN: ADMIN });
    const put = await app.inject(json('PUT', '/api/v1/streams/sales-*/acl', keys('a', 'b')));
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ stream: 'sales-*', keys: [{ id: 'a' }, { id: 'b' }] });
    expect(put.body).not.toContain('key-0123456789');
    expect(fake.access.isPublic('sales-1')).toBe(false);

    const added = await app.inject(json('POST', '/api/v1/streams/sales-%2A/acl/keys', keys('c')));
    expect(added.statusCode).toBe(201);
    expect(added.json().keys.map((key: { id: string }) => key.id)).toEqual(['a', 'b', 'c']);
    const taken = await app.inject(json('POST', '/api/v1/streams/sales-*/acl/keys', keys('c')));
    expect(taken.statusCode).toBe(409);
    expect(taken.json()).toMatchObject({
      code: 'KEY_ID_TAKEN',
      message: 'key id "c" already exists on sales-*',
    });

    const removed = await app.inject(json('DELETE', '/api/v1/streams/sales-*/acl/keys/a'));
    expect(removed.statusCode).toBe(200);
    expect(removed.json().keys.map((key: { id: string }) => key.id)).toEqual(['b', 'c']);
    const unknown = await app.inject(json('DELETE', '/api/v1/streams/sales-*/acl/keys/a'));
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'KEY_NOT_FOUND', message: 'no key "a" on sales-*' });
    const badId = await app.inject(json('DELETE', '/api/v1/streams/sales-*/acl/keys/a%20b'));
    expect(badId.statusCode).toBe(400);
    expect(badId.json().message).toBe('key id must be 1-63 characters of [A-Za-z0-9._-]');

    const get = await app.inject(json('GET', '/api/v1/streams/sales-*/acl'));
    expect(get.statusCode).toBe(200);
    expect(get.json().keys).toEqual([{ id: 'b' }, { id: 'c' }]);

    expect((await app.inject(json('DELETE', '/api/v1/streams/sales-*/acl'))).statusCode).toBe(204);
    expect(fake.access.isPublic('sales-1')).toBe(true);
    for (const method of ['GET', 'DELETE'] as const) {
      const gone = await app.inject(json(method, '/api/v1/streams/sales-*/acl'));
      expect(gone.statusCode).toBe(404);
      expect(gone.json()).toMatchObject({ code: 'ACL_NOT_FOUND', message: 'no ACL for sales-*' });
    }
    const badPattern = await app.inject(json('GET', '/api/v1/streams/a~b/acl'));
    expect(badPattern.statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json()).toHaveProperty(
      'openapi',
    );
  });

  it('logs changes with key ids, never keys', async () => {
    const { app, fake } = await server({ ADMIN_TOKEN: ADMIN });
    expect((await app.inject(json('PUT', '/api/v1/streams/show/acl', keys('a')))).statusCode).toBe(200);
    // The change is logged (with the key's id) …
    expect(fake.logs.filter((line) => line.msg === 'ACL replaced')).toEqual([
      expect.objectContaining({ stream: 'show', keyIds: ['a'] }),
    ]);
    // … and the key itself appears in no log line.
    expect(JSON.stringify(fake.logs)).not.toContain('a-key-0123456789');
  });

  it("keeps a key's expiry and shows it as an ISO date, and refuses an expired key", async () => {
    const { app, fake } = await server({ ADMIN_TOKEN: ADMIN });
    const later = '2099-01-01T00:00:00.000Z';
    const put = await app.inject(
      json('PUT', '/api/v1/streams/show/acl', {
        keys: [
          { id: 'later', key: 'later-key-0123456789', expiresAt: later },
          { id: 'past', key: 'past-key-01234567890', expiresAt: '2001-01-01T00:00:00.000Z' },
        ],
      }),
    );
    expect(put.statusCode).toBe(200);
    const get = await app.inject(json('GET', '/api/v1/streams/show/acl'));
    expect(get.json().keys).toEqual([
      { id: 'later', expiresAt: later },
      { id: 'past', expiresAt: '2001-01-01T00:00:00.000Z' },
    ]);
    expect(fake.access.admit('show', 'later-key-0123456789', '10.0.0.1').keyId).toBe('later');
    expect(() => fake.access.admit('show', 'past-key-01234567890', '10.0.0.2')).toThrow(RtccdnError);
  });

  it('creates an ACL by adding keys to a stream without one, and says 404 for what does not exist', async () => {
    const { app } = await server({ ADMIN_TOKEN: ADMIN });
    const noKey = await app.inject(json('DELETE', '/api/v1/streams/fresh/acl/keys/a'));
    expect(noKey.statusCode).toBe(404);
    expect(noKey.json()).toMatchObject({ code: 'KEY_NOT_FOUND', message: 'no key "a" on fresh' });
    const noAcl = await app.inject(json('DELETE', '/api/v1/streams/fresh/acl'));
    expect(noAcl.statusCode).toBe(404);
    expect(noAcl.json()).toMatchObject({ code: 'ACL_NOT_FOUND', message: 'no ACL for fresh' });
    const added = await app.inject(json('POST', '/api/v1/streams/fresh/acl/keys', keys('a')));
    expect(added.statusCode).toBe(201);
    expect(added.json()).toMatchObject({ stream: 'fresh', keys: [{ id: 'a' }] });
    expect((await app.inject(json('DELETE', '/api/v1/streams/fresh/acl'))).statusCode).toBe(204);
  });

  it('stops the timers of its failed-token limiter when the server closes', async () => {
    const fake = await fakeMediaNode({ ADMIN_TOKEN: ADMIN });
    closers.push(() => fake.close());
    const setInterval = jest.spyOn(globalThis, 'setInterval');
    const clearInterval = jest.spyOn(globalThis, 'clearInterval');
    try {
      const app = await createHttpServer(fake.node);
      const started = setInterval.mock.results.map((result) => result.value);
      expect(started.length).toBeGreaterThan(0);
      await app.close();
      const stopped = clearInterval.mock.calls.map(([timer]) => timer);
      for (const timer of started) expect(stopped).toContain(timer);
    } finally {
      setInterval.mockRestore();
      clearInterval.mockRestore();
    }
  });

  it('requires ADMIN_TOKEN, and limits wrong attempts per client', async () => {
    const { app } = await server({ ADMIN_TOKEN: ADMIN, ACL_FAILURES_PER_CLIENT: '2' });
    const missing = await app.inject(json('GET', '/api/v1/streams/show/acl', undefined, null));
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="rtccdn-admin"');
    expect(
      (await app.inject(json('GET', '/api/v1/streams/show/acl', undefined, 'wrong-token-0000000')))
        .statusCode,
    ).toBe(401);
    // Two failures: blocked, even with the right token, and on every ACL route.
    const blocked = await app.inject(json('GET', '/api/v1/streams/show/acl'));
    expect(blocked.statusCode).toBe(429);
    expect(blocked.headers['retry-after']).toBeDefined();
    // Another client is not.
    expect(
      (await app.inject({ ...json('GET', '/api/v1/streams/show/acl'), remoteAddress: '10.0.0.2' }))
        .statusCode,
    ).toBe(404);
  });

  it('is served without ADMIN_TOKEN only by a standalone node without Redis', async () => {
    const standalone = await server();
    expect(
      (await standalone.app.inject(json('PUT', '/api/v1/streams/show/acl', keys('a'), null))).statusCode,
    ).toBe(200);
    const origin = await server({}, { config: { role: 'origin' } });
    const refused = await origin.app.inject(json('PUT', '/api/v1/streams/show/acl', keys('a'), null));
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({
      code: 'API_DISABLED',
      message: 'the ACL API is disabled on this node: set ADMIN_TOKEN',
    });
    const clustered = await server(
      {},
      {
        config: { cluster: { nodeId: 'n1' } as never },
      },
    );
    expect(
      (await clustered.app.inject(json('GET', '/api/v1/streams/show/acl', undefined, null))).statusCode,
    ).toBe(403);
  });

  it('refuses every change on an operator-managed node (ACL_API=kubernetes), token or not', async () => {
    const { app } = await server({ ADMIN_TOKEN: ADMIN }, { config: { aclApi: 'kubernetes' } });
    for (const token of [ADMIN, null]) {
      const response = await app.inject(json('PUT', '/api/v1/streams/show/acl', keys('a'), token));
      expect(response.statusCode).toBe(421);
      expect(response.json()).toMatchObject({
        code: 'WRONG_NODE',
        message:
          "ACLs of this CDN are StreamACL resources: use the operator's ACL API (same routes) or kubectl",
      });
    }
  });
});
