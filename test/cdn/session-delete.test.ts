import { describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually } from '../../scripts/harness/node.js';

/**
 * A session resource is reachable through any node of the CDN: behind a Service or an Ingress the
 * player's DELETE may reach another pod than the one that answered its POST. The Location names
 * the holder (`?node=`) and the node that gets the DELETE passes it on (signed internal call).
 * Real processes, real Redis, real libwebrtc peers.
 */
describe('ending a session through another node of the CDN', () => {
  const fixture = useTestCluster(
    { RELAY_LINGER_MS: '1000', FANOUT_LINGER_MS: '500' },
    { id: 'origin-s1', role: 'origin', region: 's' },
    { id: 'origin-s2', role: 'origin', region: 's' },
    { id: 'edge-s1', role: 'edge', region: 's' },
    { id: 'edge-s2', role: 'edge', region: 's' },
  );
  const { url, publisher, viewer } = fixture;
  const metric = async (id: string, pattern: RegExp) =>
    pattern.exec(await (await fetch(`${fixture.internalUrl(id)}/metrics`)).text())?.[1];

  it('a viewer DELETE sent to another edge ends the session on its edge; a second one is 404', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-s1'), 'sd')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-s1'), 'sd')).status).toBe(201);
    expect(v.location).toMatch(/^\/whep\/sd\/[0-9a-f-]{36}\?node=edge-s1$/);
    await v.waitForFrames(5);

    const deleted = await fetch(`${url('edge-s2')}${v.location}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    // The holder closed it for the client (not an ICE timeout, not the edge it reached).
    expect(
      await metric('edge-s1', /rtccdn_sessions_closed_total\{protocol="whep",reason="client-delete"\} (\d+)/),
    ).toBe('1');
    expect(
      await metric('edge-s2', /rtccdn_sessions_closed_total\{protocol="whep",reason="client-delete"\} (\d+)/),
    ).toBeUndefined();
    const stopped = await eventually(
      () => v.lastFrameAt !== undefined && Date.now() - v.lastFrameAt > 400,
      10_000,
    );
    expect(stopped).toBe(true);

    const again = await fetch(`${url('edge-s2')}${v.location}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    expect(await pub.unpublish(url('origin-s1'))).toBe(200);
  }, 40_000);

  it('a WHIP DELETE sent to another origin unpublishes the stream', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-s1'), 'sd2')).status).toBe(201);
    expect(pub.location).toMatch(/\?node=origin-s1$/);
    const v = viewer();
    expect((await v.play(url('edge-s2'), 'sd2')).status).toBe(201);
    await v.waitForFrames(5);

    const deleted = await fetch(`${url('origin-s2')}${pub.location}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    const down = await eventually(async () => {
      const listed = (await (
        await fetch(`${fixture.internalUrl('origin-s1')}/api/v1/streams`)
      ).json()) as unknown;
      return !JSON.stringify(listed).includes('"sd2"');
    }, 10_000);
    expect(down).toBe(true);
  }, 40_000);

  it('says 410 SESSION_ENDED with the holder’s reason through another edge after a drain', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-s1'), 'sd3')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-s1'), 'sd3')).status).toBe(201);
    await v.waitForFrames(5);
    await fixture.cluster.client.request('POST', fixture.cluster.target('edge-s1'), '/internal/v1/drain', {
      draining: true,
      deadlineMs: 0,
    });
    await eventually(async () => (await metric('edge-s1', /reason="node-draining"\} (\d+)/)) === '1', 10_000);

    const answer = await fetch(`${url('edge-s2')}${v.location}`, { method: 'DELETE' });
    expect(answer.status).toBe(410);
    expect(await answer.json()).toMatchObject({ code: 'SESSION_ENDED', data: { reason: 'node-draining' } });
    await fixture.cluster.client.request('POST', fixture.cluster.target('edge-s1'), '/internal/v1/drain', {
      draining: false,
    });
    expect(await pub.unpublish(url('origin-s1'))).toBe(200);
  }, 40_000);

  it('refuses a malformed holder and answers 404 for a holder that is not in the CDN', async () => {
    const session = '00000000-0000-4000-8000-000000000000';
    const malformed = await fetch(
      `${url('edge-s2')}/whep/sd/${session}?node=${encodeURIComponent('../x y')}`,
      {
        method: 'DELETE',
      },
    );
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ code: 'INVALID_REQUEST' });
    const gone = await fetch(`${url('edge-s2')}/whep/sd/${session}?node=edge-gone`, { method: 'DELETE' });
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({ code: 'SESSION_NOT_FOUND' });
    // The holder itself named: handled locally, no call.
    const self = await fetch(`${url('edge-s2')}/whep/sd/${session}?node=edge-s2`, { method: 'DELETE' });
    expect(self.status).toBe(404);
  }, 20_000);
});
