import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { types } from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import { internalCodecParameters } from '../media/codecs.js';
import { FfmpegProcess, ffmpegArgs, inputSdp } from './ffmpeg.js';
import type { Profile } from './profiles.js';

export interface FfmpegLegOptions {
  /** The source's video, on a router of the source stream. */
  sourceRouter: types.Router;
  sourceVideo: types.Producer;
  /** The rendition's router, its codec for the transcoded video, and where packets go. */
  renditionRouter: types.Router;
  outputCodec: types.RtpCodecCapability;
  direct: types.DirectTransport;
  profile: Profile;
  ffmpegPath: string;
  /** Scratch directory for the SDP file; `attempt` keeps files of successive legs apart. */
  dir: string;
  attempt: number;
  /** Each transcoded RTP packet, as FFmpeg sent it. */
  onPacket: (packet: Buffer) => void;
}

export type FfmpegLegEvents = {
  exit: [code: number | null, signal: string | null, stderrTail: string];
};

/**
 * How long a port pair handed to an FFmpeg stays reserved in this process: well past the time
 * FFmpeg takes to start and bind it (after which the kernel keeps it from others).
 */
const PORT_RESERVATION_MS = 30_000;
/** Even ports handed out lately (to their expiry): no two FFmpegs of this process share a pair. */
const reservedPorts = new Map<number, number>();

function bindUdp(port: number): Promise<ReturnType<typeof createSocket> | undefined> {
  const socket = createSocket('udp4');
  return new Promise((resolve) => {
    socket.once('error', () => {
      socket.close();
      resolve(undefined);
    });
    socket.bind(port, '127.0.0.1', () => resolve(socket));
  });
}

/**
 * A UDP port pair free right now on loopback (even, with the next one, for RTP + RTCP: FFmpeg's
 * RTP input binds both), reserved in this process for PORT_RESERVATION_MS. Both ports are
 * probed at once; the kernel picks the candidate (its ephemeral range, at random). What
 * remains is another process binding the pair before FFmpeg does: FFmpeg then fails to start,
 * and its job replaces it (HLS) or restarts on fresh ports (renditions).
 */
export async function freeUdpPortPair(now = Date.now()): Promise<number> {
  for (const [port, expiresAt] of reservedPorts) if (expiresAt <= now) reservedPorts.delete(port);
  for (let attempt = 0; attempt < 50; attempt++) {
    const picked = await bindUdp(0);
    if (!picked) continue;
    const port = picked.address().port;
    const even = port % 2 === 0 ? port : port - 1;
    if (reservedPorts.has(even)) {
      picked.close();
      continue;
    }
    // Hold the picked port while probing the other one of its pair: both must be free.
    const other = await bindUdp(port === even ? even + 1 : even);
    picked.close();
    other?.close();
    if (!other) continue;
    reservedPorts.set(even, now + PORT_RESERVATION_MS);
    return even;
  }
  throw new Error('no free UDP port pair for FFmpeg');
}

/**
 * One FFmpeg run with everything it needs of its own: a PlainTransport sending it the source
 * video, a PlainTransport connected to the port it sends from, a producer of what it sends and a
 * DirectTransport consumer handing those packets over. A restart is a new leg (fresh ports: a
 * port another process grabbed in the meantime cannot wedge a restart loop).
 */
export class FfmpegLeg extends TypedEmitter<FfmpegLegEvents> {
  readonly inputPort: number;
  readonly #toFfmpeg: types.PlainTransport;
  readonly #consumer: types.Consumer;
  readonly #fromFfmpeg: types.PlainTransport;
  readonly #ffmpeg: FfmpegProcess;
  #closed = false;

  private constructor(
    toFfmpeg: types.PlainTransport,
    consumer: types.Consumer,
    fromFfmpeg: types.PlainTransport,
    ffmpeg: FfmpegProcess,
    inputPort: number,
  ) {
    super();
    this.inputPort = inputPort;
    this.#toFfmpeg = toFfmpeg;
    this.#consumer = consumer;
    this.#fromFfmpeg = fromFfmpeg;
    this.#ffmpeg = ffmpeg;
    ffmpeg.on('exit', (code, signal, stderrTail) => {
      if (!this.#closed) this.emit('exit', code, signal, stderrTail);
    });
  }

  static async open(options: FfmpegLegOptions): Promise<FfmpegLeg> {
    const { sourceRouter, renditionRouter, outputCodec, profile } = options;
    const transports: types.Transport[] = [];
    try {
      // Source video → FFmpeg (RTP on the port of the SDP, RTCP on the next).
      const inputPort = await freeUdpPortPair();
      const toFfmpeg = await sourceRouter.createPlainTransport({
        listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
        rtcpMux: false,
        comedia: false,
      });
      transports.push(toFfmpeg);
      await toFfmpeg.connect({ ip: '127.0.0.1', port: inputPort, rtcpPort: inputPort + 1 });
      const consumer = await toFfmpeg.consume({
        producerId: options.sourceVideo.id,
        rtpCapabilities: sourceRouter.rtpCapabilities,
        enableRtx: false,
      });
      const inputCodec = consumer.rtpParameters.codecs[0]!;
      const sdpPath = join(options.dir, `input-${options.attempt}.sdp`);
      await writeFile(
        sdpPath,
        inputSdp({
          port: inputPort,
          payloadType: inputCodec.payloadType,
          mimeType: inputCodec.mimeType,
          clockRate: inputCodec.clockRate,
          parameters: inputCodec.parameters,
        }),
      );

      // FFmpeg → a transport connected to the port FFmpeg sends from (not comedia: FFmpeg's first
      // datagram may be an RTCP report from its other socket, and comedia would lock onto that).
      const localPort = await freeUdpPortPair();
      const fromFfmpeg = await renditionRouter.createPlainTransport({
        listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
        rtcpMux: true,
        comedia: false,
      });
      transports.push(fromFfmpeg);
      await fromFfmpeg.connect({ ip: '127.0.0.1', port: localPort });
      const codec = internalCodecParameters(outputCodec);
      const payloadType = codec.payloadType;
      const ssrc = randomInt(1, 0x7fffffff); // FFmpeg takes a signed 32-bit -ssrc
      const raw = await fromFfmpeg.produce({
        kind: 'video',
        rtpParameters: { codecs: [codec], encodings: [{ ssrc }] },
      });
      const feed = await options.direct.consume({
        producerId: raw.id,
        rtpCapabilities: renditionRouter.rtpCapabilities,
        enableRtx: false,
      });
      feed.on('rtp', options.onPacket);

      const ffmpeg = new FfmpegProcess(
        options.ffmpegPath,
        ffmpegArgs({
          input: { sdpPath },
          output: { profile, payloadType, ssrc, port: fromFfmpeg.tuple.localPort, localPort },
        }),
      );
      return new FfmpegLeg(toFfmpeg, consumer, fromFfmpeg, ffmpeg, inputPort);
    } catch (error) {
      for (const transport of transports) transport.close();
      throw error;
    }
  }

  get pid(): number | undefined {
    return this.#ffmpeg.pid;
  }

  cpuSeconds(): number | undefined {
    return this.#ffmpeg.cpuSeconds();
  }

  /**
   * Resolves once FFmpeg reads its input port (it binds it ~60–200 ms after it is spawned), or
   * after `timeoutMs`. A key frame sent before that is lost, and FFmpeg starts only at one: the
   * first request worth making is the one made then.
   */
  async listening(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!this.#closed && performance.now() < deadline) {
      if (await udpPortBound(this.inputPort)) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Asks the source for a key frame (FFmpeg cannot: it only starts at one). */
  requestKeyFrame(): void {
    this.#consumer.requestKeyFrame().catch(() => undefined);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ffmpeg.stop();
    // Closing the transports closes the consumer, the raw producer and the feed consuming it.
    this.#toFfmpeg.close();
    this.#fromFfmpeg.close();
  }
}

/** Whether a local UDP socket is bound to `port` (Linux /proc; false where it cannot tell). */
export async function udpPortBound(port: number): Promise<boolean> {
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local && Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) return true;
    }
  }
  return false;
}
