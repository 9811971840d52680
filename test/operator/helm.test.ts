/**
 * The Helm chart (helm/rtccdn), rendered by the real helm and applied to a real kube-apiserver:
 * it lints, renders the CRDs exactly as generated (plus the keep policy) only when enabled,
 * a leader-elected two-replica operator Deployment, least-privilege RBAC (checked with
 * `kubectl auth can-i` as the chart's ServiceAccount), and an example CDN only on request.
 * Finally an operator authenticated *as that ServiceAccount* (a TokenRequest token) reconciles
 * the example CDN without a single Forbidden: the Roles are sufficient, not just small.
 * The chart's Redis (redis.enabled): a non-root StatefulSet with a volume or an emptyDir, its
 * Services, a Secret whose password `helm upgrade` keeps (a real install on the API server), and
 * values checked by values.schema.json; the operator's command is the image's (the Dockerfile).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { parseRedisUrl } from '../../media-node/contract/redis.js';
import { KubeClient } from '../../operator/src/kube/client.js';
import { KubeConfigTransport } from '../../operator/src/kube/transport.js';
import { renderCrdFiles } from '../../scripts/crds/crdgen.js';
import type { KubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { ensureKubeTestEnvBinaries, startKubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import { CRDS_DIR, counterValue, ok, REPO_DIR, testManager, waitFor } from './support.js';

const CHART = join(REPO_DIR, 'helm/rtccdn');
const NS = 'rtccdn-system';
const SERVICE_ACCOUNT = `system:serviceaccount:${NS}:rtccdn-operator`;
const LOCAL_VALUES = join(CHART, 'values-local.yaml');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
  };
  // biome-ignore lint/suspicious/noExplicitAny: test access to arbitrary manifest fields
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: test access to arbitrary manifest fields
  rules?: any[];
}

describe('Helm chart helm/rtccdn', () => {
  let env: KubeTestEnv;
  let redis: RedisServer;

  const helm = async (args: string[]) => ok(await env.helm(args, { timeoutMs: 60_000 }), `helm ${args[0]}`);
  const render = async (...set: string[]): Promise<Manifest[]> =>
    parseAllDocuments(
      await helm([
        'template',
        'rtccdn',
        CHART,
        '--namespace',
        NS,
        ...set.flatMap((value, index) =>
          value === '-f' || set[index - 1] === '-f' ? [value] : ['--set', value],
        ),
      ]),
    )
      .map((document) => document.toJS() as Manifest | null)
      .filter((manifest): manifest is Manifest => manifest !== null);
  const renderLocal = async (...set: string[]): Promise<Manifest[]> => render('-f', LOCAL_VALUES, ...set);
  const find = (manifests: Manifest[], kind: string, name?: string) =>
    manifests.find(
      (manifest) => manifest.kind === kind && (name === undefined || manifest.metadata.name === name),
    );

  beforeAll(async () => {
    const binDir = await ensureKubeTestEnvBinaries();
    [env, redis] = await Promise.all([startKubeTestEnv({ binDir }), startRedisServer()]);
  }, 40 * 60_000);

  afterAll(async () => {
    await Promise.all([env?.stop(), redis?.stop()]);
  }, 60_000);

  it('lints', async () => {
    expect(await helm(['lint', CHART])).toContain('0 chart(s) failed');
  });

  it('renders the generated CRDs unchanged but for the keep policy and labels, and only when enabled', async () => {
    const manifests = await render();
    const crds = manifests.filter((manifest) => manifest.kind === 'CustomResourceDefinition');
    expect(crds.map((crd) => crd.metadata.name).sort()).toEqual([
      'cdns.rtccdn.io',
      'nodes.rtccdn.io',
      'streamacls.rtccdn.io',
    ]);
    for (const { file } of renderCrdFiles()) {
      const generated = parseAllDocuments(readFileSync(join(CRDS_DIR, file), 'utf8'))[0]!.toJS() as Manifest;
      const rendered = crds.find((crd) => crd.metadata.name === generated.metadata.name)!;
      expect(rendered.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
      expect(rendered.metadata.labels).toMatchObject({ 'app.kubernetes.io/part-of': 'rtccdn' });
      const { metadata: _rendered, ...renderedRest } = rendered;
      const { metadata: _generated, ...generatedRest } = generated;
      expect(renderedRest).toEqual(generatedRest);
    }
    expect(
      (await render('crds.install=false')).some((manifest) => manifest.kind === 'CustomResourceDefinition'),
    ).toBe(false);
    const unkept = await render('crds.keep=false');
    expect(find(unkept, 'CustomResourceDefinition')?.metadata.annotations).toBeUndefined();
  });

  it('renders a two-replica, leader-elected operator with probes, and no example CDN by default', async () => {
    const manifests = await render();
    const deployment = find(manifests, 'Deployment', 'rtccdn-operator')!;
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.serviceAccountName).toBe('rtccdn-operator');
    const container = pod.containers[0];
    const variables = Object.fromEntries(
      (container.env as { name: string; value?: string; valueFrom?: unknown }[]).map((variable) => [
        variable.name,
        variable.value ?? variable.valueFrom,
      ]),
    );
    expect(variables).toMatchObject({
      LEADER_ELECTION: 'true',
      OPERATOR_NAMESPACE: { fieldRef: { fieldPath: 'metadata.namespace' } },
      POD_NAME: { fieldRef: { fieldPath: 'metadata.name' } },
      WATCH_NAMESPACE: '',
      HEALTH_PORT: '8090',
      AUTOSCALER_STABILIZATION_MS: '300000',
    });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(find(manifests, 'PodDisruptionBudget')?.spec.minAvailable).toBe(1);
    // The leader Lease is the chart's (so that uninstall deletes it), with no spec for upgrades to reset.
    const lease = find(manifests, 'Lease', 'rtccdn-operator')!;
    expect(lease.metadata.namespace).toBe(NS);
    expect(lease.spec).toBeUndefined();
    expect(find(manifests, 'CDN')).toBeUndefined();
    // Two replicas without leader election would reconcile twice: refused at render time.
    const refused = await env.helm([
      'template',
      'rtccdn',
      CHART,
      '--set',
      'operator.leaderElection.enabled=false',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('requires operator.leaderElection.enabled');
    const single = await render('operator.replicas=1', 'operator.leaderElection.enabled=false');
    expect(find(single, 'Lease')).toBeUndefined();
  });

  it('scopes RBAC to one namespace with a Role when watchNamespace is set', async () => {
    const manifests = await render('operator.watchNamespace=media');
    // Only the read-only list of Kubernetes Nodes (cluster-scoped) stays a ClusterRole, and goes
    // with rbac.readNodes=false.
    expect(manifests.filter((m) => m.kind === 'ClusterRole').map((m) => [m.metadata.name, m.rules])).toEqual([
      ['rtccdn-operator-nodes', [{ apiGroups: [''], resources: ['nodes'], verbs: ['list'] }]],
    ]);
    const noNodes = await render('operator.watchNamespace=media', 'rbac.readNodes=false');
    expect(find(noNodes, 'ClusterRole')).toBeUndefined();
    expect(find(manifests, 'Role', 'rtccdn-operator')?.metadata.namespace).toBe('media');
    expect(find(manifests, 'RoleBinding', 'rtccdn-operator')?.metadata.namespace).toBe('media');
    expect(find(manifests, 'Role', 'rtccdn-operator-leader-election')?.metadata.namespace).toBe(NS);
  });

  it('runs the operator as the image built from the Dockerfile does (tini, compiled JavaScript)', async () => {
    // The operator stage's ENTRYPOINT and CMD, read from the Dockerfile the images are built from.
    const dockerfile = readFileSync(join(REPO_DIR, 'Dockerfile'), 'utf8');
    const stage = dockerfile.slice(dockerfile.indexOf('AS operator\n'));
    const instruction = (name: string) =>
      JSON.parse(new RegExp(`^${name} (\\[.*\\])$`, 'm').exec(stage)?.[1] ?? 'null') as string[];
    const imageCommand = [...instruction('ENTRYPOINT'), ...instruction('CMD')];
    expect(imageCommand).toEqual(['/usr/bin/tini', '--', 'node', 'dist/operator/src/main.js']);
    for (const manifests of [
      await render(),
      await renderLocal(),
      await render('operator.aclApi.adminTokenSecretRef.name=acl-admin'),
    ]) {
      for (const deployment of manifests.filter((manifest) => manifest.kind === 'Deployment')) {
        expect(deployment.spec.template.spec.containers[0].command).toEqual(imageCommand);
      }
    }
    // An empty command leaves the image's own.
    const own = find(await render('operator.command=null'), 'Deployment', 'rtccdn-operator')!;
    expect(own.spec.template.spec.containers[0].command).toBeUndefined();
  });

  it('renders Redis when redis.enabled (the default): a non-root StatefulSet, its Services and Secret', async () => {
    const manifests = await render();
    const redisObjects = manifests
      .filter((manifest) => manifest.metadata.labels?.['app.kubernetes.io/name'] === 'rtccdn-redis')
      .map((manifest) => `${manifest.kind}/${manifest.metadata.name}`)
      .sort();
    expect(redisObjects).toEqual([
      'Secret/rtccdn-redis',
      'Service/rtccdn-redis',
      'Service/rtccdn-redis-headless',
      'StatefulSet/rtccdn-redis',
    ]);
    const set = find(manifests, 'StatefulSet', 'rtccdn-redis')!;
    expect(set.metadata.namespace).toBe(NS);
    expect(set.spec.replicas).toBe(1);
    expect(set.spec.serviceName).toBe('rtccdn-redis-headless');
    expect(find(manifests, 'Service', 'rtccdn-redis-headless')!.spec.clusterIP).toBe('None');
    const service = find(manifests, 'Service', 'rtccdn-redis')!;
    expect(service.spec.type).toBe('ClusterIP');
    expect(service.spec.ports).toEqual([{ name: 'redis', port: 6379, targetPort: 'redis', protocol: 'TCP' }]);
    expect(set.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    const pod = set.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
    expect(pod.automountServiceAccountToken).toBe(false);
    const container = pod.containers[0];
    expect(container.image).toBe('ghcr.io/rtccdn/redis:0.1.0');
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.resources.limits.memory).toBe('256Mi');
    // The password reaches the server and redis-cli (the probes) from the Secret, never inline.
    for (const variable of ['REDIS_PASSWORD', 'REDISCLI_AUTH']) {
      expect(container.env).toContainEqual({
        name: variable,
        valueFrom: { secretKeyRef: { name: 'rtccdn-redis', key: 'password' } },
      });
    }
    expect(container.readinessProbe.exec.command.join(' ')).toContain(
      'redis-cli -h 127.0.0.1 -p 6379 ping)" = PONG',
    );
    // Persistence by default: a claim per pod for /data, of the configured size and class.
    expect(container.volumeMounts).toEqual([{ name: 'data', mountPath: '/data' }]);
    expect(pod.volumes).toBeUndefined();
    expect(set.spec.volumeClaimTemplates).toHaveLength(1);
    expect(set.spec.volumeClaimTemplates[0].metadata.name).toBe('data');
    expect(set.spec.volumeClaimTemplates[0].spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '1Gi' } },
    });
    const sized = find(
      await render('redis.persistence.size=5Gi', 'redis.persistence.storageClass=fast'),
      'StatefulSet',
    )!;
    expect(sized.spec.volumeClaimTemplates[0].spec).toMatchObject({
      storageClassName: 'fast',
      resources: { requests: { storage: '5Gi' } },
    });
    const noClass = find(await render('redis.persistence.storageClass=-'), 'StatefulSet')!;
    expect(noClass.spec.volumeClaimTemplates[0].spec.storageClassName).toBe('');
    // Without persistence: an emptyDir.
    const ephemeral = find(await render('redis.persistence.enabled=false'), 'StatefulSet')!;
    expect(ephemeral.spec.volumeClaimTemplates).toBeUndefined();
    expect(ephemeral.spec.template.spec.volumes).toEqual([{ name: 'data', emptyDir: {} }]);
  });

  it('puts a generated password and the URL a CDN references in the Redis Secret', async () => {
    const secret = find(await render(), 'Secret', 'rtccdn-redis')!;
    // biome-ignore lint/suspicious/noExplicitAny: test access to the Secret's data
    const data = (secret as any).data as Record<string, string>;
    const password = Buffer.from(data.password!, 'base64').toString();
    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(Buffer.from(data.url!, 'base64').toString()).toBe(
      `redis://:${password}@rtccdn-redis.${NS}.svc:6379/0`,
    );
    // `helm template` cannot look the Secret up: each render draws a new password.
    const again = find(await render(), 'Secret', 'rtccdn-redis')!;
    // biome-ignore lint/suspicious/noExplicitAny: test access to the Secret's data
    expect((again as any).data.password).not.toBe(data.password);
  });

  it('renders no Redis object when redis.enabled is false', async () => {
    const manifests = await render('redis.enabled=false');
    expect(
      manifests.filter((manifest) => JSON.stringify(manifest).includes('rtccdn-redis')).map((m) => m.kind),
    ).toEqual([]);
    expect(find(manifests, 'Deployment', 'rtccdn-operator')).toBeDefined();
  });

  it('renders a Sentinel-managed Redis when redis.sentinel.enabled: data nodes and Sentinels, a redis+sentinel:// URL', async () => {
    const manifests = await render('redis.sentinel.enabled=true');
    const redisObjects = manifests
      .filter((manifest) => manifest.metadata.labels?.['app.kubernetes.io/name'] === 'rtccdn-redis')
      .map((manifest) => `${manifest.kind}/${manifest.metadata.name}`)
      .sort();
    // No ClusterIP Service: it would route clients to replicas too; they ask the Sentinels.
    expect(redisObjects).toEqual([
      'ConfigMap/rtccdn-redis-scripts',
      'PodDisruptionBudget/rtccdn-redis',
      'Secret/rtccdn-redis',
      'Service/rtccdn-redis-headless',
      'StatefulSet/rtccdn-redis',
    ]);
    const headless = find(manifests, 'Service', 'rtccdn-redis-headless')!;
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    expect(
      headless.spec.ports.map((port: { name: string; port: number }) => `${port.name}:${port.port}`),
    ).toEqual(['redis:6379', 'sentinel:26379']);
    expect(find(manifests, 'PodDisruptionBudget', 'rtccdn-redis')!.spec.maxUnavailable).toBe(1);

    const set = find(manifests, 'StatefulSet', 'rtccdn-redis')!;
    expect(set.spec.replicas).toBe(3);
    expect(set.spec.serviceName).toBe('rtccdn-redis-headless');
    const pod = set.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(pod.containers.map((container: { name: string }) => container.name)).toEqual([
      'redis',
      'sentinel',
    ]);
    const [redisContainer, sentinel] = pod.containers;
    for (const container of [redisContainer, sentinel]) {
      // The single server's image, started by the chart's scripts; the password from the Secret only.
      expect(container.image).toBe('ghcr.io/rtccdn/redis:0.1.0');
      expect(container.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
      });
      for (const variable of ['REDIS_PASSWORD', 'REDISCLI_AUTH']) {
        expect(container.env).toContainEqual({
          name: variable,
          valueFrom: { secretKeyRef: { name: 'rtccdn-redis', key: 'password' } },
        });
      }
      expect(JSON.stringify(container)).not.toMatch(/requirepass|masterauth/);
      expect(container.env).toContainEqual({
        name: 'RTCCDN_REDIS_HEADLESS',
        value: `rtccdn-redis-headless.${NS}.svc`,
      });
      expect(container.volumeMounts).toContainEqual({
        name: 'scripts',
        mountPath: '/opt/rtccdn-redis',
        readOnly: true,
      });
    }
    expect(redisContainer.args).toEqual(['sh', '/opt/rtccdn-redis/redis.sh']);
    expect(redisContainer.lifecycle.preStop.exec.command).toEqual(['sh', '/opt/rtccdn-redis/prestop.sh']);
    expect(sentinel.args).toEqual(['sh', '/opt/rtccdn-redis/sentinel.sh']);
    expect(sentinel.env).toContainEqual({ name: 'RTCCDN_SENTINEL_QUORUM', value: '2' });
    expect(sentinel.env).toContainEqual({ name: 'RTCCDN_SENTINEL_DOWN_AFTER_MS', value: '5000' });
    expect(sentinel.readinessProbe.exec.command.join(' ')).toContain('redis-cli -h 127.0.0.1 -p 26379 ping');
    // Sentinel rewrites its configuration (which holds the password): in memory, not on a disk.
    expect(pod.volumes).toContainEqual({
      name: 'sentinel',
      emptyDir: { medium: 'Memory', sizeLimit: '1Mi' },
    });
    // The scripts are the chart's files, and a change to them rolls the pods.
    const scripts = find(manifests, 'ConfigMap', 'rtccdn-redis-scripts')! as unknown as {
      data: Record<string, string>;
    };
    for (const file of ['common.sh', 'redis.sh', 'sentinel.sh', 'prestop.sh']) {
      expect(scripts.data[file]).toBe(readFileSync(join(CHART, 'files/redis-sentinel', file), 'utf8'));
    }
    expect(set.spec.template.metadata.annotations['rtccdn.io/scripts-hash']).toMatch(/^[0-9a-f]{16}$/);
    // Pods prefer distinct Kubernetes nodes unless the user places them.
    expect(
      pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm
        .topologyKey,
    ).toBe('kubernetes.io/hostname');
    expect(set.spec.volumeClaimTemplates[0].metadata.name).toBe('data');

    // The URL lists every pod's Sentinel and parses as the media nodes and the operator parse it.
    const secret = find(manifests, 'Secret', 'rtccdn-redis')!;
    // biome-ignore lint/suspicious/noExplicitAny: test access to the Secret's data
    const data = (secret as any).data as Record<string, string>;
    const password = Buffer.from(data.password!, 'base64').toString();
    const url = Buffer.from(data.url!, 'base64').toString();
    expect(parseRedisUrl(url)).toMatchObject({
      kind: 'sentinel',
      masterName: 'rtccdn',
      password,
      sentinelPassword: password,
      sentinels: [0, 1, 2].map((i) => ({
        host: `rtccdn-redis-${i}.rtccdn-redis-headless.${NS}.svc`,
        port: 26379,
      })),
    });

    const five = await render(
      'redis.sentinel.enabled=true',
      'redis.sentinel.replicas=5',
      'redis.sentinel.quorum=3',
    );
    expect(find(five, 'StatefulSet', 'rtccdn-redis')!.spec.replicas).toBe(5);
    // biome-ignore lint/suspicious/noExplicitAny: test access to the Secret's data
    const fiveUrl = Buffer.from((find(five, 'Secret', 'rtccdn-redis') as any).data.url, 'base64').toString();
    expect((parseRedisUrl(fiveUrl) as { sentinels: unknown[] }).sentinels).toHaveLength(5);
    for (const [values, message] of [
      [['redis.sentinel.replicas=2'], "at '/redis/sentinel/replicas'"],
      [['redis.sentinel.quorum=4'], 'redis.sentinel.quorum must be between 1 and redis.sentinel.replicas'],
      [['redis.sentinel.masterName=a b'], "at '/redis/sentinel/masterName'"],
    ] as const) {
      const result = await env.helm([
        'template',
        'rtccdn',
        CHART,
        '--set',
        'redis.sentinel.enabled=true',
        ...values.flatMap((value) => ['--set', value]),
      ]);
      expect(`${values}: exit ${result.code === 0 ? 0 : 'non-zero'}`).toBe(`${values}: exit non-zero`);
      expect(result.stderr).toContain(message);
    }
  });

  it('points the example CDN at the chart’s Redis unless it names one, and refuses neither', async () => {
    const own = find(await render('exampleCdn.enabled=true'), 'CDN', 'live')!;
    expect(own.metadata.namespace).toBe(NS);
    expect(own.spec.redis).toEqual({ secretRef: { name: 'rtccdn-redis', key: 'url' } });
    const byUrl = find(
      await render(
        'exampleCdn.enabled=true',
        'redis.enabled=false',
        'exampleCdn.spec.redis.url=redis://r:6379',
      ),
      'CDN',
    )!;
    expect(byUrl.spec.redis).toEqual({ url: 'redis://r:6379' });
    const refused = await env.helm([
      'template',
      'rtccdn',
      CHART,
      '--set',
      'exampleCdn.enabled=true',
      '--set',
      'redis.enabled=false',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('exampleCdn.spec.redis is required when redis.enabled is false');
  });

  it('validates values against values.schema.json, naming the bad one', async () => {
    for (const [value, message] of [
      ['redis.enabled=maybe', "at '/redis/enabled': got string, want boolean"],
      ['redis.persistence.size=lots', "at '/redis/persistence/size': 'lots' does not match pattern"],
      ['redis.persistance.enabled=false', "at '/redis': additional properties 'persistance' not allowed"],
      ['redis.image.pullPolicy=Sometimes', "at '/redis/image/pullPolicy': value must be one of"],
      ['operator.logLevel=loud', "at '/operator/logLevel': value must be one of"],
      ['operator.replicas=-1', "at '/operator/replicas'"],
    ]) {
      const result = await env.helm(['template', 'rtccdn', CHART, '--set', value!]);
      expect(`${value}: exit ${result.code === 0 ? 0 : 'non-zero'}`).toBe(`${value}: exit non-zero`);
      expect(result.stderr).toContain(message);
    }
    // The shipped values files pass.
    expect(await helm(['lint', CHART, '-f', LOCAL_VALUES])).toContain('0 chart(s) failed');
  });

  it('renders the local cluster’s values: local images never pulled, Redis on an emptyDir', async () => {
    const manifests = await renderLocal();
    const operator = find(manifests, 'Deployment', 'rtccdn-operator')!.spec.template.spec.containers[0];
    expect([operator.image, operator.imagePullPolicy]).toEqual(['rtccdn/operator:latest', 'Never']);
    const set = find(manifests, 'StatefulSet', 'rtccdn-redis')!;
    const redisContainer = set.spec.template.spec.containers[0];
    expect([redisContainer.image, redisContainer.imagePullPolicy]).toEqual(['rtccdn/redis:latest', 'Never']);
    expect(set.spec.volumeClaimTemplates).toBeUndefined();
    expect(set.spec.template.spec.volumes).toEqual([{ name: 'data', emptyDir: {} }]);
    // The example CDN for the local cluster references this release's Redis Secret.
    const local = parseAllDocuments(
      readFileSync(join(REPO_DIR, 'crds/examples/cdn-local.yaml'), 'utf8'),
    )[0]!.toJS();
    expect(local.spec.redis).toEqual({ secretRef: { name: 'rtccdn-redis', key: 'url' } });
    expect(find(manifests, 'Secret', 'rtccdn-redis')).toBeDefined();
  });

  it('applies to the API server, and grants the operator what it needs and nothing more', async () => {
    ok(await env.kubectl(['create', 'namespace', NS]));
    ok(await env.kubectl(['create', 'namespace', 'media']));
    const rendered = await helm([
      'template',
      'rtccdn',
      CHART,
      '--namespace',
      NS,
      '--set',
      'operator.aclApi.adminTokenSecretRef.name=acl-admin',
    ]);
    ok(
      await env.kubectl(['apply', '--server-side', '--field-manager=helm-test', '-f', '-'], {
        input: rendered,
        timeoutMs: 60_000,
      }),
    );
    ok(
      await env.kubectl(
        [
          'wait',
          '--for=condition=Established',
          '--timeout=60s',
          'crd/cdns.rtccdn.io',
          'crd/nodes.rtccdn.io',
          'crd/streamacls.rtccdn.io',
        ],
        { timeoutMs: 70_000 },
      ),
    );
    const can = async (verb: string, resource: string, namespace = 'media', as = SERVICE_ACCOUNT) => {
      const [plural, subresource] = resource.split('/');
      const args = ['auth', 'can-i', verb, plural!, '-n', namespace, `--as=${as}`];
      if (subresource) args.push(`--subresource=${subresource}`);
      return (await env.kubectl(args)).stdout.trim();
    };
    for (const [verb, resource] of [
      ['watch', 'cdns.rtccdn.io'],
      ['patch', 'cdns.rtccdn.io/status'],
      ['update', 'nodes.rtccdn.io/finalizers'],
      ['create', 'nodes.rtccdn.io'],
      ['delete', 'nodes.rtccdn.io'],
      ['patch', 'statefulsets.apps'],
      ['patch', 'poddisruptionbudgets.policy'],
      ['delete', 'services'],
      ['create', 'secrets'],
      ['watch', 'secrets'],
      ['create', 'events'],
      ['watch', 'streamacls.rtccdn.io'],
      ['patch', 'streamacls.rtccdn.io'],
      ['patch', 'streamacls.rtccdn.io/status'],
      ['watch', 'pods'],
      // Edge rollouts delete each drained pod (OnDelete StatefulSets).
      ['delete', 'pods'],
      ['list', 'nodes'],
    ]) {
      expect(`${verb} ${resource}: ${await can(verb!, resource!)}`).toBe(`${verb} ${resource}: yes`);
    }
    for (const [verb, resource] of [
      ['update', 'secrets'],
      ['delete', 'secrets'],
      ['patch', 'cdns.rtccdn.io'],
      ['delete', 'statefulsets.apps'],
      ['delete', 'poddisruptionbudgets.policy'],
      ['create', 'pods'],
      ['patch', 'pods'],
      ['patch', 'nodes'],
      ['create', 'deployments.apps'],
      ['delete', 'streamacls.rtccdn.io'],
      ['create', 'streamacls.rtccdn.io'],
    ]) {
      expect(`${verb} ${resource}: ${await can(verb!, resource!)}`).toBe(`${verb} ${resource}: no`);
    }
    expect(await can('update', 'leases.coordination.k8s.io', NS)).toBe('yes');
    expect(await can('update', 'leases.coordination.k8s.io', 'media')).toBe('no');
    // The ACL API runs as its own ServiceAccount: what it writes, and nothing of the controllers'.
    const aclApi = `system:serviceaccount:${NS}:rtccdn-operator-acl-api`;
    for (const [verb, resource, expected] of [
      ['create', 'streamacls.rtccdn.io', 'yes'],
      ['delete', 'streamacls.rtccdn.io', 'yes'],
      ['create', 'secrets', 'yes'],
      ['delete', 'secrets', 'yes'],
      ['list', 'cdns.rtccdn.io', 'yes'],
      ['list', 'secrets', 'no'],
      ['watch', 'secrets', 'no'],
      ['patch', 'streamacls.rtccdn.io/status', 'no'],
      ['create', 'statefulsets.apps', 'no'],
      ['update', 'leases.coordination.k8s.io', 'no'],
    ] as const) {
      expect(`${verb} ${resource}: ${await can(verb, resource, 'media', aclApi)}`).toBe(
        `${verb} ${resource}: ${expected}`,
      );
    }
    const manifests = await render('operator.aclApi.adminTokenSecretRef.name=acl-admin');
    const apiDeployment = find(manifests, 'Deployment', 'rtccdn-operator-acl-api')!;
    expect(apiDeployment.spec.template.spec.serviceAccountName).toBe('rtccdn-operator-acl-api');
    const controllers = find(manifests, 'Deployment', 'rtccdn-operator')!;
    expect(JSON.stringify(controllers.spec.template.spec.containers[0].env)).not.toContain('ADMIN_TOKEN');
  });

  it('puts WHIP, WHEP, HLS and the ACL API behind an Ingress or an HTTPRoute with TLS, only on request', async () => {
    const byDefault = await render();
    expect(byDefault.filter((manifest) => ['Ingress', 'HTTPRoute'].includes(manifest.kind))).toEqual([]);

    const manifests = await render(
      'publicHttp.host=live.example.com',
      'publicHttp.cdn.name=live',
      'publicHttp.cdn.namespace=media',
      'publicHttp.cdn.region=eu',
      'publicHttp.ingress.enabled=true',
      'publicHttp.ingress.className=nginx',
      'publicHttp.ingress.tls.secretName=live-tls',
      'publicHttp.ingress.annotations.cert-manager\\.io/cluster-issuer=letsencrypt',
      'publicHttp.httpRoute.enabled=true',
      'publicHttp.httpRoute.parentRefs[0].name=public',
      'publicHttp.httpRoute.parentRefs[0].namespace=gateway-system',
      'publicHttp.httpRoute.parentRefs[0].sectionName=https',
      'operator.aclApi.adminTokenSecretRef.name=acl-admin',
    );
    // The media nodes' Services are in the CDN's namespace, the ACL API's in the release one.
    const media = find(manifests, 'Ingress', 'rtccdn-media')!;
    const acl = find(manifests, 'Ingress', 'rtccdn-acl-api')!;
    expect([media.metadata.namespace, acl.metadata.namespace]).toEqual(['media', NS]);
    for (const ingress of [media, acl]) {
      expect(ingress.apiVersion).toBe('networking.k8s.io/v1');
      expect(ingress.metadata.annotations).toEqual({ 'cert-manager.io/cluster-issuer': 'letsencrypt' });
      expect(ingress.spec.ingressClassName).toBe('nginx');
      expect(ingress.spec.tls).toEqual([{ hosts: ['live.example.com'], secretName: 'live-tls' }]);
      expect(ingress.spec.rules.map((rule: { host: string }) => rule.host)).toEqual(['live.example.com']);
    }
    const ingressPaths = (ingress: Manifest) =>
      ingress.spec.rules[0].http.paths.map(
        (path: {
          path: string;
          pathType: string;
          backend: { service: { name: string; port: { number: number } } };
        }) =>
          `${path.pathType} ${path.path} -> ${path.backend.service.name}:${path.backend.service.port.number}`,
      );
    expect(ingressPaths(media)).toEqual([
      'Prefix /whip -> live-eu-origin:80',
      'Prefix /whep -> live-eu-edge:80',
      'Prefix /hls -> live-eu-edge:80',
      'Exact /api/v1/streams -> live-eu-edge:80',
    ]);
    expect(ingressPaths(acl)).toEqual(['Prefix /api/v1/streams -> rtccdn-operator-acl-api:8091']);

    const mediaRoute = find(manifests, 'HTTPRoute', 'rtccdn-media')!;
    const aclRoute = find(manifests, 'HTTPRoute', 'rtccdn-acl-api')!;
    expect([mediaRoute.metadata.namespace, aclRoute.metadata.namespace]).toEqual(['media', NS]);
    for (const route of [mediaRoute, aclRoute]) {
      expect(route.apiVersion).toBe('gateway.networking.k8s.io/v1');
      expect(route.spec.parentRefs).toEqual([
        { name: 'public', namespace: 'gateway-system', sectionName: 'https' },
      ]);
      expect(route.spec.hostnames).toEqual(['live.example.com']);
    }
    const routePaths = (route: Manifest) =>
      route.spec.rules.map(
        (rule: {
          matches: { path: { type: string; value: string } }[];
          backendRefs: { name: string; port: number }[];
        }) =>
          `${rule.matches[0]!.path.type} ${rule.matches[0]!.path.value} -> ${rule.backendRefs[0]!.name}:${rule.backendRefs[0]!.port}`,
      );
    expect(routePaths(mediaRoute)).toEqual([
      'PathPrefix /whip -> live-eu-origin:80',
      'PathPrefix /whep -> live-eu-edge:80',
      'PathPrefix /hls -> live-eu-edge:80',
      'Exact /api/v1/streams -> live-eu-edge:80',
    ]);
    expect(routePaths(aclRoute)).toEqual(['PathPrefix /api/v1/streams -> rtccdn-operator-acl-api:8091']);

    // The API server takes the Ingresses as rendered (the namespaces exist since the test above).
    const ingresses = manifests
      .filter((manifest) => manifest.kind === 'Ingress')
      .map((manifest) => JSON.stringify(manifest))
      .join('\n');
    ok(await env.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: ingresses, timeoutMs: 60_000 }));

    // Without the ACL API (no admin token Secret) only the media objects; the CDN defaults to
    // the example CDN's name and the release namespace.
    const plain = await render('publicHttp.host=live.example.com', 'publicHttp.ingress.enabled=true');
    expect(
      plain.filter((manifest) => manifest.kind === 'Ingress').map((manifest) => manifest.metadata.name),
    ).toEqual(['rtccdn-media']);
    const defaults = find(plain, 'Ingress', 'rtccdn-media')!;
    expect(defaults.metadata.namespace).toBe(NS);
    expect(defaults.spec.tls).toBeUndefined();
    expect(ingressPaths(defaults)[0]).toBe('Prefix /whip -> live-default-origin:80');

    // What cannot work is refused at render time.
    for (const [set, message] of [
      [['publicHttp.ingress.enabled=true'], 'publicHttp.host is required'],
      [
        ['publicHttp.host=live.example.com', 'publicHttp.httpRoute.enabled=true'],
        'publicHttp.httpRoute.parentRefs must name the Gateway',
      ],
      [['publicHttp.host=Not A Host'], "at '/publicHttp/host'"],
      [['publicHttp.ingress.tsl.secretName=x'], "additional properties 'tsl' not allowed"],
    ] as const) {
      const result = await env.helm([
        'template',
        'rtccdn',
        CHART,
        ...set.flatMap((value) => ['--set', value]),
      ]);
      expect(`${set.join(' ')}: exit ${result.code === 0 ? 0 : 'non-zero'}`).toBe(
        `${set.join(' ')}: exit non-zero`,
      );
      expect(result.stderr).toContain(message);
    }
  });

  it('installs for real, keeps the Redis password across upgrades, and uninstalls the Secret too', async () => {
    // A release of its own (its ClusterRoles are keep-rtccdn-*), CRDs left to the test above.
    const release = ['keep', CHART, '--namespace', 'redis-keep', '--set', 'crds.install=false'];
    ok(await env.helm(['install', ...release, '--create-namespace'], { timeoutMs: 120_000 }), 'helm install');
    const password = async () => {
      const secret = JSON.parse(
        ok(await env.kubectl(['get', 'secret', 'keep-rtccdn-redis', '-n', 'redis-keep', '-o', 'json'])),
      );
      return {
        password: Buffer.from(secret.data.password, 'base64').toString(),
        url: Buffer.from(secret.data.url, 'base64').toString(),
      };
    };
    const first = await password();
    expect(first.url).toBe(`redis://:${first.password}@keep-rtccdn-redis.redis-keep.svc:6379/0`);
    const hash = async () =>
      ok(
        await env.kubectl([
          'get',
          'statefulset',
          'keep-rtccdn-redis',
          '-n',
          'redis-keep',
          '-o',
          'jsonpath={.spec.template.metadata.annotations.rtccdn\\.io/password-hash}',
        ]),
      );
    const firstHash = await hash();
    ok(
      await env.helm(['upgrade', ...release, '--set', 'redis.resources.limits.memory=300Mi'], {
        timeoutMs: 120_000,
      }),
      'helm upgrade',
    );
    expect(await password()).toEqual(first);
    // Same password, same pod template annotation: the upgrade does not restart Redis for it.
    expect(await hash()).toBe(firstHash);
    ok(
      await env.helm(['uninstall', 'keep', '--namespace', 'redis-keep'], { timeoutMs: 120_000 }),
      'helm uninstall',
    );
    const left = ok(
      await env.kubectl([
        'get',
        'secrets,services,statefulsets,deployments,serviceaccounts,leases,roles,rolebindings',
        '-n',
        'redis-keep',
        '-l',
        'app.kubernetes.io/instance=keep',
        '-o',
        'name',
      ]),
    );
    expect(left.trim()).toBe('');
  });

  it('an operator running as the chart ServiceAccount reconciles the example CDN without a Forbidden', async () => {
    const example = await helm([
      'template',
      'rtccdn',
      CHART,
      '--namespace',
      'media',
      '--show-only',
      'templates/example-cdn.yaml',
      '--set',
      'exampleCdn.enabled=true',
      '--set',
      `exampleCdn.spec.redis.url=${redis.url}`,
    ]);
    // Authenticate as the ServiceAccount itself, with a token from the TokenRequest API.
    const token = ok(await env.kubectl(['create', 'token', 'rtccdn-operator', '-n', NS])).trim();
    const kubeconfig = JSON.parse(ok(await env.kubectl(['config', 'view', '--raw', '-o', 'json'])));
    kubeconfig.users = [{ name: 'rtccdn-operator', user: { token } }];
    kubeconfig.contexts[0].context.user = 'rtccdn-operator';
    const kubeconfigPath = join(env.dir, 'operator-sa.kubeconfig');
    writeFileSync(kubeconfigPath, JSON.stringify(kubeconfig), { mode: 0o600 });
    const client = new KubeClient(KubeConfigTransport.fromSource({ kubeconfigPath }));
    expect(
      JSON.parse(ok(await env.kubectl(['auth', 'whoami', '-o', 'json', `--kubeconfig=${kubeconfigPath}`])))
        .status.userInfo.username,
    ).toBe(SERVICE_ACCOUNT);
    const { manager, metrics } = testManager({
      client,
      identity: 'rtccdn-operator-0',
      leaderElection: {
        namespace: NS,
        leaseName: 'rtccdn-operator',
        leaseDurationMs: 3_000,
        renewDeadlineMs: 2_000,
        retryPeriodMs: 400,
      },
    });
    manager.start();
    try {
      ok(await env.kubectl(['apply', '-f', '-'], { input: example }));
      await waitFor('the example CDN deployed', async () => {
        const result = await env.kubectl(['get', 'statefulsets', '-n', 'media', '-o', 'name']);
        return result.stdout.includes('live-default-edge') && result.stdout.includes('live-default-origin');
      });
      const cdn = await waitFor('the CDN status', async () => {
        const object = JSON.parse(ok(await env.kubectl(['get', 'cdn', 'live', '-n', 'media', '-o', 'json'])));
        return object.status?.observedGeneration === object.metadata.generation ? object : undefined;
      });
      expect(cdn.status.conditions.find((c: { type: string }) => c.type === 'Degraded')).toMatchObject({
        status: 'False',
      });
      await waitFor('events written', async () =>
        ok(await env.kubectl(['get', 'events', '-n', 'media', '-o', 'name'])).includes('live.'),
      );
      expect(await counterValue(metrics, 'reconciles', { result: 'error' })).toBe(0);
      const lease = JSON.parse(
        ok(await env.kubectl(['get', 'lease', 'rtccdn-operator', '-n', NS, '-o', 'json'])),
      );
      expect(lease.spec.holderIdentity).toBe('rtccdn-operator-0');
    } finally {
      await manager.stop();
      client.transport.close();
    }
  });
});
