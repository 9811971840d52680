import { describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { FfmpegHlsPlayer } from '../../scripts/harness/hls-client.js';
import { eventually } from '../../scripts/harness/node.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const KEY = 'cdn-hls-key-0123456789';
const SIZE = { width: 320, height: 240 };

/**
 * HLS in a CDN: origin and two edges as processes sharing a real Redis (the ACL store), the
 * stream relayed to the edges, each edge packaging it with its own FFmpeg; an FFmpeg HLS player.
 */
describe('HLS on edges of a CDN (real Redis, FFmpeg)', () => {
  const fixture = useTestCluster(
    { ADMIN_TOKEN, RELAY_LINGER_MS: '500', HLS_LINGER_MS: '1000' },
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge-1', role: 'edge', region: 'a', env: { REGIONAL_RELAY: 'false' } },
    { id: 'edge-2', role: 'edge', region: 'a', env: { REGIONAL_RELAY: 'false', ACL_QUERY_KEY: 'false' } },
  );
  const { url } = fixture;
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${url('origin')}${path}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('admits with the key on any edge, cuts every edge’s players on revocation, and stops unwatched packagers', async () => {
    expect(
      (await api('PUT', '/api/v1/streams/gala/acl', { keys: [{ id: 'viewer', key: KEY }] })).status,
    ).toBe(200);
    const pub = fixture.publisher(SIZE);
    expect((await pub.publish(url('origin'), 'gala')).status).toBe(201);
    // The ACL reached the edges (the ACL store in Redis): no key, no playlist.
    expect(
      await eventually(
        async () => (await fetch(`${url('edge-1')}/hls/gala/index.m3u8`)).status === 401,
        5000,
      ),
    ).toBe(true);
    // ACL_QUERY_KEY=false on edge-2: a key in the URL counts as no key there.
    expect((await fetch(`${url('edge-2')}/hls/gala/index.m3u8?key=${KEY}`)).status).toBe(401);

    const player = new FfmpegHlsPlayer(`${url('edge-1')}/hls/gala/index.m3u8?key=${KEY}`, SIZE);
    try {
      expect(await eventually(() => player.framesWithCode >= 10, 40_000)).toBe(true);
      const pid = (await fixture.cluster.dump('edge-1')).hls.find((job) => job.name === 'gala')?.ffmpegPid;
      expect(pid).toEqual(expect.any(Number));
      expect(alive(pid!)).toBe(true);

      // Signed URLs of one edge are good on another (same CLUSTER_SECRET): a Service without
      // session affinity. edge-2 passes them on to edge-1, whose packager serves the player
      // (hls-balanced.test.ts).
      const multivariant = await (
        await fetch(`${url('edge-1')}/hls/gala/index.m3u8`, { headers: { Authorization: `Bearer ${KEY}` } })
      ).text();
      const mediaPath = `/hls/gala/${multivariant.split('\n').find((line) => line.startsWith('source/'))}`;
      const crossEdge = await fetch(`${url('edge-2')}${mediaPath}`);
      expect([crossEdge.status, crossEdge.status === 200 ? '' : await crossEdge.text()]).toEqual([200, '']);

      expect((await api('DELETE', '/api/v1/streams/gala/acl/keys/viewer')).status).toBe(200);
      const revokedAt = Date.now();
      const refused = async (base: string) => {
        const response = await fetch(`${base}${mediaPath}`);
        return (
          response.status === 403 && ((await response.json()) as { code: string }).code === 'ACCESS_DENIED'
        );
      };
      expect(
        await eventually(async () => (await refused(url('edge-1'))) && (await refused(url('edge-2'))), 1000),
      ).toBe(true);
      console.log(
        `HLS on both edges refused ${Date.now() - revokedAt} ms after the revocation at the origin`,
      );
      expect(await eventually(() => !player.running, 30_000)).toBe(true);

      // Nobody asks any more: each edge stops its packager (HLS_LINGER_MS 1 s), FFmpeg exits.
      expect(
        await eventually(async () => (await fixture.cluster.dump('edge-1')).hls.length === 0, 10_000),
      ).toBe(true);
      expect(await eventually(() => !alive(pid!), 5000)).toBe(true);
      expect(
        await eventually(async () => (await fixture.cluster.dump('edge-2')).hls.length === 0, 10_000),
      ).toBe(true);
    } finally {
      player.close();
    }
    await pub.unpublish(url('origin'));
  }, 90_000);
});
