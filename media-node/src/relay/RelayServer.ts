import { RtccdnError } from '../../contract/errors.js';
import type { KeySealer } from '../../contract/internal-api.js';
import { openSrtp, type RelayRequest, type RelayResponse, sealSrtp } from '../../contract/internal-api.js';
import type { Logger } from '../logger.js';
import type { Stream } from '../media/Stream.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { MediaNodeMetrics } from '../metrics.js';
import { type PipeListen, RelayOut } from './RelayOut.js';

/** Receiver reports come at least every 5 s (audio-only); a longer silence means no receiver. */
const SILENT_DOWNSTREAM_MS = 15_000;
/** A downstream node missing from the registry is gone once it has also been silent this long. */
const SILENT_UNREGISTERED_MS = 2_500;

export interface RelayServerOptions {
  pool: WorkerPool;
  /** Ids of the nodes currently registered, to reap relays to nodes that died. */
  liveNodeIds: () => Promise<Set<string>>;
  /** How often relays are checked for a dead downstream node. */
  reapIntervalMs?: number;
  pipe: PipeListen;
  /** Opens the requester's SRTP key and seals ours (keys never cross the wire in the clear). */
  sealer: KeySealer;
  /** The local stream with this name (published here, or relayed here), if any. */
  findStream: (name: string) => Stream | undefined;
  metrics: MediaNodeMetrics;
  logger: Logger;
}

/**
 * Serves relay requests from other nodes: each becomes a RelayOut on the least loaded worker
 * (fed there through the stream's fan-out, so relays spread over cores like viewers do).
 * A downstream node that dies never says goodbye: relays to nodes no longer registered, or
 * silent (no RTCP back) for too long, are reaped.
 */
export class RelayServer {
  readonly #options: RelayServerOptions;
  readonly #relays = new Map<string, RelayOut>();
  /** Bytes received (RTCP from downstream) per relay at the last check, and since when. */
  readonly #lastHeard = new Map<string, { bytes: number; sinceMs: number }>();
  readonly #reapTimer: NodeJS.Timeout;

  constructor(options: RelayServerOptions) {
    this.#options = options;
    this.#reapTimer = setInterval(() => void this.#reap(), options.reapIntervalMs ?? 2000);
    this.#reapTimer.unref();
  }

  get relays(): ReadonlyMap<string, RelayOut> {
    return this.#relays;
  }

  async open(request: RelayRequest): Promise<RelayResponse> {
    const { pool, pipe, findStream, sealer, metrics, logger } = this.#options;
    const stream = findStream(request.stream);
    if (!stream || stream.closed)
      throw new RtccdnError('STREAM_NOT_LIVE', `stream "${request.stream}" is not on this node`);
    let srtpParameters: ReturnType<typeof openSrtp>;
    try {
      srtpParameters = openSrtp(sealer, request.pipe.srtpParameters);
    } catch (error) {
      throw new RtccdnError(
        'INVALID_REQUEST',
        `invalid relay request: pipe.srtpParameters: ${(error as Error).message}`,
      );
    }
    const relay = await RelayOut.create({
      stream,
      worker: pool.leastLoaded(),
      remote: { ...request.pipe, srtpParameters },
      requester: request.nodeId,
      pipe,
      logger,
    });
    this.#relays.set(relay.id, relay);
    metrics.relaysOut.inc();
    relay.once('close', () => {
      this.#relays.delete(relay.id);
      metrics.relaysOut.dec();
    });
    logger.info(
      { stream: request.stream, relay: relay.id, to: request.nodeId },
      'relaying to downstream node',
    );
    const described = relay.describe();
    return {
      ...described,
      pipe: { ...described.pipe, srtpParameters: sealSrtp(sealer, described.pipe.srtpParameters) },
    };
  }

  /** False when there is no such relay (already closed, or never here). */
  close(relayId: string, reason: string): boolean {
    const relay = this.#relays.get(relayId);
    if (!relay) return false;
    relay.close(reason);
    return true;
  }

  closeAll(reason: string): void {
    clearInterval(this.#reapTimer);
    for (const relay of [...this.#relays.values()]) relay.close(reason);
  }

  async #reap(): Promise<void> {
    if (this.#relays.size === 0) return;
    const { liveNodeIds, logger } = this.#options;
    const live = await liveNodeIds().catch(() => undefined); // registry down: judge by RTCP only
    const now = Date.now();
    for (const relay of [...this.#relays.values()]) {
      const [stats] = await relay.transport.getStats().catch(() => []);
      if (!stats) continue;
      const heard = this.#lastHeard.get(relay.id);
      if (!heard || stats.bytesReceived > heard.bytes) {
        this.#lastHeard.set(relay.id, { bytes: stats.bytesReceived, sinceMs: now });
        continue;
      }
      const silentMs = now - heard.sinceMs;
      // Unregistered alone proves nothing (Redis may have restarted empty a moment ago); with
      // its receiver reports stopped too, the node is gone. Silence alone, long enough, as well.
      const unregistered = live !== undefined && !live.has(relay.requester);
      if ((unregistered && silentMs > SILENT_UNREGISTERED_MS) || silentMs > SILENT_DOWNSTREAM_MS) {
        logger.warn({ relay: relay.id, to: relay.requester, silentMs, unregistered }, 'downstream node gone');
        relay.close(unregistered ? 'downstream node gone' : 'downstream silent');
      }
    }
    for (const id of this.#lastHeard.keys()) if (!this.#relays.has(id)) this.#lastHeard.delete(id);
  }
}
