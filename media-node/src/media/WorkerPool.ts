import { exponentialDelay, TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaNodeMetrics } from '../metrics.js';
import { MediaWorker } from './MediaWorker.js';

export interface WorkerPoolOptions {
  size: number;
  rtcPort: number;
  listenIp: string;
  announcedAddress: string;
  logger: Logger;
  metrics: MediaNodeMetrics;
}

export type WorkerPoolEvents = {
  /** A dead worker was replaced by a fresh one on the same index and port. */
  workerreplaced: [replacement: MediaWorker, dead: MediaWorker];
};

/**
 * A fixed set of MediaWorkers, worker i listening on RTC_PORT+i. A worker that dies is replaced
 * on the same port (its sessions close themselves through mediasoup's close events).
 */
export class WorkerPool extends TypedEmitter<WorkerPoolEvents> {
  readonly #options: WorkerPoolOptions;
  readonly #workers: (MediaWorker | undefined)[];
  #closed = false;

  private constructor(options: WorkerPoolOptions) {
    super();
    this.#options = options;
    this.#workers = new Array(options.size).fill(undefined);
  }

  static async create(options: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    try {
      await Promise.all(Array.from({ length: options.size }, (_, index) => pool.#start(index)));
    } catch (error) {
      pool.close();
      throw error;
    }
    return pool;
  }

  get workers(): readonly MediaWorker[] {
    return this.#workers.filter((worker): worker is MediaWorker => worker !== undefined && !worker.closed);
  }

  /** The running worker with the fewest sessions (ties → lowest index). */
  leastLoaded(): MediaWorker {
    const candidates = this.workers;
    if (candidates.length === 0) throw new Error('no mediasoup worker is running');
    return candidates.reduce((best, worker) => (worker.sessionCount < best.sessionCount ? worker : best));
  }

  async #start(index: number): Promise<MediaWorker> {
    const { rtcPort, listenIp, announcedAddress, logger, metrics } = this.#options;
    const worker = await MediaWorker.create({
      index,
      rtcPort: rtcPort + index,
      listenIp,
      announcedAddress,
      logger,
    });
    this.#workers[index] = worker;
    metrics.workers.set(this.workers.length);
    worker.once('died', () => void this.#replace(worker));
    logger.info({ worker: index, pid: worker.pid, rtcPort: worker.rtcPort }, 'mediasoup worker started');
    return worker;
  }

  async #replace(dead: MediaWorker): Promise<void> {
    const { logger, metrics } = this.#options;
    this.#workers[dead.index] = undefined;
    metrics.workers.set(this.workers.length);
    if (this.#closed) return;
    metrics.workerRestarts.inc();
    // Retry with backoff: the dead process may still hold the port for a moment.
    for (let attempt = 1; !this.#closed; attempt++) {
      try {
        const replacement = await this.#start(dead.index);
        if (this.#closed) {
          replacement.close();
          return;
        }
        this.emit('workerreplaced', replacement, dead);
        return;
      } catch (error) {
        const delayMs = exponentialDelay(attempt, { baseMs: 100, maxMs: 5000 });
        logger.error(
          { worker: dead.index, attempt, err: error, retryInMs: delayMs },
          'worker restart failed',
        );
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const worker of this.workers) worker.close();
    this.#workers.fill(undefined);
    this.#options.metrics.workers.set(0);
  }
}
