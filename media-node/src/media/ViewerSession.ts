import type { types } from 'mediasoup';
import type { Logger } from '../logger.js';
import { buildAnswer, negotiateDtlsRole, type AnswerSection } from '../sdp/answer.js';
import type { ParsedOffer } from '../sdp/offer.js';
import { SdpError } from '../sdp/SdpError.js';
import { viewerRtpCapabilities } from '../sdp/translate.js';
import type { MediaWorker } from './MediaWorker.js';
import { Session } from './Session.js';
import type { Stream } from './Stream.js';

export interface PlayOptions {
  stream: Stream;
  offer: ParsedOffer;
  worker: MediaWorker;
  logger: Logger;
  connectTimeoutMs: number;
}

/**
 * A WHEP viewer: consumers of the stream's producers on the viewer's worker. Consumers start
 * paused and resume once DTLS is up, which makes mediasoup ask the publisher for a key frame
 * right when the viewer can use it.
 */
export class ViewerSession extends Session {
  readonly protocol = 'whep' as const;
  readonly stream: Stream;
  readonly answer: string;
  readonly consumers: types.Consumer[];

  private constructor(
    stream: Stream,
    worker: MediaWorker,
    transport: types.WebRtcTransport,
    consumers: types.Consumer[],
    answer: string,
    logger: Logger,
    connectTimeoutMs: number,
  ) {
    super(stream.name, worker, transport, logger, connectTimeoutMs);
    this.stream = stream;
    this.consumers = consumers;
    this.answer = answer;
    for (const consumer of consumers) {
      consumer.once('producerclose', () => this.close('stream-ended'));
    }
    stream.once('close', () => this.close('stream-ended'));
    this.once('connected', () => {
      for (const consumer of consumers) {
        consumer
          .resume()
          .then(() => (consumer.kind === 'video' ? consumer.requestKeyFrame() : undefined))
          .catch((error: Error) => {
            if (!consumer.closed) this.logger.warn({ err: error, session: this.id }, 'consumer resume failed');
          });
      }
    });
  }

  static async create(options: PlayOptions): Promise<ViewerSession> {
    const { stream, offer, worker, logger, connectTimeoutMs } = options;
    const receivable = offer.media.filter(
      (media) =>
        (media.type === 'audio' || media.type === 'video') &&
        media.raw.port !== 0 &&
        (media.direction === 'recvonly' || media.direction === 'sendrecv'),
    );
    if (receivable.length === 0) {
      throw new SdpError('WHEP offer has no recvonly/sendrecv audio or video section', 400);
    }

    const { router, producers } = await stream.routerFor(worker);
    const transport = await Session.createTransport(router, worker);
    try {
      const { localSetup, remoteRole } = negotiateDtlsRole(offer.setup);
      await transport.connect({ dtlsParameters: { role: remoteRole, fingerprints: [offer.fingerprint] } });
      const sections: AnswerSection[] = [];
      const consumers: types.Consumer[] = [];
      const used = new Set<types.Producer>();
      for (const media of offer.media) {
        const rtpCapabilities = viewerRtpCapabilities(media);
        const producer = receivable.includes(media)
          ? producers.find(
              (candidate) =>
                candidate.kind === media.type &&
                !used.has(candidate) &&
                router.canConsume({ producerId: candidate.id, rtpCapabilities }),
            )
          : undefined;
        if (!producer) {
          sections.push({ media });
          continue;
        }
        used.add(producer);
        const consumer = await transport.consume({
          producerId: producer.id,
          rtpCapabilities,
          paused: true,
          mid: media.mid,
        });
        consumers.push(consumer);
        sections.push({
          media,
          accepted: {
            direction: 'sendonly',
            rtpParameters: consumer.rtpParameters,
            sender: { streamId: stream.name, trackId: `${media.type}-${consumer.id.slice(0, 8)}` },
          },
        });
      }
      if (consumers.length === 0) {
        const offered = producers.map((producer) => producer.rtpParameters.codecs[0]?.mimeType).join(', ');
        throw new SdpError(`the offer accepts none of the stream's codecs (stream sends ${offered})`, 422);
      }
      const answer = buildAnswer({
        offer,
        iceParameters: transport.iceParameters,
        iceCandidates: transport.iceCandidates,
        dtlsParameters: transport.dtlsParameters,
        setup: localSetup,
        sections,
      });
      return new ViewerSession(
        stream,
        worker,
        transport,
        consumers,
        answer,
        logger.child({ stream: stream.name, protocol: 'whep' }),
        connectTimeoutMs,
      );
    } catch (error) {
      transport.close();
      if (error instanceof TypeError) throw new SdpError(`offer rejected by the media engine: ${error.message}`, 400);
      throw error;
    }
  }
}
