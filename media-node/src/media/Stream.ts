import type { types } from 'mediasoup';
import type { Logger } from '../logger.js';
import { TypedEmitter } from '../TypedEmitter.js';
import { ROUTER_MEDIA_CODECS } from './codecs.js';
import type { MediaWorker } from './MediaWorker.js';

/** The producers a viewer on one worker consumes from: the originals or their pipe copies. */
export interface StreamRouter {
  worker: MediaWorker;
  router: types.Router;
  producers: types.Producer[];
}

export type StreamEvents = {
  close: [reason: string];
};

/**
 * A live stream: the publisher's router (on the publisher's worker) and one fan-out router per
 * other worker that has viewers, fed through pipeToRouter. Viewers of one stream thereby
 * spread over all cores instead of piling onto the publisher's.
 */
export class Stream extends TypedEmitter<StreamEvents> {
  readonly name: string;
  readonly origin: StreamRouter;
  readonly #fanout = new Map<MediaWorker, Promise<StreamRouter>>();
  readonly #logger: Logger;
  #closed = false;

  private constructor(name: string, origin: StreamRouter, logger: Logger) {
    super();
    this.name = name;
    this.origin = origin;
    this.#logger = logger;
    origin.router.observer.once('close', () => this.close('origin router closed'));
  }

  /** Creates the stream's origin router on `worker`; producers are added by the publisher. */
  static async create(name: string, worker: MediaWorker, logger: Logger): Promise<Stream> {
    const router = await worker.worker.createRouter({ mediaCodecs: ROUTER_MEDIA_CODECS, appData: { stream: name } });
    return new Stream(name, { worker, router, producers: [] }, logger.child({ stream: name }));
  }

  get closed(): boolean {
    return this.#closed;
  }

  get producers(): readonly types.Producer[] {
    return this.origin.producers;
  }

  addProducer(producer: types.Producer): void {
    this.origin.producers.push(producer);
  }

  /** The router (and producers) viewers placed on `worker` attach to. */
  routerFor(worker: MediaWorker): Promise<StreamRouter> {
    if (this.#closed) return Promise.reject(new Error(`stream ${this.name} is closed`));
    if (worker === this.origin.worker) return Promise.resolve(this.origin);
    let pending = this.#fanout.get(worker);
    if (!pending) {
      pending = this.#createFanout(worker);
      this.#fanout.set(worker, pending);
      pending.catch(() => this.#fanout.delete(worker));
    }
    return pending;
  }

  async #createFanout(worker: MediaWorker): Promise<StreamRouter> {
    const router = await worker.worker.createRouter({
      mediaCodecs: ROUTER_MEDIA_CODECS,
      appData: { stream: this.name, fanout: true },
    });
    try {
      const producers: types.Producer[] = [];
      for (const producer of this.origin.producers) {
        const { pipeProducer } = await this.origin.router.pipeToRouter({ producerId: producer.id, router });
        if (!pipeProducer) throw new Error(`pipeToRouter returned no producer for ${producer.kind}`);
        producers.push(pipeProducer);
      }
      if (this.#closed) throw new Error(`stream ${this.name} closed while piping`);
      // A fan-out worker that dies takes its router along; the next viewer re-creates it.
      router.observer.once('close', () => this.#fanout.delete(worker));
      this.#logger.debug({ worker: worker.index }, 'fan-out router created');
      return { worker, router, producers };
    } catch (error) {
      router.close();
      throw error;
    }
  }

  /** Closes every router of the stream, which closes all its transports (publisher and viewers). */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#fanout.values()) {
      pending.then((fanout) => fanout.router.close()).catch(() => undefined);
    }
    this.#fanout.clear();
    this.origin.router.close();
    this.#logger.info({ reason }, 'stream closed');
    this.emit('close', reason);
  }
}
