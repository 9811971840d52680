import { RtccdnError } from '../../contract/errors.js';
import type { Logger } from '../logger.js';
import type { Stream } from '../media/Stream.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { MediaNodeMetrics } from '../metrics.js';
import type { LocalStreams, StreamResolver } from '../streams/LocalStreams.js';
import type { StreamClaims } from '../streams/StreamClaims.js';
import { type Profile, renditionName } from './profiles.js';
import { TranscodeJob } from './TranscodeJob.js';

export interface TranscoderOptions {
  profiles: readonly Profile[];
  pool: WorkerPool;
  ffmpegPath: string;
  maxJobs: number;
  /** An unwatched rendition is stopped after this long. */
  lingerMs: number;
  fanoutLingerMs: number;
  /** The local copy of a live source stream (published here or relayed here). */
  sources: StreamResolver;
  /** The rendition name is claimed CDN-wide before starting (the job lock; STREAM_CLAIMED if held). */
  claims: StreamClaims;
  /** Where renditions made here are served from (relays to edges find them there). */
  streams: LocalStreams;
  metrics: MediaNodeMetrics;
  logger: Logger;
}

/**
 * The renditions this node makes: one TranscodeJob per `{stream}~{profile}`, started on demand
 * (once, however many requests arrive together), stopped when nobody watches for `lingerMs`.
 */
export class Transcoder {
  readonly #options: TranscoderOptions;
  readonly #jobs = new Map<string, TranscodeJob>();
  readonly #starting = new Map<string, Promise<TranscodeJob>>();
  #cpuSample: { atMs: number; cpuSeconds: number } | undefined;
  #closed = false;

  constructor(options: TranscoderOptions) {
    this.#options = options;
    options.metrics.transcodeCpu.set(0);
    options.metrics.transcodeCpuSampler = () => this.#cpuShare();
  }

  get profiles(): readonly Profile[] {
    return this.#options.profiles;
  }

  get jobs(): ReadonlyMap<string, TranscodeJob> {
    return this.#jobs;
  }

  profile(name: string): Profile | undefined {
    return this.#options.profiles.find((profile) => profile.name === name);
  }

  /** The rendition stream if it runs here. */
  find(name: string): Stream | undefined {
    const job = this.#jobs.get(name);
    return job && !job.closed ? job.stream : undefined;
  }

  /** Whether a start of this rendition is in flight here (a new request joins it). */
  starting(name: string): boolean {
    return this.#starting.has(name);
  }

  /**
   * Starts (or joins) the rendition of `source` in `profileName`. Throws UNKNOWN_PROFILE for an unknown
   * profile, STREAM_NOT_LIVE, STREAM_CLAIMED when another node makes it already, NODE_LIMIT when
   * this node is at its job limit.
   */
  start(source: string, profileName: string): Promise<TranscodeJob> {
    const profile = this.profile(profileName);
    if (!profile) {
      const valid =
        this.#options.profiles.map((candidate) => candidate.name).join(', ') || '(none configured)';
      return Promise.reject(
        new RtccdnError('UNKNOWN_PROFILE', `unknown profile "${profileName}"; valid profiles: ${valid}`),
      );
    }
    const name = renditionName(source, profile.name);
    const running = this.#jobs.get(name);
    if (running && !running.closed) return Promise.resolve(running);
    let starting = this.#starting.get(name);
    if (!starting) {
      starting = this.#start(name, source, profile).finally(() => this.#starting.delete(name));
      this.#starting.set(name, starting);
    }
    return starting;
  }

  async #start(name: string, sourceName: string, profile: Profile): Promise<TranscodeJob> {
    const { pool, metrics, logger, maxJobs } = this.#options;
    if (this.#closed) throw new RtccdnError('NODE_SHUTTING_DOWN', 'transcoder is shutting down');
    if (this.#jobs.size >= maxJobs) {
      throw new RtccdnError('NODE_LIMIT', `transcoder at its limit of ${maxJobs} renditions`, {
        retryAfterMs: 5000,
      });
    }
    const source = await this.#options.sources.resolve(sourceName);
    if (!source || source.closed)
      throw new RtccdnError('STREAM_NOT_LIVE', `stream "${sourceName}" is not live`);
    await this.#options.claims.claim(
      name,
      source.producers.map((producer) => producer.kind),
    );
    let job: TranscodeJob;
    try {
      job = await TranscodeJob.create({
        name,
        source,
        profile,
        worker: pool.leastLoaded(),
        ffmpegPath: this.#options.ffmpegPath,
        maxRestarts: 3,
        restartWindowMs: 60_000,
        fanoutLingerMs: this.#options.fanoutLingerMs,
        logger,
      });
    } catch (error) {
      metrics.transcodeJobFailures.inc({ profile: profile.name });
      this.#options.claims.release(name, 'transcode setup failed');
      throw error;
    }
    this.#jobs.set(name, job);
    this.#options.streams.add(job.stream, 'rendition');
    metrics.transcodeJobStarts.inc({ profile: profile.name });
    metrics.transcodeJobs.inc();
    job.once('firstframe', (afterMs) =>
      metrics.transcodeFirstFrameSeconds.observe({ profile: profile.name }, afterMs / 1000),
    );
    let lingerTimer: NodeJS.Timeout | undefined;
    const linger = () => {
      clearTimeout(lingerTimer);
      lingerTimer = setTimeout(() => job.close('idle'), this.#options.lingerMs);
      lingerTimer.unref();
    };
    job.stream.on('idle', linger);
    job.stream.on('inuse', () => clearTimeout(lingerTimer));
    if (job.stream.references === 0) linger();
    job.once('close', (reason) => {
      clearTimeout(lingerTimer);
      if (this.#jobs.get(name) === job) this.#jobs.delete(name);
      metrics.transcodeJobs.dec();
      if (/ffmpeg failed/.test(reason)) metrics.transcodeJobFailures.inc({ profile: profile.name });
      this.#options.claims.release(name, reason);
    });
    logger.info({ rendition: name, source: sourceName, profile }, 'rendition started');
    return job;
  }

  /** FFmpeg CPU since the last sample, in cores (1 = one core busy). */
  #cpuShare(): number {
    const now = Date.now();
    const cpuSeconds = [...this.#jobs.values()].reduce((sum, job) => sum + (job.ffmpegCpuSeconds() ?? 0), 0);
    const previous = this.#cpuSample;
    this.#cpuSample = { atMs: now, cpuSeconds };
    if (!previous || now <= previous.atMs) return 0;
    return Math.max(0, (cpuSeconds - previous.cpuSeconds) / ((now - previous.atMs) / 1000));
  }

  close(reason: string): void {
    this.#closed = true;
    for (const job of [...this.#jobs.values()]) job.close(reason);
  }
}
