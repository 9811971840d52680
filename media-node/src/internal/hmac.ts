import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Authentication of the node-to-node API. Every request carries
 *
 *   Authorization: RTCCDN-HMAC-SHA256 ts=<unix ms>,nonce=<hex>,sig=<hex>
 *
 * where sig = HMAC-SHA256(CLUSTER_SECRET, METHOD \n PATH \n ts \n nonce \n SHA256(body)).
 * The secret never crosses the wire (internal traffic is plain HTTP inside the cluster), a
 * captured request cannot be altered, and it cannot be replayed: timestamps outside ±maxSkew
 * are refused and nonces are remembered for that long.
 */
export const HMAC_SCHEME = 'RTCCDN-HMAC-SHA256';

export interface SignedRequest {
  method: string;
  /** Path and query, exactly as sent (e.g. /internal/v1/relays). */
  path: string;
  body: string;
}

function signature(secret: string, request: SignedRequest, ts: string, nonce: string): Buffer {
  const bodyHash = createHash('sha256').update(request.body).digest('hex');
  return createHmac('sha256', secret)
    .update(`${request.method.toUpperCase()}\n${request.path}\n${ts}\n${nonce}\n${bodyHash}`)
    .digest();
}

/** The Authorization header value for `request`. */
export function signRequest(secret: string, request: SignedRequest, now = Date.now()): string {
  const ts = String(now);
  const nonce = randomBytes(12).toString('hex');
  return `${HMAC_SCHEME} ts=${ts},nonce=${nonce},sig=${signature(secret, request, ts, nonce).toString('hex')}`;
}

export type Verdict = { ok: true } | { ok: false; reason: string };

/** Verifies signed requests; remembers nonces for the skew window to refuse replays. */
export class RequestVerifier {
  readonly #secret: string;
  readonly #maxSkewMs: number;
  readonly #seenNonces = new Map<string, number>();

  constructor(secret: string, maxSkewMs = 30_000) {
    this.#secret = secret;
    this.#maxSkewMs = maxSkewMs;
  }

  verify(request: SignedRequest, authorization: string | undefined, now = Date.now()): Verdict {
    const match = new RegExp(
      `^${HMAC_SCHEME} ts=(\\d{1,16}),nonce=([0-9a-f]{16,64}),sig=([0-9a-f]{64})$`,
    ).exec(authorization ?? '');
    if (!match) return { ok: false, reason: `missing or malformed ${HMAC_SCHEME} authorization` };
    const [, ts, nonce, sig] = match as unknown as [string, string, string, string];
    if (Math.abs(now - Number(ts)) > this.#maxSkewMs) {
      return { ok: false, reason: 'request timestamp outside the allowed clock skew' };
    }
    const expected = signature(this.#secret, request, ts, nonce);
    const presented = Buffer.from(sig, 'hex');
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      return { ok: false, reason: 'bad signature' };
    }
    this.#forgetOldNonces(now);
    if (this.#seenNonces.has(nonce)) return { ok: false, reason: 'replayed request' };
    this.#seenNonces.set(nonce, now + 2 * this.#maxSkewMs);
    return { ok: true };
  }

  #forgetOldNonces(now: number): void {
    // Insertion order is expiry order: stop at the first live one.
    for (const [nonce, expiry] of this.#seenNonces) {
      if (expiry > now) break;
      this.#seenNonces.delete(nonce);
    }
  }
}
