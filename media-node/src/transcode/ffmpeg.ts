import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Profile } from './profiles.js';

/** The RTP video FFmpeg reads (from mediasoup) and what it must write back. */
export interface FfmpegPlan {
  input: {
    /** Path of the SDP file describing the incoming RTP. */
    sdpPath: string;
  };
  output: {
    profile: Profile;
    payloadType: number;
    ssrc: number;
    /** mediasoup PlainTransport (rtcp-mux, connected to `localPort`) to send to. */
    port: number;
    /** The source port FFmpeg sends from: the transport is connected to it. */
    localPort: number;
  };
}

/** The SDP FFmpeg reads the source video with (mediasoup sends it RTP on `port`, RTCP on port+1). */
export function inputSdp(options: {
  port: number;
  payloadType: number;
  mimeType: string;
  clockRate: number;
  parameters: Record<string, unknown> | undefined;
}): string {
  const codec = options.mimeType.split('/')[1]!;
  const fmtp = Object.entries(options.parameters ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(';');
  return [
    'v=0',
    'o=- 0 0 IN IP4 127.0.0.1',
    's=rtccdn-transcode',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=video ${options.port} RTP/AVP ${options.payloadType}`,
    `a=rtpmap:${options.payloadType} ${codec}/${options.clockRate}`,
    ...(fmtp ? [`a=fmtp:${options.payloadType} ${fmtp}`] : []),
    'a=recvonly',
    '',
  ].join('\r\n');
}

/**
 * FFmpeg arguments for one rendition: read RTP as fast as it comes (no probing beyond the first
 * packet, no reordering queue), scale, encode with a GOP of one second so new viewers
 * start fast, and send RTP back with a fixed payload type, SSRC and source port.
 */
/**
 * FFmpeg reading a stream's RTP as the SDP at `sdpPath` describes it, from its first key frame
 * and with nothing buffered: the input side of renditions and of HLS packaging.
 */
export function rtpInputArgs(sdpPath: string): string[] {
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'warning',
    '-protocol_whitelist',
    'file,udp,rtp',
    // Not `-fflags nobuffer`: it drops the packets read while probing, so the first key frame
    // would be lost and FFmpeg would start only at the next one (≥ 300 ms later: libwebrtc
    // encoders space key frames). A 32-byte probe reads one packet; the decoder takes the
    // picture size from the key frame itself.
    '-flags',
    'low_delay',
    '-analyzeduration',
    '0',
    '-probesize',
    '32',
    '-reorder_queue_size',
    '0',
    '-i',
    sdpPath,
  ];
}

/**
 * H.264 for live viewers (renditions and HLS): the fastest preset, no frame held back for
 * look-ahead, Constrained Baseline (every player decodes it), 4:2:0.
 */
export const X264_LIVE_ARGS: readonly string[] = [
  ...['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency'],
  ...['-profile:v', 'baseline', '-pix_fmt', 'yuv420p'],
];

export function ffmpegArgs(plan: FfmpegPlan): string[] {
  const { profile, payloadType, ssrc, port, localPort } = plan.output;
  const gop = String(profile.fps);
  const bitrate = String(profile.bitrate);
  const encoder =
    profile.codec === 'VP8'
      ? [
          '-c:v',
          'libvpx',
          '-deadline',
          'realtime',
          '-cpu-used',
          '8',
          '-lag-in-frames',
          '0',
          '-auto-alt-ref',
          '0',
          '-error-resilient',
          '1',
          '-b:v',
          bitrate,
          '-minrate',
          bitrate,
          '-maxrate',
          bitrate,
          '-bufsize',
          String(Math.round(profile.bitrate / 2)),
          '-g',
          gop,
          '-keyint_min',
          gop,
        ]
      : [
          ...X264_LIVE_ARGS,
          '-b:v',
          bitrate,
          '-maxrate',
          bitrate,
          '-bufsize',
          String(Math.round(profile.bitrate / 2)),
          '-bf',
          '0',
          '-x264-params',
          `keyint=${gop}:min-keyint=${gop}:scenecut=0:repeat-headers=1`,
        ];
  return [
    ...rtpInputArgs(plan.input.sdpPath),
    '-map',
    '0:v:0',
    '-an',
    '-vf',
    `scale=${profile.width}:${profile.height},fps=${profile.fps}`,
    ...encoder,
    '-f',
    'rtp',
    '-payload_type',
    String(payloadType),
    '-ssrc',
    String(ssrc),
    `rtp://127.0.0.1:${port}?rtcpport=${port}&localrtpport=${localPort}&pkt_size=1200`,
  ];
}

export type FfmpegProcessEvents = {
  exit: [code: number | null, signal: string | null, stderrTail: string];
};

/** One FFmpeg child process; its stderr tail explains a crash. */
export class FfmpegProcess extends TypedEmitter<FfmpegProcessEvents> {
  readonly child: ChildProcess;
  /** The pipes FFmpeg writes to as `pipe:3`, `pipe:4`, … (`outputPipes` of them). */
  readonly outputs: Readable[];
  #stderr = '';
  #exited = false;

  constructor(binary: string, args: string[], outputPipes = 0) {
    super();
    this.child = spawn(binary, args, {
      stdio: ['ignore', 'ignore', 'pipe', ...Array.from({ length: outputPipes }, () => 'pipe' as const)],
    });
    this.outputs = Array.from({ length: outputPipes }, (_, index) => this.child.stdio[3 + index] as Readable);
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
    });
    this.child.once('error', (error) => {
      this.#stderr += `\nspawn failed: ${error.message}`;
    });
    this.child.once('close', (code, signal) => {
      this.#exited = true;
      this.emit('exit', code, signal, this.#stderr.trim().split('\n').slice(-5).join(' | '));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** CPU time (user + system) of the process so far, in seconds; undefined once it exited. */
  cpuSeconds(): number | undefined {
    if (this.#exited || this.child.pid === undefined) return undefined;
    try {
      const fields = readFileSync(`/proc/${this.child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the comm field).
      return (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      return undefined;
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs = 2000): void {
    if (this.#exited) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (!this.#exited) this.child.kill('SIGKILL');
    }, graceMs);
    timer.unref();
  }
}
