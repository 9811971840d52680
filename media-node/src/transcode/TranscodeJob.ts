import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { types } from 'mediasoup';
import { exponentialDelay, TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import { defaultNumbering, internalCodecParameters, PUBLISHABLE_CODECS } from '../media/codecs.js';
import type { MediaWorker } from '../media/MediaWorker.js';
import { DEFAULT_PLAN_KEY, type PlannedCodec } from '../media/payloadTypes.js';
import { Stream, type StreamRouter } from '../media/Stream.js';
import { StableProducer } from '../relay/StableProducer.js';
import { codecMatches, isRtx } from '../sdp/translate.js';
import { FfmpegLeg } from './FfmpegLeg.js';
import type { Profile } from './profiles.js';

export interface TranscodeJobOptions {
  /** Name of the rendition stream, `{source}~{profile}`. */
  name: string;
  source: Stream;
  profile: Profile;
  worker: MediaWorker;
  ffmpegPath: string;
  /** FFmpeg crashes tolerated within `restartWindowMs` before the job gives up. */
  maxRestarts: number;
  restartWindowMs: number;
  fanoutLingerMs: number;
  logger: Logger;
}

export type TranscodeJobEvents = {
  /** The first transcoded RTP packet arrived: the rendition plays. */
  firstframe: [afterMs: number];
  close: [reason: string];
};

/**
 * One rendition of one stream: FFmpeg scales and re-encodes the source's video (an FfmpegLeg:
 * RTP in and out through PlainTransports), and the rendition stream's video producer is a
 * stable one fed packet by packet from the current leg through RtpRewriter — a restarted FFmpeg
 * (a new leg) starts new sequence numbers and timestamps, which decoders would take for stale.
 * The source's audio is piped in unchanged. Too many FFmpeg crashes end the job.
 */
export class TranscodeJob extends TypedEmitter<TranscodeJobEvents> {
  readonly name: string;
  readonly profile: Profile;
  readonly stream: Stream;
  readonly startedAt = Date.now();
  readonly #options: TranscodeJobOptions;
  readonly #sourceRouter: StreamRouter;
  readonly #sourceVideo: types.Producer;
  readonly #outputCodec: types.RtpCodecCapability;
  readonly #direct: types.DirectTransport;
  /** What viewers get: continuous across FFmpeg restarts. */
  readonly #video: StableProducer;
  readonly #dir: string;
  readonly #logger: Logger;
  #leg: FfmpegLeg | undefined;
  #attempt = 0;
  #restarts: number[] = [];
  #keyFrameTimer: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #firstFrame = false;
  #closed = false;

  private constructor(
    options: TranscodeJobOptions,
    parts: {
      stream: Stream;
      sourceRouter: StreamRouter;
      sourceVideo: types.Producer;
      outputCodec: types.RtpCodecCapability;
      direct: types.DirectTransport;
      video: StableProducer;
      dir: string;
    },
  ) {
    super();
    this.#options = options;
    this.name = options.name;
    this.profile = options.profile;
    this.stream = parts.stream;
    this.#sourceRouter = parts.sourceRouter;
    this.#sourceVideo = parts.sourceVideo;
    this.#outputCodec = parts.outputCodec;
    this.#direct = parts.direct;
    this.#video = parts.video;
    this.#dir = parts.dir;
    this.#logger = options.logger.child({ rendition: options.name });
    options.source.once('close', (reason) => this.close(`source ended: ${reason}`));
    this.stream.once('close', (reason) => this.close(reason));
  }

  static async create(options: TranscodeJobOptions): Promise<TranscodeJob> {
    const { source, profile, worker, name, logger } = options;
    const sourceVideo = source.producers.find((producer) => producer.kind === 'video');
    if (!sourceVideo) throw new Error(`stream ${source.name} has no video to transcode`);
    const sourceAudio = source.producers.find((producer) => producer.kind === 'audio');

    // The rendition router speaks the rendition's codec and the source's audio, numbered the default way.
    const videoCodec = PUBLISHABLE_CODECS.find(
      (codec) =>
        codec.kind === 'video' && codec.mimeType === (profile.codec === 'VP8' ? 'video/VP8' : 'video/H264'),
    )!;
    const numbering: PlannedCodec[] = [
      defaultNumbering({ ...videoCodec, payloadType: 0, parameters: videoCodec.parameters ?? {} }),
      ...(sourceAudio
        ? [defaultNumbering(sourceAudio.rtpParameters.codecs.find((codec) => !isRtx(codec))!)]
        : []),
    ];
    const stream = await Stream.create(name, worker, numbering, logger, options.fanoutLingerMs);
    const sourceRouter = await source.acquire(worker, { key: DEFAULT_PLAN_KEY, planned: [] });
    const dir = await mkdtemp(join(tmpdir(), 'rtccdn-transcode-'));
    try {
      const outputCodec = stream.origin.router.rtpCapabilities.codecs!.find(
        (codec) => codec.kind === 'video' && !isRtx(codec) && codecMatches(codec, videoCodec),
      )!;
      const direct = await stream.origin.router.createDirectTransport();
      const video = await StableProducer.create(direct, {
        kind: 'video',
        codec: internalCodecParameters(outputCodec),
        cname: `rendition-${name}`,
        appData: { rendition: name },
      });
      stream.addProducer(video.producer);
      if (sourceAudio) {
        const { pipeProducer } = await source.origin.router.pipeToRouter({
          producerId: sourceAudio.id,
          router: stream.origin.router,
          keepId: false,
        });
        if (pipeProducer) stream.addProducer(pipeProducer);
      }
      const job = new TranscodeJob(options, {
        stream,
        sourceRouter,
        sourceVideo: sourceRouter.producers[source.producers.indexOf(sourceVideo)]!,
        outputCodec,
        direct,
        video,
        dir,
      });
      await job.#startLeg();
      return job;
    } catch (error) {
      stream.close('transcode setup failed');
      source.release(sourceRouter.key);
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  get ffmpegPid(): number | undefined {
    return this.#leg?.pid;
  }

  get restarts(): number {
    return this.#restarts.length;
  }

  /** CPU seconds used by the current FFmpeg. */
  ffmpegCpuSeconds(): number | undefined {
    return this.#leg?.cpuSeconds();
  }

  async #startLeg(): Promise<void> {
    const attempt = ++this.#attempt;
    const leg = await FfmpegLeg.open({
      sourceRouter: this.#sourceRouter.router,
      sourceVideo: this.#sourceVideo,
      renditionRouter: this.stream.origin.router,
      outputCodec: this.#outputCodec,
      direct: this.#direct,
      profile: this.profile,
      ffmpegPath: this.#options.ffmpegPath,
      dir: this.#dir,
      attempt,
      onPacket: (packet) => {
        if (this.#leg !== leg) return;
        if (this.#video.send(packet) && this.#keyFrameTimer) this.#outputArrived();
      },
    });
    if (this.#closed) {
      leg.close();
      return;
    }
    this.#leg = leg;
    this.#logger.info({ pid: leg.pid, attempt, profile: this.profile }, 'ffmpeg started');
    leg.on('exit', (code, signal, stderrTail) => this.#onExit(leg, code, signal, stderrTail));
    this.#awaitOutput(leg);
  }

  #onExit(leg: FfmpegLeg, code: number | null, signal: string | null, stderrTail: string): void {
    if (this.#closed || this.#leg !== leg) return;
    leg.close();
    const now = Date.now();
    this.#restarts = [...this.#restarts.filter((at) => now - at < this.#options.restartWindowMs), now];
    if (this.#restarts.length > this.#options.maxRestarts) {
      this.#logger.error({ code, signal, stderr: stderrTail }, 'ffmpeg keeps failing; ending the rendition');
      this.close(`ffmpeg failed ${this.#restarts.length} times: ${stderrTail || `exit ${code ?? signal}`}`);
      return;
    }
    // Back off a little from one restart to the next: a crash loop must not spin.
    const delayMs = exponentialDelay(this.#restarts.length - 1, { baseMs: 250, maxMs: 2000 });
    this.#logger.warn({ code, signal, stderr: stderrTail, delayMs }, 'ffmpeg exited; restarting');
    this.#video.switchInput();
    this.#restartTimer = setTimeout(() => {
      if (this.#closed) return;
      this.#startLeg().catch((error: Error) => this.close(`cannot restart ffmpeg: ${error.message}`));
    }, delayMs);
  }

  /**
   * FFmpeg starts at a key frame: ask the source for one as soon as FFmpeg reads its input, then
   * every 500 ms until transcoded video comes out. (A new rendition, or one taken over from a
   * dead transcoder, shows its first frame that much sooner than after the first 500 ms tick.)
   */
  #awaitOutput(leg: FfmpegLeg): void {
    clearInterval(this.#keyFrameTimer);
    leg.requestKeyFrame();
    this.#keyFrameTimer = setInterval(() => leg.requestKeyFrame(), 500);
    this.#keyFrameTimer.unref();
    void leg.listening(1000).then(() => {
      if (this.#leg === leg && this.#keyFrameTimer) leg.requestKeyFrame();
    });
  }

  #outputArrived(): void {
    clearInterval(this.#keyFrameTimer);
    this.#keyFrameTimer = undefined;
    if (this.#firstFrame) return;
    this.#firstFrame = true;
    const afterMs = Date.now() - this.startedAt;
    this.#logger.info({ afterMs }, 'first transcoded frame');
    this.emit('firstframe', afterMs);
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keyFrameTimer);
    clearTimeout(this.#restartTimer);
    this.#leg?.close();
    this.#options.source.release(this.#sourceRouter.key);
    this.stream.close(reason);
    void rm(this.#dir, { recursive: true, force: true });
    this.#logger.info({ reason }, 'rendition ended');
    this.emit('close', reason);
  }
}
