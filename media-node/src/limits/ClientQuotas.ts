import { type ErrorCode, RtccdnError } from '../../contract/errors.js';
import { clientBucket } from '../../contract/http.js';
import { WindowLimiter } from '../../contract/runtime.js';
import type { LimitsConfig } from '../config.js';
import type { MediaNodeMetrics } from '../metrics.js';

/** Which bound refused a request (the `limit` label of rtccdn_limit_refusals_total). */
export type LimitName =
  | 'pending-sessions'
  | 'node-pending-sessions'
  | 'rendition-starts'
  | 'publishes'
  | 'streams'
  | 'numberings';

/** Joins that may wait for a node-wide pending slot, per slot (MAX_PENDING_SESSIONS). */
export const ADMISSION_QUEUE_FACTOR = 4;

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
  /** Pending sessions of all clients together (the node-wide bound). */
  #pendingTotal = 0;
  /** Joins waiting for a node-wide slot, first come first served: each grants its slot. */
  readonly #waiting: (() => void)[] = [];
  readonly #publishes = new Map<string, number>();
  readonly #renditionStarts: WindowLimiter;

  constructor(limits: LimitsConfig, metrics: MediaNodeMetrics) {
    this.#limits = limits;
    this.#metrics = metrics;
    this.#renditionStarts = new WindowLimiter(limits.renditionStartsPerClient, 60_000);
    metrics.admissionSampler = () => this.admission;
  }

  /**
   * A session of `clientIp` that has not connected yet; release it when it connects or closes.
   *
   * Node-wide, at most MAX_PENDING_SESSIONS are set up at once (offer → answer → ICE + DTLS, the
   * work a flash crowd piles on the worker and the main thread). A join past that waits in line
   * (first come, first served) for up to ADMISSION_QUEUE_MS, with at most 4 × MAX_PENDING_SESSIONS
   * waiting; past either, 503 + Retry-After (1–3 s, spread so that the refused do not come back
   * as one wave). The node keeps admitting at the rate it can connect, and admitted viewers
   * connect in bounded time instead of everyone queueing behind everyone until CONNECT_TIMEOUT.
   * The client's own quota (429) is checked first: one client cannot fill the line.
   */
  async reservePendingSession(clientIp: string): Promise<QuotaSlot> {
    const clientSlot = this.#reserveForClient(clientIp);
    try {
      await this.#nodeSlot();
    } catch (error) {
      clientSlot.release();
      throw error;
    }
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        clientSlot.release();
        this.#pendingTotal--;
        this.#waiting.shift()?.();
      },
    };
  }

  /** Sessions being set up node-wide now, and joins waiting for a slot (metrics, tests). */
  get admission(): { pending: number; waiting: number } {
    return { pending: this.#pendingTotal, waiting: this.#waiting.length };
  }

  #nodeSlot(): Promise<void> {
    const max = this.#limits.maxPendingSessions;
    if (this.#pendingTotal < max && this.#waiting.length === 0) {
      this.#pendingTotal++;
      return Promise.resolve();
    }
    const refusal = () =>
      this.#refuse(
        'NODE_LIMIT',
        'node-pending-sessions',
        'this node is setting up as many sessions as it takes at once; try again shortly',
        1 + Math.floor(Math.random() * 3),
      );
    if (this.#limits.admissionQueueMs === 0 || this.#waiting.length >= ADMISSION_QUEUE_FACTOR * max) {
      return Promise.reject(refusal());
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        this.#pendingTotal++;
        resolve();
      };
      const timer = setTimeout(() => {
        const index = this.#waiting.indexOf(grant);
        if (index >= 0) this.#waiting.splice(index, 1);
        reject(refusal());
      }, this.#limits.admissionQueueMs);
      timer.unref();
      this.#waiting.push(grant);
    });
  }

  #reserveForClient(clientIp: string): QuotaSlot {
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
