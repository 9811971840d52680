/**
 * The built-in edge autoscaler against a real kube-apiserver and redis-server. Edge pods are
 * synthetic: the media node's own ClusterRegistry writes their records (viewers set by the
 * test), and each has a small HTTP endpoint standing in for the media node's internal API,
 * which verifies the HMAC of every drain call with the media node's RequestVerifier and the
 * CDN's CLUSTER_SECRET.
 *
 * Periods are shortened: evaluation every 300 ms, stabilization window 3 s.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { deriveSigningKey } from '../../media-node/contract/internal-api.js';
import { ROLLOUT_ANNOTATION } from '../../operator/src/controllers/node/rollout.js';
import { ANNOTATIONS, redisPrefixFor } from '../../operator/src/controllers/shared.js';
import type { KubeClient } from '../../operator/src/kube/client.js';
import type { Manager } from '../../operator/src/manager.js';
import type { OperatorMetrics } from '../../operator/src/metrics.js';
import type { KubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import {
  clientFor,
  clusterSecretOf,
  type DrainCall,
  type FakeEdge,
  fakeEdge,
  kubectlApply,
  ok,
  sleep,
  startApiServerWithCrds,
  testManager,
  waitFor,
} from './support.js';

const NS = 'scale';
const EDGE = 'live-eu-west-edge';
const STABILIZATION_MS = 3_000;

describe('edge autoscaler', () => {
  let env: KubeTestEnv;
  let redis: RedisServer;
  let client: KubeClient;
  let manager: Manager;
  let metrics: OperatorMetrics;
  let signingKey: Buffer;
  const edges = new Map<number, FakeEdge>();
  const calls: DrainCall[] = [];
  const refused: string[] = [];

  const kubectl = (args: string[], input?: string) =>
    env.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
  const edgeNode = async () =>
    JSON.parse(ok(await kubectl(['get', 'nodes.rtccdn.io', EDGE, '-n', NS, '-o', 'json']))) as {
      spec: { replicas: number };
      metadata: { annotations?: Record<string, string> };
    };
  const replicas = async () => (await edgeNode()).spec.replicas;
  const autoscalerState = async () =>
    JSON.parse((await edgeNode()).metadata.annotations?.[ANNOTATIONS.autoscalerState] ?? '{}') as {
      desired?: number;
      lastScaleTime?: string;
      drain?: { toReplicas: number; since: string };
    };

  async function startEdge(ordinal: number, viewers: number): Promise<FakeEdge> {
    const edge = await fakeEdge({
      pod: `${EDGE}-${ordinal}`,
      signingKey,
      redisUrl: redis.url,
      prefix: redisPrefixFor(NS, 'live'),
      region: 'eu-west',
      viewers,
      onDrain: (call) => calls.push(call),
      onRefused: (reason) => refused.push(reason),
    });
    edges.set(ordinal, edge);
    return edge;
  }

  async function setViewers(byOrdinal: Record<number, number>): Promise<void> {
    for (const [ordinal, viewers] of Object.entries(byOrdinal)) {
      const edge = edges.get(Number(ordinal)) ?? (await startEdge(Number(ordinal), viewers));
      edge.viewers = viewers;
      await edge.node.setViewers(viewers);
    }
  }

  beforeAll(async () => {
    [env, redis] = await Promise.all([startApiServerWithCrds(), startRedisServer()]);
    ok(await kubectl(['create', 'namespace', NS]));
    client = clientFor(env);
    ({ manager, metrics } = testManager({
      client,
      autoscaler: { intervalMs: 300, stabilizationMs: STABILIZATION_MS, drainGraceMs: 120_000 },
    }));
    manager.start();
    await kubectlApply(env, {
      apiVersion: 'rtccdn.io/v1alpha1',
      kind: 'CDN',
      metadata: { name: 'live', namespace: NS },
      spec: {
        image: 'ghcr.io/rtccdn/media-node:0.1.0',
        redis: { url: redis.url },
        regions: [{ name: 'eu-west', edges: { minReplicas: 1, maxReplicas: 6, targetViewersPerEdge: 10 } }],
      },
    });
    const secret = await clusterSecretOf(env, NS, 'live');
    signingKey = deriveSigningKey(secret);
    await waitFor(
      'edge Node',
      async () => (await kubectl(['get', 'nodes.rtccdn.io', EDGE, '-n', NS])).code === 0,
    );
  }, 40 * 60_000);

  afterAll(async () => {
    await manager?.stop();
    for (const edge of edges.values()) await edge.close();
    client?.transport.close();
    await Promise.all([env?.stop(), redis?.stop()]);
  }, 60_000);

  it('scales edges up at once when viewers arrive', async () => {
    expect(await replicas()).toBe(1);
    await setViewers({ 0: 35 });
    await waitFor('4 edges', async () => (await replicas()) === 4, 15_000);
    expect(await autoscalerState()).toMatchObject({ desired: 4 });
    expect(calls).toEqual([]);
    const events = JSON.parse(
      ok(
        await kubectl([
          'get',
          'events',
          '-n',
          NS,
          '--field-selector',
          `involvedObject.name=${EDGE}`,
          '-o',
          'json',
        ]),
      ),
    ).items as { reason: string; message: string }[];
    expect(events.find((event) => event.reason === 'ScaledUp')?.message).toBe(
      'edges 1 → 4 (35 viewers, 10 per edge)',
    );
    const exported = await metrics.registry.getSingleMetricAsString('rtccdn_operator_edges_desired');
    expect(exported).toContain(
      'rtccdn_operator_edges_desired{namespace="scale",cdn="live",region="eu-west"} 4',
    );
  });

  it('drains the highest ordinals only after the stabilization window, then removes them once empty', async () => {
    await setViewers({ 0: 10, 1: 10, 2: 10, 3: 5 });
    await sleep(600);
    expect(await replicas()).toBe(4);
    // Viewers leave: 14 call for 2 edges. Pod 2 is empty, pod 3 still has 3 viewers.
    await setViewers({ 0: 5, 1: 6, 2: 0, 3: 3 });
    const { lastScaleTime } = await autoscalerState();
    await waitFor(
      'drain calls for pods 2 and 3',
      () => calls.filter((call) => call.draining).length >= 2,
      20_000,
    );
    const drained = calls.filter((call) => call.draining);
    expect(drained.map((call) => call.pod).sort()).toEqual([`${EDGE}-2`, `${EDGE}-3`]);
    for (const call of drained) {
      expect(call.at - Date.parse(lastScaleTime!)).toBeGreaterThanOrEqual(STABILIZATION_MS);
      // The edge ends its remaining sessions when the operator's grace period ends, not before.
      expect(call.deadlineMs).toBe(120_000);
    }
    expect(refused).toEqual([]);
    expect(await autoscalerState()).toMatchObject({ desired: 2, drain: { toReplicas: 2 } });
    // Pod 3 (the highest) still has a viewer: nothing can be removed yet, not even the empty pod 2.
    await sleep(1_000);
    expect(await replicas()).toBe(4);

    await setViewers({ 3: 0 });
    await waitFor('2 edges', async () => (await replicas()) === 2, 15_000);
    const state = await autoscalerState();
    expect(state.desired).toBe(2);
    expect(state.drain).toBeUndefined();
    // Pods that stay were never asked to drain.
    expect(calls.filter((call) => call.pod === `${EDGE}-0` || call.pod === `${EDGE}-1`)).toEqual([]);
  });

  it('cancels a drain when the viewers come back', async () => {
    // The drained pods are gone (the StatefulSet would delete them): their records expire.
    for (const ordinal of [2, 3]) {
      await edges.get(ordinal)?.node.close();
      edges.delete(ordinal);
    }
    calls.length = 0;
    // 7 viewers call for one edge: pod 1 is drained, but keeps 2 viewers, so it stays for now.
    await setViewers({ 0: 5, 1: 2 });
    await waitFor(
      'drain call for pod 1',
      () => calls.some((call) => call.pod === `${EDGE}-1` && call.draining),
      20_000,
    );
    expect(await replicas()).toBe(2);
    // Viewers return (17 call for 2 edges): the drain is cancelled and pod 1 takes viewers again.
    await setViewers({ 0: 15, 1: 2 });
    await waitFor(
      'undrain call for pod 1',
      () => calls.some((call) => call.pod === `${EDGE}-1` && !call.draining),
      15_000,
    );
    expect((await autoscalerState()).drain).toBeUndefined();
    await waitFor('2 edges again', async () => (await replicas()) === 2, 15_000);
    expect(refused).toEqual([]);
  });

  it('holds scale-down while the operator rolls the edges out, and resumes it when the rollout ends', async () => {
    calls.length = 0;
    // The Node controller's rollout state (node/rollout.ts), as it writes it while replacing pods:
    // the API server here runs no StatefulSet controller, so the rollout itself stays put.
    const rollout = JSON.stringify({ revision: 'live-eu-west-edge-new', surge: 1 });
    ok(await kubectl(['annotate', 'nodes.rtccdn.io', EDGE, '-n', NS, `${ROLLOUT_ANNOTATION}=${rollout}`]));
    // 5 viewers call for one edge: without the rollout, pod 1 would be drained after 3 s.
    await setViewers({ 0: 3, 1: 2 });
    await sleep(3 * STABILIZATION_MS);
    expect(calls).toEqual([]);
    expect(await replicas()).toBe(2);
    expect((await autoscalerState()).drain).toBeUndefined();

    // The rollout ends (the controller removes its state): the scale-down goes ahead.
    ok(await kubectl(['annotate', 'nodes.rtccdn.io', EDGE, '-n', NS, `${ROLLOUT_ANNOTATION}-`]));
    await waitFor(
      'drain call for pod 1 once the rollout is over',
      () => calls.some((call) => call.pod === `${EDGE}-1` && call.draining),
      20_000,
    );
    expect(calls.filter((call) => call.pod === `${EDGE}-0`)).toEqual([]);
    expect(refused).toEqual([]);
  });
});
