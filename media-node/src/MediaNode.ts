import { RtccdnError } from '../contract/src/errors.js';
import { StreamAccess } from './acl/StreamAccess.js';
import { ClusterMember } from './ClusterMember.js';
import type { MediaNodeConfig } from './config.js';
import { PublishedStreamNameSchema, StreamNameSchema } from './http/names.js';
import { ClientQuotas } from './limits/ClientQuotas.js';
import type { Logger } from './logger.js';
import type { WorkerDump } from './media/MediaWorker.js';
import { PublisherSession } from './media/PublisherSession.js';
import type { Session, SessionProtocol } from './media/Session.js';
import type { Stream } from './media/Stream.js';
import { NumberingLimitError } from './media/Stream.js';
import { ViewerSession } from './media/ViewerSession.js';
import { WorkerPool } from './media/WorkerPool.js';
import { MediaNodeMetrics } from './metrics.js';
import { parseOffer } from './sdp/offer.js';
import { renditionName } from './transcode/profiles.js';
import { Transcoder } from './transcode/Transcoder.js';

const BITRATE_SAMPLE_MS = 5000;

export interface NodeDump {
  role: string;
  streams: string[];
  relayedStreams: {
    name: string;
    upstream: string | undefined;
    references: number;
    packets: Record<string, { forwarded: number; dropped: number }>;
  }[];
  relaysOut: number;
  renditions: {
    name: string;
    profile: string;
    ffmpegPid: number | undefined;
    restarts: number;
    references: number;
  }[];
  /** Bit/s sent to downstream nodes over relay pipes (mediasoup's estimate). */
  relayEgressBps: number;
  sessions: number;
  workers: WorkerDump[];
}

/**
 * The media plane of one node: a pool of mediasoup workers, the live streams and the WHIP/WHEP
 * sessions on them. HTTP lives elsewhere (http/); this class speaks in streams and sessions.
 * In a multi-node CDN (REDIS_URL set) it is also a ClusterMember: publishes are claimed
 * CDN-wide, and edges play streams published on other nodes through relays.
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
  readonly cluster: ClusterMember | undefined;
  /** Who may watch what: ACLs, admission, revocation (edges and standalone; origins for the API). */
  readonly access: StreamAccess;
  /** Renditions made on this node (transcoder and standalone roles). */
  readonly transcoder: Transcoder | undefined;
  /** What one client (and the node) may hold: sessions connecting, rendition starts, publishes. */
  readonly quotas: ClientQuotas;
  #closing = false;
  /** Draining (operator scale-down): no new viewers, not ready; current viewers keep playing. */
  #draining = false;
  #cpuSample: { atMs: number; cpuMs: number } | undefined;

  private constructor(config: MediaNodeConfig, logger: Logger, metrics: MediaNodeMetrics, pool: WorkerPool) {
    this.config = config;
    this.logger = logger;
    this.metrics = metrics;
    this.pool = pool;
    this.#bitrateTimer = setInterval(() => void this.#sampleBitrates(), BITRATE_SAMPLE_MS);
    this.#bitrateTimer.unref();
    this.quotas = new ClientQuotas(config.limits, metrics);
    this.access = new StreamAccess({
      config: config.access,
      redis: config.cluster && {
        url: config.cluster.redisUrl,
        prefix: config.cluster.redisPrefix,
        clusterSecret: config.cluster.clusterSecret,
      },
      metrics,
      logger,
    });
    if (config.role === 'transcoder' || config.role === 'all') {
      this.transcoder = new Transcoder({
        profiles: config.transcode.profiles,
        pool,
        ffmpegPath: config.transcode.ffmpegPath,
        maxJobs: config.transcode.maxJobs,
        lingerMs: config.transcode.lingerMs,
        fanoutLingerMs: config.fanoutLingerMs,
        resolveSource: async (name) => this.#streams.get(name) ?? (await this.cluster?.resolve(name)),
        claim: async (name, kinds) => this.cluster?.claimStream(name, kinds),
        release: (name, reason) => this.cluster?.releaseStream(name, reason),
        metrics,
        logger,
      });
    }
    if (config.cluster) {
      this.cluster = new ClusterMember({
        config: config.cluster,
        internalPort: config.internalPort,
        role: config.role,
        rtcListenIp: config.rtcListenIp,
        fanoutLingerMs: config.fanoutLingerMs,
        pool,
        localStream: (name) => this.#streams.get(name) ?? this.transcoder?.find(name),
        transcodeOtherRegions: config.transcode.otherRegions,
        onPublishLost: (name, reason) => this.#streams.get(name)?.close(reason),
        metrics,
        logger,
      });
    }
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
    const node = new MediaNode(config, logger, metrics, pool);
    await node.access.start();
    return node;
  }

  /** Serving: workers up, not shutting down and, in a CDN, registered in Redis. */
  get ready(): boolean {
    return (
      !this.#closing &&
      !this.#draining &&
      this.pool.workers.length > 0 &&
      (this.cluster?.ready ?? true) &&
      // A viewer node that cannot tell public from protected streams yet admits nobody.
      (!this.acceptsPlay || this.access.cache.confirmedAt !== undefined)
    );
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Viewer (WHEP) sessions on this node. */
  get viewerCount(): number {
    return [...this.#sessions.values()].filter((session) => session.protocol === 'whep').length;
  }

  /**
   * Marks the node draining (or not): new viewers are refused with 503 so clients go to
   * another edge, readiness turns false so Kubernetes stops routing here, and the registry
   * tells the operator, which removes the pod once its viewers are gone.
   */
  setDraining(draining: boolean): void {
    if (this.#draining === draining) return;
    this.#draining = draining;
    this.cluster?.registry.setDraining(draining);
    this.logger.info({ draining, viewers: this.viewerCount }, draining ? 'draining' : 'no longer draining');
  }

  get relayServer() {
    return this.cluster?.relayServer;
  }

  get acceptsPublish(): boolean {
    return this.config.role === 'origin' || this.config.role === 'all';
  }

  get acceptsPlay(): boolean {
    return this.config.role === 'edge' || this.config.role === 'all';
  }

  get streams(): ReadonlyMap<string, Stream> {
    return this.#streams;
  }

  get sessions(): ReadonlyMap<string, Session> {
    return this.#sessions;
  }

  /**
   * WHIP: negotiates a publisher for `streamName`. `clientIp` counts against the open-ingest
   * quota when no PUBLISH_TOKEN guards publishing. Throws RtccdnError on refusal.
   */
  async publish(streamName: string, sdp: string, clientIp: string): Promise<PublisherSession> {
    this.#assertAccepting();
    if (!this.acceptsPublish) {
      throw new RtccdnError(
        'WRONG_NODE',
        `this node is an ${this.config.role} (WHEP playback only); publish to an origin`,
      );
    }
    assertPublishedName(streamName);
    const offer = parseOffer(sdp);
    if (this.#streams.has(streamName) || this.#publishing.has(streamName)) {
      throw new RtccdnError('STREAM_CLAIMED', `stream "${streamName}" is already being published`, {
        data: { stream: streamName, holder: this.config.cluster?.nodeId ?? 'this node' },
      });
    }
    // The client's own quota first (429: it asks too much), then the node's (503: try elsewhere).
    const quota = this.config.publishToken === undefined ? this.quotas.reservePublish(clientIp) : undefined;
    try {
      this.quotas.checkStreamCount(this.#streams.size + this.#publishing.size);
    } catch (error) {
      quota?.release();
      throw error;
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
      if (this.cluster) {
        try {
          await this.cluster.claimStream(
            streamName,
            stream.producers.map((producer) => producer.kind),
          );
        } catch (error) {
          session.close('claim-refused');
          throw error;
        }
      }
      this.#streams.set(streamName, stream);
      stream.once('close', (reason) => {
        if (this.#streams.get(streamName) === stream) this.#streams.delete(streamName);
        this.cluster?.releaseStream(streamName, reason);
      });
      this.#track(session);
      this.metrics.publishers.inc();
      session.once('close', () => {
        this.metrics.publishers.dec();
        quota?.release();
      });
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
    } catch (error) {
      quota?.release();
      throw error;
    } finally {
      this.#publishing.delete(streamName);
    }
  }

  /**
   * WHEP: admits the viewer (access key, if the stream is protected) and attaches it to the
   * live stream — or to its rendition in `profile`, under the source's ACL — on the least
   * loaded worker. The grant is checked again once the session exists (the rules may have
   * changed while a relay or rendition was being set up), then kept under watch.
   */
  async play(
    streamName: string,
    sdp: string,
    viewer: { key: string | undefined; clientIp: string; profile?: string | undefined },
  ): Promise<ViewerSession> {
    this.#assertAccepting();
    if (!this.acceptsPlay) {
      throw new RtccdnError(
        'WRONG_NODE',
        `this node is an ${this.config.role} (WHIP ingest only); play from an edge`,
      );
    }
    if (this.#draining) {
      throw new RtccdnError('NODE_DRAINING', 'this edge is draining; play from another edge', {
        retryAfterMs: 1000,
      });
    }
    assertPublishedName(streamName);
    const grant = this.access.admit(streamName, viewer.key, viewer.clientIp);
    const offer = parseOffer(sdp);
    // Held until the session connects: a client cannot pile up sessions that never do.
    const pending = this.quotas.reservePendingSession(viewer.clientIp);
    let session: ViewerSession | undefined;
    try {
      const stream = viewer.profile
        ? await this.#rendition(streamName, viewer.profile, viewer.clientIp)
        : await this.#liveStream(streamName);
      if (!stream || stream.closed)
        throw new RtccdnError('STREAM_NOT_LIVE', `stream "${streamName}" is not live`);
      session = await ViewerSession.create({
        stream,
        offer,
        worker: this.pool.leastLoaded(),
        logger: this.logger,
        connectTimeoutMs: this.config.connectTimeoutMs,
        maxNumberings: this.config.limits.maxNumberingsPerStream,
      });
      this.access.watch(session, grant);
    } catch (error) {
      pending.release();
      session?.close('refused: access changed during setup');
      if (error instanceof NumberingLimitError) {
        throw this.quotas.refusal('NODE_LIMIT', 'numberings', error.message, 10);
      }
      throw error;
    }
    session.once('connected', () => pending.release());
    session.once('close', () => pending.release());
    this.#track(session);
    const viewers = this.metrics.viewers.labels({ stream: streamName });
    viewers.inc();
    session.once('close', () => {
      viewers.dec();
      // A per-stream series lives as long as the stream has viewers here.
      if (
        ![...this.#sessions.values()].some(
          (other) => other.protocol === 'whep' && other.streamName === session!.streamName,
        )
      )
        this.metrics.viewers.remove({ stream: streamName });
    });
    this.logger.info(
      { stream: streamName, session: session.id, worker: session.worker.index },
      'play started',
    );
    return session;
  }

  async #liveStream(name: string): Promise<Stream | undefined> {
    const local = this.#streams.get(name) ?? this.transcoder?.find(name);
    if (local && !local.closed) return local;
    return this.cluster?.resolve(name);
  }

  /** The rendition of `source` in `profileName`: made here (standalone) or by a transcoder. */
  async #rendition(source: string, profileName: string, clientIp: string): Promise<Stream | undefined> {
    const { profiles } = this.config.transcode;
    if (!profiles.some((profile) => profile.name === profileName)) {
      const valid = profiles.map((profile) => profile.name).join(', ') || '(none configured: set PROFILES)';
      throw new RtccdnError('UNKNOWN_PROFILE', `unknown profile "${profileName}"; valid profiles: ${valid}`);
    }
    const name = renditionName(source, profileName);
    if (!StreamNameSchema.safeParse(name).success) {
      throw new RtccdnError(
        'INVALID_REQUEST',
        `stream name too long for renditions: "${name}" exceeds 128 characters`,
      );
    }
    const existing = this.transcoder?.find(name);
    if (existing) return existing;
    // Each start is an FFmpeg process: a client's starts are counted, joining a running one is not.
    const countStart = () => this.quotas.recordRenditionStart(clientIp);
    if (this.transcoder && !this.cluster) {
      if (!this.transcoder.starting(name)) countStart();
      return (await this.transcoder.start(source, profileName)).stream;
    }
    return this.cluster?.resolveRendition(source, profileName, countStart);
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
    if (this.#closing)
      throw new RtccdnError('NODE_SHUTTING_DOWN', 'node is shutting down', { retryAfterMs: 5000 });
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
    this.cluster?.setLoad({
      viewers: this.viewerCount,
      // Transcoders are balanced on this: their renditions count as streams.
      streams:
        this.#streams.size +
        (this.cluster.relayedStreams?.streams.length ?? 0) +
        (this.transcoder?.jobs.size ?? 0),
      egressBps: [...egress.values()].reduce((sum, bitrate) => sum + bitrate, 0),
      cpu: await this.#workerCpu(),
    });
    this.metrics.bitrateIn.reset();
    this.metrics.bitrateOut.reset();
    for (const [stream, bitrate] of ingress) this.metrics.bitrateIn.set({ stream }, bitrate);
    for (const [stream, bitrate] of egress) this.metrics.bitrateOut.set({ stream }, bitrate);
  }

  /** Share of the workers' cores used since the last sample (0..1). */
  async #workerCpu(): Promise<number> {
    let cpuMs = 0;
    for (const worker of this.pool.workers) {
      const usage = await worker.worker.getResourceUsage().catch(() => undefined);
      if (usage) cpuMs += usage.ru_utime + usage.ru_stime;
    }
    const now = Date.now();
    const previous = this.#cpuSample;
    this.#cpuSample = { atMs: now, cpuMs };
    if (!previous || now <= previous.atMs) return 0;
    const share = (cpuMs - previous.cpuMs) / ((now - previous.atMs) * Math.max(1, this.pool.workers.length));
    return Math.min(1, Math.max(0, share));
  }

  async #relayEgressBps(): Promise<number> {
    const relays = [...(this.cluster?.relayServer.relays.values() ?? [])];
    const rates = await Promise.all(
      relays.map(async (relay) => (await relay.transport.getStats().catch(() => []))[0]?.sendBitrate ?? 0),
    );
    return rates.reduce((sum, rate) => sum + rate, 0);
  }

  /** Counts of everything in the media workers and relays: what operators and leak tests read. */
  async dump(): Promise<NodeDump> {
    return {
      role: this.config.role,
      streams: [...this.#streams.keys()],
      relayedStreams:
        this.cluster?.relayedStreams?.streams.map((relayed) => ({
          name: relayed.name,
          upstream: relayed.link?.source.nodeId,
          references: relayed.stream.references,
          packets: relayed.counters,
        })) ?? [],
      relaysOut: this.cluster?.relayServer.relays.size ?? 0,
      renditions: [...(this.transcoder?.jobs.values() ?? [])].map((job) => ({
        name: job.name,
        profile: job.profile.name,
        ffmpegPid: job.ffmpegPid,
        restarts: job.restarts,
        references: job.stream.references,
      })),
      relayEgressBps: await this.#relayEgressBps(),
      sessions: this.#sessions.size,
      workers: await Promise.all(this.pool.workers.map((worker) => worker.dump())),
    };
  }

  /** Stops accepting, closes every session (viewers see DTLS close), stops the workers. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#bitrateTimer);
    this.quotas.close();
    this.transcoder?.close('node-shutdown');
    await this.cluster?.close();
    await this.access.close();
    // Viewers before publishers: each viewer is told the node shut down, not that its stream ended.
    const sessions = [...this.#sessions.values()];
    for (const session of sessions.filter((one) => one.protocol === 'whep')) session.close('node-shutdown');
    for (const session of sessions) session.close('node-shutdown');
    for (const stream of [...this.#streams.values()]) stream.close('node-shutdown');
    // Let the workers flush DTLS close_notify to peers before they exit.
    await new Promise((resolve) => setTimeout(resolve, 100));
    this.pool.close();
  }
}

/** Names a publisher may take and viewers ask for: no `~` (reserved for renditions). */
function assertPublishedName(name: string): void {
  const parsed = PublishedStreamNameSchema.safeParse(name);
  if (!parsed.success)
    throw new RtccdnError('INVALID_REQUEST', parsed.error.issues[0]?.message ?? 'invalid stream name');
}
