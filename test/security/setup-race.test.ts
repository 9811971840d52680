/**
 * A key revoked — or an ACL first applied — while a viewer's session is being set up must apply
 * to that viewer too. Setting up can take seconds (a relay from a busy origin, a cold rendition):
 * here the origin is paused (SIGSTOP) while the edge asks it for the relay, the ACL changes
 * meanwhile, and the origin is resumed. Real processes, Redis and libwebrtc peers.
 */
import { describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { sleep } from '../../scripts/harness/node.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const KEY = 'viewer-key-0123456789';

describe('ACL changes during session setup', () => {
  const fixture = useTestCluster(
    { ADMIN_TOKEN, REGIONAL_RELAY: 'false' },
    { id: 'origin', role: 'origin', region: 'a' },
    // Serves the ACL API while the stream's origin is paused.
    { id: 'admin', role: 'origin', region: 'a' },
    { id: 'edge', role: 'edge', region: 'a' },
  );
  const { url, viewer } = fixture;
  const acl = (method: string, path: string, body?: unknown) =>
    fetch(`${url('admin')}/api/v1/streams/${path}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  /** Plays `stream` on the edge while the origin is paused and `change` runs; the WHEP status. */
  async function playWhileOriginPaused(stream: string, key: string | undefined, change: () => Promise<void>) {
    const origin = fixture.cluster.node('origin').process.child;
    const v = viewer();
    origin.kill('SIGSTOP');
    try {
      const playing = v.play(url('edge'), stream, key ? { key } : {});
      // The edge has admitted the viewer and is waiting for the relay by now.
      await sleep(500);
      await change();
      // Let the edges' ACL caches hear of it (pub/sub, milliseconds), then let the origin answer.
      await sleep(500);
      origin.kill('SIGCONT');
      return { status: (await playing).status, viewer: v };
    } finally {
      origin.kill('SIGCONT');
    }
  }

  it('refuses the viewer (403) when its key is revoked meanwhile, and admits one whose key stays', async () => {
    expect((await acl('PUT', 'event/acl', { keys: [{ id: 'k', key: KEY }] })).status).toBe(200);
    expect((await fixture.publisher().publish(url('origin'), 'event')).status).toBe(201);
    const revoked = await playWhileOriginPaused('event', KEY, async () => {
      expect((await acl('DELETE', 'event/acl/keys/k')).status).toBe(200);
    });
    expect(revoked.status).toBe(403);
    // The control: the same setup without a change plays.
    expect((await acl('PUT', 'event/acl', { keys: [{ id: 'k', key: KEY }] })).status).toBe(200);
    const kept = await playWhileOriginPaused('event', KEY, async () => {});
    expect(kept.status).toBe(201);
    await kept.viewer.waitForFrames(3);
  }, 60_000);

  it('refuses a keyless viewer (401) when the stream gets an ACL meanwhile', async () => {
    expect((await fixture.publisher().publish(url('origin'), 'launch')).status).toBe(201);
    const result = await playWhileOriginPaused('launch', undefined, async () => {
      expect((await acl('PUT', 'launch/acl', { keys: [{ id: 'k', key: KEY }] })).status).toBe(200);
    });
    expect(result.status).toBe(401);
    const metrics = await (await fetch(`${fixture.internalUrl('edge')}/metrics`)).text();
    expect(metrics).toMatch(/rtccdn_revocations_total\{reason="key-removed"\} 1\b/);
    expect(metrics).toMatch(/rtccdn_revocations_total\{reason="stream-protected"\} 1\b/);
  }, 60_000);
});
