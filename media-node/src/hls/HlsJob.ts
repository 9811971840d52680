import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { types } from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaWorker } from '../media/MediaWorker.js';
import { DEFAULT_PLAN_KEY } from '../media/payloadTypes.js';
import type { Stream, StreamRouter } from '../media/Stream.js';
import { freeUdpPortPair, udpPortBound } from '../transcode/FfmpegLeg.js';
import { FfmpegProcess, inputSdp, rtpInputArgs } from '../transcode/ffmpeg.js';
import type { Profile } from '../transcode/profiles.js';

/** Target segment length: FFmpeg forces a key frame every this many seconds and cuts there. */
export const HLS_SEGMENT_SECONDS = 1;
/** Segments a media playlist lists (FFmpeg deletes older ones). */
const PLAYLIST_SEGMENTS = 6;
/** The bit rate the encoder is capped at: what the multivariant playlist declares. */
export const HLS_MAX_BITRATE = 4_000_000;
export const MEDIA_PLAYLIST = 'media.m3u8';
/** The source variant's frame rate (a publisher's faster frames are dropped, slower repeated). */
export const SOURCE_FPS = 30;
/** The source's variant: its own picture size, capped at HLS_MAX_BITRATE. */
export const SOURCE_VARIANT = 'source';
/**
 * The files a job serves besides its playlists: a variant's init segment (`init.mp4` with one
 * variant; with several FFmpeg numbers it after the variant, `init_<n>.mp4`) and its numbered
 * media segments.
 */
export const SEGMENT_FILE = /^(init(_[0-9]{1,2})?\.mp4|seg[0-9]{1,10}\.m4s)$/;
/** H.264 Constrained Baseline, level 4.1 (up to 1080p30): what `-profile:v baseline -level 4.1` writes. */
export const HLS_CODECS = 'avc1.42c029';

export interface HlsJobOptions {
  source: Stream;
  /** Lower variants besides the source (the rendition ladder), encoded by the same FFmpeg. */
  ladder: readonly Profile[];
  worker: MediaWorker;
  ffmpegPath: string;
  logger: Logger;
}

export type HlsJobEvents = {
  /** The first media segment is in the playlist. */
  firstsegment: [afterMs: number];
  close: [reason: string];
};

/**
 * FFmpeg arguments of an HLS packager: read the source's RTP video (as renditions do), decode it
 * once, encode H.264 for the source and each rung of `ladder` (scaled, at its frame rate and bit
 * rate) with a key frame every segment, and write per variant (`{dir}/{variant}/`) fMP4
 * segments of HLS_SEGMENT_SECONDS and a live media playlist (playlists and segments renamed into
 * place: a reader never sees half a file).
 */
export function hlsArgs(sdpPath: string, dir: string, ladder: readonly Profile[], audio: boolean): string[] {
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
  const rates = [
    ['-maxrate:v:0', String(HLS_MAX_BITRATE), '-bufsize:v:0', String(HLS_MAX_BITRATE)],
    ...ladder.map((profile, index) => [
      `-b:v:${index + 1}`,
      String(profile.bitrate),
      `-maxrate:v:${index + 1}`,
      String(profile.bitrate),
      `-bufsize:v:${index + 1}`,
      String(profile.bitrate),
    ]),
  ].flat();
  // With audio, each variant carries its own copy of the source's audio (AAC: what HLS players
  // take; Opus in fMP4 is not) next to its video.
  const streamMap = [SOURCE_VARIANT, ...ladder.map((profile) => profile.name)]
    .map((name, index) => `v:${index},${audio ? `a:${index},` : ''}name:${name}`)
    .join(' ');
  return [
    // As for renditions: start at the first key frame, no probing, no reordering queue.
    ...rtpInputArgs(sdpPath),
    '-filter_complex',
    filter,
    ...Array.from({ length: outputs }, (_, index) => ['-map', `[out${index}]`]).flat(),
    ...(audio
      ? [...Array.from({ length: outputs }, () => ['-map', '0:a:0']).flat(), '-c:a', 'aac', '-b:a', '96k']
      : ['-an']),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-tune',
    'zerolatency',
    '-profile:v',
    'baseline',
    '-level:v',
    '4.1',
    '-pix_fmt',
    'yuv420p',
    ...rates,
    // A key frame at every segment boundary: every segment starts a picture (and players can
    // start at any segment, or switch variants there), whatever the publisher's key frames.
    '-force_key_frames',
    `expr:gte(t,n_forced*${HLS_SEGMENT_SECONDS})`,
    '-f',
    'hls',
    '-hls_time',
    String(HLS_SEGMENT_SECONDS),
    '-hls_list_size',
    String(PLAYLIST_SEGMENTS),
    '-hls_segment_type',
    'fmp4',
    '-hls_fmp4_init_filename',
    'init.mp4',
    '-hls_segment_filename',
    join(dir, '%v', 'seg%d.m4s'),
    '-var_stream_map',
    streamMap,
    '-hls_flags',
    'delete_segments+independent_segments+temp_file+omit_endlist',
    join(dir, '%v', MEDIA_PLAYLIST),
  ];
}

/**
 * One stream packaged as HLS on this node: a PlainTransport sends the source's video to FFmpeg,
 * which writes the playlist and segments into a scratch directory the HTTP routes read. Holds a
 * reference on the stream (a relayed stream stays relayed while the job runs). FFmpeg starts only
 * at a key frame: the source is asked for one until the first segment exists. FFmpeg exiting ends
 * the job (the next playlist request starts a new one).
 */
export class HlsJob extends TypedEmitter<HlsJobEvents> {
  readonly name: string;
  readonly dir: string;
  /** Variant names, the source's first: the directories FFmpeg writes. */
  readonly variants: readonly string[];
  readonly startedAt = Date.now();
  /** When a player last asked for a playlist or segment (unwatched jobs are stopped). */
  lastUsedAt = Date.now();
  readonly #source: Stream;
  readonly #sourceRouter: StreamRouter;
  readonly #transports: types.PlainTransport[];
  readonly #consumer: types.Consumer;
  readonly #ffmpeg: FfmpegProcess;
  readonly #inputPort: number;
  readonly #logger: Logger;
  readonly #lastPlaylists = new Map<string, string>();
  /** Requests waiting for the first segment: the job is in use while they wait. */
  #waiting = 0;
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
    this.variants = [SOURCE_VARIANT, ...options.ladder.map((profile) => profile.name)];
    this.#source = options.source;
    this.dir = parts.dir;
    this.#sourceRouter = parts.sourceRouter;
    this.#transports = parts.transports;
    this.#consumer = parts.consumer;
    this.#ffmpeg = parts.ffmpeg;
    this.#inputPort = parts.inputPort;
    this.#logger = options.logger.child({ hls: options.source.name });
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
        hlsArgs(sdpPath, dir, options.ladder, audio !== undefined),
      );
      const job = new HlsJob(options, {
        dir,
        sourceRouter,
        transports,
        consumer: video.consumer,
        ffmpeg,
        inputPort: video.port,
      });
      job.#awaitFirstSegment();
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

  /**
   * The media playlist of `variant` as FFmpeg wrote it last, or undefined before its first
   * segment. (FFmpeg renames a new playlist into place; an empty read — the final write at exit —
   * keeps the last.)
   */
  async playlist(variant: string): Promise<string | undefined> {
    if (!this.variants.includes(variant)) return undefined;
    const text = await readFile(join(this.dir, variant, MEDIA_PLAYLIST), 'utf8').catch(() => '');
    if (text.includes('#EXTINF')) this.#lastPlaylists.set(variant, text);
    return this.#lastPlaylists.get(variant);
  }

  /** Waits up to `timeoutMs` for the first segment of `variant`; its playlist then, or undefined. */
  async waitForPlaylist(variant: string, timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    this.#waiting++;
    try {
      for (;;) {
        const text = await this.playlist(variant);
        if (text !== undefined || this.#closed || Date.now() >= deadline) return text;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      this.#waiting--;
      this.lastUsedAt = Date.now();
    }
  }

  /** Whether a player asked for something within `lingerMs`, or waits for the first segment. */
  inUse(lingerMs: number, now = Date.now()): boolean {
    return this.#waiting > 0 || now - this.lastUsedAt < lingerMs;
  }

  /** The bytes of a variant's `file` (checked against SEGMENT_FILE), or undefined when it is gone. */
  async segment(variant: string, file: string): Promise<Buffer | undefined> {
    if (!this.variants.includes(variant) || !SEGMENT_FILE.test(file)) return undefined;
    return readFile(join(this.dir, variant, file)).catch(() => undefined);
  }

  /** Asks for a key frame now, when FFmpeg reads its port, then every 500 ms until a segment exists. */
  #awaitFirstSegment(): void {
    const requestKeyFrame = () => this.#consumer.requestKeyFrame().catch(() => undefined);
    requestKeyFrame();
    this.#keyFrameTimer = setInterval(() => {
      void this.#checkFirstSegment().then((done) => {
        if (!done) requestKeyFrame();
      });
    }, 500);
    this.#keyFrameTimer.unref();
    void (async () => {
      const deadline = performance.now() + 1000;
      while (!this.#closed && performance.now() < deadline && !(await udpPortBound(this.#inputPort))) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      if (!this.#closed && !this.#firstSegment) requestKeyFrame();
    })();
    // A finer watch for the first segment than the key-frame ticks (time to first segment).
    const watch = setInterval(() => {
      void this.#checkFirstSegment().then((done) => {
        if (done || this.#closed) clearInterval(watch);
      });
    }, 50);
    watch.unref();
  }

  async #checkFirstSegment(): Promise<boolean> {
    if (this.#firstSegment) return true;
    const exists = await stat(join(this.dir, SOURCE_VARIANT, MEDIA_PLAYLIST)).then(
      () => true,
      () => false,
    );
    if (
      !exists ||
      (await this.playlist(SOURCE_VARIANT)) === undefined ||
      this.#firstSegment ||
      this.#closed
    ) {
      return this.#firstSegment;
    }
    this.#firstSegment = true;
    clearInterval(this.#keyFrameTimer);
    const afterMs = Date.now() - this.startedAt;
    this.#logger.info({ afterMs }, 'first hls segment');
    this.emit('firstsegment', afterMs);
    return true;
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
    // FFmpeg writes into the directory until it exits (its last playlist on SIGTERM): removing
    // it before that fails (ENOTEMPTY), so it is removed once FFmpeg is gone.
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
