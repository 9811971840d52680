import { StreamAccess } from './acl/StreamAccess.js';
import { ClusterMember } from './ClusterMember.js';
import type { MediaNodeConfig } from './config.js';
import { HlsPlayback } from './hls/HlsPlayback.js';
import { Publishing } from './ingest/Publishing.js';
import { ClientQuotas } from './limits/ClientQuotas.js';
import { LoadReporter } from './load/LoadReporter.js';
import type { Logger } from './logger.js';
import type { WorkerDump } from './media/MediaWorker.js';
import { ViewerSession } from './media/ViewerSession.js';
import { WorkerPool } from './media/WorkerPool.js';
import { MediaNodeMetrics } from './metrics.js';
import { NodeState } from './NodeState.js';
import { Playback } from './playback/Playback.js';
import { RenditionLadders } from './playback/RenditionLadders.js';
import { RenditionRouter } from './playback/RenditionRouter.js';
import { Sessions } from './sessions/Sessions.js';
import { LocalStreams, type StreamResolver } from './streams/LocalStreams.js';
import { STANDALONE_CLAIMS } from './streams/StreamClaims.js';
import { Transcoder } from './transcode/Transcoder.js';

export interface NodeDump {
  role: string;
  streams: string[];
  relayedStreams: {
    name: string;
    upstream: string | undefined;
    /** The relay's id at its upstream (GET/DELETE /internal/v1/relays/{id} there). */
    relayId: string | undefined;
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
  /** HLS packagers running here. */
  hls: { name: string; ffmpegPid: number | undefined; hasSegments: boolean }[];
  /** Bit/s sent to downstream nodes over relay pipes (mediasoup's estimate). */
  relayEgressBps: number;
  sessions: number;
  /** Rendition ladders: source → its rungs' streams, lowest first (the source last). */
  ladders: Record<string, string[]>;
  /** Each viewer's video: consumer type, simulcast layers of the source, the layer sent now. */
  viewers: {
    session: string;
    stream: string;
    video: { type: string; layers: number; spatialLayer: number | undefined } | undefined;
    /** Bitrate adaptation (simulcast only): the highest layer allowed now, the loss last seen. */
    adaptation: { level: number; fractionLost: number | undefined } | undefined;
    /** mediasoup's bandwidth estimate towards the viewer (bit/s), if it has one. */
    availableOutgoingBitrate: number | undefined;
  }[];
  workers: WorkerDump[];
}

/**
 * One media node, put together: its workers, the streams that originate here, its sessions,
 * access control, and — by role — publishing (WHIP), playback (WHEP), renditions and its
 * membership in a CDN. Each of those is its own class; this one builds them in dependency order
 * (nothing refers to something built after it), answers for readiness and draining, and closes
 * everything it built. HTTP lives in http/.
 */
export class MediaNode {
  readonly config: MediaNodeConfig;
  readonly logger: Logger;
  readonly metrics: MediaNodeMetrics;
  readonly pool: WorkerPool;
  readonly state = new NodeState();
  /** Streams that originate here: published here, or rendered here. */
  readonly streams = new LocalStreams();
  readonly sessions: Sessions;
  /** What one client (and the node) may hold: sessions connecting, rendition starts, publishes. */
  readonly quotas: ClientQuotas;
  /** Who may watch what: ACLs, admission, revocation (edges and standalone; origins for the API). */
  readonly access: StreamAccess;
  /** Membership in a CDN (REDIS_URL set): registry, relays; absent standalone. */
  readonly cluster: ClusterMember | undefined;
  /** Renditions made on this node (transcoder and standalone roles). */
  readonly transcoder: Transcoder | undefined;
  readonly ingest: Publishing;
  readonly playback: Playback;
  /** Rendition ladders of adaptive viewers (ADAPTIVE_LADDER with PROFILES). */
  readonly ladders: RenditionLadders | undefined;
  /** HLS players (edges and standalone, HLS=true): packagers made on demand, signed URLs. */
  readonly hls: HlsPlayback | undefined;
  readonly #load: LoadReporter;

  private constructor(config: MediaNodeConfig, logger: Logger, metrics: MediaNodeMetrics, pool: WorkerPool) {
    this.config = config;
    this.logger = logger;
    this.metrics = metrics;
    this.pool = pool;
    this.sessions = new Sessions(metrics);
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
    if (config.cluster) {
      this.cluster = new ClusterMember({
        config: config.cluster,
        internalPort: config.internalPort,
        role: config.role,
        rtcListenIp: config.rtcListenIp,
        fanoutLingerMs: config.fanoutLingerMs,
        pool,
        streams: this.streams,
        transcodeOtherRegions: config.transcode.otherRegions,
        metrics,
        logger,
      });
      this.cluster.on('publishlost', (stream, reason) => this.streams.find(stream)?.close(reason));
    }
    // A source stream: one that originates here, else the CDN's copy relayed here.
    const sources: StreamResolver = {
      resolve: async (name) => this.streams.find(name) ?? (await this.cluster?.resolve(name)),
    };
    if (config.role === 'transcoder' || config.role === 'all') {
      this.transcoder = new Transcoder({
        profiles: config.transcode.profiles,
        pool,
        ffmpegPath: config.transcode.ffmpegPath,
        maxJobs: config.transcode.maxJobs,
        lingerMs: config.transcode.lingerMs,
        fanoutLingerMs: config.fanoutLingerMs,
        sources,
        claims: this.cluster ?? STANDALONE_CLAIMS,
        streams: this.streams,
        metrics,
        logger,
      });
    }
    this.ingest = new Publishing({
      config: { ...config, nodeId: config.cluster?.nodeId },
      state: this.state,
      pool,
      streams: this.streams,
      sessions: this.sessions,
      quotas: this.quotas,
      claims: this.cluster ?? STANDALONE_CLAIMS,
      metrics,
      logger,
    });
    const renditions = new RenditionRouter({
      profiles: config.transcode.profiles,
      local: this.transcoder,
      remote: this.cluster,
      quotas: this.quotas,
    });
    this.ladders =
      config.transcode.adaptiveLadder && config.transcode.profiles.length > 0
        ? new RenditionLadders({
            profiles: config.transcode.profiles,
            renditions,
            pool,
            fanoutLingerMs: config.fanoutLingerMs,
            lingerMs: config.transcode.lingerMs,
            logger,
          })
        : undefined;
    this.playback = new Playback({
      config: { ...config, maxNumberingsPerStream: config.limits.maxNumberingsPerStream },
      state: this.state,
      pool,
      access: this.access.controller,
      quotas: this.quotas,
      sessions: this.sessions,
      streams: this.streams,
      relays: this.cluster,
      renditions,
      ladders: this.ladders,
      logger,
    });
    if (config.hls.enabled && this.playback.accepts) {
      this.hls = new HlsPlayback({
        config: config.hls,
        profiles: config.transcode.profiles,
        state: this.state,
        pool,
        access: this.access.controller,
        sources,
        clusterSecret: config.cluster?.clusterSecret,
        nodeId: config.cluster?.nodeId,
        metrics,
        logger,
      });
    }
    const cluster = this.cluster;
    this.#load = new LoadReporter({
      pool,
      sessions: this.sessions,
      // Transcoders are balanced on this: their renditions count as streams.
      streamCount: () => this.streams.size + (cluster?.relayedStreams?.streams.length ?? 0),
      report: cluster && ((load) => cluster.setLoad(load)),
      metrics,
    });
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
      !this.state.closing &&
      !this.state.draining &&
      this.pool.workers.length > 0 &&
      (this.cluster?.ready ?? true) &&
      // A viewer node that cannot tell public from protected streams yet admits nobody.
      (!this.playback.accepts || this.access.cache.confirmedAt !== undefined)
    );
  }

  get draining(): boolean {
    return this.state.draining;
  }

  /**
   * Marks the node draining (or not): new viewers are refused with 503 so clients go to
   * another edge, readiness turns false so Kubernetes stops routing here, and the registry
   * tells the operator, which removes the pod once its viewers are gone. Viewers still here
   * after `deadlineMs` (DRAIN_DEADLINE_MS by default) have their sessions ended with reason
   * `node-draining` (DTLS close; the session resource then answers 410 SESSION_ENDED), which
   * players answer by playing again at the same URL — on another edge.
   */
  setDraining(draining: boolean, deadlineMs = this.config.drainDeadlineMs): void {
    // Shutting down (SIGTERM) is a drain nobody cancels.
    if (!draining && this.#terminating) return;
    clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
    if (draining) {
      this.#drainTimer = setTimeout(() => this.#endDrain(), deadlineMs);
      this.#drainTimer.unref();
    }
    if (!draining) this.hls?.resumeAfterDrain();
    if (!this.state.setDraining(draining)) return;
    void this.cluster?.setDraining(draining);
    this.logger.info(
      { draining, viewers: this.sessions.viewerCount, ...(draining ? { deadlineMs } : {}) },
      draining ? 'draining' : 'no longer draining',
    );
  }

  #drainTimer: NodeJS.Timeout | undefined;

  #endDrain(): void {
    this.#drainTimer = undefined;
    const ended = this.sessions.closeViewers('node-draining');
    if (ended > 0) this.logger.info({ viewers: ended }, 'drain deadline: viewer sessions ended');
    const packagers = this.hls?.endDrain() ?? 0;
    if (packagers > 0) this.logger.info({ packagers }, 'drain deadline: HLS players refused from now on');
    for (const waiter of this.#drainWaiters.splice(0)) waiter();
  }

  readonly #drainWaiters: (() => void)[] = [];
  #terminating = false;

  /**
   * SIGTERM: a node with viewers in a CDN drains first — its viewers keep playing until they
   * leave or the drain deadline ends their sessions (`node-draining`), and the edges relaying
   * through it have moved to another relay edge — then closes. Without either, or standalone
   * (nowhere else to go), it closes at once.
   */
  async drainThenClose(): Promise<void> {
    // Relays this edge serves other edges of its region (it is their relay edge): they move to
    // another relay edge once it drains (ClusterMember.setDraining), without a freeze — if it
    // closed at once they would fail over, with one.
    const relaysOut = () => this.cluster?.relayServer.relays.size ?? 0;
    if (
      this.cluster &&
      this.playback.accepts &&
      (this.sessions.viewerCount > 0 || relaysOut() > 0) &&
      !this.state.closing
    ) {
      this.#terminating = true;
      // (Re)started with DRAIN_DEADLINE_MS even when already draining with a longer deadline
      // (the autoscaler's grace period): SIGTERM must end within the pod's grace period.
      this.setDraining(true);
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (this.sessions.viewerCount === 0 && relaysOut() === 0) done();
        }, 100);
        const done = () => {
          clearInterval(check);
          resolve();
        };
        this.#drainWaiters.push(done);
      });
    }
    clearTimeout(this.#drainTimer);
    await this.close();
  }

  /** How long SIGTERM may take: a drain (viewers in a CDN), then closing. */
  get shutdownBudgetMs(): number {
    const drains = this.config.cluster !== undefined && this.playback.accepts;
    return this.config.shutdownTimeoutMs + (drains ? this.config.drainDeadlineMs : 0);
  }

  get relayServer() {
    return this.cluster?.relayServer;
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
      streams: this.streams.published().map((stream) => stream.name),
      relayedStreams:
        this.cluster?.relayedStreams?.streams.map((relayed) => ({
          name: relayed.name,
          upstream: relayed.link?.source.nodeId,
          relayId: relayed.link?.relayId,
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
      hls: [...(this.hls?.jobs.values() ?? [])].map((job) => ({
        name: job.name,
        ffmpegPid: job.ffmpegPid,
        hasSegments: job.hasSegments,
      })),
      relayEgressBps: await this.#relayEgressBps(),
      sessions: this.sessions.size,
      ladders: (await this.ladders?.rungs()) ?? {},
      viewers: await Promise.all(
        [...this.sessions.values()]
          .filter((session) => session instanceof ViewerSession)
          .map(async (session) => ({
            session: session.id,
            stream: session.streamName,
            video: session.video,
            adaptation: session.adaptation,
            availableOutgoingBitrate: await session.transport
              .getStats()
              .then(([stats]) => stats?.availableOutgoingBitrate)
              .catch(() => undefined),
          })),
      ),
      workers: await Promise.all(this.pool.workers.map((worker) => worker.dump())),
    };
  }

  /** Stops accepting, closes every session (viewers see DTLS close), stops the workers. */
  async close(): Promise<void> {
    if (!this.state.beginClosing()) return;
    clearTimeout(this.#drainTimer);
    this.#load.close();
    this.quotas.close();
    this.transcoder?.close('node-shutdown');
    this.hls?.close();
    await this.cluster?.close();
    await this.access.close();
    this.sessions.closeAll('node-shutdown');
    this.ladders?.close('node-shutdown');
    this.streams.closeAll('node-shutdown');
    // Let the workers flush DTLS close_notify to peers before they exit.
    await new Promise((resolve) => setTimeout(resolve, 100));
    this.pool.close();
  }
}
