import type { types } from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaWorker } from '../media/MediaWorker.js';
import type { PlannedCodec } from '../media/payloadTypes.js';
import { Stream } from '../media/Stream.js';
import { codecMatches, isRtx } from '../sdp/translate.js';
import { StableProducer } from './StableProducer.js';
import type { UpstreamLink } from './UpstreamLink.js';

export type RelayedStreamEvents = {
  close: [reason: string];
};

/** One of the stream's tracks: the stable producer viewers consume, fed from whatever upstream. */
interface StableTrack {
  stable: StableProducer;
  /** The current upstream's consumer feeding this track. */
  feed?: types.Consumer;
}

/** The source's codecs cannot feed the stable producers (e.g. republished as H.264 instead of VP8). */
export class IncompatibleSourceError extends Error {
  override name = 'IncompatibleSourceError';
}

/**
 * A stream this node relays from another node. Viewers (and downstream relays) consume
 * "stable" producers on the stream's router; those are fed, packet by packet through a
 * DirectTransport, from the current UpstreamLink. Switching upstream (the regional relay
 * edge died, or the publisher came back on another origin) replaces the link and keeps the
 * stable producers, so viewers continue without renegotiation: RtpRewriter makes the new
 * input continue the old SSRC/sequence/timestamp line and holds video until a key frame.
 */
export class RelayedStream extends TypedEmitter<RelayedStreamEvents> {
  readonly stream: Stream;
  readonly #tracks: StableTrack[];
  readonly #logger: Logger;
  #link: UpstreamLink | undefined;
  /** Claim of the publish currently feeding the stream (changes on republish). */
  #claimId: string | undefined;
  /** When the current upstream last delivered an RTP packet (or was attached), performance.now(). */
  #lastPacketAt = performance.now();
  #closed = false;

  private constructor(
    stream: Stream,
    directTransport: types.DirectTransport,
    tracks: StableTrack[],
    logger: Logger,
  ) {
    super();
    this.stream = stream;
    this.#tracks = tracks;
    this.#logger = logger;
    stream.once('close', (reason) => this.close(reason));
    // Viewers' key frame requests reach the stable producers' transport as RTCP: pass them up.
    directTransport.on('rtcp', (packet) => {
      if (containsKeyFrameRequest(packet)) this.requestKeyFrame();
    });
  }

  /** Creates the stream on `worker`, numbered like the source, fed by `link`. */
  static async create(options: {
    name: string;
    worker: MediaWorker;
    link: UpstreamLink;
    claimId: string | undefined;
    fanoutLingerMs: number;
    logger: Logger;
  }): Promise<RelayedStream> {
    const { name, worker, link, logger } = options;
    const numbering = link.producers.map((producer) => numberingOf(producer.rtpParameters));
    const stream = await Stream.create(name, worker, numbering, logger, options.fanoutLingerMs);
    try {
      const directTransport = await stream.origin.router.createDirectTransport();
      const tracks: StableTrack[] = [];
      for (const upstream of link.producers) {
        const stable = await StableProducer.create(directTransport, {
          kind: upstream.kind,
          codec: mediaCodecOf(upstream.rtpParameters),
          headerExtensions: upstream.rtpParameters.headerExtensions ?? [],
          cname: upstream.rtpParameters.rtcp?.cname ?? `relay-${name}`,
          appData: { stream: name, stable: true },
          layers: (upstream.rtpParameters.encodings ?? []).map((encoding) => ({
            scalabilityMode: encoding.scalabilityMode,
          })),
        });
        stream.addProducer(stable.producer);
        tracks.push({ stable });
      }
      const relayed = new RelayedStream(stream, directTransport, tracks, logger.child({ stream: name }));
      await relayed.attach(link, options.claimId);
      return relayed;
    } catch (error) {
      stream.close('relay setup failed');
      throw error;
    }
  }

  get name(): string {
    return this.stream.name;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get link(): UpstreamLink | undefined {
    return this.#link;
  }

  get claimId(): string | undefined {
    return this.#claimId;
  }

  /** How long the current upstream has sent no RTP (since it was attached, if it never has). */
  get quietForMs(): number {
    return performance.now() - this.#lastPacketAt;
  }

  /**
   * The publish moved to another claim, and the current upstream (the region's relay edge,
   * which followed it) already feeds it: nothing to relink.
   */
  adoptClaim(claimId: string): void {
    this.#claimId = claimId;
  }

  /** Packets forwarded / held back per kind (introspection, tests). */
  get counters(): Record<string, { forwarded: number; dropped: number }> {
    return Object.fromEntries(this.#tracks.map((track) => [track.stable.kind, track.stable.counters]));
  }

  /**
   * Feeds the stable producers from `link` (replacing the current one, which is closed).
   * Throws IncompatibleSourceError when the link's codecs differ from the stream's.
   */
  async attach(link: UpstreamLink, claimId: string | undefined): Promise<void> {
    if (this.#closed) throw new Error(`relayed stream ${this.name} is closed`);
    const pairs = this.#tracks.map((track) => {
      const upstream = link.producers.find(
        (producer) =>
          producer.kind === track.stable.kind &&
          codecMatches(mediaCodecOf(producer.rtpParameters), track.stable.codec),
      );
      if (!upstream) {
        throw new IncompatibleSourceError(
          `upstream ${link.source.nodeId} has no ${track.stable.codec.mimeType} ${track.stable.kind} track for ${this.name}`,
        );
      }
      // Viewers' simulcast consumers were made for these layers; a publisher that came back
      // with another layout needs new ones (the stream ends, players re-join).
      const layers = Math.max(1, upstream.rtpParameters.encodings?.length ?? 1);
      if (layers !== track.stable.layerCount) {
        throw new IncompatibleSourceError(
          `upstream ${link.source.nodeId} sends ${layers} ${track.stable.kind} layer(s) for ${this.name}, the stream has ${track.stable.layerCount}`,
        );
      }
      return { track, upstream };
    });
    const previous = this.#link;
    const feeds = await Promise.all(pairs.map(({ upstream }) => link.consumeDirect(upstream)));
    if (this.#closed) {
      link.close('relayed stream closed while attaching');
      return;
    }
    pairs.forEach(({ track }, index) => {
      const feed = feeds[index]!;
      track.feed?.close();
      track.feed = feed;
      track.stable.switchInput(
        track.stable.layerCount > 1
          ? (feed.rtpParameters.encodings ?? []).map((encoding) => encoding.ssrc ?? 0)
          : [],
      );
      feed.on('rtp', (packet) => {
        if (track.feed !== feed) return;
        this.#lastPacketAt = performance.now();
        track.stable.send(packet);
      });
    });
    this.#link = link;
    this.#claimId = claimId;
    this.#lastPacketAt = performance.now();
    link.once('close', (reason) => {
      if (this.#link === link && !this.#closed) {
        this.#logger.warn({ reason, upstream: link.source.nodeId }, 'upstream link lost');
      }
    });
    previous?.close('replaced by a new upstream');
    // New feeds ask for a key frame themselves; after a switch, viewers need one at once too.
    if (previous) this.requestKeyFrame();
    this.#logger.info(
      { upstream: link.source.nodeId, switched: previous !== undefined },
      previous ? 'switched upstream' : 'relaying from upstream',
    );
  }

  requestKeyFrame(): void {
    for (const track of this.#tracks) {
      if (track.stable.kind === 'video' && track.feed && !track.feed.closed) {
        track.feed.requestKeyFrame().catch(() => undefined);
      }
    }
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link?.close(`relayed stream closed: ${reason}`);
    this.stream.close(reason);
    this.emit('close', reason);
  }
}

export function mediaCodecOf(rtpParameters: types.RtpParameters): types.RtpCodecParameters {
  const codec = rtpParameters.codecs.find((candidate) => !isRtx(candidate));
  if (!codec) throw new IncompatibleSourceError('upstream track has no media codec');
  return codec;
}

/** The stream router numbers codecs as the source does (the origin's default numbering). */
export function numberingOf(rtpParameters: types.RtpParameters): PlannedCodec {
  const codec = mediaCodecOf(rtpParameters);
  const rtx = rtpParameters.codecs.find(
    (candidate) => isRtx(candidate) && candidate.parameters?.['apt'] === codec.payloadType,
  );
  return {
    codec: {
      kind: codec.mimeType.toLowerCase().startsWith('audio/') ? 'audio' : 'video',
      mimeType: codec.mimeType,
      clockRate: codec.clockRate,
      ...(codec.channels !== undefined ? { channels: codec.channels } : {}),
      parameters: codec.parameters ?? {},
    },
    payloadType: codec.payloadType,
    ...(rtx ? { rtxPayloadType: rtx.payloadType } : {}),
  };
}

/** PLI (PSFB FMT 1) or FIR (PSFB FMT 4) anywhere in a compound RTCP packet. */
export function containsKeyFrameRequest(packet: Buffer): boolean {
  let offset = 0;
  while (offset + 4 <= packet.length) {
    const first = packet[offset]!;
    if (first >> 6 !== 2) return false;
    const type = packet[offset + 1]!;
    const format = first & 0x1f;
    if (type === 206 && (format === 1 || format === 4)) return true;
    offset += 4 * (packet.readUInt16BE(offset + 2) + 1);
  }
  return false;
}

/** The media SSRCs that PLIs (PSFB FMT 1) and FIRs (FMT 4) of a compound RTCP packet ask a key frame of. */
export function keyFrameRequestSsrcs(packet: Buffer): number[] {
  const ssrcs: number[] = [];
  let offset = 0;
  while (offset + 4 <= packet.length) {
    const first = packet[offset]!;
    if (first >> 6 !== 2) break;
    const type = packet[offset + 1]!;
    const format = first & 0x1f;
    const end = offset + 4 * (packet.readUInt16BE(offset + 2) + 1);
    if (type === 206 && format === 1 && offset + 12 <= packet.length)
      ssrcs.push(packet.readUInt32BE(offset + 8));
    // FIR: the FCI entries (8 bytes each) name the SSRCs.
    if (type === 206 && format === 4) {
      for (let fci = offset + 12; fci + 8 <= Math.min(end, packet.length); fci += 8)
        ssrcs.push(packet.readUInt32BE(fci));
    }
    offset = end;
  }
  return ssrcs;
}
