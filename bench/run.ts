import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { runAclBench } from './acl.js';
import { runCascadeBench } from './cascade.js';
import type { FailoverScenario } from './failover.js';
import { runFailoverBench } from './failover.js';
import { runFanoutBench } from './fanout.js';
import { runLatencyBench } from './latency.js';
import { runOperatorBench } from './operator.js';
import type { Summary } from './stats.js';
import { runTranscodeBench } from './transcode.js';

/**
 * `npm run bench`: measurements, not assertions. Each scenario prints its numbers and writes
 * bench/results/<name>.json. Knobs: BENCH_SECONDS (per latency run, default 20), BENCH_JOINS
 * (time-to-first-frame samples, default 10), BENCH_ONLY (comma list: latency,fanout,cascade,acl,transcode,operator,failover), BENCH_ACLS (StreamACLs
 * for the operator's throughput run, default 1000), BENCH_VIEWERS (viewers of the CPU-per-viewer run, default 10),
 * BENCH_FAILOVER_TRIALS (failures per failover scenario, default 5), BENCH_FAILOVER (comma list: relay,transcoder,publisher).
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const joins = Number(process.env.BENCH_JOINS ?? 10);
const only = new Set(
  (process.env.BENCH_ONLY ?? 'latency,fanout,cascade,acl,transcode,operator,failover')
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
};

const fmt = (s: Summary) => `p50 ${s.p50} ms  p95 ${s.p95} ms  p99 ${s.p99} ms  (n=${s.n})`;

function write(name: string, result: object): void {
  writeFileSync(
    new URL(`${name}.json`, resultsDir),
    `${JSON.stringify({ date: new Date().toISOString(), machine, ...result }, null, 2)}\n`,
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
if (only.has('failover')) {
  const failover = await runFailoverBench({ trials: Number(process.env.BENCH_FAILOVER_TRIALS ?? 5) });
  const line = (s: FailoverScenario) =>
    `${s.freezeMs.n > 0 ? `freeze ${fmt(s.freezeMs)}, max ${s.freezeMs.max} ms` : 'no freeze measured'}; viewers dropped ${s.dropped}/${s.trials.length}`;
  console.log(
    '\nFailover freeze at a libwebrtc viewer on another node (last frame before → first after), 640x360@30 VP8',
  );
  console.log(`  relay edge killed            : ${line(failover.relayEdgeKilled)}`);
  console.log(`  transcoder killed (${failover.settings.rendition}): ${line(failover.transcoderKilled)}`);
  console.log(`  publisher moved to an origin : ${line(failover.publisherMoved)}`);
  write('failover', failover);
}
process.exit(0);
