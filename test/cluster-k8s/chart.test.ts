/**
 * The Helm chart on the local Kubernetes cluster (scripts/cluster/cluster.sh), with the images
 * `npm run images` built: `helm install -f helm/rtccdn/values-local.yaml` runs a Ready, leader-
 * elected two-replica operator and a Ready Redis that answers only with the password of the
 * chart's Secret, whose URL works from another pod by its Service name; `helm uninstall` leaves
 * no object of the release behind (the CRDs aside: kept by policy). CDNs are the end-to-end
 * test's business.
 *
 * Brings the cluster up if it is down, and down again only then. A release and namespace of its
 * own; CRDs installed by the release only when the cluster has none (then deleted at the end),
 * so the cluster is left as found. Needs root and Docker; run with `npm run test:cluster`.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CHART, clusterUp, RTCCDN_CRDS } from '../../scripts/harness/k8s-cdn.js';
import {
  type CommandResult,
  ensureKubeTestEnvBinaries,
  runCommand,
} from '../../scripts/harness/kube-testenv.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLUSTER = join(REPO, 'scripts/cluster/cluster.sh');
const RELEASE = 'chart-test';
const NS = `chart-${randomBytes(3).toString('hex')}`;
const FULLNAME = `${RELEASE}-rtccdn`;

let kubeconfig = '';
let binDir = '';
let startedCluster = false;
let installedCrds = false;

async function run(tool: 'kubectl' | 'helm', args: string[], timeoutMs = 120_000): Promise<CommandResult> {
  return runCommand(join(binDir, tool), ['--kubeconfig', kubeconfig, ...args], { timeoutMs });
}
async function ok(tool: 'kubectl' | 'helm', args: string[], timeoutMs?: number): Promise<string> {
  const result = await run(tool, args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(`${tool} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim().slice(-1500)}`);
  }
  return result.stdout;
}
const kubectl = (...args: string[]) => ok('kubectl', args);
const getJson = async (...args: string[]) => JSON.parse(await kubectl(...args, '-o', 'json'));

describe('helm/rtccdn on the local cluster', () => {
  beforeAll(async () => {
    binDir = await ensureKubeTestEnvBinaries();
    startedCluster = (await runCommand('bash', [CLUSTER, 'status'], { timeoutMs: 60_000 })).code !== 0;
    kubeconfig = await clusterUp();
    const existing = await run('kubectl', ['get', 'crd', ...RTCCDN_CRDS, '-o', 'name']);
    installedCrds = existing.stdout.trim() === '';
  }, 60 * 60_000);

  afterAll(async () => {
    if (kubeconfig) {
      // Whatever a failed test left: the release, its namespace, the CRDs it installed.
      await run('helm', ['uninstall', RELEASE, '-n', NS, '--ignore-not-found', '--wait']);
      await run('kubectl', ['delete', 'namespace', NS, '--ignore-not-found', '--timeout=120s']);
      if (installedCrds) await run('kubectl', ['delete', 'crd', ...RTCCDN_CRDS, '--ignore-not-found']);
    }
    if (startedCluster) {
      const down = await runCommand('bash', [CLUSTER, 'down'], {
        timeoutMs: 180_000,
        teeStderr: process.stderr,
      });
      if (down.code !== 0) throw new Error(`cluster down failed (exit ${down.code}): ${down.stderr}`);
    }
  }, 400_000);

  it('installs a Ready operator (two replicas, one leader) and a Ready Redis', async () => {
    await ok(
      'helm',
      [
        'install',
        RELEASE,
        CHART,
        '-n',
        NS,
        '--create-namespace',
        '-f',
        join(CHART, 'values-local.yaml'),
        '--set',
        `crds.install=${installedCrds}`,
        '--wait',
        '--timeout',
        '5m',
      ],
      6 * 60_000,
    );
    const deployment = await getJson('-n', NS, 'get', 'deployment', `${FULLNAME}-operator`);
    expect(deployment.status.readyReplicas).toBe(2);
    const pods = await getJson('-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=rtccdn-operator');
    const names = pods.items.map((pod: { metadata: { name: string } }) => pod.metadata.name);
    expect(names).toHaveLength(2);
    for (const pod of pods.items) {
      expect(pod.spec.containers[0].image).toBe('rtccdn/operator:latest');
      expect(pod.status.containerStatuses[0].restartCount).toBe(0);
    }
    // One of the two holds the Lease: it logs that it became the leader.
    const lease = await getJson('-n', NS, 'get', 'lease', 'rtccdn-operator');
    expect(names).toContain(lease.spec.holderIdentity);
    expect(await kubectl('-n', NS, 'logs', lease.spec.holderIdentity)).toContain('became the leader');

    const redis = await getJson('-n', NS, 'get', 'pod', `${FULLNAME}-redis-0`);
    expect(redis.status.conditions.find((c: { type: string }) => c.type === 'Ready').status).toBe('True');
    expect(redis.spec.containers[0].image).toBe('rtccdn/redis:latest');
  });

  it('serves Redis only with the Secret’s password, by the URL in the Secret, from another pod', async () => {
    const redisPod = `${FULLNAME}-redis-0`;
    expect((await kubectl('-n', NS, 'exec', redisPod, '--', 'redis-cli', 'ping')).trim()).toBe('PONG');
    const anonymous = await kubectl(
      '-n',
      NS,
      'exec',
      redisPod,
      '--',
      'env',
      '-u',
      'REDISCLI_AUTH',
      'redis-cli',
      'ping',
    );
    expect(anonymous.trim()).toMatch(/^NOAUTH/);
    expect((await kubectl('-n', NS, 'exec', redisPod, '--', 'id', '-u')).trim()).toBe('1000');
    expect(
      (await kubectl('-n', NS, 'exec', redisPod, '--', 'redis-cli', 'config', 'get', 'appendonly')).trim(),
    ).toBe('appendonly\nyes');

    const secret = await getJson('-n', NS, 'get', 'secret', `${FULLNAME}-redis`);
    const url = Buffer.from(secret.data.url, 'base64').toString();
    expect(url).toMatch(new RegExp(`^redis://:[A-Za-z0-9]{32}@${FULLNAME}-redis\\.${NS}\\.svc:6379/0$`));
    // What a media node does with spec.redis.secretRef: connect by that URL (the Service's DNS
    // name, through kube-proxy), here from an operator pod with the image's own ioredis.
    const operatorPod = (
      await kubectl(
        '-n',
        NS,
        'get',
        'pods',
        '-l',
        'app.kubernetes.io/name=rtccdn-operator',
        '-o',
        'jsonpath={.items[0].metadata.name}',
      )
    ).trim();
    const script = [
      "const Redis = require('ioredis');",
      'const redis = new Redis(process.argv[1], { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 5000 });',
      'redis.connect().then(() => redis.ping()).then((reply) => { console.log(reply); return redis.quit(); })',
      '  .catch((error) => { console.error(String(error)); process.exit(1); });',
    ].join('\n');
    expect((await kubectl('-n', NS, 'exec', operatorPod, '--', 'node', '-e', script, url)).trim()).toBe(
      'PONG',
    );
  });

  it('uninstalls everything of the release (the CRDs aside, kept by policy)', async () => {
    await ok('helm', ['uninstall', RELEASE, '-n', NS, '--wait', '--timeout', '3m'], 4 * 60_000);
    await kubectl('-n', NS, 'wait', 'pod', '--all', '--for=delete', '--timeout=120s');
    // Every listable kind, namespaced and cluster-wide, labelled as this release's.
    const kinds = async (...flags: string[]) =>
      (await kubectl('api-resources', '--verbs=list', ...flags, '-o', 'name'))
        .trim()
        .split('\n')
        .filter((kind) => !/^events(\.events\.k8s\.io)?$/.test(kind))
        .join(',');
    const names = (output: string) =>
      output
        .trim()
        .split('\n')
        .filter((line) => line !== '');
    const left = names(
      await kubectl('get', await kinds(), '-A', '-l', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'name'),
    );
    const crds = left.filter((name) => name.startsWith('customresourcedefinition.apiextensions.k8s.io/'));
    expect(left.filter((name) => !crds.includes(name))).toEqual([]);
    expect(crds.length).toBe(installedCrds ? RTCCDN_CRDS.length : 0);
    // Nothing unlabelled either: the namespace holds only what every namespace has.
    const inNamespace = names(await kubectl('get', await kinds('--namespaced=true'), '-n', NS, '-o', 'name'));
    expect(inNamespace.sort()).toEqual(['configmap/kube-root-ca.crt', 'serviceaccount/default']);
  });
});
