import { randomUUID } from 'node:crypto';
import type { types } from 'mediasoup';
import type { OpenPipeEndpoint, RelayResponse } from '../../contract/internal-api.js';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaWorker } from '../media/MediaWorker.js';
import { DEFAULT_PLAN_KEY } from '../media/payloadTypes.js';
import type { Stream, StreamRouter } from '../media/Stream.js';

/** Where this node's pipe transports listen and what address they announce. */
export interface PipeListen {
  listenIp: string;
  announcedAddress: string;
  portRange: [number, number];
}

export interface RelayOutOptions {
  stream: Stream;
  worker: MediaWorker;
  /** The requesting node's pipe endpoint. */
  remote: OpenPipeEndpoint;
  requester: string;
  pipe: PipeListen;
  logger: Logger;
}

export type RelayOutEvents = {
  close: [reason: string];
};

export function pipeListenInfo(pipe: PipeListen): types.TransportListenInfo {
  return {
    protocol: 'udp',
    ip: pipe.listenIp,
    announcedAddress: pipe.announcedAddress,
    portRange: { min: pipe.portRange[0], max: pipe.portRange[1] },
  };
}

/**
 * The sending end of a relay: an SRTP PipeTransport on one of the stream's routers with a
 * pipe consumer per producer, feeding another node. It holds a reference on the stream (like a
 * viewer does), so a relaying edge keeps its upstream while it has downstream edges.
 */
export class RelayOut extends TypedEmitter<RelayOutEvents> {
  readonly id = randomUUID();
  readonly streamName: string;
  readonly requester: string;
  readonly transport: types.PipeTransport;
  readonly consumers: types.Consumer[];
  readonly #stream: Stream;
  readonly #routerKey: string;
  readonly #logger: Logger;
  #closed = false;

  private constructor(
    stream: Stream,
    streamRouter: StreamRouter,
    transport: types.PipeTransport,
    consumers: types.Consumer[],
    requester: string,
    logger: Logger,
  ) {
    super();
    this.streamName = stream.name;
    this.requester = requester;
    this.transport = transport;
    this.consumers = consumers;
    this.#stream = stream;
    this.#routerKey = streamRouter.key;
    this.#logger = logger;
    transport.observer.once('close', () => this.close('transport-closed'));
    for (const consumer of consumers) consumer.once('producerclose', () => this.close('stream-ended'));
  }

  static async create(options: RelayOutOptions): Promise<RelayOut> {
    const { stream, worker, remote, requester, pipe, logger } = options;
    const streamRouter = await stream.acquire(worker, { key: DEFAULT_PLAN_KEY, planned: [] });
    let transport: types.PipeTransport | undefined;
    try {
      transport = await streamRouter.router.createPipeTransport({
        listenInfo: pipeListenInfo(pipe),
        enableSrtp: true,
        enableRtx: true,
        appData: { relayTo: requester },
      });
      await transport.connect({ ip: remote.ip, port: remote.port, srtpParameters: remote.srtpParameters });
      const consumers: types.Consumer[] = [];
      for (const producer of streamRouter.producers) {
        consumers.push(await transport.consume({ producerId: producer.id }));
      }
      return new RelayOut(
        stream,
        streamRouter,
        transport,
        consumers,
        requester,
        logger.child({ stream: stream.name, relayTo: requester }),
      );
    } catch (error) {
      transport?.close();
      stream.release(streamRouter.key);
      throw error;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** What the requester needs to connect and produce (the SRTP key in the clear: seal it to send). */
  describe(): Omit<RelayResponse, 'pipe'> & { pipe: OpenPipeEndpoint } {
    const { localIp, localAddress, localPort } = this.transport.tuple;
    return {
      relayId: this.id,
      pipe: {
        ip: localAddress ?? localIp,
        port: localPort,
        // enableSrtp guarantees them.
        srtpParameters: this.transport.srtpParameters!,
      },
      producers: this.consumers.map((consumer) => ({
        id: consumer.producerId,
        kind: consumer.kind,
        rtpParameters: consumer.rtpParameters,
        paused: consumer.producerPaused,
      })),
    };
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.transport.closed) this.transport.close();
    this.#stream.release(this.#routerKey);
    this.#logger.info({ relay: this.id, reason }, 'relay to downstream node closed');
    this.emit('close', reason);
  }
}
