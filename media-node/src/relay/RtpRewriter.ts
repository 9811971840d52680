/**
 * Rewrites one RTP stream's SSRC, payload type, sequence numbers and timestamps so that a sequence of
 * different inputs (one upstream, then another after a failover or republish) comes out as a
 * single continuous stream. Viewers' consumers, and their decoders, never see the switch as
 * anything but a key frame.
 *
 * After a switch, video is held back until the first packet of a key frame: frames that
 * reference pictures the viewer never got would only show as corruption.
 */
export class RtpRewriter {
  readonly outSsrc: number;
  readonly outPayloadType: number;
  readonly #clockRate: number;
  readonly #isKeyFrameStart: (payload: Buffer) => boolean;
  #gated: boolean;
  #inputFresh = true;
  #seqOffset = 0;
  #tsOffset = 0;
  #lastOutSeq: number;
  #lastOutTs: number;
  #lastOutAtMs: number | undefined;
  /** Packets forwarded / held back (waiting for a key frame) — for metrics and tests. */
  forwarded = 0;
  dropped = 0;

  constructor(options: {
    outSsrc: number;
    outPayloadType: number;
    clockRate: number;
    mimeType: string;
    initialSeq?: number;
  }) {
    this.outSsrc = options.outSsrc >>> 0;
    this.outPayloadType = options.outPayloadType & 0x7f;
    this.#clockRate = options.clockRate;
    this.#isKeyFrameStart = keyFrameDetector(options.mimeType);
    this.#gated = options.mimeType.toLowerCase().startsWith('video/');
    this.#lastOutSeq = (options.initialSeq ?? Math.floor(Math.random() * 0x8000)) & 0xffff;
    this.#lastOutTs = Math.floor(Math.random() * 0x7fffffff);
  }

  /** The next packet comes from a new input (new SSRC, unrelated numbering). */
  switchInput(): void {
    this.#inputFresh = true;
    if (this.#isVideo) this.#gated = true;
  }

  get #isVideo(): boolean {
    return this.#isKeyFrameStart !== notVideo;
  }

  /**
   * The output RTP timestamp that corresponds to wall time `nowMs`, extrapolated from the last
   * packet out (for RTCP sender reports); undefined before the first packet.
   */
  timestampAt(nowMs: number): number | undefined {
    if (this.#lastOutAtMs === undefined) return undefined;
    return (this.#lastOutTs + Math.round(((nowMs - this.#lastOutAtMs) * this.#clockRate) / 1000)) >>> 0;
  }

  /** True while video is held back waiting for a key frame. */
  get waitingForKeyFrame(): boolean {
    return this.#gated;
  }

  /** Rewrites `packet` in place and returns it, or undefined when it must be dropped. */
  rewrite(packet: Buffer, nowMs: number): Buffer | undefined {
    const header = parseRtpHeader(packet);
    if (!header) {
      this.dropped++;
      return undefined;
    }
    if (this.#gated) {
      if (!this.#isKeyFrameStart(packet.subarray(header.payloadOffset, header.payloadEnd))) {
        this.dropped++;
        return undefined;
      }
      this.#gated = false;
    }
    const inSeq = packet.readUInt16BE(2);
    const inTs = packet.readUInt32BE(4);
    if (this.#inputFresh) {
      this.#inputFresh = false;
      this.#seqOffset = (this.#lastOutSeq + 1 - inSeq) & 0xffff;
      // Advance the clock by the wall time since the last packet out (at least one tick).
      const elapsedTicks =
        this.#lastOutAtMs === undefined
          ? 1
          : Math.max(1, Math.round(((nowMs - this.#lastOutAtMs) * this.#clockRate) / 1000));
      this.#tsOffset = (this.#lastOutTs + elapsedTicks - inTs) >>> 0;
    }
    const outSeq = (inSeq + this.#seqOffset) & 0xffff;
    const outTs = (inTs + this.#tsOffset) >>> 0;
    // Inputs number codecs their own way; the stable producer has one payload type.
    packet[1] = (packet[1]! & 0x80) | this.outPayloadType;
    packet.writeUInt16BE(outSeq, 2);
    packet.writeUInt32BE(outTs, 4);
    packet.writeUInt32BE(this.outSsrc, 8);
    // Track the newest (not a late, reordered packet) as the continuation point.
    if (((outSeq - this.#lastOutSeq) & 0xffff) < 0x8000) {
      this.#lastOutSeq = outSeq;
      this.#lastOutTs = outTs;
      this.#lastOutAtMs = nowMs;
    }
    this.forwarded++;
    return packet;
  }
}

export interface RtpHeader {
  payloadOffset: number;
  payloadEnd: number;
}

/** Locates the payload of an RTP packet (RFC 3550 §5.1, with CSRCs, extension and padding). */
export function parseRtpHeader(packet: Buffer): RtpHeader | undefined {
  if (packet.length < 12 || packet[0]! >> 6 !== 2) return undefined;
  const csrcCount = packet[0]! & 0x0f;
  let offset = 12 + 4 * csrcCount;
  if (packet[0]! & 0x10) {
    if (packet.length < offset + 4) return undefined;
    offset += 4 + 4 * packet.readUInt16BE(offset + 2);
  }
  let end = packet.length;
  if (packet[0]! & 0x20) end -= packet[packet.length - 1]!;
  if (offset > end) return undefined;
  return { payloadOffset: offset, payloadEnd: end };
}

const notVideo = () => true;

function keyFrameDetector(mimeType: string): (payload: Buffer) => boolean {
  switch (mimeType.toLowerCase()) {
    case 'video/vp8':
      return isVp8KeyFrameStart;
    case 'video/h264':
      return isH264KeyFrameStart;
    default:
      return mimeType.toLowerCase().startsWith('video/') ? () => true : notVideo;
  }
}

/** First packet of a VP8 key frame (RFC 7741 §4.2–4.3: S=1, PID=0, P bit clear). */
export function isVp8KeyFrameStart(payload: Buffer): boolean {
  if (payload.length < 1) return false;
  const first = payload[0]!;
  const start = (first & 0x10) !== 0 && (first & 0x07) === 0;
  if (!start) return false;
  let offset = 1;
  if (first & 0x80) {
    const extension = payload[offset++];
    if (extension === undefined) return false;
    if (extension & 0x80) offset += (payload[offset] ?? 0) & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits
    if (extension & 0x40) offset += 1; // TL0PICIDX
    if (extension & 0x30) offset += 1; // TID/KEYIDX
  }
  const header = payload[offset];
  return header !== undefined && (header & 0x01) === 0;
}

/** First packet of an H.264 IDR access unit: SPS or IDR slice, alone, aggregated or fragmented. */
export function isH264KeyFrameStart(payload: Buffer): boolean {
  if (payload.length < 1) return false;
  const isKeyNal = (type: number) => type === 5 || type === 7;
  const type = payload[0]! & 0x1f;
  if (type === 24) {
    // STAP-A: [size:16][NAL]...
    let offset = 1;
    while (offset + 2 < payload.length) {
      const size = payload.readUInt16BE(offset);
      if (isKeyNal(payload[offset + 2]! & 0x1f)) return true;
      offset += 2 + size;
    }
    return false;
  }
  if (type === 28) {
    const fuHeader = payload[1];
    return fuHeader !== undefined && (fuHeader & 0x80) !== 0 && isKeyNal(fuHeader & 0x1f);
  }
  return isKeyNal(type);
}
