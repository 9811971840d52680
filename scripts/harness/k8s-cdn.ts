/**
 * A CDN on the local Kubernetes cluster (scripts/cluster/cluster.sh), driven the way users drive
 * it: `helm` and `kubectl` against the cluster's API server, WebRTC peers on the host reaching
 * the CDN through the URLs its status gives. Shared by the end-to-end test
 * (test/cluster-k8s/cdn.test.ts) and the Kubernetes benchmark (bench/k8s.ts).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CommandResult, ensureKubeTestEnvBinaries, runCommand } from './kube-testenv.js';
import { waitFor } from './wait.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLUSTER_SCRIPT = join(REPO, 'scripts/cluster/cluster.sh');
export const CHART = join(REPO, 'helm/rtccdn');
export const LOCAL_VALUES = join(REPO, 'helm/rtccdn/values-local.yaml');
/** The CustomResourceDefinitions the chart installs (and keeps on uninstall). */
export const RTCCDN_CRDS = ['cdns.rtccdn.io', 'nodes.rtccdn.io', 'streamacls.rtccdn.io'];
export const LOCAL_CDN = join(REPO, 'crds/examples/cdn-local.yaml');

export interface Kube {
  kubeconfig: string;
  kubectl(args: string[], input?: string): Promise<CommandResult>;
  /** kubectl that must succeed: its stdout. */
  kubectlOk(args: string[], input?: string): Promise<string>;
  /** `kubectl get -o json` of one object, undefined when it does not exist. */
  getJson<T = KubeJson>(
    namespace: string | undefined,
    resource: string,
    name: string,
  ): Promise<T | undefined>;
  helm(args: string[]): Promise<CommandResult>;
}

// biome-ignore lint/suspicious/noExplicitAny: objects read back from kubectl are checked field by field
export type KubeJson = any;

/** `cluster up` (reusing a running cluster): the path of its kubeconfig, or throws with the script's last lines. */
export async function clusterUp(): Promise<string> {
  const up = await runCommand('bash', [CLUSTER_SCRIPT, 'up'], {
    timeoutMs: 60 * 60_000,
    teeStderr: process.stderr,
  });
  const last = up.stdout.trim().split('\n').pop() ?? '';
  if (up.code !== 0 || !last.startsWith('KUBECONFIG=')) {
    throw new Error(
      `cluster up failed (exit ${up.code}): ${up.stderr.trim().split('\n').slice(-5).join('\n')}`,
    );
  }
  return last.slice('KUBECONFIG='.length);
}

/** Brings the local cluster up (or reuses it) and returns kubectl/helm bound to it. */
export async function localCluster(): Promise<Kube> {
  const kubeconfig = await clusterUp();
  const bin = await ensureKubeTestEnvBinaries();
  const kubectl = (args: string[], input?: string) =>
    runCommand(join(bin, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], {
      timeoutMs: 180_000,
      ...(input === undefined ? {} : { input }),
    });
  const kubectlOk = async (args: string[], input?: string) => {
    const result = await kubectl(args, input);
    if (result.code !== 0)
      throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
    return result.stdout;
  };
  return {
    kubeconfig,
    kubectl,
    kubectlOk,
    async getJson(namespace, resource, name) {
      const result = await kubectl([
        ...(namespace ? ['-n', namespace] : []),
        'get',
        resource,
        name,
        '-o',
        'json',
        '--ignore-not-found',
      ]);
      if (result.code !== 0) throw new Error(`kubectl get ${resource} ${name}: ${result.stderr.trim()}`);
      return result.stdout.trim() === '' ? undefined : JSON.parse(result.stdout);
    },
    helm: (args) =>
      runCommand(join(bin, 'helm'), ['--kubeconfig', kubeconfig, ...args], { timeoutMs: 600_000 }),
  };
}

export { waitFor };

export const randomSuffix = (): string => randomBytes(3).toString('hex');

/** A condition of an object's status. */
export function conditionOf(
  object: KubeJson,
  type: string,
): { status: string; reason?: string; message?: string } | undefined {
  return object?.status?.conditions?.find((condition: { type: string }) => condition.type === type);
}

/** The origin of a URL the CDN status gives (`http://10.213.0.11:31234/whep/` → base for peers). */
export const baseOf = (url: string): string => new URL(url).origin;

/**
 * Waits until a media node answers at `base` (its public /readyz). A NodePort is routed by
 * kube-proxy a moment after its pods are ready, so a CDN just reported Ready may still refuse
 * connections there for a second.
 */
export async function waitRoutable(base: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    `${base} routed to a ready media node`,
    async () => (await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) })).ok,
    timeoutMs,
    200,
  );
}

/**
 * The media node a WHEP/WHIP answer came from, by the port of its host candidate: with exposure
 * nodePort pod i of a group listens on rtcPortBase + i × workers + w.
 */
export function ordinalOfAnswer(sdp: string, ports: { rtcPortBase: number; workers: number }): number {
  const candidate = /^a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host/im.exec(sdp);
  if (!candidate) throw new Error('no UDP host candidate in the answer');
  return Math.floor((Number(candidate[1]) - ports.rtcPortBase) / ports.workers);
}

/** Pod CPU (millicores) and memory (working set, MiB) from the kubelets' stats summaries. */
export async function podUsage(
  kube: Kube,
  namespace: string,
): Promise<Map<string, { cpuMillicores: number; memoryMiB: number }>> {
  const nodes = JSON.parse(await kube.kubectlOk(['get', 'nodes', '-o', 'json'])).items as KubeJson[];
  const usage = new Map<string, { cpuMillicores: number; memoryMiB: number }>();
  for (const node of nodes) {
    const summary = JSON.parse(
      await kube.kubectlOk(['get', '--raw', `/api/v1/nodes/${node.metadata.name}/proxy/stats/summary`]),
    );
    for (const pod of summary.pods ?? []) {
      if (pod.podRef.namespace !== namespace) continue;
      usage.set(pod.podRef.name, {
        cpuMillicores: Math.round((pod.cpu?.usageNanoCores ?? 0) / 1e6),
        memoryMiB: Math.round((pod.memory?.workingSetBytes ?? 0) / 2 ** 20),
      });
    }
  }
  return usage;
}
