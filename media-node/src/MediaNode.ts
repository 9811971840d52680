import type { MediaNodeConfig } from './config.js';
import { HttpError } from './errors.js';
import type { Logger } from './logger.js';
import { PublisherSession } from './media/PublisherSession.js';
import type { Session, SessionProtocol } from './media/Session.js';
import type { Stream } from './media/Stream.js';
import { ViewerSession } from './media/ViewerSession.js';
import { WorkerPool } from './media/WorkerPool.js';
import { MediaNodeMetrics } from './metrics.js';
import { parseOffer } from './sdp/offer.js';

const BITRATE_SAMPLE_MS = 5000;

/**
 * The media plane of one node: a pool of mediasoup workers, the live streams and the WHIP/WHEP
 * sessions on them. HTTP lives elsewhere (http/); this class speaks in streams and sessions.
 */
export class MediaNode {
  readonly config: MediaNodeConfig;
  readonly logger: Logger;
  readonly metrics: MediaNodeMetrics;
  readonly pool: WorkerPool;
  readonly #streams = new Map<string, Stream>();
  /** Stream names whose WHIP negotiation is in flight (reserved against a concurrent publish). */
  readonly #publishing = new Set<string>();
  readonly #sessions = new Map<string, Session>();
  readonly #bitrateTimer: NodeJS.Timeout;
  #closing = false;

  private constructor(config: MediaNodeConfig, logger: Logger, metrics: MediaNodeMetrics, pool: WorkerPool) {
    this.config = config;
    this.logger = logger;
    this.metrics = metrics;
    this.pool = pool;
    this.#bitrateTimer = setInterval(() => void this.#sampleBitrates(), BITRATE_SAMPLE_MS);
    this.#bitrateTimer.unref();
  }

  static async create(config: MediaNodeConfig, logger: Logger): Promise<MediaNode> {
    const metrics = new MediaNodeMetrics();
    const pool = await WorkerPool.create({
      size: config.workers,
      rtcPort: config.rtcPort,
      listenIp: config.rtcListenIp,
      announcedAddress: config.announcedAddress,
      logger,
      metrics,
    });
    return new MediaNode(config, logger, metrics, pool);
  }

  get ready(): boolean {
    return !this.#closing && this.pool.workers.length > 0;
  }

  get streams(): ReadonlyMap<string, Stream> {
    return this.#streams;
  }

  get sessions(): ReadonlyMap<string, Session> {
    return this.#sessions;
  }

  /** WHIP: negotiates a publisher for `streamName`. Throws HttpError/SdpError on refusal. */
  async publish(streamName: string, sdp: string): Promise<PublisherSession> {
    this.#assertAccepting();
    const offer = parseOffer(sdp);
    if (this.#streams.has(streamName) || this.#publishing.has(streamName)) {
      throw new HttpError(409, `stream "${streamName}" is already being published`);
    }
    this.#publishing.add(streamName);
    try {
      const session = await PublisherSession.create({
        streamName,
        offer,
        worker: this.pool.leastLoaded(),
        logger: this.logger,
        connectTimeoutMs: this.config.connectTimeoutMs,
        fanoutLingerMs: this.config.fanoutLingerMs,
      });
      const { stream } = session;
      this.#streams.set(streamName, stream);
      stream.once('close', () => {
        if (this.#streams.get(streamName) === stream) this.#streams.delete(streamName);
      });
      this.#track(session);
      this.metrics.publishers.inc();
      session.once('close', () => this.metrics.publishers.dec());
      this.logger.info(
        {
          stream: streamName,
          session: session.id,
          worker: session.worker.index,
          kinds: stream.producers.map((p) => p.kind),
        },
        'publish started',
      );
      return session;
    } finally {
      this.#publishing.delete(streamName);
    }
  }

  /** WHEP: attaches a viewer to a live stream, on the least loaded worker. */
  async play(streamName: string, sdp: string): Promise<ViewerSession> {
    this.#assertAccepting();
    const offer = parseOffer(sdp);
    const stream = this.#streams.get(streamName);
    if (!stream || stream.closed) throw new HttpError(404, `stream "${streamName}" is not live`);
    const session = await ViewerSession.create({
      stream,
      offer,
      worker: this.pool.leastLoaded(),
      logger: this.logger,
      connectTimeoutMs: this.config.connectTimeoutMs,
    });
    this.#track(session);
    const viewers = this.metrics.viewers.labels({ stream: streamName });
    viewers.inc();
    session.once('close', () => viewers.dec());
    this.logger.info(
      { stream: streamName, session: session.id, worker: session.worker.index },
      'play started',
    );
    return session;
  }

  /** Ends a session by its resource URL parts; false when there is no such session. */
  endSession(protocol: SessionProtocol, streamName: string, sessionId: string): boolean {
    const session = this.#sessions.get(sessionId);
    if (!session || session.protocol !== protocol || session.streamName !== streamName) return false;
    session.close('client-delete');
    return true;
  }

  #track(session: Session): void {
    this.#sessions.set(session.id, session);
    session.once('close', (reason) => {
      this.#sessions.delete(session.id);
      this.metrics.sessionsClosed.inc({ protocol: session.protocol, reason: reason.split(':')[0] ?? reason });
    });
  }

  #assertAccepting(): void {
    if (this.#closing) throw new HttpError(503, 'node is shutting down', { 'Retry-After': '5' });
  }

  async #sampleBitrates(): Promise<void> {
    const ingress = new Map<string, number>();
    const egress = new Map<string, number>();
    const samples = [...this.#sessions.values()].map(async (session) => {
      try {
        const stats = await session.transport.getStats();
        const transportStats = stats[0];
        if (!transportStats) return;
        const target = session.protocol === 'whip' ? ingress : egress;
        const bitrate = session.protocol === 'whip' ? transportStats.recvBitrate : transportStats.sendBitrate;
        target.set(session.streamName, (target.get(session.streamName) ?? 0) + bitrate);
      } catch {
        // The session closed while sampling; its bitrate is simply not counted.
      }
    });
    await Promise.all(samples);
    this.metrics.bitrateIn.reset();
    this.metrics.bitrateOut.reset();
    for (const [stream, bitrate] of ingress) this.metrics.bitrateIn.set({ stream }, bitrate);
    for (const [stream, bitrate] of egress) this.metrics.bitrateOut.set({ stream }, bitrate);
  }

  /** Stops accepting, closes every session (viewers see DTLS close), stops the workers. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#bitrateTimer);
    for (const session of [...this.#sessions.values()]) session.close('node-shutdown');
    for (const stream of [...this.#streams.values()]) stream.close('node-shutdown');
    // Let the workers flush DTLS close_notify to peers before they exit.
    await new Promise((resolve) => setTimeout(resolve, 100));
    this.pool.close();
  }
}
