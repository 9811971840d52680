import { type DefaultPolicy, findKey, hashAccessKey, patternMatches } from '../../contract/acl.js';
import { type ErrorCode, type ErrorDetails, RtccdnError } from '../../contract/errors.js';
import { clientBucket } from '../../contract/http.js';
import { WindowLimiter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaNodeMetrics } from '../metrics.js';
import type { AclCache } from './AclCache.js';

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
  /**
   * The store is written by the operator (ACL_API=kubernetes): until it has written every
   * StreamACL for the store's current data, an ACL missing here may just not be rewritten yet,
   * so nobody is admitted.
   */
  requireStoreSynced: boolean;
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
  readonly #byClient: WindowLimiter;
  readonly #byStream: WindowLimiter;
  readonly #watched = new Map<string, Watched>();
  readonly #logger: Logger;

  constructor(options: AccessControllerOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'access' });
    this.#byClient = new WindowLimiter(options.limits.perClientIp, options.limits.windowMs);
    this.#byStream = new WindowLimiter(options.limits.perStream, options.limits.windowMs);
    options.cache.on('changed', (patterns, at) => this.#recheck(patterns, at));
  }

  /**
   * Admits a viewer of `stream` presenting `key` (or none), or throws: ACCESS_KEY_REQUIRED
   * (protected, no key), ACCESS_DENIED (wrong, removed or expired key — the same answer for
   * each), RATE_LIMITED (a wrong key from a client, or on a stream, that has failed too often),
   * ACCESS_RULES_UNAVAILABLE (the rules of this stream cannot be known right now). A correct key is always admitted: failed guesses of others never lock a
   * paying viewer out; they only turn the guessers' own wrong answers into 429s.
   */
  admit(stream: string, key: string | undefined, clientIp: string): Grant {
    const { cache, defaultPolicy, maxStalenessMs, metrics } = this.#options;
    const refuse = (error: RtccdnError) => {
      metrics.admissions.inc({ result: String(error.status) });
      this.#logger.info({ stream, clientIp, code: error.code }, `viewer refused: ${error.message}`);
      return error;
    };
    const unknown = this.#unknownRules(stream);
    if (unknown) throw refuse(unknown);
    const acl = cache.governing(stream);
    if (!acl && defaultPolicy === 'allow') {
      metrics.admissions.inc({ result: 'ok' });
      // Keep what the viewer presented: if the stream turns protected with this key (an ACL
      // written a moment ago that this edge has not seen yet), the viewer stays.
      const keyHash = key ? hashAccessKey(this.#options.hashKey, key) : undefined;
      return { stream, keyHash, keyId: undefined, clientIp };
    }
    if (Date.now() - cache.confirmedAt! > maxStalenessMs) {
      throw refuse(
        new RtccdnError('ACCESS_RULES_UNAVAILABLE', 'access rules cannot be verified right now; try again', {
          retryAfterMs: 5000,
        }),
      );
    }
    if (key === undefined || key === '') {
      throw refuse(refusal('ACCESS_KEY_REQUIRED'));
    }
    const keyHash = hashAccessKey(this.#options.hashKey, key);
    const stored = acl ? findKey(acl.keys, keyHash) : undefined;
    if (stored && !isExpired(stored.expiresAt)) {
      metrics.admissions.inc({ result: 'ok' });
      return { stream, keyHash, keyId: stored.id, clientIp };
    }
    const bucket = clientBucket(clientIp);
    const blockedMs = Math.max(this.#byClient.blockedFor(bucket), this.#byStream.blockedFor(stream));
    if (blockedMs > 0) {
      throw refuse(
        new RtccdnError('RATE_LIMITED', 'too many failed attempts; try again later', {
          retryAfterMs: blockedMs,
        }),
      );
    }
    this.#byClient.record(bucket);
    this.#byStream.record(stream);
    throw refuse(refusal('ACCESS_DENIED'));
  }

  /**
   * Whether a viewer without a key would be admitted to `stream` right now (the public stream
   * list shows only those).
   */
  isPublic(stream: string): boolean {
    return (
      this.#unknownRules(stream) === undefined &&
      this.#options.defaultPolicy === 'allow' &&
      this.#options.cache.governing(stream) === undefined
    );
  }

  /** Why the rules of `stream` cannot be known now (then nobody is admitted), if so. */
  #unknownRules(stream: string): RtccdnError | undefined {
    const { cache } = this.#options;
    const unavailable = (message: string) =>
      new RtccdnError('ACCESS_RULES_UNAVAILABLE', message, { retryAfterMs: 2000 });
    // Never loaded: we cannot tell a public stream from a protected one.
    if (cache.confirmedAt === undefined) return unavailable('access rules are not loaded yet; try again');
    if (this.#options.requireStoreSynced && !cache.storeSynced) {
      return unavailable('access rules are being restored by the operator; try again');
    }
    const lock = cache.lockOf(stream);
    if (lock === 'reset')
      return unavailable('the access rules of this stream were lost and are being restored; try again');
    if (lock === 'unreadable')
      return unavailable('the access rules of this stream cannot be read right now; try again');
    return undefined;
  }

  /**
   * Keeps `session` under watch until it closes. The grant is checked again first: the rules may
   * have changed while the session was being set up (a relay or a rendition can take seconds),
   * and a key revoked (or an ACL applied) meanwhile must apply to this viewer too — then this
   * throws (as admission would) and the caller ends the session.
   */
  watch(session: Guarded, grant: Grant): void {
    const unknown = this.#unknownRules(grant.stream);
    if (unknown) throw unknown;
    const verdict = this.#verdict(grant);
    if (verdict !== 'ok') {
      this.#options.metrics.revocations.inc({ reason: verdict });
      this.#logger.info(
        { stream: grant.stream, keyId: grant.keyId, clientIp: grant.clientIp, reason: verdict },
        'viewer refused: access changed while the session was being set up',
      );
      throw refusal(verdict === 'stream-protected' ? 'ACCESS_KEY_REQUIRED' : 'ACCESS_DENIED');
    }
    const watched: Watched = { session, grant };
    this.#watched.set(session.id, watched);
    session.once('close', () => {
      clearTimeout(watched.expiryTimer);
      this.#watched.delete(session.id);
    });
    this.#armExpiry(watched);
  }

  /**
   * Whether `grant` still holds right now, for access without a session to watch (HLS: every
   * playlist and segment request carries its grant). Throws what watch() would: 503 when the
   * rules cannot be known (fail closed), 401/403 when the key was removed or expired, the ACL
   * deleted under `deny`, or the stream made protected since.
   */
  check(grant: Grant): void {
    const unknown = this.#unknownRules(grant.stream);
    if (unknown) throw unknown;
    const verdict = this.#verdict(grant);
    if (verdict === 'ok') return;
    throw refusal(verdict === 'stream-protected' ? 'ACCESS_KEY_REQUIRED' : 'ACCESS_DENIED');
  }

  /** The governing ACL's stored key whose hash satisfies `matches` (HLS grants carry no hash). */
  findGrantedKey(
    stream: string,
    matches: (key: { id: string; hash: string }) => boolean,
  ): { id: string; hash: string } | undefined {
    return this.#options.cache.governing(stream)?.keys.find(matches);
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
    this.#byClient.close();
    this.#byStream.close();
  }
}

function isExpired(expiresAt: number | undefined): boolean {
  return expiresAt !== undefined && expiresAt <= Date.now();
}

/** The two refusals a viewer with a wrong or no key gets (deliberately the same for every cause). */
function refusal(code: Extract<ErrorCode, 'ACCESS_KEY_REQUIRED' | 'ACCESS_DENIED'>): RtccdnError {
  const details: ErrorDetails =
    code === 'ACCESS_KEY_REQUIRED'
      ? { challenge: 'Bearer realm="rtccdn"' }
      : { challenge: 'Bearer realm="rtccdn", error="invalid_token"' };
  return new RtccdnError(
    code,
    code === 'ACCESS_KEY_REQUIRED' ? 'this stream requires an access key' : 'access denied',
    details,
  );
}
