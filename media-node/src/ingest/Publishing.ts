import { RtccdnError } from '../../contract/errors.js';
import { PublishedStreamNameSchema } from '../../contract/names.js';
import type { MediaNodeConfig } from '../config.js';
import type { ClientQuotas } from '../limits/ClientQuotas.js';
import type { Logger } from '../logger.js';
import { PublisherSession } from '../media/PublisherSession.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { MediaNodeMetrics } from '../metrics.js';
import type { NodeState } from '../NodeState.js';
import { parseOffer } from '../sdp/offer.js';
import type { Sessions } from '../sessions/Sessions.js';
import type { LocalStreams } from '../streams/LocalStreams.js';
import type { StreamClaims } from '../streams/StreamClaims.js';

export interface PublishingOptions {
  config: Pick<MediaNodeConfig, 'role' | 'publishToken' | 'connectTimeoutMs' | 'fanoutLingerMs'> & {
    nodeId: string | undefined;
  };
  state: NodeState;
  pool: WorkerPool;
  streams: LocalStreams;
  sessions: Sessions;
  quotas: ClientQuotas;
  claims: StreamClaims;
  metrics: MediaNodeMetrics;
  logger: Logger;
}

/**
 * WHIP ingest: a publisher's offer becomes a stream on the least loaded worker, claimed CDN-wide
 * before anyone can watch it, and released when it ends.
 */
export class Publishing {
  readonly #options: PublishingOptions;
  /** Stream names whose WHIP negotiation is in flight (reserved against a concurrent publish). */
  readonly #publishing = new Set<string>();

  constructor(options: PublishingOptions) {
    this.#options = options;
  }

  get accepts(): boolean {
    return this.#options.config.role === 'origin' || this.#options.config.role === 'all';
  }

  /**
   * Negotiates a publisher for `streamName`. `clientIp` counts against the open-ingest quota when
   * no PUBLISH_TOKEN guards publishing. Throws RtccdnError on refusal.
   */
  async publish(streamName: string, sdp: string, clientIp: string): Promise<PublisherSession> {
    const { config, state, pool, streams, sessions, quotas, claims, metrics, logger } = this.#options;
    state.assertAccepting();
    if (!this.accepts) {
      throw new RtccdnError(
        'WRONG_NODE',
        `this node is an ${config.role} (WHEP playback only); publish to an origin`,
      );
    }
    assertPublishedName(streamName);
    const offer = parseOffer(sdp);
    if (streams.has(streamName) || this.#publishing.has(streamName)) {
      throw new RtccdnError('STREAM_CLAIMED', `stream "${streamName}" is already being published`, {
        data: { stream: streamName, holder: config.nodeId ?? 'this node' },
      });
    }
    // The client's own quota first (429: it asks too much), then the node's (503: try elsewhere).
    const quota = config.publishToken === undefined ? quotas.reservePublish(clientIp) : undefined;
    try {
      quotas.checkStreamCount(streams.published().length + this.#publishing.size);
    } catch (error) {
      quota?.release();
      throw error;
    }
    this.#publishing.add(streamName);
    try {
      const session = await PublisherSession.create({
        streamName,
        offer,
        worker: pool.leastLoaded(),
        logger,
        connectTimeoutMs: config.connectTimeoutMs,
        fanoutLingerMs: config.fanoutLingerMs,
      });
      const { stream } = session;
      try {
        await claims.claim(
          streamName,
          stream.producers.map((producer) => producer.kind),
        );
      } catch (error) {
        session.close('claim-refused');
        throw error;
      }
      streams.add(stream);
      stream.once('close', (reason) => claims.release(streamName, reason));
      sessions.track(session);
      metrics.publishers.inc();
      session.once('close', () => {
        metrics.publishers.dec();
        quota?.release();
      });
      logger.info(
        {
          stream: streamName,
          session: session.id,
          worker: session.worker.index,
          kinds: stream.producers.map((producer) => producer.kind),
        },
        'publish started',
      );
      return session;
    } catch (error) {
      quota?.release();
      throw error;
    } finally {
      this.#publishing.delete(streamName);
    }
  }
}

/** Names a publisher may take and viewers ask for: no `~` (reserved for renditions). */
export function assertPublishedName(name: string): void {
  const parsed = PublishedStreamNameSchema.safeParse(name);
  if (!parsed.success)
    throw new RtccdnError('INVALID_REQUEST', parsed.error.issues[0]?.message ?? 'invalid stream name');
}
