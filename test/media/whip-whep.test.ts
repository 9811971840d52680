import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, type RunningNode, startNode } from '../../scripts/harness/node.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';

describe('WHIP publish → WHEP playback (real mediasoup, real libwebrtc peers)', () => {
  let running: RunningNode;
  const cleanup: (() => void)[] = [];

  beforeAll(async () => {
    running = await startNode();
  });
  afterEach(() => {
    for (const close of cleanup.splice(0)) close();
  });
  afterAll(async () => {
    await running.close();
  });

  function publisher(options = {}): TestPublisher {
    const peer = new TestPublisher(options);
    cleanup.push(() => peer.close());
    return peer;
  }
  function viewer(): TestViewer {
    const peer = new TestViewer();
    cleanup.push(() => peer.close());
    return peer;
  }

  it('delivers decoded video frames to two viewers, spread over both workers', async () => {
    const pub = publisher({ audio: true });
    const published = await pub.publish(running.baseUrl, 'live-1');
    expect(published.status).toBe(201);
    expect(published.headers.get('content-type')).toMatch(/^application\/sdp/);
    expect(published.headers.get('location')).toMatch(/^\/whip\/live-1\/[0-9a-f-]{36}$/);

    const viewers = [viewer(), viewer()];
    for (const v of viewers) {
      const played = await v.play(running.baseUrl, 'live-1');
      expect(played.status).toBe(201);
      expect(played.headers.get('location')).toMatch(/^\/whep\/live-1\/[0-9a-f-]{36}$/);
    }
    await Promise.all(viewers.map((v) => v.waitForFrames(10)));
    for (const v of viewers) {
      expect(v.lastFrameSize).toEqual({ width: 320, height: 240 });
      expect(v.audioTracks).toBe(1);
    }
    const workersWithViewers = new Set(
      [...running.node.sessions.values()].filter((s) => s.protocol === 'whep').map((s) => s.worker.index),
    );
    expect(workersWithViewers.size).toBe(2);
  });

  it('serves a viewer that numbers codecs like Firefox (VP8 120 + RTX 124, Opus 109) from a router of its own', async () => {
    const pub = publisher({ audio: true });
    expect((await pub.publish(running.baseUrl, 'numbering')).status).toBe(201);
    const firefoxLike = viewer();
    const played = await firefoxLike.play(running.baseUrl, 'numbering', {
      renumber: { 96: 120, 120: 96, 97: 124, 124: 97, 111: 109, 109: 111 },
    });
    expect(played.status).toBe(201);
    // The answer keeps the viewer's numbers, RTX included.
    expect(played.body).toMatch(/^m=video \d+ \S+ 120 124\r$/m);
    expect(played.body).toMatch(/^a=fmtp:124 apt=120\r$/m);
    expect(played.body).toMatch(/^m=audio \d+ \S+ 109\r$/m);
    expect(played.body).not.toMatch(/a=rtpmap:96 /);
    const chromeLike = viewer();
    const chromePlayed = await chromeLike.play(running.baseUrl, 'numbering');
    expect(chromePlayed.status).toBe(201);
    expect(chromePlayed.body).toMatch(/^m=video \d+ \S+ 96 97\r$/m);
    await Promise.all([firefoxLike.waitForFrames(10), chromeLike.waitForFrames(10)]);
    expect(firefoxLike.audioTracks).toBe(1);
    // Default-numbered viewers share the stream's routers; the other numbering has its own.
    const stream = running.node.streams.find('numbering')!;
    expect(stream.fanoutRouters.filter((key) => !key.endsWith('/default'))).toHaveLength(1);
  });

  it('closes viewers when the publisher DELETEs its session, and the stream is gone', async () => {
    const pub = publisher();
    expect((await pub.publish(running.baseUrl, 'live-2')).status).toBe(201);
    const v = viewer();
    expect((await v.play(running.baseUrl, 'live-2')).status).toBe(201);
    await v.waitForFrames(5);

    expect(await pub.unpublish(running.baseUrl)).toBe(200);
    await v.waitForDisconnect(15_000);
    expect(await eventually(() => running.node.sessions.size === 0, 5000)).toBe(true);
    // The viewer's session resource is gone, and new viewers get 404 until republished.
    expect(await v.stop(running.baseUrl)).toBe(404);
    const late = viewer();
    expect((await late.play(running.baseUrl, 'live-2')).status).toBe(404);
  });
});

describe('payload-type numbering on a single worker', () => {
  it('serves a differently numbered viewer from a router on the publisher’s own worker', async () => {
    const running = await startNode({ WORKERS: '1' });
    const pub = new TestPublisher();
    const v = new TestViewer();
    try {
      expect((await pub.publish(running.baseUrl, 'one-worker')).status).toBe(201);
      const played = await v.play(running.baseUrl, 'one-worker', {
        renumber: { 96: 120, 120: 96, 97: 124, 124: 97 },
      });
      expect(played.status).toBe(201);
      await v.waitForFrames(5);
      expect(running.node.streams.find('one-worker')!.fanoutRouters).toEqual([
        expect.stringMatching(/^0\/video/),
      ]);
    } finally {
      v.close();
      pub.close();
      await running.close();
    }
  });
});
