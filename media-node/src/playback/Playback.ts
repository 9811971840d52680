import { RtccdnError } from '../../contract/errors.js';
import type { AccessController } from '../acl/AccessController.js';
import type { MediaNodeConfig } from '../config.js';
import { assertPublishedName } from '../ingest/Publishing.js';
import type { ClientQuotas } from '../limits/ClientQuotas.js';
import type { Logger } from '../logger.js';
import { NumberingLimitError, type Stream } from '../media/Stream.js';
import { ViewerSession } from '../media/ViewerSession.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { NodeState } from '../NodeState.js';
import { parseOffer } from '../sdp/offer.js';
import type { Sessions } from '../sessions/Sessions.js';
import type { StreamLookup, StreamResolver } from '../streams/LocalStreams.js';
import type { RenditionLadders } from './RenditionLadders.js';
import type { RenditionRouter } from './RenditionRouter.js';

export interface PlaybackOptions {
  config: Pick<MediaNodeConfig, 'role' | 'connectTimeoutMs'> & { maxNumberingsPerStream: number };
  state: NodeState;
  pool: WorkerPool;
  access: AccessController;
  quotas: ClientQuotas;
  sessions: Sessions;
  /** Streams that originate here (published or rendered). */
  streams: StreamLookup;
  /** Streams published elsewhere, relayed here (absent standalone). */
  relays: StreamResolver | undefined;
  renditions: RenditionRouter;
  /** Rendition ladders for viewers without ?profile (absent: they play the source). */
  ladders: RenditionLadders | undefined;
  logger: Logger;
}

/** What a viewer asked for: the stream, its key (if any), who it is, and a rendition (if any). */
export interface PlayRequest {
  stream: string;
  sdp: string;
  key: string | undefined;
  clientIp: string;
  profile?: string | undefined;
}

/**
 * WHEP playback: admits the viewer (its access key, if the stream is protected) and attaches it to
 * the live stream — or to its rendition, under the source's ACL — on the least loaded worker. The
 * grant is checked again once the session exists (the rules may have changed while a relay or a
 * rendition was being set up), then kept under watch: revocation ends the session.
 */
export class Playback {
  readonly #options: PlaybackOptions;

  constructor(options: PlaybackOptions) {
    this.#options = options;
  }

  get accepts(): boolean {
    return this.#options.config.role === 'edge' || this.#options.config.role === 'all';
  }

  async play(request: PlayRequest): Promise<ViewerSession> {
    const { config, state, pool, access, quotas, sessions, logger } = this.#options;
    state.assertAccepting();
    if (!this.accepts) {
      throw new RtccdnError(
        'WRONG_NODE',
        `this node is an ${config.role} (WHIP ingest only); play from an edge`,
      );
    }
    state.assertAcceptingViewers();
    assertPublishedName(request.stream);
    const grant = access.admit(request.stream, request.key, request.clientIp);
    const offer = parseOffer(request.sdp);
    // Held until the session connects: a client cannot pile up sessions that never do.
    const pending = await quotas.reservePendingSession(request.clientIp);
    let session: ViewerSession | undefined;
    try {
      const stream = request.profile
        ? await this.#options.renditions.resolve(request.stream, request.profile, request.clientIp)
        : await this.#adaptive(await this.#liveStream(request.stream), request.clientIp);
      if (!stream || stream.closed)
        throw new RtccdnError('STREAM_NOT_LIVE', `stream "${request.stream}" is not live`);
      session = await ViewerSession.create({
        stream,
        offer,
        worker: pool.leastLoaded(),
        logger,
        connectTimeoutMs: config.connectTimeoutMs,
        maxNumberings: config.maxNumberingsPerStream,
      });
      access.watch(session, grant);
    } catch (error) {
      pending.release();
      session?.close('refused: access changed during setup');
      if (error instanceof NumberingLimitError)
        throw quotas.refusal('NODE_LIMIT', 'numberings', error.message, 10);
      throw error;
    }
    session.once('connected', () => pending.release());
    session.once('close', () => pending.release());
    sessions.track(session);
    logger.info(
      { stream: request.stream, session: session.id, worker: session.worker.index },
      'play started',
    );
    return session;
  }

  /** The ladder of a live source, when ladders are on (the ACL admitted the source's name). */
  async #adaptive(source: Stream | undefined, clientIp: string): Promise<Stream | undefined> {
    const { ladders } = this.#options;
    if (!source || source.closed || !ladders) return source;
    return ladders.streamFor(source, clientIp);
  }

  async #liveStream(name: string): Promise<Stream | undefined> {
    return this.#options.streams.find(name) ?? (await this.#options.relays?.resolve(name));
  }
}
