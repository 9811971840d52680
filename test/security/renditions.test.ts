/**
 * The rendition separator is reserved: a rendition is admitted, granted and revoked only
 * through its source's ACL, whatever name the viewer asks for, and nobody can publish a name
 * that squats a rendition paying viewers would be sent. Real FFmpeg, real libwebrtc peers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { type RunningNode, startNode } from '../../scripts/harness/node.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const KEY = 'premium-key-0123456789';
const PROFILES = JSON.stringify([
  { name: '360p', width: 640, height: 360, fps: 30, codec: 'VP8', bitrate: 500_000 },
]);

describe('renditions under their source ACL (standalone node, real FFmpeg)', () => {
  let running: RunningNode;
  const peers: { close(): void }[] = [];
  const acl = (method: string, path: string, body?: unknown) =>
    fetch(`${running.baseUrl}/api/v1/streams/${path}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  const viewer = () => {
    const v = new TestViewer();
    peers.push(v);
    return v;
  };
  const publish = async (stream: string) => {
    const publisher = new TestPublisher({ width: 640, height: 480 });
    peers.push(publisher);
    return publisher.publish(running.baseUrl, stream);
  };

  beforeAll(async () => {
    running = await startNode({ ADMIN_TOKEN, PROFILES, TRANSCODE_LINGER_MS: '60000', WORKERS: '1' });
    expect((await acl('PUT', 'premium/acl', { keys: [{ id: 'k1', key: KEY }] })).status).toBe(200);
    expect((await publish('premium')).status).toBe(201);
  }, 30_000);
  afterEach(() => {
    for (const peer of peers.splice(1)) peer.close();
  });
  afterAll(async () => {
    for (const peer of peers.splice(0)) peer.close();
    await running.close();
  });

  it('refuses to publish a name with the rendition separator', async () => {
    const result = await publish('premium~360p');
    expect(result.status).toBe(400);
    expect(JSON.parse(result.body).message).toMatch(/~ is reserved for renditions/);
  });

  it('refuses an ACL for a rendition name: renditions follow their source', async () => {
    const response = await acl('PUT', 'premium~360p/acl', { keys: [{ id: 'k', key: KEY }] });
    expect(response.status).toBe(400);
  });

  it('admits `name~profile` only with the source key, and revokes it with the source key', async () => {
    // A paying viewer makes the rendition run.
    const paying = viewer();
    expect((await paying.play(running.baseUrl, 'premium', { query: '?profile=360p', key: KEY })).status).toBe(
      201,
    );
    await paying.waitForFrames(5, 20_000);
    // The rendition's own name is no way around the ACL.
    const stranger = viewer();
    expect((await stranger.play(running.baseUrl, 'premium~360p')).status).toBe(401);
    const wrong = viewer();
    expect(
      (await wrong.play(running.baseUrl, 'premium~360p', { key: 'not-the-key-0123456789' })).status,
    ).toBe(403);
    const keyed = viewer();
    expect((await keyed.play(running.baseUrl, 'premium~360p', { key: KEY })).status).toBe(201);
    await keyed.waitForFrames(5, 20_000);
    expect(keyed.lastFrameSize).toEqual({ width: 640, height: 360 });
    // Revoking the source's key cuts both rendition viewers.
    expect((await acl('DELETE', 'premium/acl/keys/k1')).status).toBe(200);
    await Promise.all([keyed.waitForDisconnect(), paying.waitForDisconnect()]);
    expect(await running.node.metrics.registry.getSingleMetricAsString('rtccdn_revocations_total')).toMatch(
      /reason="key-removed"\} 2/,
    );
    expect((await acl('PUT', 'premium/acl', { keys: [{ id: 'k1', key: KEY }] })).status).toBe(200);
  }, 60_000);
});
