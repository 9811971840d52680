import { type ChildProcess, spawn } from 'node:child_process';
import { ageOf, readCode } from './framecode.js';

export interface HlsPlayerOptions {
  /** The picture size of the stream (the publisher's): FFmpeg writes raw frames of that size. */
  width: number;
  height: number;
  /** Segments from the live edge FFmpeg starts at (its `-live_start_index`, negative). */
  liveStartIndex?: number;
  /**
   * Read at the stream's own pace (`-re`), as a player presents it: the age of a frame is then
   * the player's glass-to-glass latency. Without it FFmpeg decodes each segment as fast as it
   * arrives (tests: frames sooner).
   */
  realtime?: boolean;
}

/**
 * A real HLS client: FFmpeg reading a multivariant playlist URL (and, through it, the media
 * playlist and segments), decoding the video to raw grey frames on stdout. Each frame's code
 * (framecode.ts) proves the picture arrived and dates it: glass-to-glass latency.
 */
export class FfmpegHlsPlayer {
  readonly child: ChildProcess;
  framesDecoded = 0;
  /** Frames whose code was readable. */
  framesWithCode = 0;
  /** Glass-to-glass age (ms) of every frame with a readable code, in arrival order. */
  readonly ages: number[] = [];
  firstFrameAt: number | undefined;
  stderr = '';
  readonly exited: Promise<number | null>;
  #exitCode: number | null | undefined;
  #pending = Buffer.alloc(0);

  constructor(url: string, options: HlsPlayerOptions) {
    const frameBytes = options.width * options.height;
    this.child = spawn(
      'ffmpeg',
      [
        '-hide_banner',
        '-nostdin',
        '-loglevel',
        'warning',
        '-live_start_index',
        String(options.liveStartIndex ?? -3),
        ...(options.realtime ? ['-re'] : []),
        '-i',
        url,
        '-map',
        '0:v:0',
        '-vf',
        `scale=${options.width}:${options.height}`,
        // Each decoded frame once: a constant-rate output would repeat frames across a gap in
        // the timestamps, and repeated (old) frames would count as late ones.
        '-fps_mode',
        'passthrough',
        '-pix_fmt',
        'gray',
        '-f',
        'rawvideo',
        'pipe:1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-8000);
    });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.#pending = Buffer.concat([this.#pending, chunk]);
      while (this.#pending.length >= frameBytes) {
        const frame = this.#pending.subarray(0, frameBytes);
        this.#pending = this.#pending.subarray(frameBytes);
        this.framesDecoded++;
        this.firstFrameAt ??= Date.now();
        const code = readCode(frame, options.width, options.height);
        if (code !== undefined) {
          this.framesWithCode++;
          this.ages.push(ageOf(code));
        }
      }
    });
    this.exited = new Promise((resolve) =>
      this.child.once('close', (code) => {
        this.#exitCode = code;
        resolve(code);
      }),
    );
  }

  get running(): boolean {
    return this.#exitCode === undefined;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  close(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}
