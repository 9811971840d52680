/**
 * A controller in the controller-runtime sense: watches map cache events to reconcile requests,
 * a deduplicating rate-limited work queue holds them, and N workers run the reconciler, never
 * two on the same object at once (ControllerBuilder sets one up for a kind). A failed reconcile
 * is logged here, once, and retried with per-object exponential backoff; a reconcile may ask to
 * be run again later (requeueAfterMs).
 */
import { performance } from 'node:perf_hooks';
import { describeError, isConflict } from '../kube/errors.js';
import { objectKey, parseObjectKey } from '../kube/objects.js';
import type { Logger } from '../logger.js';
import type { OperatorMetrics } from '../metrics.js';
import { WorkQueue, type WorkQueueOptions } from './WorkQueue.js';

export interface ReconcileRequest {
  namespace: string;
  name: string;
}

export interface ReconcileResult {
  /** Reconcile this object again after this long (e.g. to refresh observed load). */
  requeueAfterMs?: number | undefined;
}

export interface Reconciler {
  /**
   * Makes the world match the object named by `request` (which may no longer exist). Throws to
   * be retried with backoff; the error must say what failed (it is logged by the controller).
   */
  reconcile(request: ReconcileRequest): Promise<ReconcileResult | undefined>;
}

/** A source of events: a cache (ListWatch, TypedCache). */
export interface EventSource<E> {
  addHandler(handler: (event: E) => void): void;
}

export interface ControllerOptions {
  name: string;
  reconciler: Reconciler;
  logger: Logger;
  metrics?: OperatorMetrics | undefined;
  /** Concurrent reconciles (of different objects). Default 2. */
  workers?: number;
  queue?: Omit<WorkQueueOptions, 'onDepthChange'>;
}

export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  readonly #reconciler: Reconciler;
  readonly #logger: Logger;
  readonly #metrics: OperatorMetrics | undefined;
  readonly #workers: number;
  #running: Promise<void>[] = [];

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.#reconciler = options.reconciler;
    this.#logger = options.logger.child({ controller: options.name });
    this.#metrics = options.metrics;
    this.#workers = options.workers ?? 2;
    this.queue = new WorkQueue({
      ...options.queue,
      onDepthChange: (depth) => this.#metrics?.queueDepth.set({ controller: this.name }, depth),
    });
  }

  /** Enqueues what `map` returns for every event of `source` (ControllerBuilder sets these up). */
  watch<E>(source: EventSource<E>, map: (event: E) => ReconcileRequest[]): void {
    source.addHandler((event) => {
      for (const request of map(event)) this.enqueue(request);
    });
  }

  enqueue(request: ReconcileRequest): void {
    this.queue.add(objectKey(request.namespace, request.name));
  }

  /** Starts the workers (the watches' sources are started by whoever owns them). */
  start(): void {
    if (this.#running.length > 0) return;
    for (let worker = 0; worker < this.#workers; worker++) this.#running.push(this.#work());
    this.#logger.debug({ workers: this.#workers }, 'controller started');
  }

  /** Stops taking work and waits for reconciles in flight. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.#running);
    this.#running = [];
    this.#metrics?.queueDepth.set({ controller: this.name }, 0);
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      await this.#reconcileOne(key);
    }
  }

  async #reconcileOne(key: string): Promise<void> {
    const started = performance.now();
    const labels = { controller: this.name };
    try {
      const result = await this.#reconciler.reconcile(parseObjectKey(key));
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined && result.requeueAfterMs >= 0) {
        this.queue.addAfter(key, result.requeueAfterMs);
        this.#metrics?.reconciles.inc({ ...labels, result: 'requeue' });
      } else {
        this.#metrics?.reconciles.inc({ ...labels, result: 'success' });
      }
    } catch (error) {
      if (this.queue.shuttingDown) {
        // Stopping (end of a leadership term): requests in flight were aborted on purpose.
        this.#logger.debug({ object: key, err: error }, 'reconcile interrupted by shutdown');
        return;
      }
      const retryInMs = this.queue.addRateLimited(key);
      this.#metrics?.reconciles.inc({ ...labels, result: 'error' });
      // A conflict only means someone wrote first: the retry reads the new version.
      const level = isConflict(error) ? 'debug' : this.queue.failures(key) > 1 ? 'warn' : 'error';
      this.#logger[level](
        { object: key, err: error, retryInMs, failures: this.queue.failures(key) },
        `reconcile failed: ${describeError(error)}`,
      );
    } finally {
      this.#metrics?.reconcileDuration.observe(labels, (performance.now() - started) / 1000);
      this.queue.done(key);
    }
  }
}
