import { HttpError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { MediaNodeMetrics } from '../metrics.js';
import type { AclCache } from './AclCache.js';
import { FailureLimiter } from './FailureLimiter.js';
import { findKey, hashAccessKey } from './hashing.js';
import { type DefaultPolicy, patternMatches } from './model.js';

/** What a viewer was admitted with: re-checked whenever the ACLs change or its key expires. */
export interface Grant {
  stream: string;
  /** Hash of the key the viewer presented (never the key); undefined: admitted without one. */
  keyHash: string | undefined;
  keyId: string | undefined;
  clientIp: string;
}

/** A session access control can end. */
export interface Guarded {
  readonly id: string;
  close(reason: string): void;
  once(event: 'close', listener: (reason: string) => void): unknown;
}

export interface AccessControllerOptions {
  cache: AclCache;
  hashKey: Buffer;
  defaultPolicy: DefaultPolicy;
  /** Protected streams are refused (503) when the cache is older than this (Redis down). */
  maxStalenessMs: number;
  limits: { perClientIp: number; perStream: number; windowMs: number };
  metrics: MediaNodeMetrics;
  logger: Logger;
}

interface Watched {
  session: Guarded;
  grant: Grant;
  expiryTimer?: NodeJS.Timeout;
}

/** setTimeout's ceiling (~24.8 days); later expiries are re-armed when the timer fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Admission of viewers by access key, and revocation. Decisions come from the in-memory ACL
 * cache, never from a Redis round trip. Every admitted session is watched: when an ACL changes
 * (key removed, ACL deleted, stream made private) or the viewer's key expires — by this node's
 * own timer — the session is closed.
 */
export class AccessController {
  readonly #options: AccessControllerOptions;
  readonly #byClientIp: FailureLimiter;
  readonly #byStream: FailureLimiter;
  readonly #watched = new Map<string, Watched>();
  readonly #logger: Logger;

  constructor(options: AccessControllerOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'access' });
    this.#byClientIp = new FailureLimiter(options.limits.perClientIp, options.limits.windowMs);
    this.#byStream = new FailureLimiter(options.limits.perStream, options.limits.windowMs);
    options.cache.on('changed', (patterns, at) => this.#recheck(patterns, at));
  }

  /**
   * Admits a viewer of `stream` presenting `key` (or none), or throws: 401 (protected, no key),
   * 403 (wrong, removed or expired key — the same answer for each), 429 (too many failures from
   * this client or on this stream), 503 (protected and the ACLs may be out of date).
   */
  admit(stream: string, key: string | undefined, clientIp: string): Grant {
    const { cache, defaultPolicy, maxStalenessMs, metrics } = this.#options;
    const refuse = (
      status: number,
      result: string,
      message: string,
      headers: Record<string, string> = {},
    ) => {
      metrics.admissions.inc({ result });
      this.#logger.info({ stream, clientIp, status }, `viewer refused: ${message}`);
      return new HttpError(status, message, headers);
    };
    const acl = cache.governing(stream);
    if (cache.confirmedAt === undefined) {
      // Never loaded: we cannot tell a public stream from a protected one.
      throw refuse(503, '503', 'access rules are not loaded yet; try again', { 'Retry-After': '2' });
    }
    if (cache.isLocked(stream)) {
      throw refuse(
        503,
        '503',
        'the access rules of this stream were lost and are being restored; try again',
        {
          'Retry-After': '5',
        },
      );
    }
    if (!acl && defaultPolicy === 'allow') {
      metrics.admissions.inc({ result: 'ok' });
      // Keep what the viewer presented: if the stream turns protected with this key (an ACL
      // written a moment ago that this edge has not seen yet), the viewer stays.
      const keyHash = key ? hashAccessKey(this.#options.hashKey, key) : undefined;
      return { stream, keyHash, keyId: undefined, clientIp };
    }
    const blockedMs = Math.max(this.#byClientIp.blockedFor(clientIp), this.#byStream.blockedFor(stream));
    if (blockedMs > 0) {
      throw refuse(429, '429', 'too many failed attempts; try again later', {
        'Retry-After': String(Math.ceil(blockedMs / 1000)),
      });
    }
    if (Date.now() - cache.confirmedAt > maxStalenessMs) {
      throw refuse(503, '503', 'access rules cannot be verified right now; try again', {
        'Retry-After': '5',
      });
    }
    if (key === undefined || key === '') {
      throw refuse(401, '401', 'this stream requires an access key', {
        'WWW-Authenticate': 'Bearer realm="rtccdn"',
      });
    }
    const keyHash = hashAccessKey(this.#options.hashKey, key);
    const stored = acl ? findKey(acl.keys, keyHash) : undefined;
    if (!stored || isExpired(stored.expiresAt)) {
      this.#byClientIp.recordFailure(clientIp);
      this.#byStream.recordFailure(stream);
      throw refuse(403, '403', 'access denied', {
        'WWW-Authenticate': 'Bearer realm="rtccdn", error="invalid_token"',
      });
    }
    metrics.admissions.inc({ result: 'ok' });
    return { stream, keyHash, keyId: stored.id, clientIp };
  }

  /** Keeps `session` under watch until it closes. */
  watch(session: Guarded, grant: Grant): void {
    const watched: Watched = { session, grant };
    this.#watched.set(session.id, watched);
    session.once('close', () => {
      clearTimeout(watched.expiryTimer);
      this.#watched.delete(session.id);
    });
    this.#armExpiry(watched);
  }

  /** Sessions under watch (for tests and dumps). */
  get watchedCount(): number {
    return this.#watched.size;
  }

  #recheck(patterns: ReadonlySet<string>, changedAt: number | undefined): void {
    for (const watched of [...this.#watched.values()]) {
      if (![...patterns].some((pattern) => patternMatches(pattern, watched.grant.stream))) continue;
      const verdict = this.#verdict(watched.grant);
      if (verdict === 'ok') this.#armExpiry(watched);
      else this.#revoke(watched, verdict, changedAt);
    }
  }

  /** Would the viewer be let in now with what it presented? (No rate limit, no staleness.) */
  #verdict(grant: Grant): 'ok' | 'key-removed' | 'key-expired' | 'stream-protected' {
    const acl = this.#options.cache.governing(grant.stream);
    if (!acl) {
      if (this.#options.defaultPolicy === 'allow') return 'ok';
      return grant.keyHash ? 'key-removed' : 'stream-protected';
    }
    if (!grant.keyHash) return 'stream-protected';
    const stored = findKey(acl.keys, grant.keyHash);
    if (!stored) return 'key-removed';
    return isExpired(stored.expiresAt) ? 'key-expired' : 'ok';
  }

  #armExpiry(watched: Watched): void {
    clearTimeout(watched.expiryTimer);
    watched.expiryTimer = undefined;
    const acl = watched.grant.keyHash ? this.#options.cache.governing(watched.grant.stream) : undefined;
    const expiresAt = acl && findKey(acl.keys, watched.grant.keyHash!)?.expiresAt;
    if (expiresAt === undefined) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - Date.now()));
    watched.expiryTimer = setTimeout(() => {
      const verdict = this.#verdict(watched.grant);
      if (verdict === 'ok') this.#armExpiry(watched);
      else this.#revoke(watched, verdict, expiresAt);
    }, delay);
    watched.expiryTimer.unref();
  }

  #revoke(watched: Watched, reason: string, changedAt: number | undefined): void {
    const { metrics } = this.#options;
    const { grant } = watched;
    watched.session.close(`revoked: ${reason}`);
    metrics.revocations.inc({ reason });
    if (changedAt !== undefined)
      metrics.revocationSeconds.observe(Math.max(0, Date.now() - changedAt) / 1000);
    this.#logger.info(
      {
        stream: grant.stream,
        keyId: grant.keyId,
        clientIp: grant.clientIp,
        session: watched.session.id,
        reason,
      },
      'viewer access revoked',
    );
  }

  close(): void {
    for (const watched of this.#watched.values()) clearTimeout(watched.expiryTimer);
    this.#watched.clear();
    this.#byClientIp.close();
    this.#byStream.close();
  }
}

function isExpired(expiresAt: number | undefined): boolean {
  return expiresAt !== undefined && expiresAt <= Date.now();
}
