import { type ErrorCode, RtccdnError } from '../../contract/errors.js';
import { clientBucket } from '../../contract/http.js';
import { WindowLimiter } from '../../contract/runtime.js';
import type { LimitsConfig } from '../config.js';
import type { MediaNodeMetrics } from '../metrics.js';

/** Which bound refused a request (the `limit` label of rtccdn_limit_refusals_total). */
export type LimitName = 'pending-sessions' | 'rendition-starts' | 'publishes' | 'streams' | 'numberings';

/** A held unit of a quota; release() is idempotent. */
export interface QuotaSlot {
  release(): void;
}

/**
 * What one client (an IPv4 address or an IPv6 /64) can make a node hold: sessions that have not
 * connected yet, rendition starts per minute, open-ingest publishes; and the node's own stream
 * ceiling. A refusal is QUOTA_EXCEEDED (429) for a client's quota, NODE_LIMIT (503) for the node's, counted in
 * rtccdn_limit_refusals_total{limit}.
 */
export class ClientQuotas {
  readonly #limits: LimitsConfig;
  readonly #metrics: MediaNodeMetrics;
  readonly #pending = new Map<string, number>();
  readonly #publishes = new Map<string, number>();
  readonly #renditionStarts: WindowLimiter;

  constructor(limits: LimitsConfig, metrics: MediaNodeMetrics) {
    this.#limits = limits;
    this.#metrics = metrics;
    this.#renditionStarts = new WindowLimiter(limits.renditionStartsPerClient, 60_000);
  }

  /** A session of `clientIp` that has not connected yet; release it when it connects or closes. */
  reservePendingSession(clientIp: string): QuotaSlot {
    return this.#reserve(
      this.#pending,
      clientBucket(clientIp),
      this.#limits.maxPendingSessionsPerClient,
      () =>
        this.#refuse(
          'QUOTA_EXCEEDED',
          'pending-sessions',
          'too many sessions from this client are still connecting; try again shortly',
          5,
        ),
    );
  }

  /** A live stream published by `clientIp` on an open ingest (no PUBLISH_TOKEN). */
  reservePublish(clientIp: string): QuotaSlot {
    return this.#reserve(this.#publishes, clientBucket(clientIp), this.#limits.maxPublishesPerClient, () =>
      this.#refuse('QUOTA_EXCEEDED', 'publishes', 'this client publishes too many streams already', 30),
    );
  }

  /** Throws NODE_LIMIT when the node holds `streams` streams already. */
  checkStreamCount(streams: number): void {
    if (streams >= this.#limits.maxStreams) {
      throw this.#refuse(
        'NODE_LIMIT',
        'streams',
        `this node carries its maximum of ${this.#limits.maxStreams} streams`,
        10,
      );
    }
  }

  /**
   * Counts a rendition start requested by `clientIp` (one that is not running yet); throws 429
   * once the client has started its share this minute.
   */
  recordRenditionStart(clientIp: string): void {
    const bucket = clientBucket(clientIp);
    const blockedMs = this.#renditionStarts.blockedFor(bucket);
    if (blockedMs > 0) {
      throw this.#refuse(
        'QUOTA_EXCEEDED',
        'rendition-starts',
        'this client has started too many renditions; try again later',
        Math.ceil(blockedMs / 1000),
      );
    }
    this.#renditionStarts.record(bucket);
  }

  /** Counts a refusal made elsewhere (e.g. a stream's numbering cap). */
  refusal(code: ErrorCode, limit: LimitName, message: string, retryAfterSeconds: number): RtccdnError {
    return this.#refuse(code, limit, message, retryAfterSeconds);
  }

  #reserve(counts: Map<string, number>, bucket: string, max: number, refuse: () => RtccdnError): QuotaSlot {
    const held = counts.get(bucket) ?? 0;
    if (held >= max) throw refuse();
    counts.set(bucket, held + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const left = (counts.get(bucket) ?? 1) - 1;
        if (left <= 0) counts.delete(bucket);
        else counts.set(bucket, left);
      },
    };
  }

  #refuse(code: ErrorCode, limit: LimitName, message: string, retryAfterSeconds: number): RtccdnError {
    this.#metrics.limitRefusals.inc({ limit });
    return new RtccdnError(code, message, { data: { limit }, retryAfterMs: retryAfterSeconds * 1000 });
  }

  close(): void {
    this.#renditionStarts.close();
  }
}
