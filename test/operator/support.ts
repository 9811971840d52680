/**
 * Shared pieces of the operator's tests against a real kube-apiserver (scripts/harness/kube-testenv.ts)
 * and a real redis-server: starting both with the CRDs installed, an operator Manager tuned for
 * tests, synthetic media nodes that register in Redis through the media node's own
 * ClusterRegistry (so the layout is the real one), and polling.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { stringify } from 'yaml';
import {
  RESPONSE_SIGNATURE_HEADER,
  RequestVerifier,
  signResponse,
} from '../../media-node/contract/internal-api.js';
import { ClusterRegistry } from '../../media-node/src/cluster/ClusterRegistry.js';
import { KubeClient } from '../../operator/src/kube/client.js';
import { KubeConfigTransport } from '../../operator/src/kube/transport.js';
import { createLogger, type LogLevel } from '../../operator/src/logger.js';
import { Manager, type ManagerOptions } from '../../operator/src/manager.js';
import { OperatorMetrics } from '../../operator/src/metrics.js';
import {
  type CommandResult,
  ensureKubeTestEnvBinaries,
  type KubeTestEnv,
  startKubeTestEnv,
} from '../../scripts/harness/kube-testenv.js';

export const CRDS_DIR = fileURLToPath(new URL('../../crds/', import.meta.url));
export const REPO_DIR = fileURLToPath(new URL('../../', import.meta.url));
const OPERATOR_MAIN = join(REPO_DIR, 'operator/src/main.ts');

/** RTCCDN_TEST_LOG_LEVEL=debug shows the operator's logs while a test runs. */
export const LOG_LEVEL = (process.env.RTCCDN_TEST_LOG_LEVEL ?? 'silent') as LogLevel;
export const testLogger = (bindings: Record<string, unknown> = {}) => createLogger(LOG_LEVEL, bindings);

export function ok(result: CommandResult, what = 'command'): string {
  if (result.code !== 0)
    throw new Error(`${what} failed (exit ${result.code}): ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** `kubectl apply` of one object; throws with kubectl's message when it is refused. */
export async function kubectlApply(env: KubeTestEnv, object: unknown): Promise<string> {
  return ok(await env.kubectl(['apply', '-f', '-'], { input: stringify(object) }), 'kubectl apply');
}

/** `kubectl get -o json` of one object; undefined when it does not exist. */
export async function kubectlGet<T>(
  env: KubeTestEnv,
  resource: string,
  name: string,
  namespace: string,
): Promise<T | undefined> {
  const result = await env.kubectl(['get', resource, name, '-n', namespace, '-o', 'json']);
  if (result.code !== 0) {
    if (/NotFound/.test(result.stderr)) return undefined;
    throw new Error(result.stderr);
  }
  return JSON.parse(result.stdout) as T;
}

/** Waits until the API server serves every rtccdn CRD (condition Established). */
export async function waitForCrdsEstablished(env: KubeTestEnv): Promise<void> {
  ok(
    await env.kubectl(
      ['wait', '--for=condition=Established', '--timeout=60s'].concat([
        'crd/cdns.rtccdn.io',
        'crd/nodes.rtccdn.io',
        'crd/streamacls.rtccdn.io',
      ]),
      { timeoutMs: 70_000 },
    ),
    'kubectl wait crds',
  );
}

/** A fresh API server with the rtccdn CRDs installed and Established. */
export async function startApiServerWithCrds(apiServerArgs: string[] = []): Promise<KubeTestEnv> {
  const binDir = await ensureKubeTestEnvBinaries();
  const env = await startKubeTestEnv({ binDir, apiServerArgs });
  try {
    ok(await env.kubectl(['apply', '-f', CRDS_DIR]), 'kubectl apply crds');
    await waitForCrdsEstablished(env);
  } catch (error) {
    await env.stop();
    throw error;
  }
  return env;
}

/** Waits for the cluster Secret the operator makes for CDN `cdn` and returns its clusterSecret. */
export async function clusterSecretOf(env: KubeTestEnv, namespace: string, cdn: string): Promise<string> {
  return await waitFor(`the cluster Secret of CDN ${cdn}`, async () => {
    const result = await env.kubectl([
      'get',
      'secret',
      `${cdn}-cluster`,
      '-n',
      namespace,
      '-o',
      'jsonpath={.data.clusterSecret}',
    ]);
    return result.code === 0 && result.stdout !== ''
      ? Buffer.from(result.stdout, 'base64').toString('utf8')
      : undefined;
  });
}

/**
 * An operator process (operator/src/main.ts) on the test API server: health and metrics on a
 * free loopback port, LOG_LEVEL debug unless given, everything else from `extraEnv`.
 */
export function spawnOperator(env: KubeTestEnv, extraEnv: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', OPERATOR_MAIN], {
    cwd: REPO_DIR,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KUBECONFIG: env.kubeconfigPath,
      HEALTH_PORT: '0',
      HEALTH_HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function clientFor(env: KubeTestEnv): KubeClient {
  return new KubeClient(KubeConfigTransport.fromSource({ kubeconfigPath: env.kubeconfigPath }));
}

export type TestManagerOptions = Partial<Omit<ManagerOptions, 'client' | 'logger' | 'metrics'>> & {
  client: KubeClient;
};

/** A Manager with short periods (no leader election unless given). */
export function testManager(options: TestManagerOptions): { manager: Manager; metrics: OperatorMetrics } {
  const metrics = new OperatorMetrics({ collectDefaults: false });
  const identity = options.identity ?? `test-${Math.random().toString(16).slice(2, 8)}`;
  const manager = new Manager({
    identity,
    workers: 2,
    resyncMs: 60_000,
    statusRefreshMs: 500,
    autoscaler: { intervalMs: 300, stabilizationMs: 60_000, drainGraceMs: 600_000 },
    ...options,
    logger: testLogger({ instance: identity }),
    metrics,
  });
  return { manager, metrics };
}

import { waitFor } from '../../scripts/harness/wait.js';

export { setTimeout as sleep } from 'node:timers/promises';
export { waitFor };

/** The sum of a counter's values with these labels (prom-client). */
export async function counterValue(
  metrics: OperatorMetrics,
  name: 'reconciles' | 'drainRequests',
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metrics[name].get();
  return values
    .filter((value) =>
      Object.entries(labels).every(
        ([key, wanted]) => (value.labels as Record<string, unknown>)[key] === wanted,
      ),
    )
    .reduce((sum, value) => sum + value.value, 0);
}

/**
 * A synthetic media node: the real ClusterRegistry registering a node record (heartbeat 100 ms,
 * TTL 1 s) whose load the test sets. It does not serve media.
 */
export interface FakeMediaNode {
  readonly registry: ClusterRegistry;
  setViewers(viewers: number): Promise<void>;
  setDraining(draining: boolean): Promise<void>;
  close(): Promise<void>;
}

export async function fakeMediaNode(options: {
  redisUrl: string;
  prefix: string;
  id: string;
  role: 'origin' | 'edge';
  region: string;
  internalUrl: string;
  viewers?: number;
}): Promise<FakeMediaNode> {
  const registry = ClusterRegistry.create({
    redisUrl: options.redisUrl,
    prefix: options.prefix,
    self: { id: options.id, role: options.role, region: options.region, internalUrl: options.internalUrl },
    heartbeatMs: 100,
    ttlMs: 1_000,
    logger: pino({ level: 'silent' }),
  });
  let viewers = options.viewers ?? 0;
  const publish = async (): Promise<void> => {
    registry.setLoad({ viewers, streams: viewers > 0 ? 1 : 0, egressBps: viewers * 1_000_000, cpu: 0.1 });
    await registry.heartbeatNow();
  };
  await waitFor(`${options.id} registered in Redis`, async () => {
    await publish();
    return registry.ready;
  });
  return {
    registry,
    async setViewers(count) {
      viewers = count;
      await publish();
    },
    async setDraining(draining) {
      registry.setDraining(draining);
      await publish();
    },
    close: () => registry.close(),
  };
}

/** A drain call a fake edge took: what the operator asked of the pod, and when. */
export interface DrainCall {
  pod: string;
  draining: boolean;
  deadlineMs: number | undefined;
  at: number;
}

/** A synthetic edge pod: its registry record (fakeMediaNode) and its internal API's drain route. */
export interface FakeEdge {
  readonly node: FakeMediaNode;
  /** Viewers the drain answer reports (the record's count is set with node.setViewers). */
  viewers: number;
  close(): Promise<void>;
}

/**
 * Starts a stand-in for edge pod `pod`: `POST /internal/v1/drain` checked with the media node's
 * own RequestVerifier (signed for this pod with `signingKey`, the answer signed back), which does
 * what the media node does — stop taking viewers and say so in its record — and reports the call
 * to `onDrain`; any other or badly signed request is refused (401) and reported to `onRefused`.
 */
export async function fakeEdge(options: {
  pod: string;
  signingKey: Buffer;
  redisUrl: string;
  prefix: string;
  region: string;
  viewers: number;
  onDrain?: (call: DrainCall) => void;
  onRefused?: (reason: string) => void;
}): Promise<FakeEdge> {
  const { pod, signingKey } = options;
  const verifier = new RequestVerifier(signingKey, pod);
  let node: FakeMediaNode | undefined;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const verdict = verifier.verify(
        { method: request.method ?? '', path: request.url ?? '', body },
        request.headers.authorization,
      );
      if (!verdict.ok || request.url !== '/internal/v1/drain' || !node) {
        options.onRefused?.(`${pod}: ${verdict.ok ? request.url : verdict.reason}`);
        response.writeHead(401).end();
        return;
      }
      const { draining, deadlineMs } = JSON.parse(body) as { draining: boolean; deadlineMs?: number };
      options.onDrain?.({ pod, draining, deadlineMs, at: Date.now() });
      void node.setDraining(draining).then(() => {
        const answer = JSON.stringify({ draining, viewers: edge.viewers });
        response.writeHead(200, {
          'Content-Type': 'application/json',
          [RESPONSE_SIGNATURE_HEADER]: signResponse(signingKey, verdict.nonce, 200, answer),
        });
        response.end(answer);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  node = await fakeMediaNode({
    redisUrl: options.redisUrl,
    prefix: options.prefix,
    id: pod,
    role: 'edge',
    region: options.region,
    internalUrl: `http://127.0.0.1:${port}`,
    viewers: options.viewers,
  });
  const started: FakeMediaNode = node;
  const edge: FakeEdge = {
    node: started,
    viewers: options.viewers,
    async close() {
      await started.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return edge;
}
