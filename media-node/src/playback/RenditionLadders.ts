import type { Logger } from '../logger.js';
import type { Stream } from '../media/Stream.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { Profile } from '../transcode/profiles.js';
import { RenditionLadder } from './RenditionLadder.js';
import type { RenditionRouter } from './RenditionRouter.js';

export interface RenditionLaddersOptions {
  profiles: readonly Profile[];
  renditions: RenditionRouter;
  pool: WorkerPool;
  fanoutLingerMs: number;
  /** A ladder nobody watches is kept this long (viewers churn; rebuilding costs key frames). */
  lingerMs: number;
  logger: Logger;
}

/**
 * The rendition ladders of this node, one per source stream watched without `?profile`: built on
 * the first such viewer (which starts the renditions, or joins running ones), kept while watched
 * and `lingerMs` after, closed with their source.
 */
export class RenditionLadders {
  readonly #options: RenditionLaddersOptions;
  readonly #ladders = new Map<string, Promise<RenditionLadder | undefined>>();
  #closed = false;

  constructor(options: RenditionLaddersOptions) {
    this.#options = options;
  }

  /**
   * The stream an adaptive viewer of `source` consumes: its ladder, or the source itself when
   * there is no ladder to build (no profiles, a simulcast source, no rendition to be had).
   */
  async streamFor(source: Stream, clientIp: string): Promise<Stream> {
    if (this.#closed || this.#options.profiles.length === 0) return source;
    const existing = this.#ladders.get(source.name);
    if (existing) {
      const ladder = await existing.catch(() => undefined);
      if (ladder && !ladder.closed && ladder.source === source) return ladder.stream;
      if (this.#ladders.get(source.name) === existing) this.#ladders.delete(source.name);
    }
    const pending = this.#ladders.get(source.name) ?? this.#start(source, clientIp);
    try {
      return (await pending)?.stream ?? source;
    } catch (error) {
      // Renditions are a bonus: a viewer whose ladder cannot be built still gets the source.
      this.#options.logger.warn(
        { err: error, stream: source.name },
        'rendition ladder failed; playing the source',
      );
      return source;
    }
  }

  #start(source: Stream, clientIp: string): Promise<RenditionLadder | undefined> {
    const pending = this.#build(source, clientIp);
    this.#ladders.set(source.name, pending);
    const forget = () => {
      if (this.#ladders.get(source.name) === pending) this.#ladders.delete(source.name);
    };
    pending.then((ladder) => ladder ?? forget(), forget);
    return pending;
  }

  /** Ladders alive now: source name → rungs (introspection). */
  async rungs(): Promise<Record<string, string[]>> {
    const result: Record<string, string[]> = {};
    for (const [name, pending] of this.#ladders) {
      const ladder = await pending.catch(() => undefined);
      if (ladder && !ladder.closed) result[name] = ladder.rungNames;
    }
    return result;
  }

  async #build(source: Stream, clientIp: string): Promise<RenditionLadder | undefined> {
    const { profiles, renditions, pool, fanoutLingerMs, logger } = this.#options;
    const resolved = await Promise.all(
      profiles.map(async (profile) => {
        try {
          const stream = await renditions.resolve(source.name, profile.name, clientIp);
          return stream && !stream.closed ? { stream, pixels: profile.width * profile.height } : undefined;
        } catch (error) {
          logger.warn(
            { err: error, stream: source.name, profile: profile.name },
            'rendition for the ladder refused',
          );
          return undefined;
        }
      }),
    );
    const ladder = await RenditionLadder.create({
      source,
      renditions: resolved.filter((entry) => entry !== undefined),
      worker: pool.leastLoaded(),
      fanoutLingerMs,
      logger,
    });
    if (!ladder) return undefined;
    if (this.#closed) {
      ladder.close('node closing');
      return undefined;
    }
    let lingerTimer: NodeJS.Timeout | undefined;
    ladder.stream.on('idle', () => {
      lingerTimer = setTimeout(() => ladder.close('unwatched'), this.#options.lingerMs);
      lingerTimer.unref();
    });
    ladder.stream.on('inuse', () => clearTimeout(lingerTimer));
    ladder.once('close', () => {
      clearTimeout(lingerTimer);
      void this.#forget(source.name, ladder);
    });
    source.once('close', (reason) => ladder.close(`source ended: ${reason}`));
    return ladder;
  }

  async #forget(name: string, ladder: RenditionLadder): Promise<void> {
    const pending = this.#ladders.get(name);
    if (pending && (await pending.catch(() => undefined)) === ladder && this.#ladders.get(name) === pending) {
      this.#ladders.delete(name);
    }
  }

  close(reason: string): void {
    this.#closed = true;
    for (const pending of this.#ladders.values()) {
      void pending.then((ladder) => ladder?.close(reason)).catch(() => undefined);
    }
    this.#ladders.clear();
  }
}
