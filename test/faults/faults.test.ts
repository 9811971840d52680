/**
 * The fault suite's parts that need no Kubernetes (issue 15): a mediasoup worker crashing under
 * load, and a Redis that hangs (SIGSTOP) for longer than the registry's TTL. Each asserts what
 * viewers experience (frames, sessions) and what state remains (claims, relays, sessions).
 * Real Redis, node processes, mediasoup workers and libwebrtc peers.
 */
import { describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { ClusterKeys, StreamRecordSchema } from '../../media-node/contract/redis.js';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually, sleep } from '../../scripts/harness/node.js';
import type { TestViewer } from '../../scripts/harness/peers.js';

/** Whether each viewer decodes new frames within `ms`. */
async function playing(viewers: TestViewer[], ms = 1500): Promise<boolean[]> {
  const before = viewers.map((viewer) => viewer.framesWithCode);
  await sleep(ms);
  return viewers.map((viewer, index) => viewer.framesWithCode > before[index]! + 5);
}

describe('a mediasoup worker of an edge crashing under load', () => {
  const fixture = useTestCluster(
    { RELAY_LINGER_MS: '1000' },
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge', role: 'edge', region: 'a', env: { WORKERS: '2' } },
  );
  const { url } = fixture;

  async function watchedByFour(stream: string): Promise<TestViewer[]> {
    const pub = fixture.publisher({ audio: true });
    expect((await pub.publish(url('origin'), stream)).status).toBe(201);
    const viewers = Array.from({ length: 4 }, () => fixture.viewer());
    for (const viewer of viewers) expect((await viewer.play(url('edge'), stream)).status).toBe(201);
    await Promise.all(viewers.map((viewer) => viewer.waitForFrames(5)));
    return viewers;
  }

  it('ends only the sessions on a worker serving viewers; the others keep playing; nothing is left behind', async () => {
    const viewers = await watchedByFour('fanout-crash');
    const before = await fixture.cluster.dump('edge');
    // Worker 0 holds the relayed stream (the first router); worker 1 only fan-out viewers.
    const [holder, fanout] = before.workers as [(typeof before.workers)[0], (typeof before.workers)[0]];
    expect(holder.routers).toBeGreaterThan(fanout.routers);
    process.kill(fanout.pid, 'SIGKILL');

    expect(await eventually(async () => (await fixture.cluster.dump('edge')).sessions === 2, 10_000)).toBe(
      true,
    );
    const survivors = await playing(viewers);
    expect(survivors.filter(Boolean)).toHaveLength(2);
    const after = await fixture.cluster.dump('edge');
    expect(after.workers.map((worker) => worker.pid)).not.toContain(fanout.pid);
    expect(after.relayedStreams).toEqual([expect.objectContaining({ name: 'fanout-crash', references: 2 })]);
    expect((await fixture.cluster.dump('origin')).relaysOut).toBe(1);
    // Viewers that lost their session come back (on the replacement worker or the other one).
    const again = fixture.viewer();
    expect((await again.play(url('edge'), 'fanout-crash')).status).toBe(201);
    await again.waitForFrames(5);
  }, 60_000);

  it('ends the stream on the edge when the worker holding its relay crashes; it relays again for the next viewer', async () => {
    const viewers = await watchedByFour('relay-crash');
    const [holder] = (await fixture.cluster.dump('edge')).workers;
    process.kill(holder!.pid, 'SIGKILL');

    // The relayed stream lived on that worker: every session of it on this edge ends (clients
    // re-join), the edge relays nothing, and the origin's relay to it is gone.
    expect(
      await eventually(async () => {
        const edge = await fixture.cluster.dump('edge');
        return edge.sessions === 0 && edge.relayedStreams.length === 0;
      }, 10_000),
    ).toBe(true);
    expect((await playing(viewers)).some(Boolean)).toBe(false);
    expect(await eventually(async () => (await fixture.cluster.dump('origin')).relaysOut === 0, 10_000)).toBe(
      true,
    );
    const again = fixture.viewer();
    expect((await again.play(url('edge'), 'relay-crash')).status).toBe(201);
    await again.waitForFrames(5);
    expect((await fixture.cluster.dump('origin')).relaysOut).toBe(1);
  }, 60_000);
});

describe('a Redis that hangs (SIGSTOP) for longer than the registry TTL', () => {
  const fixture = useTestCluster(
    {},
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge-1', role: 'edge', region: 'a' },
    { id: 'edge-2', role: 'edge', region: 'a' },
  );
  const { url } = fixture;
  const keys = new ClusterKeys();
  const readyz = async (id: string) => (await fetch(`${url(id)}/readyz`)).status;

  it('keeps every viewer playing through it, and every node keeps what it held', async () => {
    const pub = fixture.publisher({ audio: true });
    expect((await pub.publish(url('origin'), 'hung')).status).toBe(201);
    const onEdge1 = fixture.viewer();
    expect((await onEdge1.play(url('edge-1'), 'hung')).status).toBe(201);
    await onEdge1.waitForFrames(5);
    const onEdge2 = fixture.viewer();
    expect((await onEdge2.play(url('edge-2'), 'hung')).status).toBe(201);
    await onEdge2.waitForFrames(5);
    expect((await fixture.cluster.dump('edge-2')).relayedStreams[0]?.upstream).toBe('edge-1');
    const admin = new Redis(fixture.redis.url);
    const claim = StreamRecordSchema.parse(JSON.parse((await admin.get(keys.stream('hung'))) ?? '{}'));
    admin.disconnect();

    const pid = fixture.redis.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      // The registry's 4 s TTL passes in Redis' clock too: everything in it expires meanwhile.
      expect(
        await eventually(
          async () => (await readyz('origin')) === 503 && (await readyz('edge-1')) === 503,
          10_000,
        ),
      ).toBe(true);
      await sleep(3000);
      expect(await playing([onEdge1, onEdge2])).toEqual([true, true]);
    } finally {
      process.kill(pid, 'SIGCONT');
    }

    expect(
      await eventually(async () => {
        const states = await Promise.all(['origin', 'edge-1', 'edge-2'].map(readyz));
        return states.every((status) => status === 200);
      }, 15_000),
    ).toBe(true);
    // The holders took their expired claims back (same claim, no second owner), and nothing moved.
    const check = new Redis(fixture.redis.url);
    const [stream, relay] = await check.mget(keys.stream('hung'), keys.relay('a', 'hung'));
    check.disconnect();
    expect(JSON.parse(stream ?? '{}')).toMatchObject({ nodeId: 'origin', claimId: claim.claimId });
    expect(JSON.parse(relay ?? '{}')).toMatchObject({ nodeId: 'edge-1' });
    expect((await fixture.cluster.dump('origin')).streams).toContain('hung');
    expect((await fixture.cluster.dump('origin')).relaysOut).toBe(1);
    expect((await fixture.cluster.dump('edge-2')).relayedStreams[0]?.upstream).toBe('edge-1');
    expect(await playing([onEdge1, onEdge2])).toEqual([true, true]);
    for (const viewer of [onEdge1, onEdge2]) expect(viewer.pc.connectionState).toBe('connected');
  }, 60_000);
});

describe('a transcoder that hangs (SIGSTOP): it refuses nothing and answers nothing', () => {
  const fixture = useTestCluster(
    {
      PROFILES: JSON.stringify([
        { name: '180p', width: 320, height: 180, fps: 15, codec: 'VP8', bitrate: 200_000 },
      ]),
      TRANSCODE_LINGER_MS: '1000',
    },
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge', role: 'edge', region: 'a' },
    { id: 'transcoder-a', role: 'transcoder', region: 'a' },
    { id: 'transcoder-b', role: 'transcoder', region: 'a' },
  );
  const { url } = fixture;
  const making = async () => {
    const found: string[] = [];
    for (const id of ['transcoder-a', 'transcoder-b']) {
      if ((await fixture.cluster.dump(id)).renditions.some((job) => job.name === 'frozen~180p'))
        found.push(id);
    }
    return found;
  };

  it('has the rendition made by the other transcoder once its claim expires; the viewer keeps its session; one maker after', async () => {
    const pub = fixture.publisher();
    expect((await pub.publish(url('origin'), 'frozen')).status).toBe(201);
    const v = fixture.viewer();
    expect((await v.play(url('edge'), 'frozen', { query: '?profile=180p' })).status).toBe(201);
    await v.waitForFrames(5, 20_000);
    const [hung] = await making();
    expect(hung).toBeDefined();
    const other = hung === 'transcoder-a' ? 'transcoder-b' : 'transcoder-a';
    const pid = fixture.cluster.node(hung!).process.child.pid!;

    process.kill(pid, 'SIGSTOP');
    try {
      // Not provably dead (no refusal): its claim is waited out, then the other one makes it.
      await v.waitForFrames(v.framesWithCode + 20, 20_000);
      expect(v.pc.connectionState).toBe('connected');
      expect((await fixture.cluster.dump('edge')).relayedStreams).toContainEqual(
        expect.objectContaining({ name: 'frozen~180p', upstream: other }),
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Back, the hung one finds its claim taken and stops its job: one maker.
    expect(
      await eventually(async () => JSON.stringify(await making()) === JSON.stringify([other]), 15_000),
    ).toBe(true);
    await v.waitForFrames(v.framesWithCode + 10);
  }, 90_000);
});
