import type { types } from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaWorker } from './MediaWorker.js';
import { DEFAULT_PLAN_KEY, type PlannedCodec, routerMediaCodecs, type ViewerPlan } from './payloadTypes.js';

/** A router of the stream and the producers a viewer consumes from on it. */
export interface StreamRouter {
  /** `<worker index>/<plan key>`: what release() takes back. */
  key: string;
  worker: MediaWorker;
  router: types.Router;
  producers: types.Producer[];
}

export type StreamEvents = {
  close: [reason: string];
  /** Nothing (viewer, relay) holds the stream any more. */
  idle: [];
  /** Something holds the stream again after it was idle. */
  inuse: [];
};

interface FanoutEntry {
  worker: MediaWorker;
  pending: Promise<StreamRouter>;
  viewers: number;
  lingerTimer?: NodeJS.Timeout;
}

/** A viewer's payload-type numbering would exceed the stream's MAX_NUMBERINGS_PER_STREAM. */
export class NumberingLimitError extends Error {
  override name = 'NumberingLimitError';
}

/**
 * A live stream: the publisher's (origin) router plus fan-out routers fed through
 * pipeToRouter, one per (worker, payload-type numbering) that has viewers. Viewers of one
 * stream thereby spread over all cores, and a viewer that numbers codecs differently from
 * the default gets a router that speaks its numbering (see payloadTypes.ts).
 */
export class Stream extends TypedEmitter<StreamEvents> {
  readonly name: string;
  readonly origin: StreamRouter;
  /** The numbering of the origin router, reused by every default fan-out router. */
  readonly #defaultCodecs: PlannedCodec[];
  readonly #fanout = new Map<string, FanoutEntry>();
  readonly #fanoutLingerMs: number;
  readonly #logger: Logger;
  #originViewers = 0;
  /** Every acquire() not yet released, on any router. */
  #references = 0;
  #closed = false;

  private constructor(
    name: string,
    origin: StreamRouter,
    defaultCodecs: PlannedCodec[],
    logger: Logger,
    fanoutLingerMs: number,
  ) {
    super();
    this.name = name;
    this.origin = origin;
    this.#defaultCodecs = defaultCodecs;
    this.#fanoutLingerMs = fanoutLingerMs;
    this.#logger = logger;
    origin.router.observer.once('close', () => this.close('origin router closed'));
  }

  /**
   * Creates the stream's origin router on `worker`, numbering `codecs` as planned; the
   * publisher adds the producers.
   */
  static async create(
    name: string,
    worker: MediaWorker,
    codecs: PlannedCodec[],
    logger: Logger,
    fanoutLingerMs: number,
  ): Promise<Stream> {
    const router = await worker.worker.createRouter({
      mediaCodecs: routerMediaCodecs(codecs),
      appData: { stream: name },
    });
    return new Stream(
      name,
      { key: `${worker.index}/${DEFAULT_PLAN_KEY}`, worker, router, producers: [] },
      codecs,
      logger.child({ stream: name }),
      fanoutLingerMs,
    );
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

  /**
   * The router (and producers) for a viewer on `worker` numbering codecs as `plan` says.
   * The caller holds a reference until it calls release(key), which lets idle fan-out
   * routers go. On rejection no reference is held.
   */
  acquire(
    worker: MediaWorker,
    plan: Pick<ViewerPlan, 'key' | 'planned'>,
    maxNumberings = Number.POSITIVE_INFINITY,
  ): Promise<StreamRouter> {
    if (this.#closed) return Promise.reject(new Error(`stream ${this.name} is closed`));
    if (
      plan.key !== DEFAULT_PLAN_KEY &&
      !this.#numberings().has(plan.key) &&
      this.#numberings().size >= maxNumberings
    ) {
      // Each numbering costs routers and pipes on every worker it is watched on: a stranger
      // offering ever new payload-type numberings must not make the stream build them all.
      return Promise.reject(
        new NumberingLimitError(
          `stream ${this.name} already serves ${maxNumberings} payload-type numberings other than the default; offer the default one (as browsers do)`,
        ),
      );
    }
    this.#reference();
    if (plan.key === DEFAULT_PLAN_KEY && worker === this.origin.worker) {
      this.#originViewers++;
      return Promise.resolve(this.origin);
    }
    const key = `${worker.index}/${plan.key}`;
    let entry = this.#fanout.get(key);
    if (!entry) {
      const codecs = plan.key === DEFAULT_PLAN_KEY ? this.#defaultCodecs : plan.planned;
      const pending = this.#createFanout(key, worker, codecs);
      const created: FanoutEntry = { worker, pending, viewers: 0 };
      entry = created;
      this.#fanout.set(key, created);
      pending.catch(() => {
        if (this.#fanout.get(key) === created) this.#fanout.delete(key);
      });
    }
    clearTimeout(entry.lingerTimer);
    entry.lingerTimer = undefined;
    entry.viewers++;
    const held = entry;
    return entry.pending.catch((error: Error) => {
      held.viewers--;
      this.#dereference();
      throw error;
    });
  }

  /** The non-default numberings served now (on any worker). */
  #numberings(): Set<string> {
    const keys = new Set<string>();
    for (const key of this.#fanout.keys()) {
      const plan = key.slice(key.indexOf('/') + 1);
      if (plan !== DEFAULT_PLAN_KEY) keys.add(plan);
    }
    return keys;
  }

  /** Viewers and relays holding the stream. */
  get references(): number {
    return this.#references;
  }

  #reference(): void {
    this.#references++;
    if (this.#references === 1) this.emit('inuse');
  }

  #dereference(): void {
    this.#references = Math.max(0, this.#references - 1);
    if (this.#references === 0 && !this.#closed) this.emit('idle');
  }

  release(key: string): void {
    if (key === this.origin.key) {
      this.#originViewers = Math.max(0, this.#originViewers - 1);
      this.#dereference();
      return;
    }
    // Every successful acquire() is released exactly once, even if its router died meanwhile.
    this.#dereference();
    const entry = this.#fanout.get(key);
    if (!entry) return;
    entry.viewers = Math.max(0, entry.viewers - 1);
    if (entry.viewers > 0 || this.#closed) return;
    // Keep the pipe a little: viewers churn, and re-piping costs a key frame wait.
    entry.lingerTimer = setTimeout(() => {
      if (this.#fanout.get(key) !== entry || entry.viewers > 0) return;
      this.#fanout.delete(key);
      entry.pending.then((fanout) => fanout.router.close()).catch(() => undefined);
      this.#logger.debug({ router: key }, 'idle fan-out router closed');
    }, this.#fanoutLingerMs);
    entry.lingerTimer.unref();
  }

  /** Keys of the fan-out routers currently open (for tests and introspection). */
  get fanoutRouters(): string[] {
    return [...this.#fanout.keys()];
  }

  /** Viewers attached to each router, origin included (for introspection). */
  get viewerCounts(): Record<string, number> {
    const counts: Record<string, number> = { [this.origin.key]: this.#originViewers };
    for (const [key, entry] of this.#fanout) counts[key] = entry.viewers;
    return counts;
  }

  async #createFanout(key: string, worker: MediaWorker, codecs: PlannedCodec[]): Promise<StreamRouter> {
    const router = await worker.worker.createRouter({
      mediaCodecs: routerMediaCodecs(codecs),
      appData: { stream: this.name, fanout: key },
    });
    try {
      const producers: types.Producer[] = [];
      for (const producer of this.origin.producers) {
        // New ids: a fan-out router may live on the origin's own worker (another numbering),
        // and producer ids are unique per worker.
        const { pipeProducer } = await this.origin.router.pipeToRouter({
          producerId: producer.id,
          router,
          keepId: false,
        });
        if (!pipeProducer) throw new Error(`pipeToRouter returned no producer for ${producer.kind}`);
        producers.push(pipeProducer);
      }
      if (this.#closed) throw new Error(`stream ${this.name} closed while piping`);
      // A fan-out worker that dies takes its router along; the next viewer re-creates it.
      router.observer.once('close', () => {
        const entry = this.#fanout.get(key);
        if (entry && entry.worker === worker) {
          clearTimeout(entry.lingerTimer);
          this.#fanout.delete(key);
        }
      });
      this.#logger.debug({ router: key }, 'fan-out router created');
      return { key, worker, router, producers };
    } catch (error) {
      router.close();
      throw error;
    }
  }

  /** Closes every router of the stream, which closes all its transports (publisher and viewers). */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#logger.info({ reason }, 'stream closed');
    // Listeners first: sessions end with the stream's reason before their routers go away.
    this.emit('close', reason);
    for (const entry of this.#fanout.values()) {
      clearTimeout(entry.lingerTimer);
      entry.pending.then((fanout) => fanout.router.close()).catch(() => undefined);
    }
    this.#fanout.clear();
    this.origin.router.close();
  }
}
