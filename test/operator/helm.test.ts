/**
 * The Helm chart (helm/rtccdn), rendered by the real helm and applied to a real kube-apiserver:
 * it lints, renders the CRDs exactly as generated (plus the keep policy) only when enabled,
 * a leader-elected two-replica operator Deployment, least-privilege RBAC (checked with
 * `kubectl auth can-i` as the chart's ServiceAccount), and an example CDN only on request.
 * Finally an operator authenticated *as that ServiceAccount* (a TokenRequest token) reconciles
 * the example CDN without a single Forbidden: the Roles are sufficient, not just small.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
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
        ...set.flatMap((value) => ['--set', value]),
      ]),
    )
      .map((document) => document.toJS() as Manifest | null)
      .filter((manifest): manifest is Manifest => manifest !== null);
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
      ['delete', 'services'],
      ['create', 'secrets'],
      ['watch', 'secrets'],
      ['create', 'events'],
      ['watch', 'streamacls.rtccdn.io'],
      ['patch', 'streamacls.rtccdn.io'],
      ['patch', 'streamacls.rtccdn.io/status'],
      ['watch', 'pods'],
      ['list', 'nodes'],
    ]) {
      expect(`${verb} ${resource}: ${await can(verb!, resource!)}`).toBe(`${verb} ${resource}: yes`);
    }
    for (const [verb, resource] of [
      ['update', 'secrets'],
      ['delete', 'secrets'],
      ['patch', 'cdns.rtccdn.io'],
      ['delete', 'statefulsets.apps'],
      ['delete', 'pods'],
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
