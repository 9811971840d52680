import { PENDING_SESSIONS_PER_WORKER } from '../media-node/src/config.js';
import { runAbrBench } from './abr.js';
import { runAclBench } from './acl.js';
import { runCascadeBench } from './cascade.js';
import type { FailoverScenario } from './failover.js';
import { runFailoverBench } from './failover.js';
import { runFanoutBench } from './fanout.js';
import { runFlashCrowdBench } from './flashcrowd.js';
import { runHlsBench } from './hls.js';
import { runHlsForwardBench } from './hlsforward.js';
import { runK8sBench } from './k8s.js';
import { runLatencyBench } from './latency.js';
import { runOperatorBench } from './operator.js';
import { runPlaneBench } from './plane.js';
import { BenchRun } from './record.js';
import { runRolloutBench } from './rollout.js';
import { formatSummary, type Spread, type Summary } from './stats.js';
import { runStreamsBench } from './streams.js';
import { runTranscodeBench } from './transcode.js';
import { runViewersBench } from './viewers.js';

/**
 * `npm run bench`: measurements, not assertions. Each scenario prints its numbers; the run writes
 * one file, bench/results/<UTC start>.json, with the commit, the machine, its load and the
 * settings next to every scenario's results (bench/README.md). Knobs:
 *
 *   BENCH_ONLY         comma list of latency,fanout,cascade,acl,transcode,hls,operator,failover,k8s (default all)
 *   BENCH_SECONDS      measuring time (default 20): per path for latency and cascade (split over
 *                      the rounds), per window for fanout, of the admission run for acl, …
 *   BENCH_ROUNDS       alternating direct / via-node rounds of latency and cascade (default 8)
 *   BENCH_JOINS        time-to-first-frame samples (default 10)
 *   BENCH_VIEWERS      viewers of the CPU-per-viewer run (default 10)
 *   BENCH_ACL_VIEWERS  real viewers cut per revocation trial (default 16), BENCH_ACL_TRIALS (default 20)
 *   BENCH_ACLS         StreamACLs of the operator's throughput run (default 1000)
 *   BENCH_OPERATOR_WORKERS  the operator's workers per controller (default 4; the operator's own is 2)
 *   BENCH_FAILOVER_TRIALS  failures per failover scenario (default 5); BENCH_FAILOVER picks them
 *                      (comma list of relay,transcoder,publisher; default all)
 *   BENCH_K8S_VIEWERS  viewers of the pod usage run on the local cluster (default 50)
 *
 * `rollout` (not in the default list: several minutes, the local cluster) rolls every edge of the
 * CDN on the local cluster out with BENCH_ROLLOUT_VIEWERS (default 50) re-joining viewers playing:
 * viewers dropped before the drain deadline, and the longest interruption of a re-joining viewer.
 * BENCH_IMAGE_TAG (default latest): the rtccdn/media-node and rtccdn/operator tag it runs (with
 * RTCCDN_CLUSTER_IMAGES naming them, so that `cluster up` loads them).
 *
 * The scale scenarios (issue 14; rtcload, bench/load/) are not in the default list: they take
 * minutes each and most of the machine: BENCH_ONLY=viewers,flashcrowd,streams,plane.
 *   BENCH_VIEWER_STEPS (default 50,150,300,500), BENCH_HOLD (window per step, s, default 15),
 *   BENCH_VIEWER_ROUNDS (rtccdn-vs-floor rounds, default 2), BENCH_CROWDS (default
 *   50,100,200,400,800,1200), BENCH_CROWD_KBPS (1500), BENCH_MAX_PENDING (the edge's
 *   MAX_PENDING_SESSIONS; 100000: unbounded), BENCH_STREAMS (200), BENCH_VIEWERS_PER_STREAM (5),
 *   BENCH_RELAYED_STREAMS (50), BENCH_PLANE_NODES (200), BENCH_PLANE_REGIONS (50).
 *
 * `k8s` needs root and Docker (it builds what is missing and brings the local cluster up).
 *
 * `abr` (bitrate adaptation of a viewer whose link is shaped with tc; issue 16) is opt-in too
 * (BENCH_ONLY=abr; needs root and Chromium; minutes): BENCH_ABR_TRIALS (default 3),
 * BENCH_ABR_RATE (the limit, tc syntax, default 400kbit).
 *
 * `hlsforward` (opt-in, ~1 min): what an HLS request costs when the load balancer sends it to an
 * edge that passes it on to the player's packager; BENCH_HLS_FORWARD_SAMPLES (default 40).
 */
const knob = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const seconds = knob('BENCH_SECONDS', 20);
const joins = knob('BENCH_JOINS', 10);
const rounds = knob('BENCH_ROUNDS', 8);
const only = new Set(
  (process.env.BENCH_ONLY ?? 'latency,fanout,cascade,acl,transcode,hls,operator,failover,k8s')
    .split(',')
    .map((name) => name.trim()),
);
/** What every knob resolved to, defaults included: stored with the results. */
const settings = {
  only: [...only],
  seconds,
  joins,
  latency: { rounds, roundSeconds: Math.max(2, seconds / rounds), joins },
  fanout: { seconds, viewers: knob('BENCH_VIEWERS', 10) },
  acl: { seconds, viewers: knob('BENCH_ACL_VIEWERS', 16), trials: knob('BENCH_ACL_TRIALS', 20) },
  transcode: { seconds, coldStarts: Math.min(joins, 8) },
  hls: { seconds, coldStarts: Math.min(joins, 5), revocations: Math.min(joins, 5) },
  operator: {
    applies: Math.min(joins, 10),
    objects: knob('BENCH_ACLS', 1000),
    workers: knob('BENCH_OPERATOR_WORKERS', 4),
  },
  failover: { trials: knob('BENCH_FAILOVER_TRIALS', 5) },
  viewers: {
    steps: (process.env.BENCH_VIEWER_STEPS ?? '50,150,300,500').split(',').map(Number),
    holdSeconds: knob('BENCH_HOLD', 15),
    rounds: knob('BENCH_VIEWER_ROUNDS', 2),
  },
  flashcrowd: {
    crowds: (process.env.BENCH_CROWDS ?? '50,100,200,400,800,1200').split(',').map(Number),
    kbps: knob('BENCH_CROWD_KBPS', 1500),
    // The edge's MAX_PENDING_SESSIONS (100000: no node-wide bound, as before it existed); unset: the default.
    maxPending: process.env.BENCH_MAX_PENDING,
  },
  streams: {
    streams: knob('BENCH_STREAMS', 200),
    viewersPerStream: knob('BENCH_VIEWERS_PER_STREAM', 5),
    relayedStreams: knob('BENCH_RELAYED_STREAMS', 50),
  },
  plane: {
    nodes: knob('BENCH_PLANE_NODES', 200),
    regions: knob('BENCH_PLANE_REGIONS', 50),
    seconds: knob('BENCH_HOLD', 15),
  },
  k8s: { aclTrials: Math.min(joins, 5), viewers: knob('BENCH_K8S_VIEWERS', 50) },
  hlsforward: { samples: knob('BENCH_HLS_FORWARD_SAMPLES', 40) },
  abr: { trials: knob('BENCH_ABR_TRIALS', 3), lowRate: process.env.BENCH_ABR_RATE ?? '400kbit' },
  rollout: {
    viewers: knob('BENCH_ROLLOUT_VIEWERS', 50),
    imageTag: process.env.BENCH_IMAGE_TAG ?? 'latest',
  },
};
const run = new BenchRun(settings);
console.log(
  `results: ${run.name} (commit ${run.file.git.commit.slice(0, 12)}${run.file.git.dirty ? ', dirty tree' : ''}; load average ${run.file.loadavg.start.join(' ')})`,
);

if (run.file.loadavg.start[0] >= 1) {
  // Numbers taken on a busy machine are noisy; the load is recorded, but say it now too.
  console.log('warning: load average ≥ 1 at start: other work shares these cores, numbers will be noisy');
}

/** Tail percentiles only where the sample has them (stats.ts); always max and n. */
const fmt = (s: Summary) => formatSummary(s);
/** A per-round difference: its mean, spread and range over the rounds. */
const fmtSpread = (s: Spread) =>
  `mean ${s.mean} ms  stdev ${s.stdev} ms  min ${s.min}  max ${s.max} ms  (${s.n} rounds)`;

function write(name: string, result: object): void {
  run.add(name, result);
  console.log(`recorded ${name} in ${run.name}`);
}

if (only.has('latency')) {
  const latency = await runLatencyBench({ ...settings.latency, rtcPort: 47000 });
  console.log('\nGlass-to-glass latency, 640x360@30 VP8, libwebrtc peers, loopback');
  console.log(
    `  ${latency.settings.rounds} alternating rounds of ${latency.settings.roundSeconds} s per path, fresh peers each`,
  );
  for (const [index, round] of latency.rounds.entries()) {
    console.log(
      `  round ${index + 1} (${round.first} first): direct p50 ${round.direct.p50} ms (n=${round.direct.n}), via node p50 ${round.viaNode.p50} ms (n=${round.viaNode.n}), Δ ${round.deltaP50Ms} ms`,
    );
  }
  console.log(`  Δp50 via node − direct, per round : ${fmtSpread(latency.deltaP50Ms)} (target ≤ 10 ms)`);
  console.log(`  (a) direct peer→peer, pooled     : ${fmt(latency.pooled.direct)}`);
  console.log(`  (b) WHIP → node → WHEP, pooled   : ${fmt(latency.pooled.viaNode)}`);
  console.log(`  pooled: Δp50 ${latency.pooled.deltaP50Ms} ms, ratio b/a (p50) ${latency.pooled.ratioP50}`);
  console.log(`Time to first frame, viewer joining a live stream: ${fmt(latency.timeToFirstFrame)}`);
  write('latency', latency);
}

if (only.has('fanout')) {
  const fanout = await runFanoutBench({ ...settings.fanout, rtcPort: 47010 });
  const cores = (c: { node: number; worker: number }) => `node ${c.node}, worker ${c.worker} cores`;
  console.log('\nCPU per viewer, standalone node with one worker, 640x360@30 VP8 + Opus, libwebrtc viewers');
  console.log(`  publisher only          : ${cores(fanout.publishOnlyCores)}`);
  console.log(`  with ${fanout.viewers} viewers         : ${cores(fanout.withViewersCores)}`);
  console.log(
    `  per viewer              : node ${fanout.perViewerMillicores.node}, worker ${fanout.perViewerMillicores.worker}, total ${fanout.perViewerMillicores.total} millicores`,
  );
  write('fanout', fanout);
}

if (only.has('cascade')) {
  const cascade = await runCascadeBench(settings.latency);
  const hops = cascade.addedP50PerHopMs;
  console.log('\nCDN cascade (Redis, origin + 3 edges of one region, one process each), 640x360@30 VP8');
  console.log(
    `  ${cascade.settings.rounds} alternating rounds of ${cascade.settings.roundSeconds} s: direct, then (b) and (c) watched together`,
  );
  for (const [index, round] of cascade.rounds.entries()) {
    console.log(
      `  round ${index + 1} (${round.first} first): p50 direct ${round.direct.p50}, edge ${round.originToEdge.p50}, relay edge → edge ${round.originToRelayEdgeToEdge.p50} ms`,
    );
  }
  console.log(`  added p50, origin→edge, per round: ${fmtSpread(hops.originToEdge)}`);
  console.log(`  added p50, relay hop, per round  : ${fmtSpread(hops.relayHop)} (target ≤ 5 ms)`);
  console.log(`  (a) direct peer→peer, pooled          : ${fmt(cascade.pooled.direct)}`);
  console.log(`  (b) origin → edge, pooled             : ${fmt(cascade.pooled.originToEdge)}`);
  console.log(`  (c) origin → relay edge → edge, pooled: ${fmt(cascade.pooled.originToRelayEdgeToEdge)}`);
  console.log(
    `  time to first frame, cold edge : ${fmt(cascade.timeToFirstFrame.coldEdge)} (target ≤ 600 ms)`,
  );
  console.log(`  time to first frame, warm edge : ${fmt(cascade.timeToFirstFrame.warmEdge)}`);
  for (const step of cascade.originEgressAsEdgesJoin) {
    console.log(
      `  ${step.edges} edge(s) watching: origin relays ${step.originRelays}, relay egress ${step.originRelayEgressKbps} kbit/s`,
    );
  }
  write('cascade', cascade);
}
if (only.has('acl')) {
  const acl = await runAclBench(settings.acl);
  const { admission, revocation } = acl;
  console.log('\nAccess control (Redis, origin + 2 edges, one process each)');
  console.log(`  admission (WHEP POST → 201), public    : ${fmt(admission.public)}`);
  console.log(`  admission (WHEP POST → 201), protected : ${fmt(admission.protected)}`);
  console.log(
    `  protected / public: p50 ×${admission.ratioP50}${admission.ratioP99 === undefined ? '' : `, p99 ×${admission.ratioP99}`} (target ≤ 1.1×) at ${admission.ratePerSecond} req/s`,
  );
  console.log(
    `  revocation, ${revocation.viewersPerTrial} connected viewers on ${revocation.edges} edges, key removed →`,
  );
  console.log(`    last session closed (server side): ${fmt(revocation.serverClosedMs)} (target ≤ 250 ms)`);
  console.log(`    last frame decoded (client side) : ${fmt(revocation.lastFrameMs)}`);
  write('acl', acl);
}
if (only.has('transcode')) {
  const transcode = await runTranscodeBench(settings.transcode);
  console.log('\nRenditions (Redis, origin + edge + transcoder, real FFmpeg), source 640x480@30 VP8');
  console.log(`  source on the edge        : ${fmt(transcode.latency.source)}`);
  console.log(`  360p rendition on the edge: ${fmt(transcode.latency.rendition360p)}`);
  console.log(
    `  rendition adds p50 ${transcode.latency.addedP50Ms} ms (×${transcode.latency.ratioP50}; target ≤ 150 ms)`,
  );
  console.log(`  first frame of a cold rendition: ${fmt(transcode.coldFirstFrameMs)}`);
  for (const [profile, cores] of Object.entries(transcode.ffmpegCpuCores)) {
    console.log(`  FFmpeg CPU, ${profile}: ${cores} cores`);
  }
  write('transcode', transcode);
}

if (only.has('hls')) {
  const hls = await runHlsBench(settings.hls);
  console.log(`\nHLS (standalone node, ${hls.settings.source}, ${hls.settings.segmentSeconds} s segments)`);
  console.log(`  cold: multivariant → first LL-HLS part : ${fmt(hls.coldFirstPartMs)}`);
  console.log(`  cold: multivariant → media playlist   : ${fmt(hls.coldMediaPlaylistMs)}`);
  console.log(`  cold: player start → first frame      : ${fmt(hls.coldFirstFrameMs)}`);
  console.log(
    `  glass-to-glass, 3 segments behind live: ${fmt(hls.latency.behind3Segments)} (goal ≤ 6 s plain HLS)`,
  );
  console.log(`  glass-to-glass, 1 segment behind live : ${fmt(hls.latency.behind1Segment)}`);
  const hlsJs = hls.latency.hlsJs;
  console.log(
    `  glass-to-glass, hls.js (no LL-HLS)     : ${'error' in hlsJs ? `failed: ${hlsJs.error}` : fmt(hlsJs)}`,
  );
  const hlsJsLowLatency = hls.latency.hlsJsLowLatency;
  console.log(
    `  glass-to-glass, hls.js lowLatencyMode  : ${'error' in hlsJsLowLatency ? `failed: ${hlsJsLowLatency.error}` : fmt(hlsJsLowLatency)} (goal ≤ 2 s LL-HLS)`,
  );
  console.log(
    `  revocation → next request 403         : ${fmt(hls.revocation.refusedAfterMs)} (target ≤ 1 s)`,
  );
  console.log(
    `  revocation → blocked reload 403       : ${fmt(hls.revocation.blockedRefusedAfterMs)} (target ≤ 1 s)`,
  );
  console.log(`  revocation → player's last frame      : ${fmt(hls.revocation.lastFrameAfterMs)}`);
  console.log(`  revocation → player exits             : ${fmt(hls.revocation.playerExitAfterMs)}`);
  write('hls', hls);
}
if (only.has('hlsforward')) {
  const forward = await runHlsForwardBench(settings.hlsforward);
  console.log(`\nHLS through another edge (origin + 2 edges, ${forward.settings.source})`);
  console.log(`  part, from the holder          : ${fmt(forward.partMs.direct)}`);
  console.log(`  part, through the other edge   : ${fmt(forward.partMs.forwarded)}`);
  console.log(`  segment, from the holder       : ${fmt(forward.segmentMs.direct)}`);
  console.log(`  segment, through the other edge: ${fmt(forward.segmentMs.forwarded)}`);
  console.log(`  segment size                   : ${formatSummary(forward.segmentBytes, 'B')}`);
  console.log(`  blocking reload, forwarded − direct: ${fmt(forward.blockingReloadExtraMs)}`);
  write('hlsforward', forward);
}
if (only.has('operator')) {
  const operator = await runOperatorBench(settings.operator);
  console.log('\nOperator (real kube-apiserver + etcd, Redis, origin + edge processes)');
  for (const { component, setting, value, default: fallback } of operator.settings.nonDefault) {
    console.log(
      `  non-default ${component} setting: ${setting} ${JSON.stringify(value)} (default ${JSON.stringify(fallback)})`,
    );
  }
  console.log(`  kubectl apply StreamACL → edge admits the key: ${fmt(operator.applyToEnforcedMs)}`);
  console.log(
    `  ${operator.throughput.objects} StreamACLs → all Synced in ${operator.throughput.totalMs} ms (${operator.throughput.objectsPerSecond}/s, ${operator.settings.operator.workers} workers); per object ${fmt(operator.throughput.perObjectMs)}`,
  );
  write('operator', operator);
}
if (only.has('failover')) {
  const failover = await runFailoverBench(settings.failover);
  const line = (s: FailoverScenario) =>
    `${s.freezeMs.n > 0 ? `freeze ${fmt(s.freezeMs)}` : 'no freeze measured'}; viewers dropped ${s.dropped}/${s.trials.length}`;
  console.log(
    '\nFailover freeze at a libwebrtc viewer on another node (last frame before → first after), 640x360@30 VP8',
  );
  console.log(`  relay edge killed            : ${line(failover.relayEdgeKilled)}`);
  console.log(`  transcoder killed (${failover.settings.rendition}): ${line(failover.transcoderKilled)}`);
  console.log(`  publisher moved to an origin : ${line(failover.publisherMoved)}`);
  write('failover', failover);
}
if (only.has('abr')) {
  const abr = await runAbrBench(settings.abr);
  console.log(
    `\nBitrate adaptation: simulcast viewer on an edge whose link is shaped to ${abr.settings.lowRate} and back (${abr.settings.source})`,
  );
  console.log(`  longest freeze in 15 s without a limit: ${abr.unconstrainedFreezeMs} ms`);
  console.log(`  to the lowest layer after the limit : ${fmt(abr.downMs)}`);
  console.log(`  longest freeze, 15 s after the limit: ${fmt(abr.freezeDownMs)}`);
  console.log(`  to the top layer (held 10 s) after the lift: ${fmt(abr.upMs)}`);
  console.log(`  longest freeze until then           : ${fmt(abr.freezeUpMs)}`);
  write('abr', abr);
}
if (only.has('k8s')) {
  const k8s = await runK8sBench(settings.k8s);
  console.log(
    '\nKubernetes (local cluster: 3 kubelets in network namespaces on this machine), helm-installed CDN',
  );
  console.log(
    `  helm install → first frame through an edge: ${k8s.helmInstallToFirstFrameMs} ms (helm --wait ${k8s.phasesMs.helmInstall}, CDN Ready +${k8s.phasesMs.cdnReady}, first frame +${k8s.phasesMs.firstFrame})`,
  );
  console.log(
    `  kubectl apply StreamACL → keyless viewers of both regions cut: ${fmt(k8s.streamAclToEnforcedMs)}`,
  );
  console.log(`  scale-up decision → new edge serving: ${k8s.scaleUpDecisionToServingMs} ms`);
  for (const [pod, idle] of Object.entries(k8s.podUsage.idle)) {
    const loaded = k8s.podUsage.withViewers[pod];
    console.log(
      `  ${pod}: idle ${idle.cpuMillicores} mcores ${idle.memoryMiB} MiB; with ${k8s.podUsage.viewers} viewers ${loaded?.cpuMillicores ?? '-'} mcores ${loaded?.memoryMiB ?? '-'} MiB`,
    );
  }
  write('k8s', k8s);
}
if (only.has('rollout')) {
  const rollout = await runRolloutBench(settings.rollout);
  console.log(
    `\nRollout of every edge on the local cluster, ${rollout.viewers} re-joining viewers (eu: 2 edges)`,
  );
  console.log(`  template changed → every edge rolled out: ${rollout.rolloutMs} ms`);
  console.log(
    `  sessions ended: ${rollout.sessionsEnded} (at the drain deadline ${rollout.endedAtDeadline}; dropped before it ${rollout.droppedBeforeDeadline}, of which stalls ${rollout.stalled})`,
  );
  console.log(
    `  re-joins: ${rollout.rejoins}; interruption ${fmt(rollout.interruptionMs)}; longest ${rollout.longestInterruptionMs} ms`,
  );
  console.log(
    `    of which: end noticed ${fmt(rollout.noticeMs)}; re-join to first frame ${fmt(rollout.rejoinMs)}`,
  );
  console.log(
    `  longest freeze inside a session: ${rollout.longestFreezeInSessionMs} ms; playing at the end: ${rollout.playingAtEnd}/${rollout.viewers}`,
  );
  write('rollout', rollout);
}
if (only.has('viewers')) {
  console.log(
    '\nViewers per worker: rtccdn vs a bare mediasoup fan-out (floor), one worker, rtcload viewers',
  );
  write('viewers', await runViewersBench(settings.viewers));
}
if (only.has('flashcrowd')) {
  console.log(
    '\nFlash crowd: N viewers joining one edge (one worker) within 1 s; 20 viewers already watching',
  );
  const { crowds, kbps, maxPending } = settings.flashcrowd;
  const result = await runFlashCrowdBench({
    crowds,
    kbps,
    env: maxPending ? { MAX_PENDING_SESSIONS: maxPending } : {},
  });
  write(`flashcrowd-${kbps}k${maxPending ? `-max-pending-${maxPending}` : ''}`, {
    maxPendingSessions: maxPending ?? `default (${PENDING_SESSIONS_PER_WORKER} per worker)`,
    ...result,
  });
}
if (only.has('streams')) {
  const { streams, viewersPerStream, relayedStreams } = settings.streams;
  console.log(
    `\nMany streams: ${streams} streams × ${viewersPerStream} viewers on one node; ${relayedStreams} streams relayed to 3 edges`,
  );
  write('streams', await runStreamsBench(settings.streams));
}
if (only.has('plane')) {
  const { nodes, regions } = settings.plane;
  console.log(
    `\nCluster plane: ${nodes} simulated nodes (registry + ACL cache each) over ${regions} regions, one Redis`,
  );
  write('plane', await runPlaneBench(settings.plane));
}
run.finish();
console.log(
  `\nwrote ${run.name} (load average ${run.file.loadavg.start.join(' ')} at start, ${run.file.loadavg.end?.join(' ')} at end)`,
);
process.exit(0);
