import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster } from '../scripts/harness/cluster.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { cpuSeconds, describe, loadavg, nodePids, publish, viewers } from './load/rtcload.js';

/**
 * Flash crowd: Redis + an origin + one edge (one worker each, separate processes), a
 * constant-bitrate publisher on the origin, 20 viewers already watching on the edge, then N new
 * viewers joining the edge within one second (rtcload, one TCP connection each, open loop: the
 * joins are started on schedule whatever the node answers). Per crowd: how many were admitted
 * and how fast (joins per second completed), time to first packet, refusals (503 + Retry-After),
 * the peak CPU of the edge's Node.js thread, its worker, the origin and Redis (sampled every
 * 100 ms), the edge's event-loop lag, and whether the 20 viewers already there froze.
 */

export interface CrowdStep {
  crowd: number;
  loadavg: number[];
  admitted: number;
  status: Record<string, number>;
  failures: Record<string, number>;
  retryAfter: Record<string, number>;
  /** From the first POST to the last join settled (connected, failed or given up). */
  joinSeconds: number;
  /** POSTs per viewer (refused viewers retry after Retry-After). */
  attempts: Record<string, number>;
  admittedPerSecond: number;
  answerMs: Record<string, number>;
  /** POST → first video packet (the next key frame: the publisher sends one a second). */
  ttfpMs: Record<string, number>;
  /** POST → first packet of any track (media flowing). */
  ttfpAnyMs: Record<string, number>;
  connected: number;
  /** Busiest 500 ms (in cores) during the crowd, per process. */
  peakCores: Record<string, number>;
  /** Mean cores over the join period. */
  meanCores: Record<string, number>;
  eventLoopLagMaxMs: number | undefined;
  saturatedFirst: string;
  /** The edge's admission gauges 3 s after the crowd left: 0 and 0, or slots leak. */
  afterwards?: { pending: number; waiting: number };
  /** The 20 viewers watching before the crowd, over the crowd's seconds. */
  incumbents: { freezes: number; lossPctOverall: number; minKbps: number };
}

export interface FlashCrowdResult {
  settings: { crowds: number[]; kbps: number; incumbents: number; retry: string };
  steps: CrowdStep[];
}

/** Samples CPU time of named processes every `everyMs`; peak = the busiest `peakMs` window. */
class CpuSampler {
  readonly #samples: { t: number; cpu: Record<string, number> }[] = [];
  readonly #timer: NodeJS.Timeout;
  constructor(
    readonly pids: Record<string, number>,
    everyMs = 100,
  ) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }
  #sample() {
    const cpu: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids)) cpu[name] = cpuSeconds(pid);
    this.#samples.push({ t: performance.now(), cpu });
  }
  stop(peakMs = 500): { peak: Record<string, number>; mean: Record<string, number> } {
    clearInterval(this.#timer);
    this.#sample();
    const s = this.#samples;
    const peak: Record<string, number> = {};
    const mean: Record<string, number> = {};
    for (const name of Object.keys(this.pids)) {
      let best = 0;
      for (let i = 0; i < s.length; i++) {
        const j = s.findIndex((x, k) => k > i && x.t - s[i]!.t >= peakMs);
        if (j < 0) break;
        best = Math.max(best, (s[j]!.cpu[name]! - s[i]!.cpu[name]!) / ((s[j]!.t - s[i]!.t) / 1000));
      }
      peak[name] = Math.round(best * 100) / 100;
      const wall = (s.at(-1)!.t - s[0]!.t) / 1000;
      mean[name] = Math.round(((s.at(-1)!.cpu[name]! - s[0]!.cpu[name]!) / wall) * 100) / 100;
    }
    return { peak, mean };
  }
}

async function admissionNow(internalUrl: string): Promise<{ pending: number; waiting: number }> {
  const text = await fetch(`${internalUrl}/metrics`).then((r) => r.text());
  const read = (state: string) =>
    Number(
      new RegExp(`^rtccdn_admission_sessions\\{state="${state}"\\} (\\d+)$`, 'm').exec(text)?.[1] ??
        Number.NaN,
    );
  return { pending: read('pending'), waiting: read('waiting') };
}

async function eventLoopLagMaxMs(internalUrl: string): Promise<number | undefined> {
  const text = await fetch(`${internalUrl}/metrics`).then((r) => r.text());
  const match = /^nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
  return match ? Math.round(Number(match[1]) * 1000) : undefined;
}

export async function runFlashCrowdBench(options: {
  crowds: number[];
  kbps?: number;
  env?: Record<string, string>;
}): Promise<FlashCrowdResult> {
  const kbps = options.kbps ?? 1500;
  const incumbentCount = 20;
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, { LOG_LEVEL: 'warn', ...options.env });
  const steps: CrowdStep[] = [];
  try {
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'bench' },
      { id: 'edge', role: 'edge', region: 'bench' },
    );
    const edge = cluster.node('edge');
    const origin = cluster.node('origin');
    const publisher = await publish({ url: origin.baseUrl, stream: 'crowd', kbps });
    const edgePids = nodePids(edge.process.child.pid!);
    const originPids = nodePids(origin.process.child.pid!);
    const pids = {
      edgeNode: edgePids.node,
      edgeWorker: edgePids.workers[0]!,
      origin: originPids.node,
      originWorker: originPids.workers[0]!,
      redis: redis.pid!,
    };
    try {
      for (const crowd of options.crowds) {
        // The incumbents: watching before the crowd, measured over it.
        const incumbents = viewers({
          url: edge.baseUrl,
          stream: 'crowd',
          steps: incumbentCount,
          settle: '2s',
          hold: '9s',
          keepalive: true,
        });
        await incumbents.next('steady');
        await sleep(1000);
        await eventLoopLagMaxMs(edge.internalUrl); // resets the lag histogram
        const sampler = new CpuSampler(pids);
        const crowdProcess = viewers(
          // Refused viewers come back after Retry-After, as players do (for up to 30 s).
          {
            url: edge.baseUrl,
            stream: 'crowd',
            steps: crowd,
            rate: crowd,
            settle: '3s',
            hold: '2s',
            retry: true,
          },
          1,
        );
        await crowdProcess.next('steady');
        const cpu = sampler.stop();
        const lag = await eventLoopLagMaxMs(edge.internalUrl);
        const step = await crowdProcess.next('step');
        const base = await incumbents.next('step');
        await crowdProcess.next('done');
        await Promise.all([crowdProcess.stop(), incumbents.stop()]);
        const status = step.status as Record<string, number>;
        const admitted = status['201'] ?? 0;
        const answers = step.answerMs as number[];
        // joinSeconds in rtcload = scheduling + the last join settling (ICE + DTLS, retries included).
        const joinSeconds = Number(step.joinSeconds);
        const ranked = Object.entries(cpu.peak).sort((a, b) => b[1] - a[1]);
        const result: CrowdStep = {
          crowd,
          loadavg: loadavg(),
          admitted,
          status,
          failures: step.failures as Record<string, number>,
          retryAfter: step.retryAfter as Record<string, number>,
          joinSeconds,
          attempts: describe(step.attempts as number[]),
          admittedPerSecond: Math.round((admitted / Math.max(joinSeconds, 1e-3)) * 10) / 10,
          answerMs: describe(answers),
          ttfpMs: describe(step.ttfpMs as number[]),
          ttfpAnyMs: describe(step.ttfpAnyMs as number[]),
          connected: Number(step.connected),
          peakCores: cpu.peak,
          meanCores: cpu.mean,
          eventLoopLagMaxMs: lag,
          saturatedFirst: `${ranked[0]![0]} (${ranked[0]![1]} cores peak)`,
          incumbents: {
            freezes: Number(base.freezes),
            lossPctOverall: Number(base.lossPctOverall),
            minKbps: Math.min(...(base.kbps as number[])),
          },
        };
        steps.push(result);
        console.log(
          `  ${String(crowd).padStart(4)} joining in 1 s: ${admitted} admitted in ${joinSeconds} s (${result.admittedPerSecond}/s), last answers ${JSON.stringify(status)}, POSTs per viewer ${JSON.stringify(result.attempts)}, failed ${JSON.stringify(result.failures)}; answer ${JSON.stringify(result.answerMs)}; first packet ${JSON.stringify(result.ttfpAnyMs)}, first video ${JSON.stringify(result.ttfpMs)}; peak cores ${JSON.stringify(cpu.peak)}; event-loop lag max ${lag} ms; incumbents: ${result.incumbents.freezes} freezes, ${result.incumbents.lossPctOverall}% loss; loadavg ${result.loadavg.join(' ')}`,
        );
        await sleep(3000); // sessions torn down, relays stay (RELAY_LINGER_MS)
        result.afterwards = await admissionNow(edge.internalUrl);
        console.log(
          `        afterwards: ${JSON.stringify(result.afterwards)} (pending / waiting on the edge)`,
        );
      }
    } finally {
      await publisher.stop();
    }
    return {
      settings: {
        crowds: options.crowds,
        kbps,
        incumbents: incumbentCount,
        retry: 'refused viewers retry after Retry-After, for up to 30 s from their first POST',
      },
      steps,
    };
  } finally {
    await cluster.stopAll();
    await redis.stop();
  }
}
