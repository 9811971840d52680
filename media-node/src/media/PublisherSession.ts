import type { types } from 'mediasoup';
import { RtccdnError } from '../../contract/errors.js';
import type { Logger } from '../logger.js';
import { type AnswerSection, buildAnswer, negotiateDtlsRole } from '../sdp/answer.js';
import type { ParsedOffer } from '../sdp/offer.js';
import { producerRtpParameters } from '../sdp/translate.js';
import { defaultNumbering, PUBLISH_CAPABILITIES, SUPPORTED_CODECS_TEXT } from './codecs.js';
import type { MediaWorker } from './MediaWorker.js';
import { Session } from './Session.js';
import { Stream } from './Stream.js';

/**
 * libwebrtc publishers ignore a key frame request that comes within 300 ms of the previous one
 * (EncoderRtcpFeedback's min_keyframe_send_interval), and mediasoup only re-asks after 1 s. A
 * viewer joining right after another would wait that second. Coalescing requests per 350 ms
 * makes mediasoup ask again as soon as the publisher will listen.
 */
const KEY_FRAME_REQUEST_DELAY_MS = 350;

export interface PublishOptions {
  streamName: string;
  offer: ParsedOffer;
  worker: MediaWorker;
  logger: Logger;
  connectTimeoutMs: number;
  fanoutLingerMs: number;
}

/** A WHIP publisher: owns the Stream it feeds; ending the publish ends the stream. */
export class PublisherSession extends Session {
  readonly protocol = 'whip' as const;
  readonly stream: Stream;
  readonly answer: string;

  private constructor(
    stream: Stream,
    worker: MediaWorker,
    transport: types.WebRtcTransport,
    answer: string,
    logger: Logger,
    connectTimeoutMs: number,
  ) {
    super(stream.name, worker, transport, logger, connectTimeoutMs);
    this.stream = stream;
    this.answer = answer;
    stream.once('close', (reason) => this.close(`stream-closed: ${reason}`));
  }

  /** Negotiates the offer into a live stream. On any failure nothing is left behind. */
  static async create(options: PublishOptions): Promise<PublisherSession> {
    const { streamName, offer, worker, logger, connectTimeoutMs, fanoutLingerMs } = options;
    const sendable = offer.media.filter(
      (media) =>
        (media.type === 'audio' || media.type === 'video') &&
        media.raw.port !== 0 &&
        (media.direction === 'sendonly' || media.direction === 'sendrecv'),
    );
    if (sendable.length === 0) {
      throw new RtccdnError('INVALID_SDP', 'WHIP offer has no sendonly/sendrecv audio or video section');
    }

    // Choose codecs before the router exists: the router is numbered for exactly these.
    const sections: AnswerSection[] = [];
    const accepted: { kind: types.MediaKind; rtpParameters: types.RtpParameters }[] = [];
    for (const media of offer.media) {
      const rtpParameters = sendable.includes(media)
        ? producerRtpParameters(media, PUBLISH_CAPABILITIES)
        : undefined;
      if (!rtpParameters) {
        sections.push({ media });
        continue;
      }
      accepted.push({ kind: media.type as types.MediaKind, rtpParameters });
      const simulcastRids = media.simulcast?.offeredRids ?? [];
      sections.push({
        media,
        accepted: {
          direction: 'recvonly',
          rtpParameters,
          ...(simulcastRids.length > 0 ? { simulcastRids } : {}),
        },
      });
    }
    if (accepted.length === 0) {
      throw new RtccdnError(
        'NO_SUPPORTED_CODEC',
        `no supported codec in the offer; supported: ${SUPPORTED_CODECS_TEXT}`,
      );
    }
    const numbering = accepted.map(({ rtpParameters }) => defaultNumbering(rtpParameters.codecs[0]!));

    const stream = await Stream.create(streamName, worker, numbering, logger, fanoutLingerMs);
    try {
      const transport = await Session.createTransport(stream.origin.router, worker);
      const { localSetup, remoteRole } = negotiateDtlsRole(offer.setup);
      await transport.connect({ dtlsParameters: { role: remoteRole, fingerprints: [offer.fingerprint] } });
      for (const { kind, rtpParameters } of accepted) {
        const producer = await transport.produce({
          kind,
          rtpParameters,
          keyFrameRequestDelay: KEY_FRAME_REQUEST_DELAY_MS,
          appData: { stream: streamName },
        });
        stream.addProducer(producer);
      }
      const answer = buildAnswer({
        offer,
        iceParameters: transport.iceParameters,
        iceCandidates: transport.iceCandidates,
        dtlsParameters: transport.dtlsParameters,
        setup: localSetup,
        sections,
      });
      const session = new PublisherSession(
        stream,
        worker,
        transport,
        answer,
        logger.child({ stream: streamName, protocol: 'whip' }),
        connectTimeoutMs,
      );
      return session;
    } catch (error) {
      stream.close('publish failed');
      if (error instanceof RtccdnError) throw error;
      // mediasoup rejects RTP parameters it cannot use (e.g. inconsistent SSRCs) with a TypeError.
      if (error instanceof TypeError)
        throw new RtccdnError('INVALID_SDP', `offer rejected by the media engine: ${error.message}`);
      throw error;
    }
  }

  protected override onClose(reason: string): void {
    this.stream.close(`publisher ${reason}`);
  }
}
