import { ClusterRegistry } from './cluster/ClusterRegistry.js';
import type { NodeLoad } from './cluster/keys.js';
import type { ClusterConfig, Role } from './config.js';
import { HttpError } from './errors.js';
import { InternalClient } from './internal/InternalClient.js';
import type { Logger } from './logger.js';
import type { Stream } from './media/Stream.js';
import type { WorkerPool } from './media/WorkerPool.js';
import type { MediaNodeMetrics } from './metrics.js';
import { RelayedStreams } from './relay/RelayedStreams.js';
import type { PipeListen } from './relay/RelayOut.js';
import { RelayServer } from './relay/RelayServer.js';

export interface ClusterMemberOptions {
  config: ClusterConfig;
  role: Role;
  rtcListenIp: string;
  fanoutLingerMs: number;
  pool: WorkerPool;
  /** Streams published on this node. */
  publishedStream: (name: string) => Stream | undefined;
  /** Ends a local publish whose name another origin now holds. */
  onPublishLost: (name: string, reason: string) => void;
  metrics: MediaNodeMetrics;
  logger: Logger;
}

/**
 * This node's membership in a multi-node CDN: its registration in Redis (ClusterRegistry),
 * the relays it serves to other nodes (RelayServer) and, on edges, the streams it pulls from
 * other nodes (RelayedStreams).
 */
export class ClusterMember {
  readonly registry: ClusterRegistry;
  readonly relayServer: RelayServer;
  readonly relayedStreams: RelayedStreams | undefined;
  readonly #options: ClusterMemberOptions;
  readonly #claims = new Map<string, string>();

  constructor(options: ClusterMemberOptions) {
    this.#options = options;
    const { config, role, pool, metrics, logger } = options;
    const internalUrl = `http://${hostForUrl(config.internalAddress)}:${config.internalPort}`;
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
    const client = new InternalClient(config.clusterSecret);
    if (role === 'edge' || role === 'all') {
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
        metrics,
        logger,
      });
    }
    this.relayServer = new RelayServer({
      pool,
      liveNodeIds: async () => new Set((await this.registry.listNodes()).map((node) => node.id)),
      pipe,
      findStream: (name) => options.publishedStream(name) ?? this.relayedStreams?.get(name)?.stream,
      metrics,
      logger,
    });
    this.registry.on('ready', () => metrics.registryUp.set(1));
    this.registry.on('unavailable', () => metrics.registryUp.set(0));
    this.registry.on('streamdown', (message) =>
      this.relayedStreams?.onStreamDown(message.stream, message.claimId, message.reason),
    );
    this.registry.on('leaselost', (lost) => {
      if (lost.kind !== 'stream') return;
      this.#claims.delete(lost.name);
      logger.error({ stream: lost.name }, 'another origin now holds this stream; ending the local publish');
      options.onPublishLost(lost.name, 'stream-claim-lost');
    });
  }

  get ready(): boolean {
    return this.registry.ready;
  }

  /**
   * Claims `name` CDN-wide for a publish on this node. Throws 409 naming the holder when
   * another origin has it, 503 when the registry cannot be reached (never publish unclaimed:
   * two origins would serve one name).
   */
  async claimStream(name: string, kinds: ('audio' | 'video')[]): Promise<void> {
    let result: Awaited<ReturnType<ClusterRegistry['claimStream']>>;
    try {
      result = await this.registry.claimStream({ name, kinds });
    } catch (error) {
      this.#options.logger.error({ stream: name, err: error }, 'cannot claim stream in the registry');
      throw new HttpError(503, 'the CDN registry is unavailable; try again', { 'Retry-After': '2' });
    }
    if (!result.claimed) {
      throw new HttpError(409, `stream "${name}" is already being published on ${result.holder.nodeId}`);
    }
    this.#claims.set(name, result.claimId);
  }

  releaseStream(name: string, reason: string): void {
    if (!this.#claims.delete(name)) return;
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
      throw new HttpError(
        502,
        `stream "${name}" is live but cannot be relayed to this edge: ${error.message}`,
      );
    });
  }

  setLoad(load: NodeLoad): void {
    this.registry.setLoad(load);
  }

  async close(): Promise<void> {
    // The registry releases every claim it holds as it closes.
    this.#claims.clear();
    this.relayedStreams?.close('node-shutdown');
    this.relayServer.closeAll('node-shutdown');
    await this.registry.close();
  }
}

function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
