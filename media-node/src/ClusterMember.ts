import { RtccdnError } from '../contract/errors.js';
import {
  CLAIMS_PATH,
  ClaimStatusSchema,
  type HlsForwardQuery,
  hlsPath,
  InternalCallError,
  InternalClient,
  RENDITIONS_PATH,
  type RelayedAnswer,
  sessionPath,
} from '../contract/internal-api.js';
import { RENDITION_SEPARATOR } from '../contract/names.js';
import type { NodeLoad, StreamRecord } from '../contract/redis.js';
import { TypedEmitter } from '../contract/runtime.js';
import { ClusterRegistry } from './cluster/ClusterRegistry.js';
import type { ClusterConfig, Role } from './config.js';
import type { Logger } from './logger.js';
import type { Stream } from './media/Stream.js';
import type { WorkerPool } from './media/WorkerPool.js';
import type { MediaNodeMetrics } from './metrics.js';
import type { RemoteRenditions } from './playback/RenditionRouter.js';
import { RelayedStreams } from './relay/RelayedStreams.js';
import type { PipeListen } from './relay/RelayOut.js';
import { RelayServer } from './relay/RelayServer.js';
import type { StreamLookup, StreamResolver } from './streams/LocalStreams.js';
import type { StreamClaims } from './streams/StreamClaims.js';
import { renditionName } from './transcode/profiles.js';

/** A live node answers a probe in milliseconds; one that takes longer is not judged dead by it. */
const HOLDER_PROBE_TIMEOUT_MS = 500;

export interface ClusterMemberOptions {
  config: ClusterConfig;
  /** Port of this node's internal API (part of the URL other nodes call). */
  internalPort: number;
  role: Role;
  rtcListenIp: string;
  fanoutLingerMs: number;
  pool: WorkerPool;
  /** Streams that originate on this node (published or rendered here): what it relays to others. */
  streams: StreamLookup;
  /** Edges ask transcoders of other regions when none of theirs can take a rendition. */
  transcodeOtherRegions: boolean;
  metrics: MediaNodeMetrics;
  logger: Logger;
}

export type ClusterMemberEvents = {
  /** Another origin now holds `stream`, which this node published: the local publish must end. */
  publishlost: [stream: string, reason: string];
};

/**
 * This node's membership in a multi-node CDN: its registration in Redis (ClusterRegistry, which
 * holds its stream claims), the relays it serves to other nodes (RelayServer) and, on edges, the
 * streams it pulls from other nodes (RelayedStreams) and the renditions it asks transcoders for.
 */
export class ClusterMember
  extends TypedEmitter<ClusterMemberEvents>
  implements StreamClaims, StreamResolver, RemoteRenditions
{
  readonly registry: ClusterRegistry;
  readonly relayServer: RelayServer;
  readonly relayedStreams: RelayedStreams | undefined;
  readonly #options: ClusterMemberOptions;
  readonly #client: InternalClient;
  /** Rendition starts requested by this edge, by rendition name (one request at a time). */
  readonly #startingRenditions = new Map<string, Promise<void>>();

  constructor(options: ClusterMemberOptions) {
    super();
    this.#options = options;
    const { config, role, pool, metrics, logger } = options;
    const internalUrl = `http://${hostForUrl(config.internalAddress)}:${options.internalPort}`;
    const pipe: PipeListen = {
      listenIp: options.rtcListenIp,
      announcedAddress: config.internalAddress,
      portRange: config.pipePortRange,
    };
    this.registry = ClusterRegistry.create({
      redisUrl: config.redisUrl,
      prefix: config.redisPrefix,
      self: { id: config.nodeId, role, region: config.region, internalUrl },
      logger,
    });
    const client = new InternalClient(config.clusterSecret, 15_000);
    this.#client = client;
    // Edges relay streams to viewers; transcoders relay the sources of their renditions.
    if (role === 'edge' || role === 'all' || role === 'transcoder') {
      this.relayedStreams = new RelayedStreams({
        directory: this.registry,
        pool,
        client,
        pipe,
        self: { nodeId: config.nodeId, region: config.region, internalUrl },
        regionalRelay: config.regionalRelay && role === 'edge',
        lingerMs: config.relayLingerMs,
        sourceLossGraceMs: config.sourceLossGraceMs,
        fanoutLingerMs: options.fanoutLingerMs,
        remake: (name, deadNodeId) => this.#remake(name, deadNodeId),
        metrics,
        logger,
      });
    }
    this.relayServer = new RelayServer({
      pool,
      liveNodeIds: async () => new Set((await this.registry.listNodes()).map((node) => node.id)),
      pipe,
      sealer: client.sealer,
      findStream: (name) => options.streams.find(name) ?? this.relayedStreams?.get(name)?.stream,
      metrics,
      logger,
    });
    this.registry.on('ready', () => metrics.registryUp.set(1));
    this.registry.on('unavailable', () => metrics.registryUp.set(0));
    this.registry.on('streamdown', (message) =>
      this.relayedStreams?.onStreamDown(message.stream, message.claimId, message.reason),
    );
    this.registry.on('streamup', (message) =>
      this.relayedStreams?.onStreamUp(message.stream, message.claimId, message.replaces),
    );
    this.registry.on('leaselost', (lost) => {
      if (lost.kind !== 'stream') return;
      logger.error({ stream: lost.name }, 'another origin now holds this stream; ending the local publish');
      this.emit('publishlost', lost.name, 'stream-claim-lost');
    });
  }

  get ready(): boolean {
    return this.registry.ready;
  }

  /**
   * This node drains (or no longer does): the registry says so at once (a heartbeat now, not at
   * the next one), then a draining edge hands the region's relay leases it holds over
   * (RelayedStreams.handOver) — after the record, so that the edges which find a lease gone
   * know its holder drains. Never rejects (Redis down: the leases are left to expire).
   */
  async setDraining(draining: boolean): Promise<void> {
    this.registry.setDraining(draining);
    if (!draining) this.relayedStreams?.resumeRegionalRelay();
    await this.registry.heartbeatNow();
    if (draining) await this.relayedStreams?.handOver();
  }

  /**
   * Claims `name` CDN-wide for a publish (or a rendition) on this node. A holder that is gone —
   * its internal API refuses the connection, or it answers that it holds no such claim (a
   * restarted process) — is taken over at once instead of after its TTL: that is how a publisher
   * moves to another origin (and a rendition to another transcoder) within a second of its node
   * dying. A holder that does not answer in time may be alive behind a partition: its claim is
   * waited out. Throws STREAM_CLAIMED naming the holder when another node has it,
   * REGISTRY_UNAVAILABLE when the registry cannot be reached (never publish unclaimed: two
   * origins would serve one name).
   */
  async claim(name: string, kinds: ('audio' | 'video')[]): Promise<void> {
    let result = await this.#claim(name, kinds);
    if (!result.claimed && (await this.#holderGone(result.holder))) {
      result = await this.#claim(name, kinds, result.holder.claimId);
    }
    if (!result.claimed) {
      throw new RtccdnError(
        'STREAM_CLAIMED',
        `stream "${name}" is already being published on ${result.holder.nodeId}`,
        { data: { stream: name, holder: result.holder.nodeId } },
      );
    }
  }

  async #claim(name: string, kinds: ('audio' | 'video')[], replaces?: string) {
    try {
      return await this.registry.claimStream({ name, kinds }, replaces ? { replaces } : {});
    } catch (error) {
      this.#options.logger.error({ stream: name, err: error }, 'cannot claim stream in the registry');
      throw new RtccdnError('REGISTRY_UNAVAILABLE', 'the CDN registry is unavailable; try again', {
        retryAfterMs: 2000,
      });
    }
  }

  /** Whether the node holding `holder` is gone (so its claim may be taken over now). */
  async #holderGone(holder: StreamRecord): Promise<boolean> {
    const { logger, config } = this.#options;
    if (holder.nodeId === config.nodeId) {
      // Our own id but not our claim: left by an earlier run of this node.
      return this.registry.heldStream(holder.name)?.claimId !== holder.claimId;
    }
    try {
      const answer = await this.#client.request(
        'GET',
        holder,
        `${CLAIMS_PATH}/${encodeURIComponent(holder.name)}`,
        undefined,
        { timeoutMs: HOLDER_PROBE_TIMEOUT_MS },
      );
      // Alive and holding a claim on the name: never taken over, whichever claim its answer names.
      if (!ClaimStatusSchema.safeParse(answer).success) {
        logger.warn({ stream: holder.name, holder: holder.nodeId }, 'invalid claim status from the holder');
      }
      return false;
    } catch (error) {
      const gone =
        error instanceof InternalCallError &&
        (error.unreachable === 'refused' || error.code === 'STREAM_NOT_LIVE');
      logger.info(
        { stream: holder.name, holder: holder.nodeId, reason: (error as Error).message, gone },
        gone
          ? 'the holder of the stream is gone; taking its claim over'
          : 'the holder of the stream may be alive',
      );
      return gone;
    }
  }

  /** Lets a claim go (nothing happens for a name this node does not hold). */
  release(name: string, reason: string): void {
    this.registry.releaseStream(name, reason).catch((error: Error) =>
      // Not fatal: the claim expires by itself within its TTL.
      this.#options.logger.warn({ stream: name, err: error }, 'cannot release stream claim'),
    );
  }

  /** The local copy of a live stream published elsewhere (edges); undefined if not live. */
  resolve(name: string): Promise<Stream | undefined> {
    if (!this.relayedStreams) return Promise.resolve(undefined);
    return this.relayedStreams.resolve(name).catch((error: Error) => {
      this.#options.logger.error({ stream: name, err: error }, 'cannot relay stream');
      throw new RtccdnError(
        'UPSTREAM_FAILED',
        `stream "${name}" is live but cannot be relayed to this edge: ${error.message}`,
        { cause: error },
      );
    });
  }

  /**
   * The local copy of the rendition `{source}~{profile}`: relayed from the transcoder making it,
   * after asking one of this region's transcoders (least loaded first) to start it if no node
   * makes it yet. Several edges asking at once start one job: the transcoder claims the name.
   * `beforeStart` runs (and may refuse by throwing) only when this call would start one.
   */
  async resolveRendition(
    source: string,
    profile: string,
    beforeStart: () => void,
  ): Promise<Stream | undefined> {
    const name = renditionName(source, profile);
    if (!(await this.#lookup(name))) {
      let starting = this.#startingRenditions.get(name);
      if (!starting) {
        beforeStart();
        starting = this.#startRendition(source, profile, name).finally(() =>
          this.#startingRenditions.delete(name),
        );
        this.#startingRenditions.set(name, starting);
      }
      await starting;
    }
    return this.resolve(name);
  }

  async #lookup(name: string) {
    try {
      return await this.registry.lookupStream(name);
    } catch (error) {
      throw new RtccdnError(
        'REGISTRY_UNAVAILABLE',
        `the CDN registry is unavailable: ${(error as Error).message}`,
        {
          retryAfterMs: 2000,
        },
      );
    }
  }

  /**
   * The node making `name` died (RelayedStreams found it dead): a rendition is asked of another
   * transcoder (which takes the dead one's claim over); a published stream only its publisher can
   * bring back.
   */
  async #remake(name: string, deadNodeId: string): Promise<void> {
    const at = name.lastIndexOf(RENDITION_SEPARATOR);
    if (at <= 0) return;
    await this.#startRendition(name.slice(0, at), name.slice(at + 1), name, deadNodeId);
  }

  async #startRendition(source: string, profile: string, name: string, excluded?: string): Promise<void> {
    const { config, logger } = this.#options;
    const candidates = (await this.registry.listNodes({ role: 'transcoder' }).catch(() => []))
      .filter(
        (node) =>
          node.id !== excluded &&
          !node.draining &&
          (node.region === config.region || this.#options.transcodeOtherRegions),
      )
      // Own region first, then the least loaded.
      .sort(
        (a, b) =>
          Number(b.region === config.region) - Number(a.region === config.region) ||
          a.load.streams - b.load.streams,
      );
    if (candidates.length === 0) {
      throw new RtccdnError(
        'TRANSCODER_UNAVAILABLE',
        `no transcoder available for ${name} in region ${config.region}`,
        {
          retryAfterMs: 5000,
        },
      );
    }
    const failures: string[] = [];
    for (const transcoder of candidates) {
      try {
        await this.#client.request(
          'POST',
          { nodeId: transcoder.id, internalUrl: transcoder.internalUrl },
          RENDITIONS_PATH,
          {
            stream: source,
            profile,
          },
        );
        return;
      } catch (error) {
        const code = error instanceof InternalCallError ? error.code : undefined;
        if (code === 'STREAM_CLAIMED') return; // another node makes it already
        // What the viewer asked for cannot be made anywhere: say so, in the transcoder's words.
        if (code === 'STREAM_NOT_LIVE' || code === 'UNKNOWN_PROFILE' || code === 'INVALID_REQUEST')
          throw new RtccdnError(
            code,
            (error as InternalCallError).reason ?? 'the transcoder refused the rendition',
          );
        failures.push(`${transcoder.id}: ${(error as Error).message}`);
        logger.warn(
          { rendition: name, transcoder: transcoder.id, err: error },
          'transcoder did not take the rendition',
        );
      }
    }
    throw new RtccdnError(
      'TRANSCODER_UNAVAILABLE',
      `no transcoder could start ${name} (${failures.join('; ')})`,
      {
        retryAfterMs: 5000,
      },
    );
  }

  /**
   * Ends a session held by another node of the CDN (a player's DELETE that the load balancer sent
   * here). Answers as the holder would: nothing (ended), or SESSION_NOT_FOUND / SESSION_ENDED; a
   * holder that is gone held nothing any more (404); one that cannot be asked, 502.
   */
  async endRemoteSession(
    nodeId: string,
    protocol: 'whip' | 'whep',
    stream: string,
    sessionId: string,
  ): Promise<void> {
    let holder: Awaited<ReturnType<ClusterRegistry['lookupNode']>>;
    try {
      holder = await this.registry.lookupNode(nodeId);
    } catch (error) {
      throw new RtccdnError(
        'REGISTRY_UNAVAILABLE',
        `the CDN registry is unavailable: ${(error as Error).message}`,
        { retryAfterMs: 2000 },
      );
    }
    if (!holder) {
      throw new RtccdnError(
        'SESSION_NOT_FOUND',
        `no ${protocol.toUpperCase()} session ${sessionId} on stream "${stream}" (node ${nodeId} is gone)`,
      );
    }
    try {
      await this.#client.request(
        'DELETE',
        { nodeId: holder.id, internalUrl: holder.internalUrl },
        sessionPath(protocol, stream, sessionId),
      );
    } catch (error) {
      if (
        error instanceof InternalCallError &&
        (error.code === 'SESSION_NOT_FOUND' || error.code === 'SESSION_ENDED')
      ) {
        throw new RtccdnError(error.code, error.reason ?? error.message, {
          ...(error.data ? { data: error.data } : {}),
        });
      }
      throw new RtccdnError(
        'UPSTREAM_FAILED',
        `node ${nodeId}, which holds the session, did not end it: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /**
   * Serves an HLS request through the edge whose packager the player's signed URL names (a
   * request the load balancer sent here): that edge checks the URL and the grant and answers, and
   * its answer — bytes or error — is returned as it came. A holder that left the CDN or does not
   * answer: 410 HLS_NODE_GONE (the player loads the multivariant playlist again and lands on a
   * live edge); the registry unreachable: 503 REGISTRY_UNAVAILABLE.
   */
  async forwardHls(
    nodeId: string,
    file: { stream: string; variant: string; name: string },
    query: HlsForwardQuery,
  ): Promise<RelayedAnswer> {
    const forwarded = this.#options.metrics.hlsForwardedRequests;
    let holder: Awaited<ReturnType<ClusterRegistry['lookupNode']>>;
    try {
      holder = await this.registry.lookupNode(nodeId);
    } catch (error) {
      forwarded.inc({ outcome: 'registry-unavailable' });
      throw new RtccdnError(
        'REGISTRY_UNAVAILABLE',
        `the CDN registry is unavailable: ${(error as Error).message}`,
        { retryAfterMs: 2000 },
      );
    }
    const gone = (why: string) => {
      forwarded.inc({ outcome: 'node-gone' });
      return new RtccdnError(
        'HLS_NODE_GONE',
        `edge ${nodeId}, which packages this HLS stream for the player, ${why}; load the multivariant playlist again`,
        { data: { node: nodeId } },
      );
    };
    if (!holder) throw gone('left the CDN');
    try {
      const answer = await this.#client.relay(
        { nodeId: holder.id, internalUrl: holder.internalUrl },
        hlsPath(file.stream, file.variant, file.name, query),
        { timeoutMs: HLS_FORWARD_TIMEOUT_MS, maxBytes: MAX_HLS_FORWARD_BYTES },
      );
      forwarded.inc({
        outcome: answer.status < 400 ? 'answered' : answer.status < 500 ? 'refused' : 'failed',
      });
      return answer;
    } catch (error) {
      if (error instanceof InternalCallError && error.unreachable !== undefined) {
        this.#options.logger.warn(
          { node: nodeId, stream: file.stream, err: error },
          'HLS holder unreachable',
        );
        throw gone(error.unreachable === 'timeout' ? 'does not answer in time' : 'does not answer');
      }
      forwarded.inc({ outcome: 'bad-answer' });
      throw new RtccdnError(
        'UPSTREAM_FAILED',
        `edge ${nodeId}, which packages this HLS stream, did not answer properly: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  setLoad(load: NodeLoad): void {
    this.registry.setLoad(load);
  }

  async close(): Promise<void> {
    // The registry releases every claim it holds as it closes.
    this.relayedStreams?.close('node-shutdown');
    this.relayServer.closeAll('node-shutdown');
    await this.registry.close();
  }
}

/**
 * A forwarded HLS request may wait at the holder for a new packager's first segment (up to 10 s,
 * twice when FFmpeg fails to start) or, as a blocking reload, for a part (up to 3 target
 * durations): the call waits longer than either.
 */
const HLS_FORWARD_TIMEOUT_MS = 25_000;

/** A segment is ~1 s of the source (a few hundred KiB); far more is refused. */
const MAX_HLS_FORWARD_BYTES = 16 * 1024 * 1024;

function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
