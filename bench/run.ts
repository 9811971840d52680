import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { runLatencyBench } from './latency.js';

/**
 * `npm run bench`: measurements, not assertions. Each scenario prints its numbers and writes
 * bench/results/<name>.json. Knobs: BENCH_SECONDS (per latency run, default 20), BENCH_JOINS
 * (time-to-first-frame samples, default 10).
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const joins = Number(process.env.BENCH_JOINS ?? 10);
const resultsDir = new URL('./results/', import.meta.url);
mkdirSync(resultsDir, { recursive: true });

const machine = {
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  loadavg: os.loadavg().map((value) => Math.round(value * 100) / 100),
};

const fmt = (s: { p50: number; p95: number; p99: number; n: number }) =>
  `p50 ${s.p50} ms  p95 ${s.p95} ms  p99 ${s.p99} ms  (n=${s.n})`;

const latency = await runLatencyBench({ seconds, joins, rtcPort: 47000 });
console.log('\nGlass-to-glass latency, 640x360@30 VP8, libwebrtc peers, loopback');
console.log(`  (a) direct peer→peer baseline : ${fmt(latency.baseline)}`);
console.log(`  (b) WHIP → node → WHEP        : ${fmt(latency.viaNode)}`);
console.log(
  `  ratio b/a (p50)               : ${latency.ratioP50}   Δp50 = ${latency.deltaP50Ms} ms (target ≤ 10 ms)`,
);
console.log(`Time to first frame, viewer joining a live stream: ${fmt(latency.timeToFirstFrame)}`);
writeFileSync(
  new URL('latency.json', resultsDir),
  `${JSON.stringify({ date: new Date().toISOString(), machine, ...latency }, null, 2)}\n`,
);
console.log(`\nwrote bench/results/latency.json`);
process.exit(0);
