import type { types } from 'mediasoup';
import * as mediasoup from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';

export interface MediaWorkerOptions {
  index: number;
  rtcPort: number;
  listenIp: string;
  announcedAddress: string;
  logger: Logger;
}

export interface WorkerDump {
  index: number;
  pid: number;
  routers: number;
  transports: number;
  producers: number;
  consumers: number;
  webRtcTransports: number;
}

export type MediaWorkerEvents = {
  /** The worker process died unexpectedly; everything on it is gone. */
  died: [error: Error];
  close: [];
};

/**
 * One mediasoup Worker (one core) plus its WebRtcServer, which multiplexes every WebRTC
 * transport of the worker on a single UDP and TCP port (`rtcPort`). One fixed port per worker
 * is what makes the node exposable through Kubernetes hostPorts / NodePorts.
 */
export class MediaWorker extends TypedEmitter<MediaWorkerEvents> {
  readonly index: number;
  readonly rtcPort: number;
  readonly worker: types.Worker;
  readonly webRtcServer: types.WebRtcServer;
  /** Sessions (publishers + viewers) placed on this worker; the pool balances on it. */
  sessionCount = 0;
  /** Open routers on this worker (for dumps: the worker's own dump only lists their ids). */
  readonly routers = new Set<types.Router>();
  #closed = false;

  private constructor(
    index: number,
    rtcPort: number,
    worker: types.Worker,
    webRtcServer: types.WebRtcServer,
  ) {
    super();
    this.index = index;
    this.rtcPort = rtcPort;
    this.worker = worker;
    this.webRtcServer = webRtcServer;
    worker.observer.on('newrouter', (router) => {
      this.routers.add(router);
      router.observer.once('close', () => this.routers.delete(router));
    });
  }

  /**
   * What lives in the worker process, counted by the worker itself; nothing for a worker that
   * died and is being replaced (a dump taken then must not fail: it is how a crash is watched).
   */
  async dump(): Promise<WorkerDump> {
    const empty = { index: this.index, pid: this.pid, routers: 0, transports: 0, producers: 0, consumers: 0 };
    if (this.worker.died || this.worker.closed) return { ...empty, webRtcTransports: 0 };
    const dumped = await this.worker.dump().catch(() => undefined);
    if (!dumped) return { ...empty, webRtcTransports: 0 };
    const { routerIds } = dumped;
    const counts = { transports: 0, producers: 0, consumers: 0 };
    await Promise.all(
      [...this.routers].map(async (router) => {
        const dump = await router.dump().catch(() => undefined);
        if (!dump) return; // closed meanwhile
        counts.transports += dump.transportIds.length;
        counts.producers += dump.mapProducerIdConsumerIds.length;
        counts.consumers += dump.mapConsumerIdProducerId.length;
      }),
    );
    return {
      index: this.index,
      pid: this.pid,
      routers: routerIds.length,
      ...counts,
      webRtcTransports:
        (await this.webRtcServer.dump().catch(() => undefined))?.webRtcTransportIds.length ?? 0,
    };
  }

  static async create(options: MediaWorkerOptions): Promise<MediaWorker> {
    const worker = await withoutSignalHandlers(() =>
      mediasoup.createWorker({
        logLevel: 'warn',
        appData: { index: options.index },
      }),
    );
    let webRtcServer: types.WebRtcServer;
    try {
      const listen = {
        ip: options.listenIp,
        announcedAddress: options.announcedAddress,
        port: options.rtcPort,
      };
      webRtcServer = await worker.createWebRtcServer({
        listenInfos: [
          { ...listen, protocol: 'udp' },
          { ...listen, protocol: 'tcp' },
        ],
      });
    } catch (error) {
      worker.close();
      throw new Error(
        `cannot listen for WebRTC on ${options.listenIp}:${options.rtcPort} (udp+tcp) for worker ${options.index}: ${(error as Error).message}`,
      );
    }
    const mediaWorker = new MediaWorker(options.index, options.rtcPort, worker, webRtcServer);
    worker.on('died', (error) => {
      if (mediaWorker.#closed) return;
      mediaWorker.#closed = true;
      options.logger.error({ worker: options.index, pid: worker.pid, err: error }, 'mediasoup worker died');
      mediaWorker.emit('died', error);
    });
    return mediaWorker;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get pid(): number {
    return this.worker.pid;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.worker.close();
    this.emit('close');
  }
}

/**
 * Runs `create` and removes the SIGINT/SIGTERM listeners it added to the process. mediasoup
 * (3.2x) closes each worker on those signals by itself, which would end every session at once —
 * before the node's own shutdown could close them with their reason and let DTLS close alerts
 * out. The node's shutdown (shutdown.ts) closes the workers last.
 */
async function withoutSignalHandlers<T>(create: () => Promise<T>): Promise<T> {
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const before = new Map(signals.map((signal) => [signal, new Set(process.listeners(signal))]));
  try {
    return await create();
  } finally {
    for (const signal of signals) {
      for (const listener of process.listeners(signal)) {
        if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
      }
    }
  }
}
