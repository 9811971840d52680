import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { FfmpegHlsPlayer } from '../../scripts/harness/hls-client.js';
import { eventually } from '../../scripts/harness/node.js';
import { TestPublisher } from '../../scripts/harness/peers.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const KEY = 'balanced-hls-key-0123456789';
const SIZE = { width: 320, height: 240 };

/**
 * LL-HLS behind a load balancer without session affinity: a player's requests land on either
 * edge, yet every one is served by the packager of the edge that answered its multivariant
 * playlist (named in the signed URLs; the other edge passes the request on over the signed
 * internal API). Real processes, real Redis, real FFmpeg packagers.
 */
describe('HLS through any edge of a region (real Redis, FFmpeg)', () => {
  const fixture = useTestCluster(
    { ADMIN_TOKEN, RELAY_LINGER_MS: '500', HLS_LINGER_MS: '3000' },
    { id: 'origin', role: 'origin', region: 'b' },
    { id: 'edge-a', role: 'edge', region: 'b', env: { REGIONAL_RELAY: 'false' } },
    { id: 'edge-b', role: 'edge', region: 'b', env: { REGIONAL_RELAY: 'false' } },
    { id: 'edge-c', role: 'edge', region: 'b', env: { REGIONAL_RELAY: 'false' } },
  );
  const { url } = fixture;
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${url('origin')}${path}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  const forwarded = async (id: string, outcome: string) =>
    Number(
      new RegExp(`rtccdn_hls_forwarded_requests_total\\{outcome="${outcome}"\\} (\\d+)`).exec(
        await (await fetch(`${fixture.internalUrl(id)}/metrics`)).text(),
      )?.[1] ?? '0',
    );
  /** The newest media sequence number a media playlist lists (its last segment or part). */
  const newestMsn = (playlist: string) => {
    const numbers = [...playlist.matchAll(/(?:seg|part)(\d+)(?:\.\d+)?\.m4s\?/g)].map((m) => Number(m[1]));
    expect(numbers.length).toBeGreaterThan(0);
    return Math.max(...numbers);
  };
  const mediaSequence = (playlist: string) => Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(playlist)?.[1]);
  /** The signed URL (path and query) of a part a playlist lists, the newest complete one. */
  const listedPart = (playlist: string) => {
    const uris = [...playlist.matchAll(/#EXT-X-PART:[^\n]*URI="(part\d+\.\d+\.m4s\?t=[^"]+)"/g)];
    expect(uris.length).toBeGreaterThan(0);
    return uris[uris.length - 1]![1]!;
  };
  const text = async (response: Response) => [response.status, await response.text()] as const;

  // One publisher for every test (the fixture's peers close after each).
  const pub = new TestPublisher(SIZE);
  afterAll(() => pub.close());
  beforeAll(async () => {
    expect((await api('PUT', '/api/v1/streams/lb/acl', { keys: [{ id: 'viewer', key: KEY }] })).status).toBe(
      200,
    );
    expect((await pub.publish(url('origin'), 'lb')).status).toBe(201);
  }, 30_000);

  let mediaPath = '';
  const base = () => mediaPath.slice(0, mediaPath.lastIndexOf('/') + 1);

  it('serves the playlist, parts and blocking reloads of the admitting edge’s packager through the other edge', async () => {
    // The ACL reaches edge-a through Redis; then the player is admitted there.
    let multivariant = '';
    const admitted = await eventually(async () => {
      const response = await fetch(`${url('edge-a')}/hls/lb/index.m3u8`, {
        headers: { Authorization: `Bearer ${KEY}` },
      });
      multivariant = await response.text();
      return response.status === 200;
    }, 10_000);
    expect([admitted, admitted ? '' : multivariant]).toEqual([true, '']);
    mediaPath = `/hls/lb/${multivariant.split('\n').find((line) => line.startsWith('source/'))}`;

    // edge-a's packager has its first segment.
    const [statusA, fromA] = await text(await fetch(`${url('edge-a')}${mediaPath}`));
    expect(statusA).toBe(200);
    // Through edge-b: edge-a's playlist (same sequence numbers), not one of its own packager.
    const [statusB, fromB] = await text(await fetch(`${url('edge-b')}${mediaPath}`));
    expect([statusB, statusB === 200 ? '' : fromB]).toEqual([200, '']);
    expect(mediaSequence(fromB)).toBeGreaterThanOrEqual(mediaSequence(fromA));
    expect(newestMsn(fromB)).toBeGreaterThanOrEqual(newestMsn(fromA));
    expect((await fixture.cluster.dump('edge-b')).hls).toEqual([]);
    expect((await fixture.cluster.dump('edge-a')).hls.map((job) => job.name)).toEqual(['lb']);

    // A part fetched through edge-b is edge-a's part, byte for byte; so is the init section.
    const part = listedPart(fromB);
    const [partA, partB] = await Promise.all(
      [url('edge-a'), url('edge-b')].map(async (edge) => {
        const response = await fetch(`${edge}${base()}${part}`);
        expect([response.status, response.headers.get('content-type')]).toEqual([200, 'video/mp4']);
        expect(response.headers.get('cache-control')).toMatch(/^private, max-age=\d+$/);
        return Buffer.from(await response.arrayBuffer());
      }),
    );
    expect(partB!.length).toBeGreaterThan(0);
    expect(partB!.equals(partA!)).toBe(true);
    const init = /#EXT-X-MAP:URI="(init\.mp4\?t=[^"]+)"/.exec(fromB)?.[1];
    expect(init).toEqual(expect.any(String));
    const [initA, initB] = await Promise.all(
      [url('edge-a'), url('edge-b')].map(async (edge) =>
        Buffer.from(await (await fetch(`${edge}${base()}${init}`)).arrayBuffer()),
      ),
    );
    expect(initB!.equals(initA!)).toBe(true);

    // A blocking reload through edge-b for the part after the newest: held at edge-a, answered
    // when it comes, relayed back.
    const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s\?/.exec(fromB);
    expect(hint).not.toBeNull();
    const [msn, index] = [Number(hint![1]), Number(hint![2])];
    const reload = await fetch(`${url('edge-b')}${mediaPath}&_HLS_msn=${msn}&_HLS_part=${index}`);
    expect(reload.status).toBe(200);
    expect(reload.headers.get('content-type')).toBe('application/vnd.apple.mpegurl');
    expect(reload.headers.get('cache-control')).toBe('private, no-store');
    const reloaded = await reload.text();
    expect(
      reloaded
        .split('\n')
        .some((line) => line.startsWith('#EXT-X-PART:') && line.includes(`URI="part${msn}.${index}.m4s?`)) ||
        newestMsn(reloaded) > msn,
    ).toBe(true);
    expect((await fixture.cluster.dump('edge-b')).hls).toEqual([]);
    expect(await forwarded('edge-b', 'answered')).toBeGreaterThanOrEqual(4);
  }, 60_000);

  it('a player alternating between the edges sees one monotonic media sequence', async () => {
    const seen: number[] = [];
    for (let i = 0; i < 12; i++) {
      const edge = i % 2 === 0 ? url('edge-a') : url('edge-b');
      const [status, playlist] = await text(await fetch(`${edge}${mediaPath}`));
      expect([status, status === 200 ? '' : playlist]).toEqual([200, '']);
      seen.push(newestMsn(playlist));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]!);
    expect((await fixture.cluster.dump('edge-b')).hls).toEqual([]);
  }, 30_000);

  it('FFmpeg plays through a load balancer that sends each request to the next edge', async () => {
    // A round-robin balancer without affinity (as a Service's iptables rules may act): every
    // request, the multivariant playlist's included, goes to the other edge than the last one.
    const edges = [url('edge-a'), url('edge-b')];
    const playlists: { edge: number; newest: number }[] = [];
    const files: number[] = [];
    let next = 0;
    const balancer = createServer((request, response) => {
      const edge = next++ % 2;
      void (async () => {
        const answer = await fetch(`${edges[edge]}${request.url}`);
        const body = Buffer.from(await answer.arrayBuffer());
        if (answer.ok && request.url?.includes('/media.m3u8?')) {
          playlists.push({ edge, newest: newestMsn(body.toString()) });
        } else if (answer.ok && /\.m4s\?|\/init\.mp4\?/.test(request.url ?? '')) files.push(edge);
        response.writeHead(answer.status, { 'Content-Type': answer.headers.get('content-type') ?? '' });
        response.end(body);
      })().catch(() => {
        response.writeHead(502);
        response.end();
      });
    });
    await new Promise<void>((resolve) => balancer.listen(0, '127.0.0.1', resolve));
    const player = new FfmpegHlsPlayer(
      `http://127.0.0.1:${(balancer.address() as AddressInfo).port}/hls/lb/index.m3u8?key=${KEY}`,
      SIZE,
    );
    try {
      // FFmpeg reads the window's segments at once, then reloads the playlist as it plays.
      expect(await eventually(() => player.framesWithCode >= 60 && playlists.length >= 6, 40_000)).toBe(true);
      // Both edges answered playlists and segments: the player never noticed.
      expect(new Set(playlists.map((seen) => seen.edge)).size).toBe(2);
      expect(new Set(files).size).toBe(2);
      for (let i = 1; i < playlists.length; i++) {
        expect(playlists[i]!.newest).toBeGreaterThanOrEqual(playlists[i - 1]!.newest);
      }
      expect((await fixture.cluster.dump('edge-b')).hls).toEqual([]);
    } finally {
      player.close();
      await new Promise((resolve) => balancer.close(resolve));
    }
  }, 60_000);

  it('a revoked key is refused through the other edge (the holder decides)', async () => {
    const refusedBefore = await forwarded('edge-b', 'refused');
    expect((await api('DELETE', '/api/v1/streams/lb/acl/keys/viewer')).status).toBe(200);
    const denied = await eventually(async () => {
      const response = await fetch(`${url('edge-b')}${mediaPath}`);
      return (
        response.status === 403 && ((await response.json()) as { code: string }).code === 'ACCESS_DENIED'
      );
    }, 1000);
    expect(denied).toBe(true);
    // Refused by edge-a and relayed, not decided by edge-b.
    expect(await forwarded('edge-b', 'refused')).toBeGreaterThan(refusedBefore);
  }, 20_000);

  it('answers 410 HLS_NODE_GONE through the other edge when the holder crashed or left', async () => {
    // A player admitted by edge-c, which then crashes: still in the registry (until its TTL),
    // but nothing answers at its address.
    expect((await api('PUT', '/api/v1/streams/lb/acl', { keys: [{ id: 'viewer2', key: KEY }] })).status).toBe(
      200,
    );
    let multivariant = '';
    const admitted = await eventually(async () => {
      const response = await fetch(`${url('edge-c')}/hls/lb/index.m3u8`, {
        headers: { Authorization: `Bearer ${KEY}` },
      });
      multivariant = await response.text();
      return response.status === 200;
    }, 10_000);
    expect([admitted, admitted ? '' : multivariant]).toEqual([true, '']);
    const crashedPath = `/hls/lb/${multivariant.split('\n').find((line) => line.startsWith('source/'))}`;
    fixture.cluster.kill('edge-c');
    const crashed = await fetch(`${url('edge-b')}${crashedPath}`);
    expect(crashed.status).toBe(410);
    expect(await crashed.json()).toMatchObject({ code: 'HLS_NODE_GONE', data: { node: 'edge-c' } });

    // edge-a stops (it leaves the registry).
    await fixture.cluster.stop('edge-a');
    const left = await fetch(`${url('edge-b')}${mediaPath}`);
    expect(left.status).toBe(410);
    expect(await left.json()).toMatchObject({ code: 'HLS_NODE_GONE', data: { node: 'edge-a' } });
    expect(await forwarded('edge-b', 'node-gone')).toBe(2);
    expect((await fixture.cluster.dump('edge-b')).hls).toEqual([]);

    // Without the registry the holder cannot be found: 503, try again shortly.
    await fixture.redis.kill();
    const unknown = await fetch(`${url('edge-b')}${mediaPath}`);
    expect([unknown.status, unknown.headers.get('retry-after')]).toEqual([503, '2']);
    expect(await unknown.json()).toMatchObject({ code: 'REGISTRY_UNAVAILABLE' });
    expect(await forwarded('edge-b', 'registry-unavailable')).toBe(1);
  }, 40_000);
});
