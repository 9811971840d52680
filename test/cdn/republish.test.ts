import { describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually, sleep } from '../../scripts/harness/node.js';

/**
 * SOURCE_LOSS_GRACE_MS: an edge keeps the viewers of a stream whose publish went away, and when
 * the publisher comes back — on another origin — they resume on their existing WebRTC sessions.
 */
describe('viewers resume without renegotiation when the publisher comes back (grace period)', () => {
  const fixture = useTestCluster(
    {},
    { id: 'origin-1', role: 'origin', region: 'a' },
    { id: 'origin-2', role: 'origin', region: 'a' },
    { id: 'edge', role: 'edge', region: 'a', env: { SOURCE_LOSS_GRACE_MS: '15000' } },
  );
  const { url } = fixture;

  it('keeps the viewer through an unpublish and a republish on another origin', async () => {
    const first = fixture.publisher();
    const second = fixture.publisher();
    const viewer = fixture.viewer();
    expect((await first.publish(url('origin-1'), 'comeback')).status).toBe(201);
    expect((await viewer.play(url('edge'), 'comeback')).status).toBe(201);
    await viewer.waitForFrames(10);

    expect(await first.unpublish(url('origin-1'))).toBe(200);
    first.close();
    await sleep(2000);
    // Nothing arrives meanwhile, but the session stays.
    expect((await fixture.cluster.dump('edge')).sessions).toBe(1);
    const framesWhileGone = viewer.framesWithCode;

    expect((await second.publish(url('origin-2'), 'comeback')).status).toBe(201);
    await viewer.waitForFrames(framesWhileGone + 20, 15_000);
    expect(viewer.pc.connectionState).toBe('connected');
    expect(
      await eventually(
        async () => (await fixture.cluster.dump('edge')).relayedStreams[0]?.upstream === 'origin-2',
        5000,
      ),
    ).toBe(true);
    const metrics = await (await fetch(`${fixture.internalUrl('edge')}/metrics`)).text();
    expect(metrics).toMatch(/^rtccdn_upstream_switches_total\{reason="republished"\} 1$/m);
  }, 60_000);
});
