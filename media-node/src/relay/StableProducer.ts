import { randomInt } from 'node:crypto';
import type { types } from 'mediasoup';
import { RtpRewriter } from './RtpRewriter.js';

/**
 * A simulcast consumer only switches to a layer whose RTP timestamps it can map to the current
 * one's, which it learns from the layers' RTCP sender reports. A stable producer re-stamps every
 * layer on a line of its own, so it reports each line itself, this often.
 */
const SENDER_REPORT_INTERVAL_MS = 1000;
/** Seconds from the NTP epoch (1900) to the Unix epoch. */
const NTP_UNIX_OFFSET_S = 2_208_988_800;

/** One output encoding (simulcast layer) of a stable producer. */
interface StableLayer {
  ssrc: number;
  rewriter: RtpRewriter;
  packets: number;
  octets: number;
}

/**
 * A producer whose RTP line never breaks, so its input can be replaced underneath its consumers
 * without them renegotiating: an upstream relay that switched nodes, a restarted FFmpeg. Packets
 * of the current input go through RtpRewriter (continuous SSRC, sequence numbers and
 * timestamps; video held back until a key frame after a switch) into a producer on a
 * DirectTransport.
 *
 * A simulcast input keeps its layers: one encoding, and one rewriter, per layer, each input SSRC
 * routed to its layer, and RTCP sender reports per layer so viewers' simulcast consumers can
 * switch between them.
 */
export class StableProducer {
  readonly producer: types.Producer;
  readonly codec: types.RtpCodecParameters;
  readonly #transport: types.DirectTransport;
  readonly #layers: StableLayer[];
  /** The current input's SSRC of each layer (index = layer); empty: everything is layer 0. */
  readonly #inputLayers = new Map<number, number>();
  readonly #reportTimer: NodeJS.Timeout | undefined;

  private constructor(
    producer: types.Producer,
    codec: types.RtpCodecParameters,
    transport: types.DirectTransport,
    layers: StableLayer[],
  ) {
    this.producer = producer;
    this.codec = codec;
    this.#transport = transport;
    this.#layers = layers;
    if (layers.length > 1) {
      this.#reportTimer = setInterval(() => this.#sendReports(), SENDER_REPORT_INTERVAL_MS);
      this.#reportTimer.unref();
      producer.observer.once('close', () => clearInterval(this.#reportTimer));
    }
  }

  static async create(
    transport: types.DirectTransport,
    options: {
      kind: types.MediaKind;
      codec: types.RtpCodecParameters;
      headerExtensions?: types.RtpHeaderExtensionParameters[];
      cname: string;
      appData: types.AppData;
      /** Simulcast layers, lowest first, with their scalability modes (default: one layer). */
      layers?: { scalabilityMode?: string | undefined }[];
    },
  ): Promise<StableProducer> {
    const { codec } = options;
    const wanted = options.layers && options.layers.length > 0 ? options.layers : [{}];
    const ssrcs = new Set<number>();
    while (ssrcs.size < wanted.length) ssrcs.add(randomInt(1, 0xffffffff));
    const layers: StableLayer[] = [...ssrcs].map((ssrc) => ({
      ssrc,
      rewriter: new RtpRewriter({
        outSsrc: ssrc,
        outPayloadType: codec.payloadType,
        clockRate: codec.clockRate,
        mimeType: codec.mimeType,
      }),
      packets: 0,
      octets: 0,
    }));
    const producer = await transport.produce({
      kind: options.kind,
      rtpParameters: {
        codecs: [codec],
        headerExtensions: options.headerExtensions ?? [],
        encodings: layers.map((layer, index) => ({
          ssrc: layer.ssrc,
          ...(wanted[index]?.scalabilityMode ? { scalabilityMode: wanted[index].scalabilityMode } : {}),
        })),
        rtcp: { cname: options.cname, reducedSize: true },
      },
      appData: options.appData,
    });
    return new StableProducer(producer, codec, transport, layers);
  }

  get kind(): types.MediaKind {
    return this.producer.kind;
  }

  /** Simulcast layers (1 for a plain track). */
  get layerCount(): number {
    return this.#layers.length;
  }

  /** Packets sent on / held back waiting for a key frame, over all layers (metrics, tests). */
  get counters(): { forwarded: number; dropped: number } {
    let forwarded = 0;
    let dropped = 0;
    for (const { rewriter } of this.#layers) {
      forwarded += rewriter.forwarded;
      dropped += rewriter.dropped;
    }
    return { forwarded, dropped };
  }

  /**
   * The next packets come from a new input (new SSRCs, unrelated numbering). `inputSsrcs` are
   * the new input's SSRC of each layer, lowest first; without them every packet feeds layer 0.
   */
  switchInput(inputSsrcs: readonly number[] = []): void {
    this.#inputLayers.clear();
    for (const [layer, ssrc] of inputSsrcs.slice(0, this.#layers.length).entries()) {
      this.#inputLayers.set(ssrc >>> 0, layer);
    }
    for (const { rewriter } of this.#layers) rewriter.switchInput();
  }

  /** Sends one packet of the current input; false when it was held back (or is of no layer). */
  send(packet: Buffer): boolean {
    const index = this.#inputLayers.size === 0 ? 0 : this.#inputLayers.get(packet.readUInt32BE(8));
    const layer = index === undefined ? undefined : this.#layers[index];
    if (!layer || packet.length < 12) return false;
    const rewritten = layer.rewriter.rewrite(packet, Date.now());
    if (!rewritten) return false;
    layer.packets++;
    layer.octets += rewritten.length - 12;
    this.producer.send(rewritten);
    return true;
  }

  #sendReports(): void {
    if (this.producer.closed || this.#transport.closed) return;
    const nowMs = Date.now();
    for (const layer of this.#layers) {
      const timestamp = layer.rewriter.timestampAt(nowMs);
      if (timestamp === undefined) continue;
      this.#transport.sendRtcp(senderReport(layer.ssrc, nowMs, timestamp, layer.packets, layer.octets));
    }
  }
}

/** An RTCP sender report (RFC 3550 §6.4.1) without report blocks. */
export function senderReport(
  ssrc: number,
  nowMs: number,
  rtpTimestamp: number,
  packets: number,
  octets: number,
): Buffer {
  const report = Buffer.alloc(28);
  report[0] = 0x80;
  report[1] = 200;
  report.writeUInt16BE(6, 2);
  report.writeUInt32BE(ssrc >>> 0, 4);
  const seconds = Math.floor(nowMs / 1000);
  report.writeUInt32BE((seconds + NTP_UNIX_OFFSET_S) >>> 0, 8);
  report.writeUInt32BE(Math.floor(((nowMs % 1000) / 1000) * 0x1_0000_0000) >>> 0, 12);
  report.writeUInt32BE(rtpTimestamp >>> 0, 16);
  report.writeUInt32BE(packets >>> 0, 20);
  report.writeUInt32BE(octets >>> 0, 24);
  return report;
}
