import type { types } from 'mediasoup';
import {
  InternalCallError,
  type InternalClient,
  openSrtp,
  RELAYS_PATH,
  type RelayResponse,
  RelayResponseSchema,
  sealSrtp,
} from '../../contract/internal-api.js';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import { PUBLISHABLE_CODECS } from '../media/codecs.js';
import type { MediaWorker } from '../media/MediaWorker.js';
import { type PipeListen, pipeListenInfo } from './RelayOut.js';

/** A node a stream can be pulled from: its origin, or an edge that already relays it. */
export interface RelaySource {
  nodeId: string;
  internalUrl: string;
}

export interface UpstreamLinkOptions {
  streamName: string;
  source: RelaySource;
  worker: MediaWorker;
  client: InternalClient;
  pipe: PipeListen;
  selfNodeId: string;
  /** Bound of the relay request (the client's own timeout if unset). */
  timeoutMs?: number;
  logger: Logger;
}

export type UpstreamLinkEvents = {
  close: [reason: string];
};

/**
 * The receiving end of a relay: an ingest router with an SRTP PipeTransport connected to the
 * source node's RelayOut, and the stream's producers piped in. Closing it closes the ingest
 * router (and with it everything on it) and tells the source to close its end.
 */
export class UpstreamLink extends TypedEmitter<UpstreamLinkEvents> {
  readonly streamName: string;
  readonly source: RelaySource;
  readonly router: types.Router;
  readonly transport: types.PipeTransport;
  readonly producers: types.Producer[];
  readonly relayId: string;
  readonly #directTransport: types.DirectTransport;
  readonly #client: InternalClient;
  readonly #logger: Logger;
  #closed = false;

  private constructor(
    options: UpstreamLinkOptions,
    router: types.Router,
    transport: types.PipeTransport,
    directTransport: types.DirectTransport,
    producers: types.Producer[],
    relayId: string,
  ) {
    super();
    this.streamName = options.streamName;
    this.source = options.source;
    this.router = router;
    this.transport = transport;
    this.#directTransport = directTransport;
    this.producers = producers;
    this.relayId = relayId;
    this.#client = options.client;
    this.#logger = options.logger.child({ stream: options.streamName, upstream: options.source.nodeId });
    router.observer.once('close', () => this.close('ingest router closed'));
  }

  static async open(options: UpstreamLinkOptions): Promise<UpstreamLink> {
    const { streamName, source, worker, client, pipe, selfNodeId, timeoutMs } = options;
    // Any numbering works here: the pipe producers are re-numbered by the stable router later.
    const router = await worker.worker.createRouter({
      mediaCodecs: PUBLISHABLE_CODECS,
      appData: { stream: streamName, ingestFrom: source.nodeId },
    });
    let relay: RelayResponse | undefined;
    try {
      const transport = await router.createPipeTransport({
        listenInfo: pipeListenInfo(pipe),
        enableSrtp: true,
        enableRtx: true,
        appData: { relayFrom: source.nodeId },
      });
      const { localIp, localAddress, localPort } = transport.tuple;
      const reply = await client.request<unknown>(
        'POST',
        source,
        RELAYS_PATH,
        {
          stream: streamName,
          nodeId: selfNodeId,
          pipe: {
            ip: localAddress ?? localIp,
            port: localPort,
            // enableSrtp guarantees them.
            srtpParameters: sealSrtp(client.sealer, transport.srtpParameters!),
          },
        },
        timeoutMs === undefined ? {} : { timeoutMs },
      );
      const parsed = RelayResponseSchema.safeParse(reply);
      if (!parsed.success) {
        throw new InternalCallError(
          `relay response from ${source.nodeId} is invalid: ${parsed.error.issues[0]?.message}`,
          undefined,
        );
      }
      relay = parsed.data;
      await transport.connect({
        ip: relay.pipe.ip,
        port: relay.pipe.port,
        srtpParameters: openSrtp(client.sealer, relay.pipe.srtpParameters),
      });
      const producers: types.Producer[] = [];
      for (const upstream of relay.producers) {
        producers.push(
          // A fresh id, not the source's: a new link to the same source (it dropped our relay) is
          // opened while the old one still holds producers with the source's ids, and mediasoup
          // refuses a second producer with an id its worker already has.
          await transport.produce({
            kind: upstream.kind,
            // Checked by mediasoup itself as it produces (the wire schema only checks the shape).
            rtpParameters: upstream.rtpParameters as unknown as types.RtpParameters,
            paused: upstream.paused,
          }),
        );
      }
      const directTransport = await router.createDirectTransport();
      return new UpstreamLink(options, router, transport, directTransport, producers, relay.relayId);
    } catch (error) {
      router.close();
      if (relay) void deleteRelay(client, source, relay.relayId).catch(() => undefined);
      throw error;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * A consumer handing this link's `producer` to Node.js packet by packet. A simulcast producer
   * is consumed as a pipe, which passes every layer on (each with its SSRC, listed in the
   * consumer's encodings) instead of the one a simulcast consumer would pick.
   */
  consumeDirect(producer: types.Producer): Promise<types.Consumer> {
    return this.#directTransport.consume({
      producerId: producer.id,
      rtpCapabilities: this.router.rtpCapabilities,
      enableRtx: false,
      pipe: (producer.rtpParameters.encodings?.length ?? 1) > 1,
    });
  }

  /**
   * Asks the source whether it still serves this relay: resolves if so, throws the
   * InternalCallError otherwise (`unreachable` set when the node did not answer at all, code
   * RELAY_NOT_FOUND when it dropped the relay).
   */
  async probe(timeoutMs: number): Promise<void> {
    await this.#client.request(
      'GET',
      this.source,
      `${RELAYS_PATH}/${encodeURIComponent(this.relayId)}`,
      undefined,
      { timeoutMs },
    );
  }

  /** Bytes received over the pipe so far: a link that stops growing is dead upstream. */
  async bytesReceived(): Promise<number> {
    const [stats] = await this.transport.getStats();
    return stats?.bytesReceived ?? 0;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.router.closed) this.router.close();
    void deleteRelay(this.#client, this.source, this.relayId).catch((error: Error) =>
      // The source may be gone (that is often why we close): its side closes with it.
      this.#logger.debug({ err: error }, 'upstream relay already gone'),
    );
    this.#logger.info({ relay: this.relayId, reason }, 'upstream link closed');
    this.emit('close', reason);
  }
}

async function deleteRelay(client: InternalClient, source: RelaySource, relayId: string): Promise<void> {
  await client.request('DELETE', source, `${RELAYS_PATH}/${encodeURIComponent(relayId)}`);
}
