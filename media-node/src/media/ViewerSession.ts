import type { types } from 'mediasoup';
import { RtccdnError } from '../../contract/errors.js';
import type { Logger } from '../logger.js';
import { BitrateAdapter, simulcastTarget } from '../playback/BitrateAdapter.js';
import { type AnswerSection, buildAnswer, negotiateDtlsRole } from '../sdp/answer.js';
import type { ParsedOffer } from '../sdp/offer.js';
import { viewerRtpCapabilities } from '../sdp/translate.js';
import type { MediaWorker } from './MediaWorker.js';
import { planViewer, rtxPayloadTypeOf } from './payloadTypes.js';
import { Session } from './Session.js';
import type { Stream } from './Stream.js';

export interface PlayOptions {
  stream: Stream;
  offer: ParsedOffer;
  worker: MediaWorker;
  logger: Logger;
  connectTimeoutMs: number;
  /** Payload-type numberings the stream serves at most besides its default (NumberingLimitError). */
  maxNumberings?: number;
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
  /** The stream router this viewer consumes from (released on close). */
  readonly routerKey: string;
  /** The simulcast layer the video consumer sends now (none while paused or before the first). */
  #spatialLayer: number | undefined;
  /** The last layer it sent (layerschange's `previous`). */
  #lastSpatialLayer: number | undefined;
  /** Moves the viewer between simulcast layers as its link allows (simulcast sources only). */
  #adapter: BitrateAdapter | undefined;

  private constructor(
    stream: Stream,
    worker: MediaWorker,
    transport: types.WebRtcTransport,
    consumers: types.Consumer[],
    routerKey: string,
    answer: string,
    logger: Logger,
    connectTimeoutMs: number,
  ) {
    super(stream.name, worker, transport, logger, connectTimeoutMs);
    this.stream = stream;
    this.consumers = consumers;
    this.routerKey = routerKey;
    this.answer = answer;
    for (const consumer of consumers) {
      consumer.once('producerclose', () => this.close('stream-ended'));
      if (consumer.type === 'simulcast') {
        consumer.on('layerschange', (layers) => {
          this.#spatialLayer = layers?.spatialLayer;
          // None while paused (the adapter pauses around a step down): a switch is from the
          // last layer sent to the next one.
          if (this.#spatialLayer === undefined || this.#spatialLayer === this.#lastSpatialLayer) return;
          const previous = this.#lastSpatialLayer;
          this.#lastSpatialLayer = this.#spatialLayer;
          // When mediasoup actually switched (a key frame of the layer came): against the
          // adapter's decision in the log, the time a switch takes.
          this.logger.debug(
            { session: this.id, spatialLayer: this.#spatialLayer, previous },
            'video layer switched',
          );
          this.emit('layerschange', this.#spatialLayer, previous);
        });
      }
    }
    stream.once('close', (reason) => this.close(`stream-ended: ${reason}`));
    this.once('connected', () => {
      this.#startAdaptation();
      for (const consumer of consumers) {
        consumer
          .resume()
          .then(() => (consumer.kind === 'video' ? consumer.requestKeyFrame() : undefined))
          .catch((error: Error) => {
            if (!consumer.closed)
              this.logger.warn({ err: error, session: this.id }, 'consumer resume failed');
          });
      }
    });
  }

  /** What the viewer's video gets: simulcast layers and the one sent now (introspection, tests). */
  get video(): { type: types.ConsumerType; layers: number; spatialLayer: number | undefined } | undefined {
    const consumer = this.consumers.find((candidate) => candidate.kind === 'video');
    if (!consumer) return undefined;
    return {
      type: consumer.type,
      layers:
        this.stream.producers.find((producer) => producer.kind === 'video')?.rtpParameters.encodings
          ?.length ?? 1,
      spatialLayer: consumer.type === 'simulcast' ? consumer.currentLayers?.spatialLayer : undefined,
    };
  }

  #startAdaptation(): void {
    const consumer = this.consumers.find((candidate) => candidate.kind === 'video');
    const layers = this.video?.layers ?? 1;
    if (consumer?.type !== 'simulcast' || layers < 2) return;
    this.#adapter = new BitrateAdapter({
      consumer,
      transport: this.transport,
      producer: this.stream.producers.find((producer) => producer.kind === 'video'),
      target: simulcastTarget(consumer, layers),
      logger: this.logger.child({ session: this.id }),
    });
  }

  /** The simulcast layer the adapter lets this viewer have now, and the loss it last saw. */
  get adaptation(): { level: number; fractionLost: number | undefined } | undefined {
    return this.#adapter
      ? { level: this.#adapter.level, fractionLost: this.#adapter.lastFractionLost }
      : undefined;
  }

  protected override onClose(): void {
    this.#adapter?.close();
    this.stream.release(this.routerKey);
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
      throw new RtccdnError('INVALID_SDP', 'WHEP offer has no recvonly/sendrecv audio or video section');
    }

    const plan = planViewer(receivable, stream.producers, stream.origin.router.rtpCapabilities);
    const streamRouter = await stream.acquire(worker, plan, options.maxNumberings);
    const { router } = streamRouter;
    let transport: types.WebRtcTransport;
    try {
      transport = await Session.createTransport(router, worker);
    } catch (error) {
      stream.release(streamRouter.key);
      throw error;
    }
    try {
      const { localSetup, remoteRole } = negotiateDtlsRole(offer.setup);
      await transport.connect({ dtlsParameters: { role: remoteRole, fingerprints: [offer.fingerprint] } });
      const sections: AnswerSection[] = [];
      const consumers: types.Consumer[] = [];
      for (const media of offer.media) {
        const track = plan.tracks.find((candidate) => candidate.media === media);
        // The fan-out router's copy of the producer sits at the same index as the original.
        const producer = track && streamRouter.producers[stream.producers.indexOf(track.producer)];
        if (!track || !producer) {
          sections.push({ media });
          continue;
        }
        // RTX only where the router's RTX payload type is the viewer's (see payloadTypes.ts);
        // otherwise the viewer would take retransmissions for another codec.
        const enableRtx =
          track.rtxPayloadType !== undefined &&
          rtxPayloadTypeOf(router.rtpCapabilities, track.payloadType) === track.rtxPayloadType;
        const consumer = await transport.consume({
          producerId: producer.id,
          rtpCapabilities: viewerRtpCapabilities(media),
          paused: true,
          mid: media.mid,
          enableRtx,
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
        streamRouter.key,
        answer,
        logger.child({ stream: stream.name, protocol: 'whep' }),
        connectTimeoutMs,
      );
    } catch (error) {
      transport.close();
      stream.release(streamRouter.key);
      if (error instanceof TypeError)
        throw new RtccdnError('INVALID_SDP', `offer rejected by the media engine: ${error.message}`);
      throw error;
    }
  }
}
