import { randomUUID } from 'node:crypto';
import type { types } from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaWorker } from './MediaWorker.js';

export type SessionProtocol = 'whip' | 'whep';

export type SessionEvents = {
  close: [reason: string];
  connected: [];
  /**
   * A viewer's video moved to another simulcast layer (mediasoup picked it from the viewer's
   * bandwidth estimate); undefined while none is sent (no layer fits, or the source paused).
   */
  layerschange: [spatialLayer: number | undefined, previous: number | undefined];
};

/**
 * Base of WHIP and WHEP sessions: one WebRtcTransport on a worker's WebRtcServer and the
 * rules that end it. A session always ends in close(reason), exactly once, whatever ends it:
 * the client's DELETE, ICE/DTLS failure, a client that never connects, the stream ending,
 * or the worker dying.
 */
export abstract class Session extends TypedEmitter<SessionEvents> {
  readonly id = randomUUID();
  abstract readonly protocol: SessionProtocol;
  readonly streamName: string;
  readonly worker: MediaWorker;
  readonly transport: types.WebRtcTransport;
  protected readonly logger: Logger;
  #closed = false;
  #connectTimer: NodeJS.Timeout | undefined;

  protected constructor(
    streamName: string,
    worker: MediaWorker,
    transport: types.WebRtcTransport,
    logger: Logger,
    connectTimeoutMs: number,
  ) {
    super();
    this.streamName = streamName;
    this.worker = worker;
    this.transport = transport;
    this.logger = logger;
    worker.sessionCount++;

    this.#connectTimer = setTimeout(() => this.close('connect-timeout'), connectTimeoutMs);
    this.#connectTimer.unref();
    transport.on('dtlsstatechange', (state) => {
      if (state === 'connected') {
        clearTimeout(this.#connectTimer);
        this.logger.info({ session: this.id }, 'connected');
        this.emit('connected');
      } else if (state === 'failed' || state === 'closed') {
        this.close(`dtls-${state}`);
      }
    });
    transport.on('icestatechange', (state) => {
      // mediasoup reports 'disconnected' once ICE consent has expired (no STUN for 30 s).
      if (state === 'disconnected' || state === 'closed') this.close(`ice-${state}`);
    });
    transport.observer.once('close', () => this.close('transport-closed'));
  }

  static async createTransport(router: types.Router, worker: MediaWorker): Promise<types.WebRtcTransport> {
    return router.createWebRtcTransport({
      webRtcServer: worker.webRtcServer,
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
      initialAvailableOutgoingBitrate: 1_000_000,
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  get path(): string {
    return `/${this.protocol}/${encodeURIComponent(this.streamName)}/${this.id}`;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#connectTimer);
    this.worker.sessionCount--;
    // Closing the transport closes its producers/consumers (and sends DTLS close_notify).
    if (!this.transport.closed) this.transport.close();
    this.logger.info({ session: this.id, reason }, 'session closed');
    this.onClose(reason);
    this.emit('close', reason);
  }

  protected onClose(_reason: string): void {}
}
