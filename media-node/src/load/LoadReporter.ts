import type { NodeLoad } from '../../contract/redis.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { MediaNodeMetrics } from '../metrics.js';
import type { Sessions } from '../sessions/Sessions.js';

const SAMPLE_MS = 5000;

export interface LoadReporterOptions {
  pool: WorkerPool;
  sessions: Sessions;
  /** Streams this node serves (published, relayed, rendered): what transcoders are balanced on. */
  streamCount: () => number;
  /** Where the load goes (the registry, in a CDN); absent standalone. */
  report: ((load: NodeLoad) => void) | undefined;
  metrics: MediaNodeMetrics;
  intervalMs?: number;
}

/**
 * Samples what the node carries every few seconds: per-stream ingress and egress bitrates (the
 * metrics) and the node's load (viewers, streams, egress, worker CPU) for the registry, which the
 * autoscaler and the transcoder choice read.
 */
export class LoadReporter {
  readonly #options: LoadReporterOptions;
  readonly #timer: NodeJS.Timeout;
  #cpuSample: { atMs: number; cpuMs: number } | undefined;

  constructor(options: LoadReporterOptions) {
    this.#options = options;
    this.#timer = setInterval(() => void this.sample(), options.intervalMs ?? SAMPLE_MS);
    this.#timer.unref();
  }

  async sample(): Promise<void> {
    const { sessions, metrics, report } = this.#options;
    const ingress = new Map<string, number>();
    const egress = new Map<string, number>();
    await Promise.all(
      [...sessions.values()].map(async (session) => {
        try {
          const [stats] = await session.transport.getStats();
          if (!stats) return;
          const target = session.protocol === 'whip' ? ingress : egress;
          const bitrate = session.protocol === 'whip' ? stats.recvBitrate : stats.sendBitrate;
          target.set(session.streamName, (target.get(session.streamName) ?? 0) + bitrate);
        } catch {
          // The session closed while sampling; its bitrate is simply not counted.
        }
      }),
    );
    report?.({
      viewers: sessions.viewerCount,
      streams: this.#options.streamCount(),
      egressBps: [...egress.values()].reduce((sum, bitrate) => sum + bitrate, 0),
      cpu: await this.#workerCpu(),
    });
    metrics.bitrateIn.reset();
    metrics.bitrateOut.reset();
    for (const [stream, bitrate] of ingress) metrics.bitrateIn.set({ stream }, bitrate);
    for (const [stream, bitrate] of egress) metrics.bitrateOut.set({ stream }, bitrate);
  }

  /** Share of the workers' cores used since the last sample (0..1). */
  async #workerCpu(): Promise<number> {
    const { pool } = this.#options;
    let cpuMs = 0;
    for (const worker of pool.workers) {
      const usage = await worker.worker.getResourceUsage().catch(() => undefined);
      if (usage) cpuMs += usage.ru_utime + usage.ru_stime;
    }
    const now = Date.now();
    const previous = this.#cpuSample;
    this.#cpuSample = { atMs: now, cpuMs };
    if (!previous || now <= previous.atMs) return 0;
    const share = (cpuMs - previous.cpuMs) / ((now - previous.atMs) * Math.max(1, pool.workers.length));
    return Math.min(1, Math.max(0, share));
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
