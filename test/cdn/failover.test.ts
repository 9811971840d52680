/**
 * Failover driven by the media (issue 15): an edge whose upstream stops sending asks the source
 * whether it still serves it, and relinks at once when it does not — to the origin (taking the
 * dead relay edge's lease over), or to the origin its publisher moved to (a claim taken over from
 * the dead origin) — without waiting for any registry TTL. Viewers keep their WebRTC sessions.
 * A source that is alive but quiet is kept. Real Redis, node processes and libwebrtc peers; the
 * freeze itself is measured by `npm run bench` (failover), not asserted here.
 */
import { describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { ClusterKeys, StreamRecordSchema } from '../../media-node/contract/redis.js';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually, sleep } from '../../scripts/harness/node.js';

describe('failover from the media (origins and edges of one region)', () => {
  const fixture = useTestCluster(
    { RELAY_LINGER_MS: '1500' },
    { id: 'origin-1', role: 'origin', region: 'a' },
    { id: 'origin-2', role: 'origin', region: 'a' },
    { id: 'edge-a1', role: 'edge', region: 'a' },
    { id: 'edge-a2', role: 'edge', region: 'a' },
    { id: 'edge-a3', role: 'edge', region: 'a' },
  );
  const { url, publisher, viewer } = fixture;
  const keys = new ClusterKeys();
  const withRedis = async <T>(use: (redis: Redis) => Promise<T>): Promise<T> => {
    const redis = new Redis(fixture.redis.url);
    try {
      return await use(redis);
    } finally {
      redis.disconnect();
    }
  };
  const switches = async (edge: string) =>
    (await (await fetch(`${fixture.internalUrl(edge)}/metrics`)).text())
      .split('\n')
      .filter((line) => line.startsWith('rtccdn_upstream_switches_total{'));

  it('keeps a quiet but live upstream: no relink while the publisher sends nothing for a while', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-1'), 'quiet')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-a3'), 'quiet')).status).toBe(201);
    await v.waitForFrames(10);
    pub.pauseFrames();
    await sleep(1500); // several silence windows: the edge probes the origin, which answers
    pub.resumeFrames();
    await v.waitForFrames(v.framesWithCode + 20);
    expect(v.pc.connectionState).toBe('connected');
    expect(await switches('edge-a3')).toEqual([]);
    expect((await fixture.cluster.dump('edge-a3')).relayedStreams).toContainEqual(
      expect.objectContaining({ name: 'quiet', upstream: 'origin-1' }),
    );
    expect(await pub.unpublish(url('origin-1'))).toBe(200);
  }, 30_000);

  it('relinks to the same source when it dropped the relay (it reaped it): the viewer keeps playing', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-2'), 'reaped')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-a3'), 'reaped')).status).toBe(201);
    await v.waitForFrames(10);
    const [relayed] = (await fixture.cluster.dump('edge-a3')).relayedStreams.filter(
      (r) => r.name === 'reaped',
    );
    expect(relayed).toMatchObject({ upstream: 'origin-2', relayId: expect.any(String) });

    // As the origin does with a relay whose edge looked gone (or after a partition).
    await fixture.cluster.client.request(
      'DELETE',
      fixture.cluster.target('origin-2'),
      `/internal/v1/relays/${relayed!.relayId}`,
    );
    await v.waitForFrames(v.framesWithCode + 30);
    expect(v.pc.connectionState).toBe('connected');
    const [again] = (await fixture.cluster.dump('edge-a3')).relayedStreams.filter((r) => r.name === 'reaped');
    expect(again).toMatchObject({ upstream: 'origin-2' });
    expect(again!.relayId).not.toBe(relayed!.relayId);
    expect(await pub.unpublish(url('origin-2'))).toBe(200);
  }, 30_000);

  it("takes the dead relay edge's lease over and keeps the viewer playing when the region's relay edge dies", async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-2'), 'relay-kill')).status).toBe(201);
    const onA1 = viewer();
    await onA1.play(url('edge-a1'), 'relay-kill');
    await onA1.waitForFrames(5);
    const onA2 = viewer();
    await onA2.play(url('edge-a2'), 'relay-kill');
    await onA2.waitForFrames(5);
    expect((await fixture.cluster.dump('edge-a2')).relayedStreams[0]?.upstream).toBe('edge-a1');

    fixture.cluster.kill('edge-a1');
    await onA2.waitForFrames(onA2.framesWithCode + 30);
    expect(onA2.pc.connectionState).toBe('connected');
    expect((await fixture.cluster.dump('edge-a2')).relayedStreams).toContainEqual(
      expect.objectContaining({ name: 'relay-kill', upstream: 'origin-2' }),
    );
    // edge-a2 is the region's relay edge now (it did not wait for the dead one's lease to expire).
    const lease = await withRedis((redis) => redis.get(keys.relay('a', 'relay-kill')));
    expect(JSON.parse(lease ?? '{}')).toMatchObject({ nodeId: 'edge-a2' });
    expect(await switches('edge-a2')).toEqual([expect.stringMatching(/reason="upstream lost"\} 1$/)]);
    expect(await pub.unpublish(url('origin-2'))).toBe(200);
  }, 60_000);

  it('lets the publisher of a dead origin publish again on another origin at once; viewers follow it', async () => {
    const first = publisher();
    expect((await first.publish(url('origin-1'), 'moving')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-a3'), 'moving')).status).toBe(201);
    await v.waitForFrames(10);
    const before = await withRedis((redis) => redis.get(keys.stream('moving')));
    const deadClaim = StreamRecordSchema.parse(JSON.parse(before ?? '{}'));
    const deadInternalUrl = fixture.internalUrl('origin-1');

    fixture.cluster.kill('origin-1');
    first.close();
    // The dead origin's port refuses connections at once; its claim is still in Redis (TTL).
    expect(
      await eventually(async () => {
        const probe = await fetch(`${deadInternalUrl}/healthz`).catch(() => undefined);
        return probe === undefined;
      }, 5000),
    ).toBe(true);
    expect(await withRedis((redis) => redis.get(keys.stream('moving')))).toBe(before);

    const second = publisher();
    const republished = await second.publish(url('origin-2'), 'moving');
    expect(republished.status).toBe(201);
    const record = StreamRecordSchema.parse(
      JSON.parse((await withRedis((redis) => redis.get(keys.stream('moving')))) ?? '{}'),
    );
    expect(record).toMatchObject({ nodeId: 'origin-2', replaces: deadClaim.claimId });

    // The viewer decodes the new publish on its session: the edge relinked to origin-2.
    await v.waitForFrames(v.framesWithCode + 30);
    expect(v.pc.connectionState).toBe('connected');
    expect((await fixture.cluster.dump('edge-a3')).relayedStreams).toContainEqual(
      expect.objectContaining({ name: 'moving', upstream: 'origin-2' }),
    );
    expect(await switches('edge-a3')).toContainEqual(expect.stringMatching(/reason="moved"\} 1$/));
    expect(await second.unpublish(url('origin-2'))).toBe(200);
  }, 60_000);
});
