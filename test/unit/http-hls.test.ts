/**
 * The public HLS routes (media-node/src/http/hls.ts), in-process with fastify's inject: what they
 * take from the request (the viewer's key as for WHEP, the signed token, a blocking reload) and
 * hand to the node's HlsPlayback, what they answer with (types, caching), how they refuse
 * (malformed reloads, counted refusals), and when a request is passed to the edge that packages
 * the stream for the player. HlsPlayback and the CDN membership are stand-ins here; the real
 * packager, signatures and forwarding run in test/hls/.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { RtccdnError } from '../../media-node/contract/errors.js';
import type { BlockingReload } from '../../media-node/src/hls/HlsPlayback.js';
import { hlsRequestKind } from '../../media-node/src/http/hls.js';
import { createHttpServer } from '../../media-node/src/http/server.js';
import { type FakeMediaNode, fakeMediaNode } from './support/fake-node.js';

const KEY = 'viewer-key-0123456789';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

interface Calls {
  multivariant: { stream: string; key: string | undefined; clientIp: string }[];
  media: { stream: string; variant: string; token: string | undefined; reload: BlockingReload | undefined }[];
  files: { stream: string; variant: string; file: string; token: string | undefined }[];
  forwarded: { holder: string; file: unknown; query: unknown }[];
}

/** An HlsPlayback stand-in recording what the routes hand it; `fail` makes it refuse. */
function playback(holder?: string) {
  const calls: Calls = { multivariant: [], media: [], files: [], forwarded: [] };
  const state: { fail: Error | undefined } = { fail: undefined };
  const refuse = () => {
    if (state.fail) throw state.fail;
  };
  const hls = {
    multivariant: async (stream: string, key: string | undefined, clientIp: string) => {
      calls.multivariant.push({ stream, key, clientIp });
      refuse();
      return '#EXTM3U\n#multivariant\n';
    },
    holderOf: (_stream: string, _variant: string, _file: string, token: string | undefined) =>
      token === 'pinned' ? holder : undefined,
    mediaPlaylist: async (
      stream: string,
      variant: string,
      token: string | undefined,
      _clientIp: string,
      reload: BlockingReload | undefined,
    ) => {
      calls.media.push({ stream, variant, token, reload });
      refuse();
      return '#EXTM3U\n#media\n';
    },
    file: async (stream: string, variant: string, file: string, token: string | undefined) => {
      calls.files.push({ stream, variant, file, token });
      refuse();
      return Buffer.from('fmp4');
    },
  };
  return { hls, calls, state };
}

async function server(
  options: { env?: Record<string, string>; holder?: string; cluster?: boolean } = {},
): Promise<{ app: FastifyInstance; fake: FakeMediaNode } & ReturnType<typeof playback>> {
  const stand = playback(options.holder);
  const cluster = options.cluster
    ? {
        forwardHls: async (holder: string, file: { name: string }, query: unknown) => {
          stand.calls.forwarded.push({ holder, file, query });
          return {
            status: 200,
            headers: new Headers({
              'content-type': 'video/mp4',
              'cache-control': 'private, max-age=7',
              // Only the playlist's answer carries one here: an absent header stays absent.
              ...(file.name === 'media.m3u8' ? { 'retry-after': '3' } : {}),
              'x-internal': 'not for players',
            }),
            body: Buffer.from('from the holder'),
          };
        },
      }
    : undefined;
  const fake = await fakeMediaNode(options.env ?? {}, { hls: stand.hls, cluster });
  const app = await createHttpServer(fake.node);
  closers.push(
    () => fake.close(),
    () => app.close(),
  );
  return { app, fake, ...stand };
}

const get = (app: FastifyInstance, url: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'GET', url, headers });

describe('the multivariant playlist', () => {
  it('admits with the key as WHEP does (Bearer, else ?key=), never cached, no referrer', async () => {
    const { app, calls } = await server();
    const answer = await get(app, `/hls/show/index.m3u8?key=${KEY}`);
    expect(answer.statusCode).toBe(200);
    expect(answer.headers['content-type']).toBe('application/vnd.apple.mpegurl');
    expect(answer.headers['cache-control']).toBe('private, no-store');
    expect(answer.headers['referrer-policy']).toBe('no-referrer');
    expect(answer.body).toBe('#EXTM3U\n#multivariant\n');
    await get(app, '/hls/show/index.m3u8?key=ignored', { authorization: 'Bearer from-header' });
    await get(app, '/hls/show/index.m3u8');
    expect(calls.multivariant).toEqual([
      { stream: 'show', key: KEY, clientIp: '127.0.0.1' },
      { stream: 'show', key: 'from-header', clientIp: '127.0.0.1' },
      { stream: 'show', key: undefined, clientIp: '127.0.0.1' },
    ]);
  });

  it('takes no key from the query with ACL_QUERY_KEY=false', async () => {
    const { app, calls } = await server({ env: { ACL_QUERY_KEY: 'false' } });
    await get(app, `/hls/show/index.m3u8?key=${KEY}`);
    expect(calls.multivariant.map((call) => call.key)).toEqual([undefined]);
  });

  it('answers a refusal with its code, counted by code; a failure of its own is no refusal', async () => {
    const { app, fake, state } = await server();
    state.fail = new RtccdnError('ACCESS_DENIED', 'no access to this stream');
    const denied = await get(app, '/hls/show/index.m3u8');
    expect([denied.statusCode, denied.json().code]).toEqual([403, 'ACCESS_DENIED']);
    expect(denied.headers['cache-control']).toBe('private, no-store');
    state.fail = new RtccdnError('NODE_DRAINING', 'draining');
    expect((await get(app, '/hls/show/index.m3u8')).statusCode).toBe(503);
    state.fail = new RtccdnError('INTERNAL', 'a bug');
    expect((await get(app, '/hls/show/index.m3u8')).statusCode).toBe(500);
    const refusals = await fake.metrics.registry.getSingleMetricAsString('rtccdn_hls_refusals_total');
    expect(refusals).toContain('rtccdn_hls_refusals_total{code="ACCESS_DENIED"} 1');
    expect(refusals).not.toContain('NODE_DRAINING');
    expect(refusals).not.toContain('INTERNAL');
  });
});

describe('media playlists, init sections, parts and segments', () => {
  it('passes the signed token and a blocking reload, and answers each with its type and caching', async () => {
    const { app, fake, calls } = await server();
    const media = await get(app, '/hls/show/v1/media.m3u8?t=tok&_HLS_msn=12&_HLS_part=3');
    expect([media.statusCode, media.headers['content-type'], media.headers['cache-control']]).toEqual([
      200,
      'application/vnd.apple.mpegurl',
      'private, no-store',
    ]);
    await get(app, '/hls/show/v1/media.m3u8?t=tok&_HLS_msn=0');
    await get(app, '/hls/show/v1/media.m3u8');
    expect(calls.media).toEqual([
      { stream: 'show', variant: 'v1', token: 'tok', reload: { msn: 12, part: 3 } },
      { stream: 'show', variant: 'v1', token: 'tok', reload: { msn: 0, part: undefined } },
      { stream: 'show', variant: 'v1', token: undefined, reload: undefined },
    ]);
    const part = await get(app, '/hls/show/v1/part12.3.m4s?t=tok');
    expect([part.statusCode, part.headers['content-type'], part.body]).toEqual([200, 'video/mp4', 'fmp4']);
    // Segments are cached privately for as long as their signed URL lives (HLS_SEGMENT_URL_TTL).
    expect(part.headers['cache-control']).toBe(
      `private, max-age=${Math.floor(fake.config.hls.segmentUrlTtlMs / 1000)}`,
    );
    expect(fake.config.hls.segmentUrlTtlMs).toBeGreaterThanOrEqual(1000);
    expect(part.headers['referrer-policy']).toBe('no-referrer');
    // A part's URL is never a reload: _HLS_ parameters on it are not read.
    await get(app, '/hls/show/v1/seg12.m4s?t=tok&_HLS_msn=x');
    // Two tokens are none (HlsPlayback then refuses the URL as unsigned).
    await get(app, '/hls/show/v1/seg13.m4s?t=tok&t=other');
    expect(calls.files).toEqual([
      { stream: 'show', variant: 'v1', file: 'part12.3.m4s', token: 'tok' },
      { stream: 'show', variant: 'v1', file: 'seg12.m4s', token: 'tok' },
      { stream: 'show', variant: 'v1', file: 'seg13.m4s', token: undefined },
    ]);
  });

  it('refuses a malformed blocking reload with 400 and the rule, before the playlist is asked for', async () => {
    const { app, fake, calls } = await server();
    for (const query of [
      '_HLS_msn=-1',
      '_HLS_msn=1.5',
      '_HLS_msn=1234567890',
      '_HLS_msn=1&_HLS_msn=2',
      '_HLS_part=2',
      '_HLS_msn=1&_HLS_part=x',
      '_HLS_msn=1&_HLS_part=1&_HLS_part=2',
    ]) {
      const answer = await get(app, `/hls/show/v1/media.m3u8?t=tok&${query}`);
      expect([query, answer.statusCode, answer.json().code]).toEqual([query, 400, 'INVALID_REQUEST']);
      expect(answer.json().message).toMatch(/^_HLS_(msn|part) must be one non-negative integer/);
    }
    expect(calls.media).toEqual([]);
    const refusals = await fake.metrics.registry.getSingleMetricAsString('rtccdn_hls_refusals_total');
    expect(refusals).toContain('rtccdn_hls_refusals_total{code="INVALID_REQUEST"} 7');
  });

  it('counts a refused file request by its code', async () => {
    const { app, fake, state } = await server();
    state.fail = new RtccdnError('HLS_URL_EXPIRED', 'expired');
    const answer = await get(app, '/hls/show/v1/seg3.m4s?t=old');
    expect([answer.statusCode, answer.json().code]).toEqual([403, 'HLS_URL_EXPIRED']);
    expect(await fake.metrics.registry.getSingleMetricAsString('rtccdn_hls_refusals_total')).toContain(
      'rtccdn_hls_refusals_total{code="HLS_URL_EXPIRED"} 1',
    );
  });
});

describe('in a CDN: the edge that packages the stream for the player', () => {
  it('passes a request whose signed URL names another edge to it, with the reload, relaying only the player’s headers', async () => {
    const { app, calls } = await server({ cluster: true, holder: 'edge-b' });
    const answer = await get(app, '/hls/show/v1/media.m3u8?t=pinned&_HLS_msn=4&_HLS_part=1');
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toBe('from the holder');
    expect(answer.headers['content-type']).toBe('video/mp4');
    expect(answer.headers['cache-control']).toBe('private, max-age=7');
    expect(answer.headers['retry-after']).toBe('3');
    expect(answer.headers['x-internal']).toBeUndefined();
    const part = await get(app, '/hls/show/v1/part4.1.m4s?t=pinned');
    expect(part.headers['retry-after']).toBeUndefined();
    expect(calls.forwarded).toEqual([
      {
        holder: 'edge-b',
        file: { stream: 'show', variant: 'v1', name: 'media.m3u8' },
        query: { token: 'pinned', clientIp: '127.0.0.1', msn: 4, part: 1 },
      },
      {
        holder: 'edge-b',
        file: { stream: 'show', variant: 'v1', name: 'part4.1.m4s' },
        query: { token: 'pinned', clientIp: '127.0.0.1', msn: undefined, part: undefined },
      },
    ]);
    expect(calls.media).toEqual([]);
    expect(calls.files).toEqual([]);
  });

  it('serves here what it packages itself, and what has no token (refused here)', async () => {
    const { app, calls } = await server({ cluster: true, holder: undefined });
    await get(app, '/hls/show/v1/part4.1.m4s?t=pinned');
    await get(app, '/hls/show/v1/part4.1.m4s');
    expect(calls.forwarded).toEqual([]);
    expect(calls.files.map((call) => call.token)).toEqual(['pinned', undefined]);
  });

  it('does not forward on a standalone node, whatever the URL names', async () => {
    const { app, calls } = await server({ holder: 'edge-b' });
    await get(app, '/hls/show/v1/part4.1.m4s?t=pinned');
    expect(calls.forwarded).toEqual([]);
    expect(calls.files).toHaveLength(1);
  });
});

describe('routes', () => {
  it('are not served by a node without HLS', async () => {
    const fake = await fakeMediaNode({}, {});
    const app = await createHttpServer(fake.node);
    closers.push(
      () => fake.close(),
      () => app.close(),
    );
    const answer = await get(app, '/hls/show/index.m3u8');
    expect([answer.statusCode, answer.json().code]).toEqual([404, 'ROUTE_NOT_FOUND']);
  });

  it('name each request’s kind for the metrics', () => {
    expect(hlsRequestKind('/hls/:stream/index.m3u8', undefined)).toBe('multivariant');
    expect(hlsRequestKind('/hls/:stream/:variant/:file', 'media.m3u8')).toBe('media');
    expect(hlsRequestKind('/hls/:stream/:variant/:file', 'init.mp4')).toBe('init');
    expect(hlsRequestKind('/hls/:stream/:variant/:file', 'part3.1.m4s')).toBe('part');
    expect(hlsRequestKind('/hls/:stream/:variant/:file', 'seg3.m4s')).toBe('segment');
    expect(hlsRequestKind('/hls/:stream/:variant/:file', undefined)).toBe('segment');
  });
});
