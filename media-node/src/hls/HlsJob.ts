import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { types } from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaWorker } from '../media/MediaWorker.js';
import { DEFAULT_PLAN_KEY } from '../media/payloadTypes.js';
import type { Stream, StreamRouter } from '../media/Stream.js';
import { freeUdpPortPair, udpPortBound } from '../transcode/FfmpegLeg.js';
import { FfmpegProcess, inputSdp, rtpInputArgs, X264_LIVE_ARGS } from '../transcode/ffmpeg.js';
import type { Profile } from '../transcode/profiles.js';
import { LlHlsPlaylist } from './LlHlsPlaylist.js';
import { PartAssembler } from './PartAssembler.js';

/** Target segment length: FFmpeg forces a key frame every this many seconds; segments end there. */
export const HLS_SEGMENT_SECONDS = 1;
/** The part length aimed at (rounded up to whole frames per variant): LL-HLS parts. */
export const HLS_PART_SECONDS = 0.2;
/** Complete segments a media playlist lists (older ones are dropped from memory). */
const PLAYLIST_SEGMENTS = 6;
/** Complete segments whose parts are still listed (about three target durations). */
const PART_WINDOW_SEGMENTS = 3;
/** The bit rate the encoder is capped at: what the multivariant playlist declares. */
export const HLS_MAX_BITRATE = 4_000_000;
export const MEDIA_PLAYLIST = 'media.m3u8';
/** The source variant's frame rate (a publisher's faster frames are dropped, slower repeated). */
export const SOURCE_FPS = 30;
/** The source's variant: its own picture size, capped at HLS_MAX_BITRATE. */
export const SOURCE_VARIANT = 'source';
/** H.264 Constrained Baseline, level 4.1 (up to 1080p30): what `-profile:v baseline -level 4.1` writes. */
export const HLS_CODECS = 'avc1.42c029';

/**
 * A variant's part target: HLS_PART_SECONDS rounded up to whole frames at `fps` (FFmpeg cuts a
 * fragment at the first frame at or past it, so no part is longer).
 */
export function partTargetSeconds(fps: number): number {
  return Math.ceil(HLS_PART_SECONDS * fps - 1e-9) / fps;
}

export interface HlsJobOptions {
  source: Stream;
  /** Lower variants besides the source (the rendition ladder), encoded by the same FFmpeg. */
  ladder: readonly Profile[];
  worker: MediaWorker;
  ffmpegPath: string;
  logger: Logger;
}

export type HlsJobEvents = {
  /** The source variant's first part is in its playlist. */
  firstpart: [afterMs: number];
  /** The source variant's first complete segment is in its playlist. */
  firstsegment: [afterMs: number];
  close: [reason: string];
};

/**
 * FFmpeg arguments of an LL-HLS packager: read the source's RTP video (as renditions do), decode
 * it once, encode H.264 for the source and each rung of `ladder` (scaled, at its frame rate and
 * bit rate) with a key frame every segment, and write each variant as fragmented MP4 to its own
 * pipe (`pipe:3` for the source, then one per rung in ladder order): an init section, then one
 * fragment per part target (and one at every key frame), flushed as each is cut.
 */
export function hlsArgs(sdpPath: string, ladder: readonly Profile[], audio: boolean): string[] {
  const outputs = ladder.length + 1;
  const filter = [
    `[0:v:0]split=${outputs}${Array.from({ length: outputs }, (_, index) => `[in${index}]`).join('')}`,
    // A constant frame rate: RTP timestamps (1/90000) carry none, and x264's rate control given
    // none spreads the bit rate over 90000 frames a second (grey, smeared pictures).
    `[in0]fps=${SOURCE_FPS}[out0]`,
    ...ladder.map(
      (profile, index) =>
        `[in${index + 1}]scale=${profile.width}:${profile.height},fps=${profile.fps}[out${index + 1}]`,
    ),
  ].join(';');
  const variants = [
    { fps: SOURCE_FPS, rate: ['-maxrate:v', String(HLS_MAX_BITRATE), '-bufsize:v', String(HLS_MAX_BITRATE)] },
    ...ladder.map((profile) => ({
      fps: profile.fps,
      rate: [
        '-b:v',
        String(profile.bitrate),
        '-maxrate:v',
        String(profile.bitrate),
        '-bufsize:v',
        String(profile.bitrate),
      ],
    })),
  ];
  return [
    // As for renditions: start at the first key frame, no probing, no reordering queue.
    ...rtpInputArgs(sdpPath),
    '-filter_complex',
    filter,
    ...variants.flatMap((variant, index) => [
      '-map',
      `[out${index}]`,
      // With audio, each variant carries its own copy of the source's audio (AAC: what HLS
      // players take; Opus in fMP4 is not) next to its video.
      ...(audio ? ['-map', '0:a:0', '-c:a', 'aac', '-b:a', '96k'] : ['-an']),
      ...X264_LIVE_ARGS,
      '-level:v',
      '4.1',
      ...variant.rate,
      // A key frame at every segment boundary, and nowhere else (no scene cuts): every segment
      // starts a picture, players start and switch variants there, segments stay one second.
      '-force_key_frames',
      `expr:gte(t,n_forced*${HLS_SEGMENT_SECONDS})`,
      '-sc_threshold',
      '0',
      '-f',
      'mp4',
      // Fragmented MP4 on a pipe: the init section first, then a fragment (moof + mdat) at every
      // key frame and whenever one reaches the part target (a millisecond below it: the frame at
      // the target closes the fragment, not the one after). No index or trailer (a live pipe).
      '-movflags',
      '+frag_keyframe+empty_moov+default_base_moof+skip_sidx+skip_trailer',
      '-frag_duration',
      String(Math.round(partTargetSeconds(variant.fps) * 1_000_000) - 1000),
      '-flush_packets',
      '1',
      `pipe:${3 + index}`,
    ]),
  ];
}

/**
 * One stream packaged as LL-HLS on this node: a PlainTransport sends the source's video (and
 * audio) to FFmpeg, which encodes each variant and writes it as fragmented MP4 to a pipe; a
 * PartAssembler per pipe cuts the stream into fragments, and each variant's LlHlsPlaylist keeps
 * them in memory as parts and segments for the HTTP routes. Holds a reference on the stream (a
 * relayed stream stays relayed while the job runs). FFmpeg starts only at a key frame: the source
 * is asked for one until the first part exists. FFmpeg exiting (or writing something that is no
 * fragmented MP4) ends the job (the next playlist request starts a new one).
 */
export class HlsJob extends TypedEmitter<HlsJobEvents> {
  readonly name: string;
  /** Scratch directory (FFmpeg's input SDP), removed once FFmpeg is gone. */
  readonly dir: string;
  /** Variant names, the source's first: one FFmpeg output each. */
  readonly variants: readonly string[];
  readonly startedAt = Date.now();
  /** When a player last asked for a playlist or segment (unwatched jobs are stopped). */
  lastUsedAt = Date.now();
  readonly #playlists = new Map<string, LlHlsPlaylist>();
  readonly #assemblers: PartAssembler[] = [];
  readonly #source: Stream;
  readonly #sourceRouter: StreamRouter;
  readonly #transports: types.PlainTransport[];
  readonly #consumer: types.Consumer;
  readonly #ffmpeg: FfmpegProcess;
  readonly #inputPort: number;
  readonly #logger: Logger;
  /** Requests in progress (waiting for the first segment, or blocked for a part): in use. */
  #waiting = 0;
  #firstPart = false;
  #firstSegment = false;
  #keyFrameTimer: NodeJS.Timeout | undefined;
  #ffmpegExited = false;
  #closed = false;

  private constructor(
    options: HlsJobOptions,
    parts: {
      dir: string;
      sourceRouter: StreamRouter;
      transports: types.PlainTransport[];
      consumer: types.Consumer;
      ffmpeg: FfmpegProcess;
      inputPort: number;
    },
  ) {
    super();
    this.name = options.source.name;
    const variantFps = [SOURCE_FPS, ...options.ladder.map((profile) => profile.fps)];
    this.variants = [SOURCE_VARIANT, ...options.ladder.map((profile) => profile.name)];
    this.#source = options.source;
    this.dir = parts.dir;
    this.#sourceRouter = parts.sourceRouter;
    this.#transports = parts.transports;
    this.#consumer = parts.consumer;
    this.#ffmpeg = parts.ffmpeg;
    this.#inputPort = parts.inputPort;
    this.#logger = options.logger.child({ hls: options.source.name });
    this.variants.forEach((variant, index) => {
      const playlist = new LlHlsPlaylist({
        partTargetSeconds: partTargetSeconds(variantFps[index]!),
        targetDurationSeconds: HLS_SEGMENT_SECONDS,
        windowSegments: PLAYLIST_SEGMENTS,
        partWindowSegments: PART_WINDOW_SEGMENTS,
      });
      this.#playlists.set(variant, playlist);
      const assembler = new PartAssembler();
      this.#assemblers.push(assembler);
      assembler.on('init', (bytes) => playlist.setInit(bytes));
      assembler.on('fragment', (fragment) => {
        playlist.addFragment(fragment);
        if (variant === SOURCE_VARIANT) this.#sourceProgress(playlist);
      });
      assembler.on('error', (error) => {
        this.#logger.error({ variant, error: error.message }, 'hls ffmpeg output is no fragmented MP4');
        this.close('ffmpeg-failed');
      });
      const output = this.#ffmpeg.outputs[index]!;
      output.on('data', (chunk: Buffer) => assembler.push(chunk));
      // A pipe closed early (FFmpeg exiting) is reported by the exit.
      output.on('error', () => undefined);
    });
    this.#ffmpeg.on('exit', (code, signal, stderrTail) => {
      this.#ffmpegExited = true;
      if (this.#closed) {
        this.#removeDir();
        return;
      }
      this.#logger.error({ code, signal, stderr: stderrTail }, 'hls ffmpeg exited');
      this.close('ffmpeg-failed');
    });
    options.source.once('close', () => this.close('source-ended'));
  }

  static async create(options: HlsJobOptions): Promise<HlsJob> {
    const { source, worker } = options;
    const sourceVideo = source.producers.find((producer) => producer.kind === 'video');
    if (!sourceVideo) throw new Error(`stream ${source.name} has no video to package`);
    const sourceAudio = source.producers.find((producer) => producer.kind === 'audio');
    const sourceRouter = await source.acquire(worker, { key: DEFAULT_PLAN_KEY, planned: [] });
    const dir = await mkdtemp(join(tmpdir(), 'rtccdn-hls-'));
    const transports: types.PlainTransport[] = [];
    // One PlainTransport per kind, each sending RTP to a port pair of FFmpeg's (RTCP on the next
    // port: FFmpeg aligns audio and video by the sender reports).
    const sendToFfmpeg = async (producer: types.Producer) => {
      const port = await freeUdpPortPair();
      const transport = await sourceRouter.router.createPlainTransport({
        listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
        rtcpMux: false,
        comedia: false,
      });
      transports.push(transport);
      await transport.connect({ ip: '127.0.0.1', port, rtcpPort: port + 1 });
      const consumer = await transport.consume({
        producerId: sourceRouter.producers[source.producers.indexOf(producer)]!.id,
        rtpCapabilities: sourceRouter.router.rtpCapabilities,
        enableRtx: false,
      });
      return { port, consumer, codec: consumer.rtpParameters.codecs[0]! };
    };
    try {
      const video = await sendToFfmpeg(sourceVideo);
      const audio = sourceAudio ? await sendToFfmpeg(sourceAudio) : undefined;
      const sdpPath = join(dir, 'input.sdp');
      const videoSdp = inputSdp({
        port: video.port,
        payloadType: video.codec.payloadType,
        mimeType: video.codec.mimeType,
        clockRate: video.codec.clockRate,
        parameters: video.codec.parameters,
      });
      await writeFile(sdpPath, audio ? `${videoSdp}${audioSection(audio.port, audio.codec)}` : videoSdp);
      const ffmpeg = new FfmpegProcess(
        options.ffmpegPath,
        hlsArgs(sdpPath, options.ladder, audio !== undefined),
        options.ladder.length + 1,
      );
      const job = new HlsJob(options, {
        dir,
        sourceRouter,
        transports,
        consumer: video.consumer,
        ffmpeg,
        inputPort: video.port,
      });
      job.#awaitFirstPart();
      job.#logger.info({ pid: ffmpeg.pid, audio: audio !== undefined }, 'hls packager started');
      return job;
    } catch (error) {
      for (const transport of transports) transport.close();
      source.release(sourceRouter.key);
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  get ffmpegPid(): number | undefined {
    return this.#ffmpeg.pid;
  }

  get hasSegments(): boolean {
    return this.#firstSegment;
  }

  /** The LL-HLS playlist of `variant` (parts, segments and their bytes), or undefined. */
  playlist(variant: string): LlHlsPlaylist | undefined {
    return this.#playlists.get(variant);
  }

  /**
   * Waits up to `timeoutMs` for the first complete segment of `variant` (what a player that
   * ignores parts needs to start); its playlist then, or undefined.
   */
  async waitForPlaylist(variant: string, timeoutMs: number): Promise<LlHlsPlaylist | undefined> {
    const playlist = this.#playlists.get(variant);
    if (!playlist) return undefined;
    const deadline = Date.now() + timeoutMs;
    return this.track(async () => {
      while (!playlist.hasSegments && !this.#closed && Date.now() < deadline) {
        await playlist.nextUpdate(deadline - Date.now());
      }
      return playlist.hasSegments && !this.#closed ? playlist : undefined;
    });
  }

  /** Runs `work` (a request) with the job counted in use until it ends. */
  async track<T>(work: () => Promise<T>): Promise<T> {
    this.#waiting++;
    try {
      return await work();
    } finally {
      this.#waiting--;
      this.lastUsedAt = Date.now();
    }
  }

  /** Whether a player asked for something within `lingerMs`, or a request is in progress. */
  inUse(lingerMs: number, now = Date.now()): boolean {
    return this.#waiting > 0 || now - this.lastUsedAt < lingerMs;
  }

  /** Asks for a key frame now, when FFmpeg reads its port, then every 500 ms until a part exists. */
  #awaitFirstPart(): void {
    const requestKeyFrame = () => this.#consumer.requestKeyFrame().catch(() => undefined);
    requestKeyFrame();
    this.#keyFrameTimer = setInterval(() => {
      if (!this.#firstPart) requestKeyFrame();
    }, 500);
    this.#keyFrameTimer.unref();
    void (async () => {
      const deadline = performance.now() + 1000;
      while (!this.#closed && performance.now() < deadline && !(await udpPortBound(this.#inputPort))) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      if (!this.#closed && !this.#firstPart) requestKeyFrame();
    })();
  }

  #sourceProgress(playlist: LlHlsPlaylist): void {
    if (!this.#firstPart) {
      this.#firstPart = true;
      clearInterval(this.#keyFrameTimer);
      const afterMs = Date.now() - this.startedAt;
      this.#logger.info({ afterMs }, 'first hls part');
      this.emit('firstpart', afterMs);
    }
    if (!this.#firstSegment && playlist.hasSegments) {
      this.#firstSegment = true;
      const afterMs = Date.now() - this.startedAt;
      this.#logger.info({ afterMs }, 'first hls segment');
      this.emit('firstsegment', afterMs);
    }
  }

  #removeDir(): void {
    rm(this.dir, { recursive: true, force: true, maxRetries: 3 }).catch((error: Error) =>
      this.#logger.warn({ dir: this.dir, error: error.message }, 'hls scratch directory not removed'),
    );
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keyFrameTimer);
    this.#ffmpeg.stop();
    for (const transport of this.#transports) transport.close();
    this.#source.release(this.#sourceRouter.key);
    // Parts and segments go now; waiting requests wake and find the job closed.
    for (const playlist of this.#playlists.values()) playlist.close();
    // FFmpeg's last output until it exits is read and dropped (a pipe not read would block it).
    for (const assembler of this.#assemblers) assembler.close();
    // The scratch directory goes once FFmpeg is gone (it may still read its SDP until then).
    if (this.#ffmpegExited) this.#removeDir();
    this.#logger.info({ reason }, 'hls packager stopped');
    this.emit('close', reason);
  }
}

/** The SDP media section of the source's audio (Opus), appended to the video's SDP. */
function audioSection(port: number, codec: types.RtpCodecParameters): string {
  const name = codec.mimeType.split('/')[1]!;
  const fmtp = Object.entries(codec.parameters ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(';');
  return [
    `m=audio ${port} RTP/AVP ${codec.payloadType}`,
    `a=rtpmap:${codec.payloadType} ${name}/${codec.clockRate}${codec.channels ? `/${codec.channels}` : ''}`,
    ...(fmtp ? [`a=fmtp:${codec.payloadType} ${fmtp}`] : []),
    'a=recvonly',
    '',
  ].join('\r\n');
}
