import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { types } from 'mediasoup';
import type { Logger } from '../logger.js';
import { defaultNumbering, PUBLISHABLE_CODECS } from '../media/codecs.js';
import type { MediaWorker } from '../media/MediaWorker.js';
import { DEFAULT_PLAN_KEY, type PlannedCodec } from '../media/payloadTypes.js';
import { Stream, type StreamRouter } from '../media/Stream.js';
import { RtpRewriter } from '../relay/RtpRewriter.js';
import { codecMatches, isRtx } from '../sdp/translate.js';
import { TypedEmitter } from '../TypedEmitter.js';
import { FfmpegProcess, ffmpegArgs, inputSdp } from './ffmpeg.js';
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

/** A UDP port free right now on loopback (even, with the next one free too, for RTP + RTCP). */
async function freeUdpPortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const socket = createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve(socket.address().port));
    });
    socket.close();
    const even = port % 2 === 0 ? port : port - 1;
    const probe = createSocket('udp4');
    const free = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.bind(even + 1, '127.0.0.1', () => resolve(true));
    });
    probe.close();
    if (free) return even;
  }
  throw new Error('no free UDP port pair for FFmpeg');
}

/**
 * One rendition of one stream: the source's video goes to FFmpeg over a PlainTransport (RTP),
 * FFmpeg scales and re-encodes it, and its RTP comes back into a PlainTransport as the video
 * producer of the rendition stream; the source's audio is piped in unchanged. A crashed FFmpeg
 * is restarted (it sends from the same port with the same SSRC, so the producer and everything
 * downstream carry on); too many crashes end the job.
 */
export class TranscodeJob extends TypedEmitter<TranscodeJobEvents> {
  readonly name: string;
  readonly profile: Profile;
  readonly stream: Stream;
  readonly startedAt = Date.now();
  readonly #options: TranscodeJobOptions;
  readonly #sourceRouter: StreamRouter;
  readonly #toFfmpeg: types.PlainTransport;
  readonly #videoConsumer: types.Consumer;
  readonly #fromFfmpeg: types.PlainTransport;
  /** FFmpeg's output as it comes (its SSRC is fixed; sequence and timestamps restart with it). */
  readonly #ffmpegOutput: types.Consumer;
  /** What viewers get: continuous across FFmpeg restarts (RtpRewriter). */
  readonly #videoProducer: types.Producer;
  readonly #rewriter: RtpRewriter;
  readonly #dir: string;
  readonly #sdpPath: string;
  readonly #output: { payloadType: number; ssrc: number; port: number; localPort: number };
  readonly #logger: Logger;
  #ffmpeg: FfmpegProcess | undefined;
  #restarts: number[] = [];
  #keyFrameTimer: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #firstFrame = false;
  #closed = false;

  private constructor(
    options: TranscodeJobOptions,
    parts: {
      sourceRouter: StreamRouter;
      toFfmpeg: types.PlainTransport;
      videoConsumer: types.Consumer;
      fromFfmpeg: types.PlainTransport;
      ffmpegOutput: types.Consumer;
      videoProducer: types.Producer;
      rewriter: RtpRewriter;
      stream: Stream;
      dir: string;
      sdpPath: string;
      output: { payloadType: number; ssrc: number; port: number; localPort: number };
    },
  ) {
    super();
    this.#options = options;
    this.name = options.name;
    this.profile = options.profile;
    this.stream = parts.stream;
    this.#sourceRouter = parts.sourceRouter;
    this.#toFfmpeg = parts.toFfmpeg;
    this.#videoConsumer = parts.videoConsumer;
    this.#fromFfmpeg = parts.fromFfmpeg;
    this.#ffmpegOutput = parts.ffmpegOutput;
    this.#videoProducer = parts.videoProducer;
    this.#rewriter = parts.rewriter;
    this.#ffmpegOutput.on('rtp', (packet) => {
      const rewritten = this.#rewriter.rewrite(packet, Date.now());
      if (!rewritten) return;
      this.#videoProducer.send(rewritten);
      if (this.#keyFrameTimer) this.#outputArrived();
    });
    this.#dir = parts.dir;
    this.#sdpPath = parts.sdpPath;
    this.#output = parts.output;
    this.#logger = options.logger.child({ rendition: options.name });
    options.source.once('close', (reason) => this.close(`source ended: ${reason}`));
    this.stream.once('close', (reason) => this.close(reason));
  }

  /**
   * FFmpeg cannot ask for key frames, and it only starts at one: ask the source every 500 ms
   * until transcoded video comes out (after a start or a restart).
   */
  #awaitOutput(): void {
    const requestKeyFrame = () => void this.#videoConsumer.requestKeyFrame().catch(() => undefined);
    clearInterval(this.#keyFrameTimer);
    requestKeyFrame();
    this.#keyFrameTimer = setInterval(requestKeyFrame, 500);
    this.#keyFrameTimer.unref();
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
      // Source video → FFmpeg.
      const ffmpegInput = await freeUdpPortPair();
      const toFfmpeg = await sourceRouter.router.createPlainTransport({
        listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
        rtcpMux: false,
        comedia: false,
      });
      await toFfmpeg.connect({ ip: '127.0.0.1', port: ffmpegInput, rtcpPort: ffmpegInput + 1 });
      const sourceVideoHere = sourceRouter.producers[source.producers.indexOf(sourceVideo)]!;
      const videoConsumer = await toFfmpeg.consume({
        producerId: sourceVideoHere.id,
        rtpCapabilities: sourceRouter.router.rtpCapabilities,
        enableRtx: false,
      });
      const inputCodec = videoConsumer.rtpParameters.codecs[0]!;
      const sdpPath = join(dir, 'input.sdp');
      await writeFile(
        sdpPath,
        inputSdp({
          port: ffmpegInput,
          payloadType: inputCodec.payloadType,
          mimeType: inputCodec.mimeType,
          clockRate: inputCodec.clockRate,
          parameters: inputCodec.parameters,
        }),
      );

      // FFmpeg → rendition video producer.
      // Connected to FFmpeg's fixed source port (not comedia: FFmpeg's first datagram may be an
      // RTCP report from its other socket, and comedia would lock onto that).
      const fromFfmpeg = await stream.origin.router.createPlainTransport({
        listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
        rtcpMux: true,
        comedia: false,
      });
      const routerCodec = stream.origin.router.rtpCapabilities.codecs!.find(
        (codec) => codec.kind === 'video' && !isRtx(codec) && codecMatches(codec, videoCodec),
      )!;
      const output = {
        payloadType: routerCodec.preferredPayloadType!,
        ssrc: randomInt(1, 0x7fffffff),
        port: fromFfmpeg.tuple.localPort,
        localPort: await freeUdpPortPair(),
      };
      await fromFfmpeg.connect({ ip: '127.0.0.1', port: output.localPort });
      const rawVideo = await fromFfmpeg.produce({
        kind: 'video',
        rtpParameters: {
          codecs: [
            {
              mimeType: routerCodec.mimeType,
              payloadType: output.payloadType,
              clockRate: routerCodec.clockRate,
              parameters: routerCodec.parameters ?? {},
              rtcpFeedback: [],
            },
          ],
          encodings: [{ ssrc: output.ssrc }],
        },
        appData: { rendition: name, raw: true },
      });
      // Viewers consume a stable producer fed packet by packet from FFmpeg's output: a restarted
      // FFmpeg starts new sequence numbers and timestamps, which decoders would take for stale.
      const direct = await stream.origin.router.createDirectTransport();
      const ffmpegOutput = await direct.consume({
        producerId: rawVideo.id,
        rtpCapabilities: stream.origin.router.rtpCapabilities,
        enableRtx: false,
      });
      const stableSsrc = randomInt(1, 0x7fffffff);
      const videoProducer = await direct.produce({
        kind: 'video',
        rtpParameters: {
          codecs: [ffmpegOutput.rtpParameters.codecs[0]!],
          encodings: [{ ssrc: stableSsrc }],
          rtcp: { cname: `rendition-${name}`, reducedSize: true },
        },
        appData: { rendition: name },
      });
      stream.addProducer(videoProducer);
      const rewriter = new RtpRewriter({
        outSsrc: stableSsrc,
        outPayloadType: ffmpegOutput.rtpParameters.codecs[0]!.payloadType,
        clockRate: routerCodec.clockRate,
        mimeType: routerCodec.mimeType,
      });
      if (sourceAudio) {
        const { pipeProducer } = await source.origin.router.pipeToRouter({
          producerId: sourceAudio.id,
          router: stream.origin.router,
          keepId: false,
        });
        if (pipeProducer) stream.addProducer(pipeProducer);
      }
      const job = new TranscodeJob(options, {
        sourceRouter,
        toFfmpeg,
        videoConsumer,
        fromFfmpeg,
        ffmpegOutput,
        videoProducer,
        rewriter,
        stream,
        dir,
        sdpPath,
        output,
      });
      job.#startFfmpeg();
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
    return this.#ffmpeg?.pid;
  }

  get restarts(): number {
    return this.#restarts.length;
  }

  /** CPU seconds used by the current FFmpeg. */
  ffmpegCpuSeconds(): number | undefined {
    return this.#ffmpeg?.cpuSeconds();
  }

  #startFfmpeg(): void {
    const ffmpeg = new FfmpegProcess(
      this.#options.ffmpegPath,
      ffmpegArgs({ input: { sdpPath: this.#sdpPath }, output: { profile: this.profile, ...this.#output } }),
    );
    this.#ffmpeg = ffmpeg;
    this.#logger.info({ pid: ffmpeg.pid, profile: this.profile }, 'ffmpeg started');
    this.#awaitOutput();
    ffmpeg.on('exit', (code, signal, stderrTail) => {
      if (this.#closed || this.#ffmpeg !== ffmpeg) return;
      const now = Date.now();
      this.#restarts = [...this.#restarts.filter((at) => now - at < this.#options.restartWindowMs), now];
      if (this.#restarts.length > this.#options.maxRestarts) {
        this.#logger.error(
          { code, signal, stderr: stderrTail },
          'ffmpeg keeps failing; ending the rendition',
        );
        this.close(`ffmpeg failed ${this.#restarts.length} times: ${stderrTail || `exit ${code ?? signal}`}`);
        return;
      }
      // Back off a little from one restart to the next: a crash loop must not spin.
      const delayMs = Math.min(2000, 250 * 2 ** (this.#restarts.length - 1));
      this.#logger.warn({ code, signal, stderr: stderrTail, delayMs }, 'ffmpeg exited; restarting');
      this.#rewriter.switchInput();
      this.#restartTimer = setTimeout(() => {
        if (!this.#closed) this.#startFfmpeg();
      }, delayMs);
    });
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keyFrameTimer);
    clearTimeout(this.#restartTimer);
    this.#ffmpeg?.stop();
    this.#toFfmpeg.close();
    this.#fromFfmpeg.close();
    this.#options.source.release(this.#sourceRouter.key);
    this.stream.close(reason);
    void rm(this.#dir, { recursive: true, force: true });
    this.#logger.info({ reason }, 'rendition ended');
    this.emit('close', reason);
  }
}
