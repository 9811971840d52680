/**
 * The CDN on the local Kubernetes cluster (scripts/cluster/cluster.sh), measured the way users
 * meet it: `helm install` → first frame played through an edge; `kubectl apply` StreamACL →
 * enforced on the edge pods of both regions; a scale-up decision (the edge Node's spec.replicas
 * written) → the new edge serving a viewer; pod CPU and memory (kubelet stats summaries) idle and
 * with N viewers. Peers run on the host and reach the CDN through the URLs of its status.
 *
 * The three Kubernetes nodes, their pods and the peers all share this machine's cores: numbers
 * include that contention, and are not a capacity figure (see docs/capacity.md).
 */
import {
  baseOf,
  CHART,
  conditionOf,
  type KubeJson,
  LOCAL_CDN,
  LOCAL_VALUES,
  localCluster,
  ordinalOfAnswer,
  podUsage,
  RTCCDN_CRDS,
  randomSuffix,
  waitFor,
  waitRoutable,
} from '../scripts/harness/k8s-cdn.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { type Summary, summarize } from './stats.js';

export interface K8sBenchResult {
  helmInstallToFirstFrameMs: number;
  /** Breakdown: helm install --wait, then the CDN Ready, then WHIP + WHEP first frame. */
  phasesMs: { helmInstall: number; cdnReady: number; firstFrame: number };
  streamAclToEnforcedMs: Summary;
  streamAclSamples: number[];
  scaleUpDecisionToServingMs: number;
  podUsage: {
    idle: Record<string, { cpuMillicores: number; memoryMiB: number }>;
    withViewers: Record<string, { cpuMillicores: number; memoryMiB: number }>;
    viewers: number;
  };
  notes: string[];
}

const STREAM = 'bench';

export async function runK8sBench(options: { aclTrials: number; viewers: number }): Promise<K8sBenchResult> {
  const kube = await localCluster();
  const namespace = `bench-${randomSuffix()}`;
  const peers: { close(): void }[] = [];
  /** Where the run is, for its progress lines and for the error if a step fails. */
  let step = 'create the namespace';
  const at = (next: string) => {
    step = next;
    console.log(`  k8s: ${next}`);
  };
  // CRDs a release kept (helm.sh/resource-policy: keep) belong to that release: a run in another
  // namespace installs without them, and removes only CRDs it installed.
  const installsCrds = (await kube.getJson(undefined, 'crd', 'cdns.rtccdn.io')) === undefined;
  try {
    await kube.kubectlOk(['create', 'namespace', namespace]);
    at('helm install');
    const started = Date.now();
    const install = await kube.helm([
      'install',
      'rtccdn',
      CHART,
      '-n',
      namespace,
      '-f',
      LOCAL_VALUES,
      '--set',
      'operator.autoscaler.intervalMs=1000',
      '--set',
      'operator.statusRefreshMs=2000',
      '--set',
      `crds.install=${installsCrds}`,
      '--wait',
      '--timeout',
      '300s',
    ]);
    if (install.code !== 0) throw new Error(`helm install: ${install.stderr.trim()}`);
    const installed = Date.now();
    at('apply the CDN, wait until Ready');
    await kube.kubectlOk(['-n', namespace, 'apply', '-f', LOCAL_CDN]);
    const cdn = await waitFor(
      'CDN Ready',
      async () => {
        const object = await kube.getJson(namespace, 'cdn', 'local');
        return conditionOf(object, 'Ready')?.status === 'True' ? object : undefined;
      },
      600_000,
      500,
    );
    const ready = Date.now();
    const url = (region: string, kind: 'whipUrl' | 'whepUrl') =>
      baseOf(cdn.status.regions.find((r: KubeJson) => r.name === region)[kind]);
    at('publish at the eu origin, play from the eu edge');
    // kube-proxy routes a NodePort a moment after its pods are ready (the CDN is Ready then).
    await waitRoutable(url('eu', 'whipUrl'));
    await waitRoutable(url('eu', 'whepUrl'));
    const publisher = new TestPublisher({ width: 160, height: 120, fps: 15 });
    peers.push(publisher);
    if ((await publisher.publish(url('eu', 'whipUrl'), STREAM)).status !== 201)
      throw new Error('WHIP refused');
    const first = new TestViewer();
    peers.push(first);
    if ((await first.play(url('eu', 'whepUrl'), STREAM, { audio: false })).status !== 201)
      throw new Error('WHEP refused');
    await first.waitForFrames(1, 30_000);
    const firstFrame = first.firstFrameAt ?? Date.now();

    at('StreamACL trials');
    // StreamACL apply → every keyless viewer (one per region) cut.
    const samples: number[] = [];
    for (let trial = 0; trial < options.aclTrials; trial++) {
      const keyless = await Promise.all(
        ['eu', 'us'].map(async (region) => {
          const viewer = new TestViewer();
          peers.push(viewer);
          if ((await viewer.play(url(region, 'whepUrl'), STREAM, { audio: false })).status !== 201)
            throw new Error('WHEP refused');
          await viewer.waitForFrames(3, 30_000);
          return viewer;
        }),
      );
      const applied = Date.now();
      await kube.kubectlOk(
        ['-n', namespace, 'apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'rtccdn.io/v1alpha1',
          kind: 'StreamACL',
          metadata: { name: 'bench' },
          spec: {
            cdnRef: { name: 'local' },
            stream: STREAM,
            keys: [{ id: 'k', value: `bench-key-${randomSuffix()}-0123456789` }],
          },
        }),
      );
      await Promise.all(keyless.map((viewer) => viewer.waitForDisconnect(30_000)));
      // Media stops when the edge cuts the session; the peer connection notices seconds later.
      samples.push(Math.max(...keyless.map((viewer) => (viewer.lastFrameAt ?? applied) - applied)));
      for (const viewer of keyless) viewer.close();
      // Deleting an allow-by-key ACL opens the stream again for the next trial.
      await kube.kubectlOk(['-n', namespace, 'delete', 'streamacl', 'bench', '--wait=true']);
    }

    at('pod usage, idle');
    // Idle: the publisher and no viewers.
    for (const peer of peers) if (peer !== publisher) peer.close();
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    const idle = Object.fromEntries(await podUsage(kube, namespace));

    at(`pod usage with ${options.viewers} viewers`);
    // N viewers on the eu edge (target raised so that the measurement stays on one edge).
    await kube.kubectlOk([
      '-n',
      namespace,
      'patch',
      'cdn',
      'local',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'replace', path: '/spec/regions/0/edges/targetViewersPerEdge', value: 100_000 }]),
    ]);
    const load: TestViewer[] = [];
    for (let i = 0; i < options.viewers; i++) {
      const viewer = new TestViewer();
      peers.push(viewer);
      load.push(viewer);
      if ((await viewer.play(url('eu', 'whepUrl'), STREAM, { audio: false })).status !== 201)
        throw new Error('WHEP refused');
    }
    await Promise.all(load.map((viewer) => viewer.waitForFrames(5, 60_000)));
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    const withViewers = Object.fromEntries(await podUsage(kube, namespace));
    for (const viewer of load) viewer.close();

    at('scale-up');
    // Scale-up decision → new edge serving: minReplicas 2 makes the autoscaler write 2.
    await kube.kubectlOk([
      '-n',
      namespace,
      'patch',
      'cdn',
      'local',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'replace', path: '/spec/regions/0/edges/minReplicas', value: 2 }]),
    ]);
    const decided = await waitFor(
      'the decision',
      async () => {
        const node = await kube.getJson(namespace, 'nodes.rtccdn.io', 'local-eu-edge');
        return node.spec.replicas >= 2 ? Date.now() : undefined;
      },
      60_000,
      100,
    );
    const ports = (await kube.getJson(namespace, 'nodes.rtccdn.io', 'local-eu-edge')).spec.ports;
    const served = await waitFor(
      'a viewer on the new edge',
      async () => {
        const viewer = new TestViewer();
        peers.push(viewer);
        const answer = await viewer.play(url('eu', 'whepUrl'), STREAM, { audio: false });
        if (answer.status !== 201 || ordinalOfAnswer(answer.body, ports) < 1) {
          viewer.close();
          return undefined;
        }
        await viewer.waitForFrames(1, 30_000);
        return viewer.firstFrameAt;
      },
      180_000,
      200,
    );

    return {
      helmInstallToFirstFrameMs: firstFrame - started,
      phasesMs: {
        helmInstall: installed - started,
        cdnReady: ready - installed,
        firstFrame: firstFrame - ready,
      },
      streamAclToEnforcedMs: summarize(samples),
      streamAclSamples: samples,
      scaleUpDecisionToServingMs: (served ?? Date.now()) - decided,
      podUsage: { idle, withViewers, viewers: options.viewers },
      notes: [
        'One machine: three kubelets, their pods, kube-apiserver/etcd and the host peers share its cores.',
        'The stream is small (160x120@15 VP8, no audio) so that 50 libwebrtc viewers decoding on the host fit on 2 cores: pod CPU with viewers is for that stream, not a capacity figure.',
        'helm install includes pulling nothing (images preloaded, pullPolicy Never) and the operator start.',
        'StreamACL → enforced: from kubectl apply returning to the last frame the later of two keyless viewers (one per region) decoded (the edge cuts the session; libwebrtc reports the connection down only after its ICE consent timeout, seconds later).',
        'Before the first WHIP and WHEP, the URLs are polled (GET /readyz every 200 ms) until the NodePorts are routed (kube-proxy, a moment after the pods are ready): included in helm install → first frame.',
        'Scale-up: from the edge Node spec.replicas written (polled every 100 ms) to the first frame of a viewer admitted by the new pod (new viewers retried until one lands on it).',
        'CPU is the kubelet summary usageNanoCores (a ~10 s window), memory the working set.',
      ],
    };
  } catch (error) {
    throw new Error(`k8s bench failed at "${step}": ${(error as Error).message}`, { cause: error });
  } finally {
    for (const peer of peers) peer.close();
    await kube.kubectl(['-n', namespace, 'delete', 'cdn', '--all', '--wait=true', '--timeout=120s']);
    await kube.helm(['uninstall', 'rtccdn', '-n', namespace, '--wait', '--timeout', '120s']);
    await kube.kubectl(['delete', 'namespace', namespace, '--wait=true', '--timeout=180s']);
    if (installsCrds) {
      await kube.kubectl(['delete', 'crd', ...RTCCDN_CRDS, '--ignore-not-found']);
    }
  }
}
