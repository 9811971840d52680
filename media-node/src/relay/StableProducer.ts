import { randomInt } from 'node:crypto';
import type { types } from 'mediasoup';
import { RtpRewriter } from './RtpRewriter.js';

/**
 * A producer whose RTP line never breaks, so its input can be replaced underneath its consumers
 * without them renegotiating: an upstream relay that switched nodes, a restarted FFmpeg. Packets
 * of the current input go through RtpRewriter (continuous SSRC, sequence numbers and
 * timestamps; video held back until a key frame after a switch) into a producer on a
 * DirectTransport.
 */
export class StableProducer {
  readonly producer: types.Producer;
  readonly codec: types.RtpCodecParameters;
  readonly #rewriter: RtpRewriter;

  private constructor(producer: types.Producer, codec: types.RtpCodecParameters, rewriter: RtpRewriter) {
    this.producer = producer;
    this.codec = codec;
    this.#rewriter = rewriter;
  }

  static async create(
    transport: types.DirectTransport,
    options: {
      kind: types.MediaKind;
      codec: types.RtpCodecParameters;
      headerExtensions?: types.RtpHeaderExtensionParameters[];
      cname: string;
      appData: types.AppData;
    },
  ): Promise<StableProducer> {
    const { codec } = options;
    const ssrc = randomInt(1, 0xffffffff);
    const producer = await transport.produce({
      kind: options.kind,
      rtpParameters: {
        codecs: [codec],
        headerExtensions: options.headerExtensions ?? [],
        encodings: [{ ssrc }],
        rtcp: { cname: options.cname, reducedSize: true },
      },
      appData: options.appData,
    });
    const rewriter = new RtpRewriter({
      outSsrc: ssrc,
      outPayloadType: codec.payloadType,
      clockRate: codec.clockRate,
      mimeType: codec.mimeType,
    });
    return new StableProducer(producer, codec, rewriter);
  }

  get kind(): types.MediaKind {
    return this.producer.kind;
  }

  /** Packets sent on / held back waiting for a key frame (metrics, tests). */
  get counters(): { forwarded: number; dropped: number } {
    return { forwarded: this.#rewriter.forwarded, dropped: this.#rewriter.dropped };
  }

  /** The next packets come from a new input (new SSRC, unrelated numbering). */
  switchInput(): void {
    this.#rewriter.switchInput();
  }

  /** Sends one packet of the current input; false when it was held back. */
  send(packet: Buffer): boolean {
    const rewritten = this.#rewriter.rewrite(packet, Date.now());
    if (!rewritten) return false;
    this.producer.send(rewritten);
    return true;
  }
}
