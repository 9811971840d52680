/**
 * A rollout of every edge on the local Kubernetes cluster (scripts/cluster/cluster.sh), with N
 * viewers playing (issue 15): the chart and the CDN "local" installed as users do, eu's edges at
 * two pods, N viewers through eu's WHEP Service URL, then a change to the edges' pod template
 * (their CPU request) that the operator rolls out (node/rollout.ts: surge pod if needed, drain,
 * delete once empty or at the drain deadline, one pod at a time). Each viewer behaves like the
 * reference player: when its session ends (DTLS close, the connection failing, or no frame for
 * STALL_MS) it plays again at the same URL until a frame arrives.
 *
 * Measured: viewers dropped before their edge's drain deadline (a session that ended while its
 * edge was not draining, or less than the deadline after its drain started — goal 0), the
 * sessions ended at the deadline (then re-joined), and the interruptions a re-joining viewer saw
 * (last frame of the old session → first frame of the new one). Peers run on the host; the three
 * Kubernetes nodes, their pods and the peers share the machine's cores.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { MEDIA_NODE_DRAIN_DEADLINE_MS } from '../operator/src/controllers/shared.js';
import {
  baseOf,
  CHART,
  conditionOf,
  type Kube,
  type KubeJson,
  LOCAL_CDN,
  LOCAL_VALUES,
  localCluster,
  ordinalOfAnswer,
  RTCCDN_CRDS,
  randomSuffix,
  waitFor,
  waitRoutable,
} from '../scripts/harness/k8s-cdn.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';
import { type Summary, summarize } from './stats.js';

const STREAM = 'rollout';
/** A player that sees no frame for this long gives its session up and plays again. */
const STALL_MS = 3000;
/** Slack on the deadline: the edge's timer, the DTLS close and the frame clock are not one. */
const DEADLINE_SLACK_MS = 2000;
/** An end this long after the deadline is no deadline end (the edge ends its sessions at once). */
const AFTER_DEADLINE_MS = 15_000;
const EDGE_NODES = ['local-eu-edge', 'local-us-edge'];
const ROLLOUT_ANNOTATION = 'rtccdn.io/rollout';

export interface RolloutBenchResult {
  viewers: number;
  /** Template changed → every edge pod at the new revision, ready, the rollout state gone. */
  rolloutMs: number;
  imageTag: string;
  /** eu edge pods drained by the rollout: ordinal → ms after the change when its drain began. */
  drainsStartedMs: Record<string, number>;
  sessionsEnded: number;
  /** Sessions ended at or after their edge's drain deadline (players re-join). */
  endedAtDeadline: number;
  /** Sessions that ended while their edge was not draining, or before its deadline: goal 0. */
  droppedBeforeDeadline: number;
  /** Of those, how many ended by a stall (no frame for STALL_MS) rather than a hang-up. */
  stalled: number;
  rejoins: number;
  /** Last frame before → first frame after, per re-join. */
  interruptionMs: Summary;
  longestInterruptionMs: number;
  /** Longest gap between two frames of one session (a freeze that did not end it). */
  longestFreezeInSessionMs: number;
  /** Viewers playing (a frame in the last STALL_MS) at the end. */
  playingAtEnd: number;
  /** Every session end: its pod, ms after the change, ms after its pod's drain began, how. */
  ends: { ordinal: number; atMs: number; afterDrainMs: number | null; how: string }[];
  /** Every re-join: ms after the change when the old session's last frame came, and how long. */
  rejoinsAt: { atMs: number; interruptionMs: number; noticedAfterMs: number }[];
  /** Of the interruption: last frame → end noticed (hang-up seen, or STALL_MS), and → first frame of the new session. */
  noticeMs: Summary;
  rejoinMs: Summary;
  notes: string[];
}

interface SessionEnd {
  ordinal: number;
  lastFrameAt: number;
  how: 'hang-up' | 'stall';
}

/** One viewer that re-joins like the reference player; records how its sessions ended. */
class RejoiningViewer {
  current: TestViewer | undefined;
  ordinal = -1;
  readonly ends: SessionEnd[] = [];
  readonly interruptions: number[] = [];
  /** When each interrupted session's last frame came, and when its end was noticed (parallel to interruptions). */
  readonly interruptedAt: number[] = [];
  readonly noticedAt: number[] = [];
  longestFreeze = 0;
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly url: string,
    readonly ports: () => Promise<{ rtcPortBase: number; workers: number }>,
  ) {}

  start(): Promise<void> {
    let firstFrame!: () => void;
    const started = new Promise<void>((resolve) => {
      firstFrame = resolve;
    });
    this.#loop = this.#run(firstFrame);
    return started;
  }

  get lastFrameAt(): number | undefined {
    return this.current?.lastFrameAt;
  }

  async #run(firstFrame: () => void): Promise<void> {
    let endedAt: number | undefined;
    let noticedAt = 0;
    while (!this.#stopped) {
      const viewer = new TestViewer();
      this.current = viewer;
      let answer: Awaited<ReturnType<TestViewer['play']>> | undefined;
      try {
        answer = await viewer.play(this.url, STREAM, { audio: false });
      } catch {
        answer = undefined;
      }
      if (answer?.status !== 201) {
        viewer.close();
        await sleep(500); // a refused or unreachable join: try again, as the player does
        continue;
      }
      this.ordinal = ordinalOfAnswer(answer.body, await this.ports());
      try {
        await viewer.waitForFrames(1, 15_000);
      } catch {
        viewer.close();
        continue;
      }
      if (endedAt !== undefined && viewer.firstFrameAt !== undefined) {
        this.interruptions.push(viewer.firstFrameAt - endedAt);
        this.interruptedAt.push(endedAt);
        this.noticedAt.push(noticedAt);
      }
      firstFrame();
      // Playing: until the server hangs up or frames stop.
      let how: SessionEnd['how'] | undefined;
      while (!this.#stopped && how === undefined) {
        await sleep(100);
        // Stopping closes 50 peer connections one by one, which holds the others' frames back:
        // what is seen from then on is the teardown's, not the CDN's.
        if (this.#stopped) break;
        // 'disconnected' may pass (a consent check missed on a loaded machine): the stall timeout decides.
        if (['failed', 'closed'].includes(viewer.pc.connectionState)) how = 'hang-up';
        else if (Date.now() - (viewer.lastFrameAt ?? 0) > STALL_MS) how = 'stall';
      }
      const times = viewer.frameTimes;
      for (let i = 1; i < times.length; i++) {
        this.longestFreeze = Math.max(this.longestFreeze, times[i]! - times[i - 1]!);
      }
      viewer.close();
      if (how === undefined) break;
      endedAt = viewer.lastFrameAt ?? Date.now();
      noticedAt = Date.now();
      this.ends.push({ ordinal: this.ordinal, lastFrameAt: endedAt, how });
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every edge pod at the StatefulSet's update revision and ready, no rollout state left. */
async function rolledOut(kube: Kube, namespace: string): Promise<boolean> {
  for (const name of EDGE_NODES) {
    const node = await kube.getJson(namespace, 'nodes.rtccdn.io', name);
    if (node?.metadata.annotations?.[ROLLOUT_ANNOTATION]) return false;
    const set = await kube.getJson(namespace, 'statefulset', name);
    const revision = set?.status?.updateRevision;
    if (!revision) return false;
    const pods = JSON.parse(
      await kube.kubectlOk(['-n', namespace, 'get', 'pods', '-l', `rtccdn.io/node=${name}`, '-o', 'json']),
    ).items as KubeJson[];
    if (pods.length !== set.spec.replicas) return false;
    for (const pod of pods) {
      if (pod.metadata.deletionTimestamp) return false;
      if (pod.metadata.labels['controller-revision-hash'] !== revision) return false;
      if (conditionOf(pod, 'Ready')?.status !== 'True') return false;
    }
  }
  return true;
}

export async function runRolloutBench(options: {
  viewers: number;
  /** Tag of the rtccdn/media-node and rtccdn/operator images to run (loaded into the cluster). */
  imageTag: string;
}): Promise<RolloutBenchResult> {
  const kube = await localCluster();
  const namespace = `rollout-${randomSuffix()}`;
  const viewers: RejoiningViewer[] = [];
  let publisher: TestPublisher | undefined;
  let step = 'create the namespace';
  const at = (next: string) => {
    step = next;
    console.log(`  rollout: ${next}`);
  };
  const installsCrds = (await kube.getJson(undefined, 'crd', 'cdns.rtccdn.io')) === undefined;
  try {
    await kube.kubectlOk(['create', 'namespace', namespace]);
    at('helm install');
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
      `operator.image.tag=${options.imageTag}`,
      '--set',
      `crds.install=${installsCrds}`,
      '--wait',
      '--timeout',
      '300s',
    ]);
    if (install.code !== 0) throw new Error(`helm install: ${install.stderr.trim()}`);
    at('apply the CDN (eu: 2 edges), wait until Ready');
    // The example CDN with the images under test, and two eu edges whatever the load (the
    // autoscaler stays out of the way: no scale-down; a region of one edge rolls with a surge).
    const local = parseDocument(readFileSync(LOCAL_CDN, 'utf8')).toJS() as KubeJson;
    local.spec.image = `rtccdn/media-node:${options.imageTag}`;
    local.spec.regions[0].edges.minReplicas = 2;
    local.spec.regions[0].edges.targetViewersPerEdge = 100;
    await kube.kubectlOk(['-n', namespace, 'apply', '-f', '-'], JSON.stringify(local));
    const cdn = await waitFor(
      'CDN Ready with two eu edges',
      async () => {
        const object = await kube.getJson(namespace, 'cdn', 'local');
        const eu = object?.status?.regions?.find((r: KubeJson) => r.name === 'eu');
        if (conditionOf(object, 'Ready')?.status !== 'True' || eu?.edgesReady !== 2) return undefined;
        return (await rolledOut(kube, namespace)) ? object : undefined;
      },
      600_000,
      500,
    );
    const url = (kind: 'whipUrl' | 'whepUrl') =>
      baseOf(cdn.status.regions.find((r: KubeJson) => r.name === 'eu')[kind]);
    await waitRoutable(url('whipUrl'));
    await waitRoutable(url('whepUrl'));

    at(`publish at the eu origin, ${options.viewers} viewers through the eu WHEP Service`);
    publisher = new TestPublisher({ width: 160, height: 120, fps: 15 });
    if ((await publisher.publish(url('whipUrl'), STREAM)).status !== 201) throw new Error('WHIP refused');
    const ports = async () => (await kube.getJson(namespace, 'nodes.rtccdn.io', 'local-eu-edge')).spec.ports;
    const edgePorts = await ports();
    for (let i = 0; i < options.viewers; i++) {
      viewers.push(new RejoiningViewer(url('whepUrl'), async () => edgePorts));
    }
    await Promise.race([
      Promise.all(viewers.map((viewer) => viewer.start())),
      sleep(120_000).then(() => {
        throw new Error('not every viewer got a first frame within 120 s');
      }),
    ]);
    await sleep(5_000);

    at('change the edges’ pod template (CPU request), wait for the rollout to end');
    const changed = Date.now();
    await kube.kubectlOk([
      '-n',
      namespace,
      'patch',
      'cdn',
      'local',
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { resources: { edge: { requests: { cpu: '120m', memory: '128Mi' } } } } }),
    ]);
    // The eu edge Node's rollout state names the pod being drained and since when.
    const drainSince = new Map<number, number>();
    let started = false;
    await waitFor(
      'every edge rolled out',
      async () => {
        const node = await kube.getJson(namespace, 'nodes.rtccdn.io', 'local-eu-edge');
        const raw = node?.metadata.annotations?.[ROLLOUT_ANNOTATION];
        if (raw) {
          started = true;
          const state = JSON.parse(raw) as { pod?: { ordinal: number; drainSince: number } };
          if (state.pod && !drainSince.has(state.pod.ordinal)) {
            drainSince.set(state.pod.ordinal, state.pod.drainSince);
          }
        }
        return started && (await rolledOut(kube, namespace));
      },
      20 * 60_000,
      500,
    );
    const rolloutMs = Date.now() - changed;
    await sleep(10_000);

    at('results');
    const now = Date.now();
    const playingAtEnd = viewers.filter((viewer) => now - (viewer.lastFrameAt ?? 0) < STALL_MS).length;
    await Promise.all(viewers.map((viewer) => viewer.stop()));
    const ends = viewers.flatMap((viewer) => viewer.ends);
    // At the deadline: within [deadline - slack, deadline + AFTER_DEADLINE_MS] of its pod's drain
    // (a later end on that ordinal is on the pod's successor, which no rollout drains).
    const early = ends.filter((end) => {
      const since = drainSince.get(end.ordinal);
      const after = since === undefined ? undefined : end.lastFrameAt - since;
      return (
        after === undefined ||
        after < MEDIA_NODE_DRAIN_DEADLINE_MS - DEADLINE_SLACK_MS ||
        after > MEDIA_NODE_DRAIN_DEADLINE_MS + AFTER_DEADLINE_MS
      );
    });
    const interruptions = viewers.flatMap((viewer) => viewer.interruptions);
    return {
      viewers: options.viewers,
      rolloutMs,
      imageTag: options.imageTag,
      drainsStartedMs: Object.fromEntries(
        [...drainSince].map(([ordinal, since]) => [String(ordinal), since - changed]),
      ),
      sessionsEnded: ends.length,
      endedAtDeadline: ends.length - early.length,
      droppedBeforeDeadline: early.length,
      stalled: early.filter((end) => end.how === 'stall').length,
      rejoins: interruptions.length,
      interruptionMs: summarize(interruptions),
      noticeMs: summarize(
        viewers.flatMap((viewer) => viewer.noticedAt.map((at, i) => at - viewer.interruptedAt[i]!)),
      ),
      rejoinMs: summarize(
        viewers.flatMap((viewer) =>
          viewer.interruptions.map((ms, i) => ms - (viewer.noticedAt[i]! - viewer.interruptedAt[i]!)),
        ),
      ),
      longestInterruptionMs: interruptions.length > 0 ? Math.max(...interruptions) : 0,
      longestFreezeInSessionMs: Math.max(0, ...viewers.map((viewer) => viewer.longestFreeze)),
      playingAtEnd,
      ends: ends
        .map((end) => {
          const since = drainSince.get(end.ordinal);
          return {
            ordinal: end.ordinal,
            atMs: end.lastFrameAt - changed,
            afterDrainMs: since === undefined ? null : end.lastFrameAt - since,
            how: end.how,
          };
        })
        .sort((a, b) => a.atMs - b.atMs),
      rejoinsAt: viewers
        .flatMap((viewer) =>
          viewer.interruptions.map((ms, i) => ({
            atMs: viewer.interruptedAt[i]! - changed,
            interruptionMs: ms,
            noticedAfterMs: viewer.noticedAt[i]! - viewer.interruptedAt[i]!,
          })),
        )
        .sort((a, b) => a.atMs - b.atMs),
      notes: [
        `Drain deadline ${MEDIA_NODE_DRAIN_DEADLINE_MS} ms (the operator's, per drained pod); viewers never leave on their own, so every drained pod waits it out and ends its sessions then (reason node-draining), and the viewers re-join.`,
        `A viewer re-joins when the server hangs up (DTLS close), its connection fails, or no frame arrives for ${STALL_MS} ms; a join refused or unreachable is retried every 500 ms.`,
        `Dropped before the deadline: a session whose last frame came less than the deadline (minus ${DEADLINE_SLACK_MS} ms) or more than the deadline plus ${AFTER_DEADLINE_MS} ms after its pod's drain began, or on a pod the rollout did not drain: every end that is not the deadline's.`,
        'The pod of a session is told by the port of its answer’s host candidate (exposure nodePort: one port block per pod).',
        'One machine: three kubelets, their pods, kube-apiserver/etcd and the host peers share its cores; 160x120@15 VP8, no audio.',
      ],
    };
  } catch (error) {
    throw new Error(`rollout bench failed at "${step}": ${(error as Error).message}`, { cause: error });
  } finally {
    await Promise.all(viewers.map((viewer) => viewer.stop().catch(() => undefined)));
    publisher?.close();
    await kube.kubectl(['-n', namespace, 'delete', 'cdn', '--all', '--wait=true', '--timeout=120s']);
    await kube.helm(['uninstall', 'rtccdn', '-n', namespace, '--wait', '--timeout', '120s']);
    await kube.kubectl(['delete', 'namespace', namespace, '--wait=true', '--timeout=180s']);
    if (installsCrds) await kube.kubectl(['delete', 'crd', ...RTCCDN_CRDS, '--ignore-not-found']);
  }
}
