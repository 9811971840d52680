import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { EnvSchema as MediaNodeEnvSchema } from '../media-node/src/config.js';
import { loadOperatorConfig } from '../operator/src/config.js';
import { STREAM_ACL_TYPE } from '../operator/src/kube/resources.js';
import { TestCluster } from '../scripts/harness/cluster.js';
import { postSdp, TestPublisher } from '../scripts/harness/peers.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import {
  clientFor,
  kubectlApply,
  kubectlGet,
  ok,
  startApiServerWithCrds,
  testManager,
  waitFor,
} from '../test/operator/support.js';
import { type Summary, summarize } from './stats.js';

/**
 * The operator on a real kube-apiserver + etcd and Redis, with real media nodes (origin, edge):
 *
 *  - `kubectl apply` of a StreamACL → the edge admits its key: time from the start of the
 *    kubectl command to the first admission (the stream is private by default);
 *  - reconcile throughput: N StreamACLs created through the API at once → all Synced: total
 *    time, and per object from its creation to its Synced status being observed.
 *
 * The operator runs its defaults (operator/src/config.ts) except `workers` (BENCH_OPERATOR_WORKERS);
 * the media nodes run theirs except what the bench needs (MEDIA_NODE_ENV, each with its reason).
 * The result lists every setting that differs from its default, and run.ts prints them.
 */

const NS = 'bench';
const whepOffer = readFileSync(new URL('../test/fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');

/** Media node settings the bench needs, and why (each is compared with its default). */
const MEDIA_NODE_ENV = {
  ACL_DEFAULT_POLICY: 'deny', // as the CDN resource below says: a stream is private until its StreamACL
  LOG_LEVEL: 'warn', // keeps the bench output readable
  // The apply run polls with a key before it is valid: every early poll is a failed key.
  ACL_FAILURES_PER_CLIENT: '1000000',
  ACL_FAILURES_PER_STREAM: '1000000',
};

export interface NonDefaultSetting {
  component: 'operator' | 'media node';
  setting: string;
  value: unknown;
  default: unknown;
}

export interface OperatorBenchResult {
  applyToEnforcedMs: Summary;
  throughput: { objects: number; totalMs: number; perObjectMs: Summary; objectsPerSecond: number };
  settings: {
    operator: OperatorSettings;
    mediaNodeEnv: Record<string, string>;
    /** Every setting above that differs from the component's default. */
    nonDefault: NonDefaultSetting[];
  };
}

type OperatorSettings = Pick<
  ReturnType<typeof loadOperatorConfig>,
  'workers' | 'resyncMs' | 'statusRefreshMs' | 'autoscaler'
>;

/** The operator's reconcile settings when nothing is configured (what `npm run operator` uses). */
function operatorDefaults(): OperatorSettings {
  const { workers, resyncMs, statusRefreshMs, autoscaler } = loadOperatorConfig({
    OPERATOR_NAMESPACE: 'bench',
  });
  return { workers, resyncMs, statusRefreshMs, autoscaler };
}

/** Which settings differ from their defaults: the operator's, then the media nodes' variables. */
function nonDefaultSettings(
  operator: OperatorSettings,
  mediaNodeEnv: Record<string, string>,
): NonDefaultSetting[] {
  const differences: NonDefaultSetting[] = [];
  const defaults = operatorDefaults();
  for (const [setting, value] of Object.entries(operator)) {
    const fallback = defaults[setting as keyof OperatorSettings];
    if (JSON.stringify(value) !== JSON.stringify(fallback))
      differences.push({ component: 'operator', setting, value, default: fallback });
  }
  const nodeDefaults = MediaNodeEnvSchema.parse({}) as Record<string, unknown>;
  const nodeValues = MediaNodeEnvSchema.parse(mediaNodeEnv) as Record<string, unknown>;
  for (const setting of Object.keys(mediaNodeEnv)) {
    if (JSON.stringify(nodeValues[setting]) !== JSON.stringify(nodeDefaults[setting]))
      differences.push({
        component: 'media node',
        setting,
        value: nodeValues[setting],
        default: nodeDefaults[setting],
      });
  }
  return differences;
}

export async function runOperatorBench(options: {
  applies: number;
  objects: number;
  workers: number;
}): Promise<OperatorBenchResult> {
  const operatorSettings: OperatorSettings = { ...operatorDefaults(), workers: options.workers };
  const [env, redis] = await Promise.all([startApiServerWithCrds(), startRedisServer()]);
  const client = clientFor(env);
  const { manager } = testManager({ client, ...operatorSettings });
  let cluster: TestCluster | undefined;
  const publisher = new TestPublisher({ width: 320, height: 240 });
  const kubectl = (args: string[], input?: string) =>
    env.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
  try {
    ok(await kubectl(['create', 'namespace', NS]), 'create namespace');
    manager.start();
    await kubectlApply(env, {
      apiVersion: 'rtccdn.io/v1alpha1',
      kind: 'CDN',
      metadata: { name: 'cdn', namespace: NS },
      spec: {
        image: 'rtccdn/media-node:bench',
        redis: { url: redis.url },
        regions: [{ name: 'a' }],
        acl: { defaultPolicy: 'deny' },
      },
    });
    const secretData = async (kind: string, name: string) =>
      (
        await waitFor(`${kind} ${name}`, () =>
          kubectlGet<{ data: Record<string, string> }>(env, kind, name, NS),
        )
      ).data;
    const clusterSecret = Buffer.from(
      (await secretData('secret', 'cdn-cluster')).clusterSecret!,
      'base64',
    ).toString();
    const config = await secretData('configmap', 'cdn-config');
    cluster = new TestCluster(
      redis.url,
      // REDIS_PREFIX: the CDN's, from its ConfigMap, as the operator gives it to its pods.
      { REDIS_PREFIX: config.REDIS_PREFIX!, ...MEDIA_NODE_ENV },
      clusterSecret,
    );
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'a' },
      { id: 'edge', role: 'edge', region: 'a' },
    );
    if ((await publisher.publish(cluster.node('origin').baseUrl, 'show')).status !== 201)
      throw new Error('WHIP failed');
    const edge = cluster.node('edge').baseUrl;

    // kubectl apply → enforced at the edge.
    const applyToEnforced: number[] = [];
    for (let i = 0; i < options.applies; i++) {
      const key = `bench-key-${i}-0123456789`;
      const manifest = stringify({
        apiVersion: 'rtccdn.io/v1alpha1',
        kind: 'StreamACL',
        metadata: { name: `show-${i}`, namespace: NS },
        spec: { cdnRef: { name: 'cdn' }, stream: 'show', keys: [{ id: 'k', value: key }] },
      });
      const started = performance.now();
      const applying = kubectl(['apply', '-f', '-'], manifest);
      for (;;) {
        const played = await postSdp(`${edge}/whep/show`, whepOffer, { Authorization: `Bearer ${key}` });
        if (played.status === 201) {
          applyToEnforced.push(Math.round(performance.now() - started));
          await fetch(`${edge}${played.headers.get('location')}`, { method: 'DELETE' });
          break;
        }
        if (performance.now() - started > 30_000) {
          const status = await kubectl([
            'get',
            'streamacls.rtccdn.io',
            `show-${i}`,
            '-n',
            NS,
            '-o',
            'jsonpath={.status}',
          ]);
          throw new Error(
            `StreamACL not enforced within 30 s: edge answers ${played.status} ${played.body}; status ${status.stdout} ${status.stderr}`,
          );
        }
        await sleep(5);
      }
      ok(await applying, 'kubectl apply');
      ok(await kubectl(['delete', 'streamacls.rtccdn.io', `show-${i}`, '-n', NS, '--wait=true']), 'delete');
    }

    // Throughput: N StreamACLs at once.
    const createdAt = new Map<string, number>();
    const syncedAt = new Map<string, number>();
    const started = performance.now();
    const names = Array.from({ length: options.objects }, (_, i) => `bulk-${i}`);
    for (let batch = 0; batch < names.length; batch += 50) {
      await Promise.all(
        names.slice(batch, batch + 50).map(async (name) => {
          await client.create(STREAM_ACL_TYPE, {
            metadata: { name, namespace: NS },
            spec: {
              cdnRef: { name: 'cdn' },
              stream: name,
              keys: [{ id: 'k', value: `${name}-key-0123456789` }],
            },
          });
          createdAt.set(name, performance.now());
        }),
      );
    }
    while (syncedAt.size < names.length) {
      if (performance.now() - started > 600_000)
        throw new Error(`only ${syncedAt.size}/${names.length} Synced in 10 min`);
      const { items } = await client.list(STREAM_ACL_TYPE, NS);
      const now = performance.now();
      for (const item of items as {
        metadata: { name: string };
        status?: { conditions?: { type: string; status: string }[] };
      }[]) {
        const synced = item.status?.conditions?.some((c) => c.type === 'Synced' && c.status === 'True');
        if (synced && createdAt.has(item.metadata.name) && !syncedAt.has(item.metadata.name)) {
          syncedAt.set(item.metadata.name, now);
        }
      }
      await sleep(100);
    }
    const totalMs = Math.round(performance.now() - started);
    return {
      applyToEnforcedMs: summarize(applyToEnforced),
      throughput: {
        objects: names.length,
        totalMs,
        perObjectMs: summarize(names.map((name) => Math.round(syncedAt.get(name)! - createdAt.get(name)!))),
        objectsPerSecond: Math.round((names.length / totalMs) * 1000 * 10) / 10,
      },
      settings: {
        operator: operatorSettings,
        mediaNodeEnv: MEDIA_NODE_ENV,
        nonDefault: nonDefaultSettings(operatorSettings, MEDIA_NODE_ENV),
      },
    };
  } finally {
    publisher.close();
    await cluster?.stopAll();
    await manager.stop();
    await Promise.all([env.stop(), redis.stop()]);
  }
}
