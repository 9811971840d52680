/**
 * Access-control settings the README promises: an origin without ADMIN_TOKEN refuses ACL
 * changes (its API is off); ACL_QUERY_KEY=false refuses keys in the URL (they end up in logs),
 * while the Authorization header keeps working. Real node processes and Redis.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually } from '../../scripts/harness/node.js';
import { postSdp } from '../../scripts/harness/peers.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const KEY = 'settings-key-0123456789';

describe('ACL settings', () => {
  const fixture = useTestCluster(
    {},
    { id: 'admin', role: 'origin', region: 'a', env: { ADMIN_TOKEN } },
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge', role: 'edge', region: 'a', env: { ACL_QUERY_KEY: 'false' } },
  );
  const { url } = fixture;

  it('an origin without ADMIN_TOKEN refuses ACL changes (403), with or without a token', async () => {
    for (const authorization of [undefined, `Bearer ${ADMIN_TOKEN}`]) {
      const response = await fetch(`${url('origin')}/api/v1/streams/s/acl`, {
        method: 'PUT',
        headers: {
          'Content-Type': 'application/json',
          ...(authorization ? { Authorization: authorization } : {}),
        },
        body: JSON.stringify({ keys: [{ id: 'k', key: KEY }] }),
      });
      expect(response.status).toBe(403);
      expect((await response.json()).message).toMatch(/disabled on this node: set ADMIN_TOKEN/);
    }
    expect(
      (
        await fetch(`${url('admin')}/api/v1/streams/s/acl`, {
          headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
        })
      ).status,
    ).toBe(404);
  });

  it('with ACL_QUERY_KEY=false, refuses ?key= and admits the same key in the header', async () => {
    const put = await fetch(`${url('admin')}/api/v1/streams/qk/acl`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ keys: [{ id: 'k', key: KEY }] }),
    });
    expect(put.status).toBe(200);
    expect((await fixture.publisher().publish(url('admin'), 'qk')).status).toBe(201);
    expect(
      await eventually(async () => (await postSdp(`${url('edge')}/whep/qk`, whepOffer)).status === 401, 3000),
    ).toBe(true);
    expect((await postSdp(`${url('edge')}/whep/qk?key=${KEY}`, whepOffer)).status).toBe(401);
    const viewer = fixture.viewer();
    expect((await viewer.play(url('edge'), 'qk', { key: KEY })).status).toBe(201);
    await viewer.waitForFrames(3);
  }, 30_000);
});
