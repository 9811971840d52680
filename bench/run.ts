import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { PENDING_SESSIONS_PER_WORKER } from '../media-node/src/config.js';
import { runAclBench } from './acl.js';
import { runCascadeBench } from './cascade.js';
import { runFanoutBench } from './fanout.js';
import { runFlashCrowdBench } from './flashcrowd.js';
import { runLatencyBench } from './latency.js';
import { runOperatorBench } from './operator.js';
import { runPlaneBench } from './plane.js';
import type { Summary } from './stats.js';
import { runStreamsBench } from './streams.js';
import { runTranscodeBench } from './transcode.js';
import { runViewersBench } from './viewers.js';

/**
 * `npm run bench`: measurements, not assertions. Each scenario prints its numbers and writes
 * bench/results/<name>.json. Knobs: BENCH_SECONDS (per latency run, default 20), BENCH_JOINS
 * (time-to-first-frame samples, default 10), BENCH_ONLY (comma list: latency,fanout,cascade,acl,transcode,operator), BENCH_ACLS (StreamACLs
 * for the operator's throughput run, default 1000), BENCH_VIEWERS (viewers of the CPU-per-viewer run, default 10).
 *
 * The scale scenarios (issue 14; rtcload, bench/load/) are not in the default list, they take
 * minutes each and most of the machine: BENCH_ONLY=viewers,flashcrowd,streams,plane.
 * BENCH_VIEWER_STEPS (default 50,150,300,500), BENCH_HOLD (window per step, s, default 15),
 * BENCH_ROUNDS (rtccdn-vs-floor rounds, default 2).
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const joins = Number(process.env.BENCH_JOINS ?? 10);
const only = new Set(
  (process.env.BENCH_ONLY ?? 'latency,fanout,cascade,acl,transcode,operator')
    .split(',')
    .map((name) => name.trim()),
);
const resultsDir = new URL('./results/', import.meta.url);
mkdirSync(resultsDir, { recursive: true });

const machine = {
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  loadavg: os.loadavg().map((value) => Math.round(value * 100) / 100),
  note: 'shared machine: other work runs beside the benchmark; see loadavg (at start) and loadavgAtEnd',
};

const fmt = (s: Summary) => `p50 ${s.p50} ms  p95 ${s.p95} ms  p99 ${s.p99} ms  (n=${s.n})`;

function write(name: string, result: object): void {
  writeFileSync(
    new URL(`${name}.json`, resultsDir),
    `${JSON.stringify({ date: new Date().toISOString(), machine: { ...machine, loadavgAtEnd: os.loadavg().map((v) => Math.round(v * 100) / 100) }, ...result }, null, 2)}\n`,
  );
  console.log(`wrote bench/results/${name}.json`);
}

if (only.has('latency')) {
  const latency = await runLatencyBench({ seconds, joins, rtcPort: 47000 });
  console.log('\nGlass-to-glass latency, 640x360@30 VP8, libwebrtc peers, loopback');
  console.log(`  (a) direct peer→peer baseline : ${fmt(latency.baseline)}`);
  console.log(`  (b) WHIP → node → WHEP        : ${fmt(latency.viaNode)}`);
  console.log(
    `  ratio b/a (p50)               : ${latency.ratioP50}   Δp50 = ${latency.deltaP50Ms} ms (target ≤ 10 ms)`,
  );
  console.log(`Time to first frame, viewer joining a live stream: ${fmt(latency.timeToFirstFrame)}`);
  write('latency', latency);
}

if (only.has('fanout')) {
  const fanout = await runFanoutBench({
    seconds,
    viewers: Number(process.env.BENCH_VIEWERS ?? 10),
    rtcPort: 47010,
  });
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
  const cascade = await runCascadeBench({ seconds, joins });
  console.log('\nCDN cascade (Redis, origin + 3 edges of one region, one process each), 640x360@30 VP8');
  console.log(`  (a) direct peer→peer baseline        : ${fmt(cascade.baseline)}`);
  console.log(`  (b) origin → edge                    : ${fmt(cascade.originToEdge)}`);
  console.log(`  (c) origin → relay edge → edge       : ${fmt(cascade.originToRelayEdgeToEdge)}`);
  console.log(
    `  added p50 per hop: origin→edge ${cascade.addedP50PerHopMs.originToEdge} ms, relay hop ${cascade.addedP50PerHopMs.relayHop} ms (target ≤ 5 ms)`,
  );
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
  const acl = await runAclBench({ seconds, viewers: 40, trials: 20 });
  console.log('\nAccess control (Redis, origin + 2 edges, one process each)');
  console.log(`  admission (WHEP POST → 201), public    : ${fmt(acl.admission.public)}`);
  console.log(`  admission (WHEP POST → 201), protected : ${fmt(acl.admission.protected)}`);
  console.log(
    `  protected / public: p50 ×${acl.admission.ratioP50}, p99 ×${acl.admission.ratioP99} (target ≤ 1.1×) at ${acl.admission.ratePerSecond} req/s`,
  );
  console.log(
    `  revocation, last of ${acl.revocation.viewersPerTrial} sessions on ${acl.revocation.edges} edges cut: ${fmt(acl.revocation.lastViewerCutMs)} (target p99 ≤ 250 ms)`,
  );
  write('acl', acl);
}
if (only.has('transcode')) {
  const transcode = await runTranscodeBench({ seconds, coldStarts: Math.min(joins, 8) });
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
if (only.has('operator')) {
  const operator = await runOperatorBench({
    applies: Math.min(joins, 10),
    objects: Number(process.env.BENCH_ACLS ?? 1000),
  });
  console.log('\nOperator (real kube-apiserver + etcd, Redis, origin + edge processes)');
  console.log(`  kubectl apply StreamACL → edge admits the key: ${fmt(operator.applyToEnforcedMs)}`);
  console.log(
    `  ${operator.throughput.objects} StreamACLs → all Synced in ${operator.throughput.totalMs} ms (${operator.throughput.objectsPerSecond}/s); per object ${fmt(operator.throughput.perObjectMs)}`,
  );
  write('operator', operator);
}
if (only.has('viewers')) {
  console.log(
    '\nViewers per worker: rtccdn vs a bare mediasoup fan-out (floor), one worker, rtcload viewers',
  );
  const result = await runViewersBench({
    steps: (process.env.BENCH_VIEWER_STEPS ?? '50,150,300,500').split(',').map(Number),
    holdSeconds: Number(process.env.BENCH_HOLD ?? 15),
    rounds: Number(process.env.BENCH_ROUNDS ?? 2),
  });
  write('viewers', result);
}
if (only.has('flashcrowd')) {
  console.log(
    '\nFlash crowd: N viewers joining one edge (one worker) within 1 s; 20 viewers already watching',
  );
  // BENCH_MAX_PENDING sets the edge's MAX_PENDING_SESSIONS (100000: no node-wide bound, as before
  // it existed); unset: the node's default.
  // BENCH_CROWD_KBPS: the stream's bitrate (default 1500; low, the crowd measures joins alone).
  const maxPending = process.env.BENCH_MAX_PENDING;
  const kbps = Number(process.env.BENCH_CROWD_KBPS ?? 1500);
  const result = await runFlashCrowdBench({
    crowds: (process.env.BENCH_CROWDS ?? '50,100,200,400,800,1200').split(',').map(Number),
    kbps,
    env: maxPending ? { MAX_PENDING_SESSIONS: maxPending } : {},
  });
  const name = `flashcrowd-${kbps}k${maxPending ? `-max-pending-${maxPending}` : ''}`;
  write(name, {
    maxPendingSessions: maxPending ?? `default (${PENDING_SESSIONS_PER_WORKER} per worker)`,
    ...result,
  });
}
if (only.has('streams')) {
  const streams = Number(process.env.BENCH_STREAMS ?? 200);
  const perStream = Number(process.env.BENCH_VIEWERS_PER_STREAM ?? 5);
  const relayed = Number(process.env.BENCH_RELAYED_STREAMS ?? 50);
  console.log(
    `\nMany streams: ${streams} streams × ${perStream} viewers on one node; ${relayed} streams relayed to 3 edges`,
  );
  write('streams', await runStreamsBench({ streams, viewersPerStream: perStream, relayedStreams: relayed }));
}
if (only.has('plane')) {
  const nodes = Number(process.env.BENCH_PLANE_NODES ?? 200);
  const regions = Number(process.env.BENCH_PLANE_REGIONS ?? 50);
  console.log(
    `\nCluster plane: ${nodes} simulated nodes (registry + ACL cache each) over ${regions} regions, one Redis`,
  );
  write('plane', await runPlaneBench({ nodes, regions, seconds: Number(process.env.BENCH_HOLD ?? 15) }));
}
process.exit(0);
