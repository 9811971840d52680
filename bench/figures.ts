import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AclBenchResult } from './acl.js';
import type { CascadeResult } from './cascade.js';
import type { FailoverResult, FailoverScenario } from './failover.js';
import type { FanoutResult } from './fanout.js';
import type { HlsBenchResult } from './hls.js';
import type { K8sBenchResult } from './k8s.js';
import type { LatencyResult } from './latency.js';
import type { OperatorBenchResult } from './operator.js';
import type { RunFile, ScenarioRecord } from './record.js';
import type { Spread, Summary } from './stats.js';
import type { TranscodeBenchResult } from './transcode.js';

/**
 * `npm run bench:figures [-- [--check] <run file>…]`: writes the figures of the documentation from
 * stored runs, so that each one names the file it comes from and its sample size, and says
 * `max` where the sample is too small for a p95/p99. The figures live between markers:
 *
 *     <!-- bench:acl-revocation -->…<!-- /bench:acl-revocation -->
 *
 * Each block takes its scenario from the last given run file that has it (default: the newest
 * complete run in bench/results/); a block whose scenario no file has is left as it is and
 * reported. `--check` changes nothing and exits 1 if a block would change.
 */

const ROOT = new URL('../', import.meta.url);
const DOCUMENTS = ['README.md', 'operator/README.md'];

interface Source<T> {
  /** bench/results/<date>.json */
  file: string;
  run: RunFile;
  record: ScenarioRecord;
  result: T;
}

type Sources = {
  latency?: Source<LatencyResult>;
  cascade?: Source<CascadeResult>;
  fanout?: Source<FanoutResult>;
  acl?: Source<AclBenchResult>;
  transcode?: Source<TranscodeBenchResult>;
  hls?: Source<HlsBenchResult>;
  operator?: Source<OperatorBenchResult>;
  failover?: Source<FailoverResult>;
  k8s?: Source<K8sBenchResult>;
};

// --- Formatting ---------------------------------------------------------------------------------

const cite = (source: Source<unknown>) => `\`${source.file}\``;

/** "p50 14 ms, p95 16 ms, p99 17 ms, max 19 ms, n=600"; tail percentiles only where they exist. */
function summary(s: Summary, unit = 'ms'): string {
  const parts = [`p50 ${s.p50} ${unit}`];
  if (s.p95 !== undefined) parts.push(`p95 ${s.p95} ${unit}`);
  if (s.p99 !== undefined) parts.push(`p99 ${s.p99} ${unit}`);
  parts.push(`max ${s.max} ${unit}`, `n=${s.n}`);
  return parts.join(', ');
}

/** "4.1 ms (stdev 1.2, from 2 to 6 ms over 8 rounds)" */
function perRound(s: Spread): string {
  return `${s.mean} ms (stdev ${s.stdev}, from ${s.min} to ${s.max} ms over ${s.n} rounds)`;
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/** The machine, how busy it was during the scenario (1-minute load average), and the code. */
function machine(source: Source<unknown>): string {
  const { machine: m, git } = source.run;
  const { start, end } = source.record.loadavg;
  return `${m.cpus} × ${m.cpuModel ?? 'CPU'}, ${m.memoryGiB} GiB, Node.js ${m.node}, load average ${start[0]} → ${end[0]}; commit ${git.commit.slice(0, 12)}${git.dirty ? ' with local changes' : ''}`;
}

// --- Blocks -------------------------------------------------------------------------------------

type Block = (sources: Sources) => string | undefined;

const BLOCKS: Record<string, Block> = {
  performance: ({ latency, cascade, fanout }) => {
    if (!latency || !cascade) return undefined;
    const row = (path: string, s: Summary) =>
      `| ${path} | ${s.p50} | ${s.p95 ?? '–'} | ${s.p99 ?? '–'} | ${s.max} | ${s.n} |`;
    const l = latency.result;
    const c = cascade.result;
    const steps = c.originEgressAsEdgesJoin;
    const lines = [
      `Loopback, 640×360@30 VP8, libwebrtc peers; runs ${cite(latency)} (latency: ${machine(latency)}) and ${cite(cascade)} (cascade: ${machine(cascade)}).`,
      '',
      '| Glass-to-glass (ms) | p50 | p95 | p99 | max | n (frames) |',
      '| --- | --- | --- | --- | --- | --- |',
      row('direct peer → peer (baseline)', l.pooled.direct),
      row('WHIP → standalone node → WHEP', l.pooled.viaNode),
      row('direct peer → peer (cascade run)', c.pooled.direct),
      row('origin → edge', c.pooled.originToEdge),
      row('origin → regional relay edge → edge', c.pooled.originToRelayEdgeToEdge),
      '',
      `Direct and via-node measurements alternate in rounds of ${l.settings.roundSeconds} s with fresh peers, so that the shared machine's load reaches both: the standalone node adds ${perRound(l.deltaP50Ms)} to the p50 of its round's direct baseline; an edge adds ${perRound(c.addedP50PerHopMs.originToEdge)}, a relay hop ${perRound(c.addedP50PerHopMs.relayHop)}.`,
      '',
      `Time to first frame joining a live stream: on a node ${summary(l.timeToFirstFrame)}; on a warm edge ${summary(c.timeToFirstFrame.warmEdge)}; on a cold edge (it must relay first) ${summary(c.timeToFirstFrame.coldEdge)}. With ${steps.map((step) => step.edges).join(', ')} edges of a region watching, the origin runs ${steps.map((step) => step.originRelays).join(', ')} relay(s) and sends ${steps.map((step) => step.originRelayEgressKbps).join(', ')} kbit/s.`,
    ];
    if (fanout) {
      const f = fanout.result;
      lines.push(
        '',
        `CPU per viewer on a standalone node with one worker, 640×360@30 VP8 + Opus (${cite(fanout)}): ${f.perViewerMillicores.total} millicores (node ${f.perViewerMillicores.node}, worker ${f.perViewerMillicores.worker}), from ${f.viewers} viewers against the publisher alone, windows of ${f.settings.seconds} s.`,
      );
    }
    return lines.join('\n');
  },

  'acl-revocation': ({ acl }) => {
    if (!acl) return undefined;
    const r = acl.result.revocation;
    return `(${cite(acl)}; ${r.trials} trials of ${r.viewersPerTrial} viewers connected — ICE and DTLS up, decoding — on ${r.edges} edges): from the REST call to the last session closed ${summary(r.serverClosedMs)}; to the last frame a viewer decoded ${summary(r.lastFrameMs)}`;
  },

  'acl-admission': ({ acl }) => {
    if (!acl) return undefined;
    const a = acl.result.admission;
    return `(${cite(acl)}, ${a.ratePerSecond} requests/s): admission protected ${summary(a.protected)} vs public ${summary(a.public)}`;
  },

  hls: ({ hls }) => {
    if (!hls) return undefined;
    const h = hls.result;
    return `(${h.settings.source}, ${h.settings.segmentSeconds} s segments, ${cite(hls)}): glass-to-glass of a player at the stream's pace 3 segments behind the live edge ${summary(h.latency.behind3Segments)}, 1 segment behind ${summary(h.latency.behind1Segment)}${h.latency.hlsJs && !('error' in h.latency.hlsJs) ? `; hls.js in headless Chromium without LL-HLS ${summary(h.latency.hlsJs)}` : ''}${h.latency.hlsJsLowLatency && !('error' in h.latency.hlsJsLowLatency) ? `, with lowLatencyMode (LL-HLS parts) ${summary(h.latency.hlsJsLowLatency)}` : ''}; a cold packager ${h.coldFirstPartMs ? `has its first part ${summary(h.coldFirstPartMs)} and ` : ''}answers the first media playlist ${summary(h.coldMediaPlaylistMs)} after the multivariant request, a cold player decodes its first frame ${summary(h.coldFirstFrameMs)} after it starts; after a key is revoked the next request is refused ${summary(h.revocation.refusedAfterMs)} later${h.revocation.blockedRefusedAfterMs ? ` (a blocking reload held for a part: ${summary(h.revocation.blockedRefusedAfterMs)})` : ''}, the player decodes its last (already downloaded) frame ${summary(h.revocation.lastFrameAfterMs)} and exits ${summary(h.revocation.playerExitAfterMs)} after the revocation`;
  },

  transcode: ({ transcode }) => {
    if (!transcode) return undefined;
    const t = transcode.result;
    const cores = Object.entries(t.ffmpegCpuCores)
      .map(([profile, value]) => `${value} cores for ${profile}`)
      .join(', ');
    return `(${t.settings.source} source, ${cite(transcode)}): a 360p rendition adds ${t.latency.addedP50Ms} ms p50 glass-to-glass over the source (source ${summary(t.latency.source)}; 360p ${summary(t.latency.rendition360p)}); the first frame of a cold rendition comes ${summary(t.coldFirstFrameMs)} after the WHEP POST (FFmpeg start and a key frame); FFmpeg uses ${cores} (one window each)`;
  },

  operator: ({ operator }) => {
    if (!operator) return undefined;
    const o = operator.result;
    const nonDefault = o.settings.nonDefault
      .filter((setting) => setting.component === 'operator')
      .map(
        (setting) =>
          `${setting.setting} ${JSON.stringify(setting.value)}, default ${JSON.stringify(setting.default)}`,
      );
    return `(${cite(operator)}${nonDefault.length > 0 ? `; non-default operator settings: ${nonDefault.join('; ')}` : ''}): apply → admitted ${summary(o.applyToEnforcedMs)} (the kubectl process included); ${o.throughput.objects} StreamACLs → all \`Synced\` in ${seconds(o.throughput.totalMs)} (${o.throughput.objectsPerSecond}/s; per object ${summary(o.throughput.perObjectMs)}, mostly queueing)`;
  },

  failover: ({ failover }) => {
    if (!failover) return undefined;
    const f = failover.result;
    const freeze = (s: FailoverScenario) =>
      `${s.freezeMs.n > 0 ? summary(s.freezeMs) : 'no freeze measured'}${s.dropped > 0 ? `, viewers dropped in ${s.dropped} of ${s.trials.length} trials` : ''}`;
    return `(${cite(failover)}; ${f.settings.width}×${f.settings.height}@${f.settings.fps}, a libwebrtc viewer on another node, last frame before → first frame after): relay edge killed ${freeze(f.relayEdgeKilled)}; transcoder killed (${f.settings.rendition}) ${freeze(f.transcoderKilled)}; publisher moved to another origin ${freeze(f.publisherMoved)}`;
  },

  'k8s-streamacl': ({ k8s }) => {
    if (!k8s) return undefined;
    return `on the local cluster (${cite(k8s)}): \`kubectl apply\` of a StreamACL on a public stream → its keyless viewers of both regions cut ${summary(k8s.result.streamAclToEnforcedMs)}`;
  },
};

// --- Sources ------------------------------------------------------------------------------------

function newestCompleteRun(): string {
  const directory = fileURLToPath(new URL('bench/results/', ROOT));
  const runs = readdirSync(directory)
    .filter((name) => /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/.test(name))
    .sort()
    .reverse();
  for (const name of runs) {
    const run = JSON.parse(readFileSync(`${directory}${name}`, 'utf8')) as RunFile;
    if (run.complete) return `bench/results/${name}`;
  }
  throw new Error('no complete run in bench/results/: run `npm run bench` first');
}

/** Later files win: each scenario comes from the last file that has it. */
function sourcesOf(files: string[]): Sources {
  const sources: Record<string, Source<unknown>> = {};
  for (const file of files) {
    const run = JSON.parse(readFileSync(new URL(file, ROOT), 'utf8')) as RunFile;
    const name = `bench/results/${basename(file)}`;
    for (const [scenario, record] of Object.entries(run.scenarios)) {
      sources[scenario] = { file: name, run, record, result: record.result };
    }
  }
  return sources as Sources;
}

// --- Documents ----------------------------------------------------------------------------------

const MARKER = /(<!-- bench:([a-z0-9-]+) -->)([\s\S]*?)(<!-- \/bench:\2 -->)/g;

/** Rewrites every block of one document; returns the new text and the blocks left alone. */
function render(text: string, sources: Sources): { text: string; unknown: string[]; left: string[] } {
  const unknown: string[] = [];
  const left: string[] = [];
  const rendered = text.replace(MARKER, (whole, open: string, name: string, body: string, close: string) => {
    const block = BLOCKS[name];
    if (!block) {
      unknown.push(name);
      return whole;
    }
    const figures = block(sources);
    if (figures === undefined) {
      left.push(name);
      return whole;
    }
    // Blocks on lines of their own hold whole paragraphs; others sit inside a sentence.
    const own = body.startsWith('\n');
    return own ? `${open}\n\n${figures}\n\n${close}` : `${open}${figures}${close}`;
  });
  return { text: rendered, unknown, left };
}

/** The project's Markdown formatting (tables aligned), so that a fresh run compares equal. */
function formatted(document: string, text: string): string {
  const biome = fileURLToPath(new URL('node_modules/.bin/biome', ROOT));
  return execFileSync(biome, ['format', `--stdin-file-path=${document}`], {
    cwd: fileURLToPath(ROOT),
    input: text,
    encoding: 'utf8',
  });
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const files = argv.filter((arg) => arg !== '--check');
  if (files.length === 0) files.push(newestCompleteRun());
  const sources = sourcesOf(files);
  let stale = false;
  for (const document of DOCUMENTS) {
    const url = new URL(document, ROOT);
    const before = readFileSync(url, 'utf8');
    const { text: rendered, unknown, left } = render(before, sources);
    if (unknown.length > 0) throw new Error(`${document}: unknown blocks ${unknown.join(', ')}`);
    for (const name of left)
      console.log(`${document}: ${name} left as it is (no run given has its scenario)`);
    const text = formatted(document, rendered);
    if (text === before) continue;
    stale = true;
    if (check) console.log(`${document}: figures differ from ${files.join(', ')}`);
    else {
      writeFileSync(url, text);
      console.log(`${document}: figures written from ${files.join(', ')}`);
    }
  }
  return check && stale ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
