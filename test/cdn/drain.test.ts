import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually, sleep } from '../../scripts/harness/node.js';
import { postSdp } from '../../scripts/harness/peers.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');

/**
 * Draining an edge with a deadline: its viewers keep playing until they leave or the deadline,
 * when their sessions end with a reason a player can act on (DTLS close; the session resource
 * then answers 410 SESSION_ENDED, data.reason node-draining). SIGTERM drains the same way.
 * Real processes, real Redis, real libwebrtc peers.
 */
describe('edge drain deadline (drain API and SIGTERM)', () => {
  const fixture = useTestCluster(
    { RELAY_LINGER_MS: '1000', FANOUT_LINGER_MS: '500' },
    { id: 'origin-d', role: 'origin', region: 'd' },
    { id: 'edge-d1', role: 'edge', region: 'd' },
    { id: 'edge-d2', role: 'edge', region: 'd', env: { DRAIN_DEADLINE_MS: '2500' } },
    { id: 'edge-d3', role: 'edge', region: 'd', env: { DRAIN_DEADLINE_MS: '60000' } },
  );
  const { url, publisher, viewer } = fixture;
  const drain = (id: string, body: { draining: boolean; deadlineMs?: number }) =>
    fixture.cluster.client.request<{ draining: boolean; viewers: number }>(
      'POST',
      fixture.cluster.target(id),
      '/internal/v1/drain',
      body,
    );

  it('keeps serving viewers until the deadline, then ends them with reason node-draining (410 on the resource)', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-d'), 'dl')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-d1'), 'dl')).status).toBe(201);
    await v.waitForFrames(5);

    const drainedAt = Date.now();
    expect(await drain('edge-d1', { draining: true, deadlineMs: 2000 })).toEqual({
      draining: true,
      viewers: 1,
    });
    expect((await postSdp(`${url('edge-d1')}/whep/dl`, whepOffer)).status).toBe(503);
    // Before the deadline: still playing.
    await v.waitForFrames(v.framesWithCode + 15);
    expect(Date.now() - drainedAt).toBeLessThan(2000);
    // At the deadline: the session ends (media stops, the resource says why).
    const stopped = await eventually(
      () => v.lastFrameAt !== undefined && Date.now() - v.lastFrameAt > 400,
      10_000,
    );
    expect(stopped).toBe(true);
    expect((v.lastFrameAt ?? 0) - drainedAt).toBeGreaterThanOrEqual(1900);
    const answer = await fetch(`${url('edge-d1')}${v.location}`, { method: 'DELETE' });
    expect(answer.status).toBe(410);
    expect(await answer.json()).toMatchObject({ code: 'SESSION_ENDED', data: { reason: 'node-draining' } });
    const lastFrame = v.lastFrameAt ?? 0;
    await sleep(500);
    expect(v.lastFrameAt).toBe(lastFrame);
    const metrics = await (await fetch(`${fixture.internalUrl('edge-d1')}/metrics`)).text();
    expect(metrics).toMatch(/rtccdn_sessions_closed_total\{protocol="whep",reason="node-draining"\} 1/);

    // Cancelling the drain: the edge takes viewers again.
    expect(await drain('edge-d1', { draining: false })).toEqual({ draining: false, viewers: 0 });
    const again = viewer();
    expect((await again.play(url('edge-d1'), 'dl')).status).toBe(201);
    await again.waitForFrames(5);
    expect(await pub.unpublish(url('origin-d'))).toBe(200);
  }, 40_000);

  it('a cancelled drain does not end its viewers at the old deadline', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-d'), 'dl2')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-d1'), 'dl2')).status).toBe(201);
    await v.waitForFrames(5);
    expect(await drain('edge-d1', { draining: true, deadlineMs: 1500 })).toEqual({
      draining: true,
      viewers: 1,
    });
    expect(await drain('edge-d1', { draining: false })).toEqual({ draining: false, viewers: 1 });
    await sleep(2000);
    // The cancelled drain's deadline did not fire.
    await v.waitForFrames(v.framesWithCode + 10);
    expect(await v.stop(url('edge-d1'))).toBe(200);
    expect(await pub.unpublish(url('origin-d'))).toBe(200);
  }, 30_000);

  it('SIGTERM drains (even an edge drained with a longer deadline): viewers keep playing until DRAIN_DEADLINE_MS, then the node exits 0', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-d'), 'dl3')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-d2'), 'dl3')).status).toBe(201);
    await v.waitForFrames(5);

    // Drained already with a long deadline (the autoscaler's grace period): SIGTERM still ends
    // within DRAIN_DEADLINE_MS, inside the pod's grace period.
    expect(await drain('edge-d2', { draining: true, deadlineMs: 600_000 })).toEqual({
      draining: true,
      viewers: 1,
    });
    const edge = fixture.cluster.node('edge-d2');
    const exited = once(edge.process.child, 'exit') as Promise<[number | null]>;
    const termAt = Date.now();
    edge.process.child.kill('SIGTERM');
    await eventually(async () => (await fetch(`${edge.baseUrl}/readyz`)).status === 503, 2000);
    expect((await postSdp(`${edge.baseUrl}/whep/dl3`, whepOffer)).status).toBe(503);
    await v.waitForFrames(v.framesWithCode + 15);
    expect(Date.now() - termAt).toBeLessThan(2500);
    const [code] = await exited;
    fixture.cluster.nodes.delete('edge-d2');
    expect(code).toBe(0);
    expect(Date.now() - termAt).toBeGreaterThanOrEqual(2400);
    const lastFrame = v.lastFrameAt ?? 0;
    await sleep(500);
    expect(v.lastFrameAt).toBe(lastFrame);
    expect(await pub.unpublish(url('origin-d'))).toBe(200);
  }, 30_000);

  it('SIGTERM on a draining edge exits as soon as its last viewer leaves', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin-d'), 'dl4')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-d3'), 'dl4')).status).toBe(201);
    await v.waitForFrames(5);
    const edge = fixture.cluster.node('edge-d3');
    const exited = once(edge.process.child, 'exit') as Promise<[number | null]>;
    edge.process.child.kill('SIGTERM');
    await sleep(500);
    expect(edge.process.child.exitCode).toBeNull();
    await v.waitForFrames(v.framesWithCode + 5);
    const leftAt = Date.now();
    expect(await v.stop(edge.baseUrl)).toBe(200);
    const [code] = await exited;
    fixture.cluster.nodes.delete('edge-d3');
    expect(code).toBe(0);
    // Far from the 60 s deadline: the drain ended with the last viewer.
    expect(Date.now() - leftAt).toBeLessThan(10_000);
    expect(await pub.unpublish(url('origin-d'))).toBe(200);
  }, 30_000);
});
