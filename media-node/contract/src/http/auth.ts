import { timingSafeEqual } from 'node:crypto';
import { RtccdnError } from '../errors.js';
import { WindowLimiter } from '../runtime/WindowLimiter.js';
import { clientBucket } from './clientAddress.js';

/** Bearer token check in constant time; absent/unequal → UNAUTHENTICATED with a challenge. */
export function requireBearer(authorization: string | undefined, expected: string, realm: string): void {
  if (!bearerMatches(authorization, expected)) {
    throw new RtccdnError(
      'UNAUTHENTICATED',
      bearerOf(authorization) ? 'invalid bearer token' : 'missing bearer token',
      {
        challenge: `Bearer realm="${realm}"`,
      },
    );
  }
}

/** The token of an `Authorization: Bearer <token>` header, if it is one. */
export function bearerOf(authorization: string | undefined): string | undefined {
  const token = /^Bearer\s+(.+)$/i.exec(authorization ?? '')?.[1]?.trim();
  return token === '' ? undefined : token;
}

function bearerMatches(authorization: string | undefined, expected: string): boolean {
  const presented = Buffer.from(bearerOf(authorization) ?? '');
  const wanted = Buffer.from(expected);
  return presented.length === wanted.length && timingSafeEqual(presented, wanted);
}

export interface TokenGuardOptions {
  token: string;
  realm: string;
  /** Failed attempts per client (IPv4 address or IPv6 /64) per window before 429. */
  failuresPerClient: number;
  windowMs: number;
}

/**
 * An administrative bearer token (ADMIN_TOKEN) with brute-force protection: a client that
 * presented a wrong token `failuresPerClient` times in the window is refused with 429 — even
 * with the right token, since only an administrator holds it and guessing it must stay slow —
 * until its oldest failure leaves the window.
 */
export class TokenGuard {
  readonly #options: TokenGuardOptions;
  readonly #failures: WindowLimiter;

  constructor(options: TokenGuardOptions) {
    this.#options = options;
    this.#failures = new WindowLimiter(options.failuresPerClient, options.windowMs);
  }

  /** Throws RATE_LIMITED (client blocked) or UNAUTHENTICATED; returns when the token is right. */
  check(authorization: string | undefined, clientIp: string): void {
    const bucket = clientBucket(clientIp);
    const blockedMs = this.#failures.blockedFor(bucket);
    if (blockedMs > 0) {
      throw new RtccdnError('RATE_LIMITED', 'too many failed token attempts; try again later', {
        retryAfterMs: blockedMs,
      });
    }
    try {
      requireBearer(authorization, this.#options.token, this.#options.realm);
    } catch (error) {
      this.#failures.record(bucket);
      throw error;
    }
  }

  close(): void {
    this.#failures.close();
  }
}
