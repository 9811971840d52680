/**
 * A list-watch cache of one resource type (optionally one namespace and a label selector),
 * written for the failure modes of a real API server rather than taken from client-node.
 * 1.4.0's informer stopped on a watch error, relisted without backoff on 410 and never noticed
 * a silent connection. 2.0.1 (read in its dist/cache.js and watch.js) backs off reconnects
 * (1 s doubling to 30 s, no jitter) and aborts a watch after 30 s without data, but its
 * informer still stops on any other watch or list error (it calls the error handlers and
 * waits for start()), it neither asks for bookmarks nor sets a server-side timeout (so quiet
 * watches are torn down every 30 s), and it has no periodic relist or resync. Hence:
 *
 * - list, then watch from the list's resourceVersion with bookmarks; a watch the server ends
 *   (its timeout) continues from the last version seen, without a new list;
 * - 410 Gone / Expired (the version fell out of the server's window): list again. The first
 *   relist is immediate; repeated ones back off, so a flapping server is not hammered;
 * - any other failure: exponential backoff with jitter, then watch (or list) again;
 * - a watchdog restarts a watch that has been silent (no event, no bookmark) for longer than
 *   its server-side timeout plus a grace: half-open TCP connections stall silently otherwise;
 * - a periodic relist (and a resync that re-delivers every cached object to the handlers)
 *   repairs whatever a missed event could have left wrong.
 *
 * Handlers receive events for objects that changed; a relist delivers the difference between
 * the old and the new contents (objects gone meanwhile arrive as `deleted`).
 */

import type { KubeClient, WatchEvent } from '../kube/client.js';
import { isGone } from '../kube/errors.js';
import { type KubeObject, KubeObjectSchema, keyOf, objectKey } from '../kube/objects.js';
import { type ResourceType, resourceName } from '../kube/resources.js';
import type { Logger } from '../logger.js';
import { Backoff, jittered, randomBetween, sleep } from './backoff.js';

export type CacheEventType = 'added' | 'modified' | 'deleted' | 'resync';

export interface CacheEvent {
  type: CacheEventType;
  object: KubeObject;
  /** The cached object before a `modified` event. */
  previous?: KubeObject | undefined;
}

export type CacheHandler = (event: CacheEvent) => void;

export interface ListWatchOptions {
  client: KubeClient;
  type: ResourceType;
  /** Only this namespace; all namespaces when undefined. */
  namespace?: string | undefined;
  labelSelector?: string | undefined;
  logger: Logger;
  /** Re-deliver every cached object as `resync` this often; 0 disables. Default 10 min. */
  resyncMs?: number;
  /** List from scratch this often even when watches run fine; 0 disables. Default 30 min. */
  relistMs?: number;
  /** Server-side timeout of each watch, randomised in [t, 2t] seconds. Default 300. */
  watchTimeoutSeconds?: number;
  /** A watch silent for its timeout plus this long is restarted. Default 30 s. */
  watchdogGraceMs?: number;
  /** Retry delays after failures. Default 500 ms doubling to 30 s. */
  backoff?: { baseMs: number; maxMs: number };
  /** Counts restarts by reason, e.g. for a metric. */
  onRestart?: (reason: RestartReason) => void;
}

export type RestartReason = 'gone' | 'stalled' | 'error' | 'closed' | 'relist';

/** Counters, mostly for tests and metrics. */
export interface ListWatchStats {
  lists: number;
  watches: number;
  restarts: Record<RestartReason, number>;
}

class WatchStalledError extends Error {
  override name = 'WatchStalledError';
}

export class ListWatch {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  readonly labelSelector: string | undefined;
  readonly stats: ListWatchStats = {
    lists: 0,
    watches: 0,
    restarts: { gone: 0, stalled: 0, error: 0, closed: 0, relist: 0 },
  };
  readonly #client: KubeClient;
  readonly #logger: Logger;
  readonly #resyncMs: number;
  readonly #relistMs: number;
  readonly #watchTimeoutSeconds: number;
  readonly #watchdogGraceMs: number;
  readonly #backoff: Backoff;
  readonly #onRestart: ((reason: RestartReason) => void) | undefined;
  readonly #cache = new Map<string, KubeObject>();
  readonly #handlers: CacheHandler[] = [];
  readonly #stop = new AbortController();
  readonly #syncWaiters: (() => void)[] = [];
  #resourceVersion = '';
  #needList = true;
  #synced = false;
  #watchAbort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #relistTimer: NodeJS.Timeout | undefined;

  constructor(options: ListWatchOptions) {
    this.type = options.type;
    this.namespace = options.namespace;
    this.labelSelector = options.labelSelector;
    this.#client = options.client;
    this.#logger = options.logger.child({
      resource: resourceName(options.type),
      ...(options.namespace ? { namespace: options.namespace } : {}),
      ...(options.labelSelector ? { selector: options.labelSelector } : {}),
    });
    this.#resyncMs = options.resyncMs ?? 10 * 60_000;
    this.#relistMs = options.relistMs ?? 30 * 60_000;
    this.#watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.#watchdogGraceMs = options.watchdogGraceMs ?? 30_000;
    this.#backoff = new Backoff(options.backoff ?? { baseMs: 500, maxMs: 30_000 });
    this.#onRestart = options.onRestart;
  }

  /** The initial list has completed (the cache can be read). */
  get synced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion the next watch starts from. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** Registers a handler; objects already cached are delivered to it as `added`. */
  addHandler(handler: CacheHandler): void {
    this.#handlers.push(handler);
    for (const object of this.#cache.values()) this.#deliver(handler, { type: 'added', object });
  }

  get(namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#cache.get(objectKey(namespace, name));
  }

  /** Cached objects, optionally of one namespace. */
  list(namespace?: string): KubeObject[] {
    const all = [...this.#cache.values()];
    return namespace === undefined ? all : all.filter((object) => object.metadata.namespace === namespace);
  }

  start(): void {
    if (this.#loop) return;
    this.#loop = this.#run();
    if (this.#resyncMs > 0) {
      this.#resyncTimer = setInterval(() => this.#resync(), jittered(this.#resyncMs));
      this.#resyncTimer.unref();
    }
    if (this.#relistMs > 0) {
      this.#relistTimer = setInterval(() => this.requestRelist('relist'), jittered(this.#relistMs));
      this.#relistTimer.unref();
    }
  }

  /** Resolves true once synced, false if stopped (or `signal` aborted) first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.#synced) return Promise.resolve(true);
    if (this.#stop.signal.aborted || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (synced: boolean): void => {
        signal?.removeEventListener('abort', onAbort);
        this.#stop.signal.removeEventListener('abort', onAbort);
        resolve(synced);
      };
      const onAbort = (): void => finish(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#stop.signal.addEventListener('abort', onAbort, { once: true });
      this.#syncWaiters.push(() => finish(true));
    });
  }

  /** Ends the current watch and lists again (also used by the periodic relist). */
  requestRelist(reason: RestartReason = 'relist'): void {
    this.#needList = true;
    this.#restarted(reason);
    this.#watchAbort?.abort();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#resyncTimer);
    clearInterval(this.#relistTimer);
    this.#watchAbort?.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const stopped = this.#stop.signal;
    let failing: { since: number } | undefined;
    let goneInARow = 0;
    while (!stopped.aborted) {
      try {
        if (this.#needList) await this.#relist();
        const startedAt = Date.now();
        await this.#watchOnce();
        goneInARow = 0;
        if (failing) {
          this.#logger.info({ failingForMs: Date.now() - failing.since }, 'watch recovered');
          failing = undefined;
        }
        // A server that closes every watch at once must not turn this into a tight loop: short
        // watches keep (and grow) the backoff.
        const shortLived = Date.now() - startedAt < 1000;
        if (!shortLived) this.#backoff.reset();
        if (!stopped.aborted && !this.#needList) {
          this.#restarted('closed');
          if (shortLived) await sleep(this.#backoff.next(), stopped);
        }
      } catch (error) {
        if (stopped.aborted) break;
        if (error instanceof WatchStalledError) {
          this.#restarted('stalled');
          this.#logger.warn({ resourceVersion: this.#resourceVersion }, error.message);
          continue;
        }
        if (isGone(error)) {
          this.#needList = true;
          this.#restarted('gone');
          goneInARow++;
          this.#logger.info(
            { resourceVersion: this.#resourceVersion },
            'resourceVersion too old (410): listing again',
          );
          if (goneInARow > 1) await sleep(this.#backoff.next(), stopped);
          continue;
        }
        this.#restarted('error');
        const delay = this.#backoff.next();
        if (!failing) {
          failing = { since: Date.now() };
          this.#logger.warn({ err: error, retryInMs: delay }, 'list/watch failed; retrying with backoff');
        } else {
          this.#logger.debug({ err: error, retryInMs: delay }, 'list/watch still failing');
        }
        await sleep(delay, stopped);
      }
    }
  }

  async #relist(): Promise<void> {
    const { items, resourceVersion } = await this.#client.list(this.type, this.namespace, {
      labelSelector: this.labelSelector,
      signal: this.#stop.signal,
    });
    if (this.#stop.signal.aborted) return;
    this.stats.lists++;
    const fresh = new Map<string, KubeObject>();
    for (const item of items) {
      const object = this.#parse(item);
      if (object) fresh.set(keyOf(object), object);
    }
    const previous = new Map(this.#cache);
    this.#cache.clear();
    for (const [key, object] of fresh) this.#cache.set(key, object);
    this.#resourceVersion = resourceVersion;
    this.#needList = false;
    for (const [key, object] of fresh) {
      const old = previous.get(key);
      if (!old) this.#emit({ type: 'added', object });
      else if (old.metadata.resourceVersion !== object.metadata.resourceVersion) {
        this.#emit({ type: 'modified', object, previous: old });
      }
    }
    for (const [key, object] of previous) {
      if (!fresh.has(key)) this.#emit({ type: 'deleted', object });
    }
    if (!this.#synced) {
      this.#synced = true;
      this.#logger.debug({ objects: fresh.size, resourceVersion }, 'cache synced');
      for (const waiter of this.#syncWaiters.splice(0)) waiter();
    }
  }

  /** One watch. Resolves when it ends normally (the server's timeout, or a requested relist). */
  async #watchOnce(): Promise<void> {
    const timeoutSeconds = Math.round(
      randomBetween(this.#watchTimeoutSeconds, 2 * this.#watchTimeoutSeconds),
    );
    const abort = new AbortController();
    this.#watchAbort = abort;
    const onStop = (): void => abort.abort();
    // stop() may have come while the list before this watch was running: its abort is past.
    if (this.#stop.signal.aborted) return;
    this.#stop.signal.addEventListener('abort', onStop, { once: true });
    const silenceLimitMs = timeoutSeconds * 1000 + this.#watchdogGraceMs;
    let stalled = false;
    let watchdog: NodeJS.Timeout | undefined;
    const armWatchdog = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        stalled = true;
        abort.abort();
      }, silenceLimitMs);
      watchdog.unref();
    };
    armWatchdog();
    this.stats.watches++;
    try {
      await this.#client.watch(
        this.type,
        this.namespace,
        {
          resourceVersion: this.#resourceVersion,
          labelSelector: this.labelSelector,
          timeoutSeconds,
          allowWatchBookmarks: true,
        },
        (event) => {
          armWatchdog();
          this.#apply(event);
        },
        abort.signal,
      );
    } finally {
      clearTimeout(watchdog);
      this.#stop.signal.removeEventListener('abort', onStop);
      this.#watchAbort = undefined;
    }
    if (stalled) throw new WatchStalledError(`watch silent for ${silenceLimitMs} ms: restarting it`);
  }

  #apply(event: WatchEvent): void {
    if (event.type === 'BOOKMARK') {
      const version = (event.object as { metadata?: { resourceVersion?: unknown } })?.metadata
        ?.resourceVersion;
      if (typeof version === 'string' && version !== '') this.#resourceVersion = version;
      return;
    }
    const object = this.#parse(event.object);
    if (!object) return;
    if (object.metadata.resourceVersion) this.#resourceVersion = object.metadata.resourceVersion;
    const key = keyOf(object);
    if (event.type === 'DELETED') {
      this.#cache.delete(key);
      this.#emit({ type: 'deleted', object });
      return;
    }
    const previous = this.#cache.get(key);
    this.#cache.set(key, object);
    this.#emit(previous ? { type: 'modified', object, previous } : { type: 'added', object });
  }

  #resync(): void {
    if (!this.#synced || this.#stop.signal.aborted) return;
    for (const object of this.#cache.values()) this.#emit({ type: 'resync', object });
  }

  #parse(item: unknown): KubeObject | undefined {
    const result = KubeObjectSchema.safeParse(item);
    if (result.success) return result.data;
    this.#logger.warn(
      { problem: result.error.issues[0]?.message },
      'skipped an object without metadata.name',
    );
    return undefined;
  }

  #emit(event: CacheEvent): void {
    for (const handler of this.#handlers) this.#deliver(handler, event);
  }

  #deliver(handler: CacheHandler, event: CacheEvent): void {
    try {
      handler(event);
    } catch (error) {
      this.#logger.error({ err: error, object: keyOf(event.object) }, 'cache event handler failed');
    }
  }

  #restarted(reason: RestartReason): void {
    this.stats.restarts[reason]++;
    this.#onRestart?.(reason);
  }
}
