/**
 * The Kubernetes test environment itself, against a REAL kube-apiserver + etcd (no mocks):
 * CRDs with structural schemas and CEL rules, the status subresource, helm, and a clean stop.
 * The first run on a machine builds the binaries (scripts/setup-kube-testenv.sh).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  type CommandResult,
  ensureKubeTestEnvBinaries,
  type KubeTestEnv,
  startKubeTestEnv,
} from '../../scripts/harness/kube-testenv.js';

const CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: edgepools.test.rtccdn.io
spec:
  group: test.rtccdn.io
  scope: Namespaced
  names:
    plural: edgepools
    singular: edgepool
    kind: EdgePool
    shortNames: [tep]
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources:
        status: {}
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [minNodes]
              properties:
                minNodes:
                  type: integer
                  minimum: 0
                maxNodes:
                  type: integer
              x-kubernetes-validations:
                - rule: '!has(self.maxNodes) || self.maxNodes >= self.minNodes'
                  message: maxNodes must be greater than or equal to minNodes
            status:
              type: object
              properties:
                readyNodes:
                  type: integer
`;

function edgePool(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'test.rtccdn.io/v1alpha1',
    kind: 'EdgePool',
    metadata: { name },
    spec,
  });
}

function ok(result: CommandResult): string {
  if (result.code !== 0) throw new Error(`command failed (exit ${result.code}): ${result.stderr}`);
  return result.stdout;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('kube testenv (real kube-apiserver + etcd)', () => {
  let binDir: string;
  let env: KubeTestEnv;
  let scratch: string;

  // On a clean machine the setup script first builds kube-apiserver and etcd from Go modules
  // (minutes); the start itself has its own 120 s limit inside startKubeTestEnv.
  beforeAll(async () => {
    binDir = await ensureKubeTestEnvBinaries();
    scratch = await mkdtemp(join(tmpdir(), 'rtccdn-testenv-test-'));
    const started = Date.now();
    env = await startKubeTestEnv({ binDir });
    console.log(`kube testenv ready in ${Date.now() - started} ms at ${env.server}`);
  }, 40 * 60_000);

  afterAll(async () => {
    await env?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }, 60_000);

  it('serves the pinned Kubernetes version to the admin identity', async () => {
    const version = JSON.parse(ok(await env.kubectl(['version', '-o', 'json']))) as {
      serverVersion: { gitVersion: string };
    };
    expect(version.serverVersion.gitVersion).toBe('v1.35.4');
    const whoami = JSON.parse(ok(await env.kubectl(['auth', 'whoami', '-o', 'json']))) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    expect(whoami.status.userInfo.username).toBe('rtccdn-testenv-admin');
    expect(whoami.status.userInfo.groups).toContain('system:masters');
    // RBAC is enforced for everyone else.
    const denied = await env.kubectl([
      'auth',
      'can-i',
      'list',
      'secrets',
      '--as=system:serviceaccount:default:nobody',
    ]);
    expect(denied.stdout.trim()).toBe('no');
  });

  it('applies a CRD with a structural schema and a CEL rule, which becomes Established', async () => {
    const crdPath = join(scratch, 'edgepools.crd.yaml');
    await writeFile(crdPath, CRD);
    ok(await env.kubectl(['apply', '-f', crdPath]));
    ok(
      await env.kubectl(
        ['wait', '--for=condition=Established', '--timeout=60s', 'crd/edgepools.test.rtccdn.io'],
        { timeoutMs: 70_000 },
      ),
    );
  }, 90_000);

  it('accepts a valid custom object', async () => {
    ok(await env.kubectl(['create', '-f', '-'], { input: edgePool('good', { minNodes: 1, maxNodes: 3 }) }));
    const stored = JSON.parse(
      ok(await env.kubectl(['get', 'edgepools.test.rtccdn.io', 'good', '-o', 'json'])),
    );
    expect(stored.spec).toEqual({ minNodes: 1, maxNodes: 3 });
    expect(stored.metadata.generation).toBe(1);
  });

  it('rejects objects that break the CEL rule or the schema, naming the failure', async () => {
    const celViolation = await env.kubectl(['create', '-f', '-'], {
      input: edgePool('bad-range', { minNodes: 3, maxNodes: 1 }),
    });
    expect(celViolation.code).not.toBe(0);
    expect(celViolation.stderr).toContain('is invalid');
    expect(celViolation.stderr).toContain('maxNodes must be greater than or equal to minNodes');

    const missingRequired = await env.kubectl(['create', '-f', '-'], {
      input: edgePool('bad-required', { maxNodes: 1 }),
    });
    expect(missingRequired.code).not.toBe(0);
    expect(missingRequired.stderr).toMatch(/spec\.minNodes: Required value/);

    const notFound = await env.kubectl(['get', 'edgepools.test.rtccdn.io', 'bad-range', 'bad-required']);
    expect(notFound.code).not.toBe(0);
    expect(notFound.stderr).toMatch(/NotFound|not found/);
  });

  it('writes .status only through the status subresource', async () => {
    ok(
      await env.kubectl([
        'patch',
        'edgepools.test.rtccdn.io',
        'good',
        '--subresource=status',
        '--type=merge',
        '-p',
        '{"status":{"readyNodes":2}}',
      ]),
    );
    let stored = JSON.parse(ok(await env.kubectl(['get', 'edgepools.test.rtccdn.io', 'good', '-o', 'json'])));
    expect(stored.status).toEqual({ readyNodes: 2 });
    expect(stored.metadata.generation).toBe(1); // status writes do not bump the generation

    // A status change sent to the main resource is ignored; the spec change is applied.
    ok(
      await env.kubectl([
        'patch',
        'edgepools.test.rtccdn.io',
        'good',
        '--type=merge',
        '-p',
        '{"spec":{"maxNodes":5},"status":{"readyNodes":99}}',
      ]),
    );
    stored = JSON.parse(ok(await env.kubectl(['get', 'edgepools.test.rtccdn.io', 'good', '-o', 'json'])));
    expect(stored.spec.maxNodes).toBe(5);
    expect(stored.status).toEqual({ readyNodes: 2 });
    expect(stored.metadata.generation).toBe(2);
  });

  it('runs helm: version, create and template a chart, validated by the API server', async () => {
    expect(ok(await env.helm(['version', '--short']))).toMatch(/^v4\.1\.4\b/);
    ok(await env.helm(['create', 'demo'], { cwd: scratch }));
    const rendered = ok(await env.helm(['template', 'demo-release', join(scratch, 'demo')]));
    expect(rendered).toContain('kind: Deployment');
    expect(rendered).toContain('name: demo-release');
    // The rendered manifests are valid for this API server (server-side dry run, nothing stored).
    const dryRun = ok(await env.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: rendered }));
    expect(dryRun).toMatch(/deployment\.apps\/demo-release created \(server dry run\)/);
    const stored = await env.kubectl(['get', 'deployment', 'demo-release']);
    expect(stored.code).not.toBe(0);
  }, 90_000);

  it('stop() ends both servers, frees their ports and removes the temp dir', async () => {
    const { pids, ports, dir } = env;
    expect(isRunning(pids.apiserver)).toBe(true);
    expect(isRunning(pids.etcd)).toBe(true);
    const started = Date.now();
    await env.stop();
    console.log(`kube testenv stopped in ${Date.now() - started} ms`);
    expect(isRunning(pids.apiserver)).toBe(false);
    expect(isRunning(pids.etcd)).toBe(false);
    expect(await portAccepts(ports.apiserver)).toBe(false);
    expect(await portAccepts(ports.etcdClient)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    await env.stop(); // idempotent
  }, 60_000);
});
