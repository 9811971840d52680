/**
 * Rollouts of edges that drop no viewer, against a real kube-apiserver and redis-server. There
 * is no kubelet and no StatefulSet controller here: the test plays them — it writes the
 * StatefulSet's status (updateRevision), creates pods at a revision with a Ready status, and
 * recreates a pod the operator deleted. Edge pods are synthetic (support.ts fakeMediaNode:
 * records in Redis whose viewers the test sets) with an HTTP endpoint standing in for the media
 * node's internal API, which checks the HMAC of every drain call.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { deriveSigningKey } from '../../media-node/contract/internal-api.js';
import { MEDIA_NODE_DRAIN_DEADLINE_MS, redisPrefixFor } from '../../operator/src/controllers/shared.js';
import type { KubeClient } from '../../operator/src/kube/client.js';
import type { Manager } from '../../operator/src/manager.js';
import type { KubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import {
  clientFor,
  clusterSecretOf,
  type FakeEdge,
  fakeEdge,
  kubectlApply,
  ok,
  sleep,
  startApiServerWithCrds,
  testManager,
  waitFor,
} from './support.js';

const NS = 'rollout';
const EDGE = 'live-eu-west-edge';
const POD_TYPE = { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true };
const STS_TYPE = {
  group: 'apps',
  version: 'v1',
  kind: 'StatefulSet',
  plural: 'statefulsets',
  namespaced: true,
};

describe('edge rollout (surge, drain, delete, one pod at a time)', () => {
  let env: KubeTestEnv;
  let redis: RedisServer;
  let client: KubeClient;
  let manager: Manager;
  let signingKey: Buffer;
  let templateLabels: Record<string, string>;
  const edges = new Map<number, FakeEdge>();
  const drains: { pod: string; deadlineMs: number | undefined; at: number }[] = [];

  const kubectl = (args: string[]) => env.kubectl(args, { timeoutMs: 60_000 });
  const getJson = async <T>(...args: string[]) =>
    JSON.parse(ok(await kubectl(['get', ...args, '-n', NS, '-o', 'json']))) as T;
  const podExists = async (ordinal: number) =>
    (await kubectl(['get', 'pod', `${EDGE}-${ordinal}`, '-n', NS])).code === 0;
  const stsReplicas = async () =>
    (await getJson<{ spec: { replicas: number } }>('statefulset', EDGE)).spec.replicas;
  const events = async () =>
    (
      await getJson<{ items: { reason: string; message: string; firstTimestamp?: string }[] }>(
        'events',
        '--field-selector',
        `involvedObject.name=${EDGE}`,
      )
    ).items;
  const rolloutCondition = async () =>
    (
      await getJson<{
        status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
      }>('nodes.rtccdn.io', EDGE)
    ).status?.conditions?.find((condition) => condition.type === 'RolloutInProgress');

  /** What the StatefulSet controller and the kubelet would do: a pod at `revision`, Ready. */
  async function runPod(ordinal: number, revision: string): Promise<void> {
    const name = `${EDGE}-${ordinal}`;
    await kubectlApply(env, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: NS,
        labels: { ...templateLabels, 'controller-revision-hash': revision },
      },
      spec: { containers: [{ name: 'media-node', image: 'ghcr.io/rtccdn/media-node:0.1.0' }] },
    });
    await client.patchStatus(POD_TYPE, NS, name, {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'True' }],
    });
  }

  /** The media node of pod `ordinal`, restarted: a fresh record, not draining. */
  async function startEdge(ordinal: number, viewers: number): Promise<FakeEdge> {
    await edges.get(ordinal)?.close();
    const edge = await fakeEdge({
      pod: `${EDGE}-${ordinal}`,
      signingKey,
      redisUrl: redis.url,
      prefix: redisPrefixFor(NS, 'live'),
      region: 'eu-west',
      viewers,
      onDrain: (call) => {
        if (call.draining) drains.push(call);
      },
    });
    // The drain answer says the pod has no viewers left (the rollout only waits on the record).
    edge.viewers = 0;
    edges.set(ordinal, edge);
    return edge;
  }

  beforeAll(async () => {
    [env, redis] = await Promise.all([startApiServerWithCrds(), startRedisServer()]);
    ok(await kubectl(['create', 'namespace', NS]));
    client = clientFor(env);
    ({ manager } = testManager({ client }));
    manager.start();
    await kubectlApply(env, {
      apiVersion: 'rtccdn.io/v1alpha1',
      kind: 'CDN',
      metadata: { name: 'live', namespace: NS },
      spec: {
        image: 'ghcr.io/rtccdn/media-node:0.1.0',
        redis: { url: redis.url },
        // Two edges, 10 viewers each at most: 6 + 6 viewers leave no room to drain one.
        regions: [{ name: 'eu-west', edges: { minReplicas: 2, maxReplicas: 2, targetViewersPerEdge: 10 } }],
      },
    });
    const secret = await clusterSecretOf(env, NS, 'live');
    signingKey = deriveSigningKey(secret);
    const set = await waitFor('edge StatefulSet with 2 replicas', async () => {
      const result = await kubectl(['get', 'statefulset', EDGE, '-n', NS, '-o', 'json']);
      if (result.code !== 0) return undefined;
      const object = JSON.parse(result.stdout) as {
        spec: {
          replicas: number;
          updateStrategy: { type: string };
          template: { metadata: { labels: Record<string, string> } };
        };
      };
      return object.spec.replicas === 2 ? object : undefined;
    });
    expect(set.spec.updateStrategy).toEqual({ type: 'OnDelete' });
    templateLabels = set.spec.template.metadata.labels;
  }, 40 * 60_000);

  afterAll(async () => {
    await manager?.stop();
    for (const edge of edges.values()) await edge.close();
    client?.transport.close();
    await Promise.all([env?.stop(), redis?.stop()]);
  }, 60_000);

  it('surges, then replaces each old edge only once it is drained, one at a time, then removes the surge pod', async () => {
    // Running at revision rev-1, 6 viewers on each edge.
    for (const ordinal of [0, 1]) {
      await runPod(ordinal, 'rev-1');
      await startEdge(ordinal, 6);
    }
    await client.patchStatus(STS_TYPE, NS, EDGE, {
      replicas: 2,
      readyReplicas: 2,
      updatedReplicas: 2,
      currentRevision: 'rev-1',
      updateRevision: 'rev-1',
    });
    await sleep(1500);
    expect(drains).toEqual([]);
    expect(await stsReplicas()).toBe(2);

    // A new image or configuration: the StatefulSet controller computes revision rev-2.
    await client.patchStatus(STS_TYPE, NS, EDGE, { updateRevision: 'rev-2', updatedReplicas: 0 });
    // No room for 6 more viewers on the other edge (10 each): a surge pod first, nothing drained.
    await waitFor('surge to 3 pods', async () => (await stsReplicas()) === 3, 15_000);
    expect(drains).toEqual([]);
    expect((await rolloutCondition())?.status).toBe('True');

    // The surge pod (ordinal 2) starts at rev-2 and is ready: pod 1 (the highest old) is drained.
    await runPod(2, 'rev-2');
    await startEdge(2, 0);
    await waitFor('pod 1 drained', () => drains.length === 1, 15_000);
    expect(drains[0]).toMatchObject({ pod: `${EDGE}-1`, deadlineMs: MEDIA_NODE_DRAIN_DEADLINE_MS });
    // Its viewers are still there: the pod is kept (it serves them until they leave or the deadline).
    await sleep(2500);
    expect(await podExists(1)).toBe(true);
    expect((await rolloutCondition())?.reason).toBe('PodDraining');
    expect(drains).toHaveLength(1);
    // Undrained behind the rollout's back (the autoscaler did so, racing the rollout's state, on
    // the local cluster): the operator drains it again rather than wait out a deadline nobody keeps.
    await edges.get(1)!.node.setDraining(false);
    await waitFor('pod 1 drained again', () => drains.length === 2, 15_000);
    // With what is left of its deadline, not a new one.
    expect(drains[1]!.pod).toBe(`${EDGE}-1`);
    expect(drains[1]!.deadlineMs).toBeLessThanOrEqual(
      MEDIA_NODE_DRAIN_DEADLINE_MS - (drains[1]!.at - drains[0]!.at) + 1000,
    );
    expect(drains[1]!.deadlineMs).toBeGreaterThan(0);

    // They re-joined elsewhere: the pod is deleted, and recreated at rev-2 by the StatefulSet.
    await edges.get(1)!.node.setViewers(0);
    await edges.get(2)!.node.setViewers(6);
    await waitFor('pod 1 deleted', async () => !(await podExists(1)), 15_000);
    expect(drains).toHaveLength(2);
    await sleep(1000);
    // Nothing else is drained until its replacement is ready.
    expect(drains).toHaveLength(2);
    await runPod(1, 'rev-2');
    await startEdge(1, 0);

    // Pod 0 next (pod 1 and the surge pod have room for its 6 viewers).
    await waitFor('pod 0 drained', () => drains.length === 3, 15_000);
    expect(drains[2]!.pod).toBe(`${EDGE}-0`);
    await edges.get(0)!.node.setViewers(0);
    await edges.get(1)!.node.setViewers(6);
    await waitFor('pod 0 deleted', async () => !(await podExists(0)), 15_000);
    await runPod(0, 'rev-2');
    await startEdge(0, 0);

    // Every pod at rev-2: the surge pod is drained before it goes.
    await waitFor('surge pod drained', () => drains.length === 4, 15_000);
    expect(drains[3]!.pod).toBe(`${EDGE}-2`);
    await sleep(1000);
    expect(await stsReplicas()).toBe(3);
    await edges.get(2)!.node.setViewers(0);
    await edges.get(0)!.node.setViewers(6);
    await waitFor('back to 2 pods', async () => (await stsReplicas()) === 2, 15_000);

    await waitFor(
      'RolloutInProgress False',
      async () => (await rolloutCondition())?.status === 'False',
      15_000,
    );
    const node = await getJson<{ metadata: { annotations?: Record<string, string> } }>(
      'nodes.rtccdn.io',
      EDGE,
    );
    expect(node.metadata.annotations?.['rtccdn.io/rollout']).toBeUndefined();
    const reasons = (await events()).map((event) => event.reason);
    expect(reasons).toEqual(
      expect.arrayContaining(['RolloutSurge', 'PodDraining', 'PodDrained', 'RolloutComplete']),
    );
    expect(reasons.filter((reason) => reason === 'PodDrained').length).toBeGreaterThanOrEqual(1);
    // One pod out of service at a time: each drain came after the previous pod was replaced.
    expect(drains.map((drain) => drain.pod)).toEqual([`${EDGE}-1`, `${EDGE}-1`, `${EDGE}-0`, `${EDGE}-2`]);
  }, 180_000);
});
