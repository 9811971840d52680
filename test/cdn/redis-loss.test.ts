/**
 * Redis lost while a CDN runs: nodes say they are not ready (Kubernetes stops routing to them),
 * new publishes are refused with 503 (never published unclaimed: two origins would serve one
 * name) — and everything comes back when Redis does. Real Redis, real node processes.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually } from '../../scripts/harness/node.js';
import { postSdp } from '../../scripts/harness/peers.js';

const whipOffer = readFileSync(new URL('../fixtures/libwebrtc-whip-offer.sdp', import.meta.url), 'utf8');

describe('Redis lost mid-run', () => {
  const fixture = useTestCluster(
    {},
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge', role: 'edge', region: 'a' },
  );
  const { url } = fixture;
  const readyz = async (id: string) => (await fetch(`${url(id)}/readyz`)).status;

  it('turns /readyz to 503 and WHIP to 503 while Redis is gone, and back when it returns', async () => {
    expect([await readyz('origin'), await readyz('edge')]).toEqual([200, 200]);
    await fixture.redis.kill();
    try {
      expect(
        await eventually(
          async () => (await readyz('origin')) === 503 && (await readyz('edge')) === 503,
          15_000,
        ),
      ).toBe(true);
      const refused = await postSdp(`${url('origin')}/whip/during-outage`, whipOffer);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).not.toBeNull();
      expect(JSON.parse(refused.body).message).toMatch(/registry is unavailable/);
      const metrics = await (await fetch(`${fixture.internalUrl('origin')}/metrics`)).text();
      expect(metrics).toMatch(/^rtccdn_registry_up 0$/m);
    } finally {
      await fixture.redis.restart();
    }
    expect(
      await eventually(
        async () => (await readyz('origin')) === 200 && (await readyz('edge')) === 200,
        15_000,
      ),
    ).toBe(true);
    const pub = fixture.publisher();
    expect((await pub.publish(url('origin'), 'after-outage')).status).toBe(201);
    const v = fixture.viewer();
    expect((await v.play(url('edge'), 'after-outage')).status).toBe(201);
    await v.waitForFrames(3);
  }, 60_000);
});
