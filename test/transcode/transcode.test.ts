import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually } from '../../scripts/harness/node.js';
import { postSdp } from '../../scripts/harness/peers.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const PROFILES = JSON.stringify([
  { name: '360p', width: 640, height: 360, fps: 30, codec: 'VP8', bitrate: 600_000 },
  { name: '180p', width: 320, height: 180, fps: 15, codec: 'VP8', bitrate: 200_000 },
]);

/**
 * Renditions on demand: origin, two edges and a transcoder as processes, Redis, real FFmpeg,
 * real libwebrtc peers.
 */
describe('transcoder nodes (real FFmpeg)', () => {
  const fixture = useTestCluster(
    { PROFILES, ADMIN_TOKEN, RELAY_LINGER_MS: '500', TRANSCODE_LINGER_MS: '1000' },
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge-1', role: 'edge', region: 'a', env: { REGIONAL_RELAY: 'false' } },
    { id: 'edge-2', role: 'edge', region: 'a', env: { REGIONAL_RELAY: 'false' } },
    { id: 'transcoder', role: 'transcoder', region: 'a' },
  );
  const { url, viewer } = fixture;
  const publisher = () => fixture.publisher({ width: 640, height: 480, audio: true });
  const renditions = async () =>
    fixture.cluster.nodes.has('transcoder') ? (await fixture.cluster.dump('transcoder')).renditions : [];

  it('plays ?profile=360p as decoded 640×360 frames, with the source audio', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'match')).status).toBe(201);
    const v = viewer();
    const started = Date.now();
    expect((await v.play(url('edge-1'), 'match', { query: '?profile=360p' })).status).toBe(201);
    await v.waitForFrames(10, 20_000);
    console.log(`first 360p frame ${v.firstFrameAt! - started} ms after the WHEP POST (cold rendition)`);
    expect(v.lastFrameSize).toEqual({ width: 640, height: 360 });
    expect(v.audioTracks).toBe(1);
    expect(await renditions()).toEqual([expect.objectContaining({ name: 'match~360p', profile: '360p' })]);
    await pub.unpublish(url('origin'));
  }, 40_000);

  it('answers an unknown profile with 400 listing the valid ones', async () => {
    const result = await postSdp(`${url('edge-1')}/whep/match?profile=4k`, whepOffer);
    expect(result.status).toBe(400);
    expect(JSON.parse(result.body).message).toBe('unknown profile "4k"; valid profiles: 360p, 180p');
  });

  it('starts one job for simultaneous viewers on two edges, and stops it after the last leaves', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'duo')).status).toBe(201);
    const [one, two] = [viewer(), viewer()];
    const played = await Promise.all([
      one.play(url('edge-1'), 'duo', { query: '?profile=180p' }),
      two.play(url('edge-2'), 'duo', { query: '?profile=180p' }),
    ]);
    expect(played.map((result) => result.status)).toEqual([201, 201]);
    await Promise.all([one.waitForFrames(5, 20_000), two.waitForFrames(5, 20_000)]);
    expect(one.lastFrameSize).toEqual({ width: 320, height: 180 });
    expect((await renditions()).filter((job) => job.name === 'duo~180p')).toHaveLength(1);
    // FFmpeg's pid while the job runs: a real, live process (so that "gone" below means something).
    const pid = (await renditions()).find((job) => job.name === 'duo~180p')?.ffmpegPid;
    expect(pid).toEqual(expect.any(Number));
    const alive = () => {
      try {
        process.kill(pid!, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive()).toBe(true);

    expect(await one.stop(url('edge-1'))).toBe(200);
    expect(await two.stop(url('edge-2'))).toBe(200);
    // Edge relays linger 0.5 s, then the rendition 1 s: the job is gone, FFmpeg with it.
    expect(
      await eventually(async () => (await renditions()).every((job) => job.name !== 'duo~180p'), 10_000),
    ).toBe(true);
    expect(await eventually(() => !alive(), 5000)).toBe(true);
    await pub.unpublish(url('origin'));
  }, 60_000);

  it('requires the source stream’s key for its renditions, and revocation cuts rendition viewers', async () => {
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${url('origin')}${path}`, {
        method,
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    expect(
      (await api('PUT', '/api/v1/streams/premium/acl', { keys: [{ id: 'k', key: 'premium-key-0123456' }] }))
        .status,
    ).toBe(200);
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'premium')).status).toBe(201);
    expect(
      await eventually(
        async () => (await postSdp(`${url('edge-1')}/whep/premium?profile=360p`, whepOffer)).status === 401,
        3000,
      ),
    ).toBe(true);
    const v = viewer();
    expect(
      (await v.play(url('edge-1'), 'premium', { query: '?profile=360p', key: 'premium-key-0123456' })).status,
    ).toBe(201);
    await v.waitForFrames(5, 20_000);
    expect((await api('DELETE', '/api/v1/streams/premium/acl/keys/k')).status).toBe(200);
    expect(await eventually(async () => (await fixture.cluster.dump('edge-1')).sessions === 0, 2000)).toBe(
      true,
    );
    await pub.unpublish(url('origin'));
  }, 60_000);

  it('restarts a killed FFmpeg and the rendition carries on for its viewer', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'sturdy')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-1'), 'sturdy', { query: '?profile=180p' })).status).toBe(201);
    await v.waitForFrames(5, 20_000);
    const before = (await renditions()).find((job) => job.name === 'sturdy~180p')!;
    process.kill(before.ffmpegPid!, 'SIGKILL');
    expect(
      await eventually(async () => {
        const after = (await renditions()).find((job) => job.name === 'sturdy~180p');
        return after !== undefined && after.restarts === 1 && after.ffmpegPid !== before.ffmpegPid;
      }, 5000),
    ).toBe(true);
    // Same WebRTC session, new FFmpeg: frames keep coming.
    await v.waitForFrames(v.framesWithCode + 20, 15_000);
    expect(v.pc.connectionState).toBe('connected');
    const metrics = await (await fetch(`${fixture.internalUrl('transcoder')}/metrics`)).text();
    expect(metrics).toMatch(/^rtccdn_transcode_job_starts_total\{profile="180p"\} \d+$/m);
    expect(metrics).toMatch(/^rtccdn_transcode_first_frame_seconds_count\{profile="180p"\} \d+$/m);
    await pub.unpublish(url('origin'));
  }, 60_000);

  it('ends renditions and closes their viewers when the source is unpublished', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'finale')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-2'), 'finale', { query: '?profile=180p' })).status).toBe(201);
    await v.waitForFrames(5, 20_000);
    expect(await pub.unpublish(url('origin'))).toBe(200);
    expect(await eventually(async () => (await fixture.cluster.dump('edge-2')).sessions === 0, 5000)).toBe(
      true,
    );
    expect(
      await eventually(async () => (await renditions()).every((job) => job.name !== 'finale~180p'), 5000),
    ).toBe(true);
  }, 40_000);

  it('moves a rendition to another transcoder when its transcoder dies; its viewers keep their sessions', async () => {
    await fixture.cluster.add({ id: 'transcoder-2', role: 'transcoder', region: 'a' });
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'moving')).status).toBe(201);
    const first = viewer();
    expect((await first.play(url('edge-1'), 'moving', { query: '?profile=180p' })).status).toBe(201);
    await first.waitForFrames(5, 20_000);
    const holders = [];
    for (const id of ['transcoder', 'transcoder-2']) {
      if ((await fixture.cluster.dump(id)).renditions.some((job) => job.name === 'moving~180p'))
        holders.push(id);
    }
    expect(holders).toHaveLength(1);
    const [dead] = holders as [string];
    const survivor = dead === 'transcoder' ? 'transcoder-2' : 'transcoder';
    fixture.cluster.kill(dead);
    // The edge finds the rendition's maker dead, has the survivor take it over (its claim, before
    // the dead one's TTL) and relinks: the viewer decodes frames again on the same session.
    const framesAtKill = first.framesWithCode;
    await first.waitForFrames(framesAtKill + 30, 20_000);
    expect(first.pc.connectionState).toBe('connected');
    expect((await fixture.cluster.dump('edge-1')).relayedStreams).toContainEqual(
      expect.objectContaining({ name: 'moving~180p', upstream: survivor }),
    );
    expect((await fixture.cluster.dump(survivor)).renditions.map((job) => job.name)).toContain('moving~180p');
    const second = viewer();
    expect((await second.play(url('edge-1'), 'moving', { query: '?profile=180p' })).status).toBe(201);
    await second.waitForFrames(5, 20_000);
    await pub.unpublish(url('origin'));
  }, 60_000);
});
