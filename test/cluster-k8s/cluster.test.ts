/**
 * The local Kubernetes cluster of scripts/cluster/cluster.sh is real: real kubelets on real
 * containerd run pods of the locally built image on every node, pods reach each other across
 * nodes, kube-proxy serves a ClusterIP and a NodePort Service, CoreDNS resolves Service names (and
 * nothing outside the cluster), and `down` removes what `up` created.
 *
 * Needs root, Docker and the images (`npm run images`); run with `npm run test:cluster`. All
 * traffic stays on the bridge and the network namespaces the cluster script creates.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type Kube, localCluster } from '../../scripts/harness/k8s-cdn.js';
import { type CommandResult, runCommand } from '../../scripts/harness/kube-testenv.js';

const CLUSTER = fileURLToPath(new URL('../../scripts/cluster/cluster.sh', import.meta.url));
const IMAGE = 'rtccdn/media-node:latest';
const NS = `smoke-${randomBytes(3).toString('hex')}`;
/**
 * A one-file server in the media-node image: HTTP on 8080 answers with its pod and node names, UDP
 * on 8081 echoes each datagram prefixed with the pod name (media uses UDP through hostPorts).
 */
const SERVER = [
  "const http = require('node:http');",
  "const dgram = require('node:dgram');",
  'http.createServer((req, res) => {',
  "  res.setHeader('content-type', 'application/json');",
  '  res.end(JSON.stringify({ pod: process.env.POD_NAME, node: process.env.NODE_NAME }));',
  "}).listen(8080, '0.0.0.0');",
  "const udp = dgram.createSocket('udp4');",
  "udp.on('message', (msg, from) => udp.send(process.env.POD_NAME + ':' + msg, from.port, from.address));",
  "udp.bind(8081, '0.0.0.0');",
].join('\n');
const HOST_PORT_TCP = 18080;
const HOST_PORT_UDP = 18081;
const STATE = process.env.RTCCDN_CLUSTER_DIR ?? '/var/lib/rtccdn/cluster';

let kube: Kube;
const nodes: { name: string; ip: string; region: string; podCIDR: string }[] = [];
const pods = new Map<string, { ip: string; node: string }>();

const kubectl = (args: string[], input?: string): Promise<CommandResult> => kube.kubectl(args, input);
const kubectlOk = (args: string[], input?: string): Promise<string> => kube.kubectlOk(args, input);
/** Runs a Node.js snippet inside a pod (kubectl exec) and returns its stdout. */
async function nodeInPod(pod: string, script: string): Promise<CommandResult> {
  return kubectl(['-n', NS, 'exec', pod, '--', 'node', '-e', script]);
}
const fetchScript = (url: string) =>
  `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(5000) }).then((r) => r.text()).then((t) => console.log(t), (e) => { console.error(String(e.cause ?? e)); process.exit(1); })`;

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const toInt = (a: string) => a.split('.').reduce((n, part) => n * 256 + Number(part), 0);
  const mask = 2 ** 32 - 2 ** (32 - Number(bits));
  return (toInt(ip) & mask) >>> 0 === (toInt(base!) & mask) >>> 0;
}

describe('local Kubernetes cluster (scripts/cluster/cluster.sh)', () => {
  beforeAll(async () => {
    kube = await localCluster();

    const list = JSON.parse(await kubectlOk(['get', 'nodes', '-o', 'json']));
    for (const node of list.items) {
      nodes.push({
        name: node.metadata.name,
        ip: node.status.addresses.find((a: { type: string }) => a.type === 'InternalIP').address,
        region: node.metadata.labels['topology.kubernetes.io/region'],
        podCIDR: node.spec.podCIDR,
      });
    }
    await kubectlOk(['create', 'namespace', NS]);
    const manifests = nodes.map((node) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `web-${node.name}`, namespace: NS, labels: { app: 'web' } },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': node.name },
        containers: [
          {
            name: 'web',
            image: IMAGE,
            imagePullPolicy: 'Never',
            command: ['node', '-e', SERVER],
            env: [
              { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
            ],
            ports: [
              { containerPort: 8080, hostPort: HOST_PORT_TCP, protocol: 'TCP' },
              { containerPort: 8081, hostPort: HOST_PORT_UDP, protocol: 'UDP' },
            ],
            readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
          },
        ],
      },
    }));
    const services = [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web', namespace: NS },
        spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web-nodeport', namespace: NS },
        spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    ];
    await kubectlOk(
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [...manifests, ...services] }),
    );
    await kubectlOk(['-n', NS, 'wait', 'pod', '--all', '--for=condition=Ready', '--timeout=120s']);
    const podList = JSON.parse(await kubectlOk(['-n', NS, 'get', 'pods', '-o', 'json']));
    for (const pod of podList.items)
      pods.set(pod.metadata.name, { ip: pod.status.podIP, node: pod.spec.nodeName });
  }, 60 * 60_000);

  afterAll(async () => {
    const down = await runCommand('bash', [CLUSTER, 'down'], {
      timeoutMs: 180_000,
      teeStderr: process.stderr,
    });
    if (down.code !== 0) throw new Error(`cluster down failed (exit ${down.code}): ${down.stderr}`);
  }, 200_000);

  it('has at least two Ready nodes in two regions, real kubelets v1.35.4 on containerd 2', async () => {
    expect(nodes.length).toBeGreaterThanOrEqual(2);
    expect(new Set(nodes.map((node) => node.region)).size).toBeGreaterThanOrEqual(2);
    const list = JSON.parse(await kubectlOk(['get', 'nodes', '-o', 'json']));
    for (const node of list.items) {
      expect(node.status.conditions.find((c: { type: string }) => c.type === 'Ready').status).toBe('True');
      expect(node.status.nodeInfo.kubeletVersion).toBe('v1.35.4');
      expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^containerd:\/\/v?2\./);
    }
  });

  it('runs a pod of the locally built image on every node, each with an IP of its node’s pod range', () => {
    expect(pods.size).toBe(nodes.length);
    for (const node of nodes) {
      const pod = pods.get(`web-${node.name}`);
      expect(pod?.node).toBe(node.name);
      expect(inCidr(pod!.ip, node.podCIDR)).toBe(true);
    }
  });

  it('connects pods across nodes (pod IP to pod IP)', async () => {
    const [a, b] = nodes;
    const target = pods.get(`web-${b!.name}`)!;
    const result = await nodeInPod(`web-${a!.name}`, fetchScript(`http://${target.ip}:8080/`));
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ pod: `web-${b!.name}`, node: b!.name });
  });

  it('resolves Service names through cluster DNS and refuses names outside the cluster', async () => {
    const clusterIP = (
      await kubectlOk(['-n', NS, 'get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    const pod = `web-${nodes[0]!.name}`;
    const resolve = (name: string) =>
      nodeInPod(
        pod,
        `require('node:dns').promises.resolve4(${JSON.stringify(name)}).then((a) => console.log(a.join(',')), (e) => { console.log('ERR ' + e.code); })`,
      );
    expect((await resolve(`web.${NS}.svc.cluster.local`)).stdout.trim()).toBe(clusterIP);
    expect((await resolve('kubernetes.default.svc.cluster.local')).stdout.trim()).toMatch(
      /^\d+\.\d+\.\d+\.1$/,
    );
    // Not forwarded anywhere: CoreDNS has no upstream.
    expect((await resolve('example.com')).stdout.trim()).toMatch(/^ERR E(REFUSED|NOTFOUND|SERVFAIL)$/);
  });

  it('balances a ClusterIP Service over the pods of several nodes (called by name from a pod)', async () => {
    // A new TCP connection per request (agent: false): kube-proxy picks the endpoint per connection.
    const script = [
      "const http = require('node:http');",
      'const get = () => new Promise((resolve, reject) => {',
      `  const req = http.get({ host: 'web.${NS}.svc.cluster.local', port: 80, path: '/', agent: false, timeout: 5000 }, (res) => {`,
      "    let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => resolve(JSON.parse(body).pod));",
      '  });',
      "  req.on('timeout', () => req.destroy(new Error('timeout'))); req.on('error', reject);",
      '});',
      '(async () => { const seen = new Set(); for (let i = 0; i < 30; i++) seen.add(await get());',
      "  console.log([...seen].sort().join(',')); })().catch((e) => { console.error(String(e)); process.exit(1); });",
    ].join('\n');
    const result = await nodeInPod(`web-${nodes[1]!.name}`, script);
    expect(result.stderr).toBe('');
    const seen = result.stdout.trim().split(',');
    // 30 connections spread at random over one pod per node: all on one pod has probability 3^-29.
    expect(seen.length).toBeGreaterThanOrEqual(2);
    for (const pod of seen) expect(pods.has(pod)).toBe(true);
  });

  it('reaches the ClusterIP Service from the host (routed through a node) and a NodePort on every node IP', async () => {
    const clusterIP = (
      await kubectlOk(['-n', NS, 'get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    const fromHost = await fetch(`http://${clusterIP}/`, { signal: AbortSignal.timeout(5000) });
    expect(fromHost.status).toBe(200);
    expect((await fromHost.json()).pod).toMatch(/^web-/);
    const nodePort = (
      await kubectlOk([
        '-n',
        NS,
        'get',
        'service',
        'web-nodeport',
        '-o',
        'jsonpath={.spec.ports[0].nodePort}',
      ])
    ).trim();
    for (const node of nodes) {
      const response = await fetch(`http://${node.ip}:${nodePort}/`, { signal: AbortSignal.timeout(5000) });
      expect(response.status).toBe(200);
      expect((await response.json()).pod).toMatch(/^web-/);
    }
  });

  it('reaches every pod from the host through its hostPorts on the node IP, TCP and UDP', async () => {
    for (const node of nodes) {
      const response = await fetch(`http://${node.ip}:${HOST_PORT_TCP}/`, {
        signal: AbortSignal.timeout(5000),
      });
      expect(await response.json()).toEqual({ pod: `web-${node.name}`, node: node.name });
      const socket = createSocket('udp4');
      try {
        const reply = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no UDP echo from ${node.ip}:${HOST_PORT_UDP}`)),
            5000,
          );
          socket.on('message', (msg) => {
            clearTimeout(timer);
            resolve(msg.toString());
          });
          socket.send('ping', HOST_PORT_UDP, node.ip);
        });
        expect(reply).toBe(`web-${node.name}:ping`);
      } finally {
        socket.close();
      }
    }
  });

  it('refuses a second cluster on the first one’s addresses in one line naming the step, creating nothing', async () => {
    const dir = join(tmpdir(), `rtccdn-cluster-${randomBytes(4).toString('hex')}`);
    const other = await runCommand('bash', [CLUSTER, 'up'], {
      env: { ...process.env, RTCCDN_CLUSTER_DIR: dir },
      timeoutMs: 600_000,
    });
    expect(other.code).toBe(1);
    expect(other.stdout).not.toContain('KUBECONFIG=');
    expect(other.stderr.trim().split('\n').pop()).toMatch(
      /^\[cluster\] ERROR: step "check that the cluster's address ranges are unused": 10\.213\.0\.0\/24 overlaps the existing route/,
    );
    expect(existsSync(dir)).toBe(false);
  });

  it('is idempotent: a second `up` reuses the running cluster and prints the same KUBECONFIG', async () => {
    const again = await runCommand('bash', [CLUSTER, 'up'], { timeoutMs: 600_000 });
    expect(again.code).toBe(0);
    expect(again.stdout.trim().split('\n').pop()).toBe(`KUBECONFIG=${kube.kubeconfig}`);
    expect(again.stderr).toMatch(/already up/);
    // The pods were not disturbed.
    const podList = JSON.parse(await kubectlOk(['-n', NS, 'get', 'pods', '-o', 'json']));
    for (const pod of podList.items) expect(pod.status.containerStatuses[0].restartCount).toBe(0);
  });

  // Last in this describe: it replaces the cluster the tests above used.
  it('replaces a partial cluster: `up` after an interrupted `down` removes what is left and starts a working one', async () => {
    // Interrupt `down` once it has stopped etcd: every process is gone, while the nodes' network
    // namespaces, links, routes and mounts are still there (down removes those next).
    const [etcdPid] = readFileSync(join(STATE, 'pids', 'etcd.pid'), 'utf8').split(' ');
    const down = spawn('bash', [CLUSTER, 'down'], { detached: true, stdio: 'ignore' });
    const deadline = Date.now() + 120_000;
    while (existsSync(`/proc/${etcdPid}`) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    process.kill(-down.pid!, 'SIGKILL');
    expect(existsSync(`/proc/${etcdPid}`)).toBe(false);
    expect(existsSync(join(STATE, 'created.txt'))).toBe(true);
    expect((await runCommand('ip', ['netns', 'list'])).stdout).toContain('rtccdn-eu-1');

    const again = await runCommand('bash', [CLUSTER, 'up'], { timeoutMs: 600_000 });
    expect(again.stderr).toMatch(/an unhealthy or partial cluster is recorded in .*: removing it first/);
    // On failure, the error line says which step and command failed.
    const errorLine = again.code === 0 ? '' : again.stderr.trim().split('\n').pop();
    expect([again.code, again.stdout.trim().split('\n').pop(), errorLine]).toEqual([
      0,
      `KUBECONFIG=${kube.kubeconfig}`,
      '',
    ]);
    const list = JSON.parse(await kubectlOk(['get', 'nodes', '-o', 'json']));
    expect(list.items.map((node: { metadata: { name: string } }) => node.metadata.name).sort()).toEqual(
      nodes.map((node) => node.name).sort(),
    );
    await kubectlOk(['wait', 'node', '--all', '--for=condition=Ready', '--timeout=120s']);
  }, 900_000);
});

describe('after cluster down (run by the afterAll above)', () => {
  it('leaves no network namespace, bridge, route, iptables rule, process, mount or state', async () => {
    const netns = await runCommand('ip', ['netns', 'list']);
    expect(netns.stdout.split('\n').filter((line) => line.startsWith('rtccdn-'))).toEqual([]);
    expect((await runCommand('ip', ['link', 'show', 'rtccdn0'])).code).not.toBe(0);
    const routes = (await runCommand('ip', ['-4', 'route', 'show'])).stdout;
    for (const node of nodes) expect(routes).not.toContain(node.podCIDR);
    expect((await runCommand('iptables', ['-w', '-S', 'FORWARD'])).stdout).not.toContain('rtccdn-cluster');
    expect(existsSync(STATE)).toBe(false);
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(STATE);
    const leftovers = readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(STATE);
        } catch {
          return false;
        }
      });
    expect(leftovers).toEqual([]);
    expect(readdirSync('/sys/fs/cgroup/memory')).not.toContain('rtccdn-cluster');
  });
});
