import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Authentication of the node-to-node API. Every request carries
 *
 *   Authorization: RTCCDN-HMAC-SHA256 node=<target id>,ts=<unix ms>,nonce=<hex>,sig=<hex>
 *
 * where sig = HMAC-SHA256(K, "request" \n METHOD \n PATH \n target \n ts \n nonce \n SHA256(body))
 * and K is derived from CLUSTER_SECRET (HKDF, its own label). The secret never crosses the wire,
 * a captured request cannot be altered, cannot be replayed (timestamps outside ±maxSkew are
 * refused, nonces are remembered that long) and cannot be sent to another node than the one it
 * was made for (a captured `drain` is good for its one edge, once).
 *
 * Every answer is signed too, bound to the request it answers:
 *
 *   X-Rtccdn-Signature: sig=<hex>   HMAC(K, "response" \n nonce \n status \n SHA256(body))
 *
 * so a node that is not in the cluster cannot answer in the name of one (e.g. with a pipe
 * endpoint of its choosing).
 */
export const HMAC_SCHEME = 'RTCCDN-HMAC-SHA256';
export const RESPONSE_SIGNATURE_HEADER = 'x-rtccdn-signature';

export interface SignedRequest {
  method: string;
  /** Path and query, exactly as sent (e.g. /internal/v1/relays). */
  path: string;
  /** Id of the node the request is meant for. */
  target: string;
  body: string;
}

/** The key that signs internal calls, derived from CLUSTER_SECRET. */
export function deriveSigningKey(clusterSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', clusterSecret, 'rtccdn', 'internal api hmac v2', 32));
}

/** Text and bytes hash alike: an answer's body is signed as the bytes sent (UTF-8 for text). */
const sha256 = (body: string | Uint8Array) => createHash('sha256').update(body).digest('hex');

function requestSignature(key: Buffer, request: SignedRequest, ts: string, nonce: string): Buffer {
  return createHmac('sha256', key)
    .update(
      `request\n${request.method.toUpperCase()}\n${request.path}\n${request.target}\n${ts}\n${nonce}\n${sha256(request.body)}`,
    )
    .digest();
}

function responseSignature(key: Buffer, nonce: string, status: number, body: string | Uint8Array): Buffer {
  return createHmac('sha256', key)
    .update(`response\n${nonce}\n${status}\n${sha256(body)}`)
    .digest();
}

/** The Authorization header value for `request`, and the nonce that its answer must be bound to. */
export function signRequest(
  key: Buffer,
  request: SignedRequest,
  now = Date.now(),
): { authorization: string; nonce: string } {
  const ts = String(now);
  const nonce = randomBytes(12).toString('hex');
  const sig = requestSignature(key, request, ts, nonce).toString('hex');
  return { authorization: `${HMAC_SCHEME} node=${request.target},ts=${ts},nonce=${nonce},sig=${sig}`, nonce };
}

/** The X-Rtccdn-Signature value of an answer to the request with `nonce`. */
export function signResponse(key: Buffer, nonce: string, status: number, body: string | Uint8Array): string {
  return `sig=${responseSignature(key, nonce, status, body).toString('hex')}`;
}

/** Whether `header` signs this answer to the request with `nonce`. */
export function verifyResponse(
  key: Buffer,
  nonce: string,
  status: number,
  body: string | Uint8Array,
  header: string | null | undefined,
): boolean {
  const presented = /^sig=([0-9a-f]{64})$/.exec(header ?? '')?.[1];
  if (!presented) return false;
  const expected = responseSignature(key, nonce, status, body);
  return timingSafeEqual(Buffer.from(presented, 'hex'), expected);
}

export type Verdict = { ok: true; nonce: string } | { ok: false; reason: string };

interface ParsedAuthorization {
  target: string;
  ts: string;
  nonce: string;
  sig: string;
}

const AUTHORIZATION = new RegExp(
  `^${HMAC_SCHEME} node=([A-Za-z0-9._-]{1,128}),ts=(\\d{1,16}),nonce=([0-9a-f]{16,64}),sig=([0-9a-f]{64})$`,
);

/**
 * Verifies signed requests made for this node (`selfId`); remembers nonces for the skew window
 * to refuse replays. `precheck` needs only the header (it runs before a body is read);
 * `verify` checks the signature over the whole request.
 */
export class RequestVerifier {
  readonly #key: Buffer;
  readonly #selfId: string;
  readonly #maxSkewMs: number;
  readonly #seenNonces = new Map<string, number>();

  constructor(key: Buffer, selfId: string, maxSkewMs = 30_000) {
    this.#key = key;
    this.#selfId = selfId;
    this.#maxSkewMs = maxSkewMs;
  }

  /** Format, target and clock skew: what can be refused before reading a body. */
  precheck(authorization: string | undefined, now = Date.now()): Verdict {
    const parsed = this.#parse(authorization);
    if ('reason' in parsed) return { ok: false, reason: parsed.reason };
    if (parsed.target !== this.#selfId) return { ok: false, reason: 'request made for another node' };
    if (Math.abs(now - Number(parsed.ts)) > this.#maxSkewMs) {
      return { ok: false, reason: 'request timestamp outside the allowed clock skew' };
    }
    return { ok: true, nonce: parsed.nonce };
  }

  verify(
    request: Omit<SignedRequest, 'target'>,
    authorization: string | undefined,
    now = Date.now(),
  ): Verdict {
    const pre = this.precheck(authorization, now);
    if (!pre.ok) return pre;
    const { ts, nonce, sig } = this.#parse(authorization) as ParsedAuthorization;
    const expected = requestSignature(this.#key, { ...request, target: this.#selfId }, ts, nonce);
    if (!timingSafeEqual(Buffer.from(sig, 'hex'), expected)) return { ok: false, reason: 'bad signature' };
    this.#forgetOldNonces(now);
    if (this.#seenNonces.has(nonce)) return { ok: false, reason: 'replayed request' };
    this.#seenNonces.set(nonce, now + 2 * this.#maxSkewMs);
    return { ok: true, nonce };
  }

  #parse(authorization: string | undefined): ParsedAuthorization | { reason: string } {
    const match = AUTHORIZATION.exec(authorization ?? '');
    if (!match) return { reason: `missing or malformed ${HMAC_SCHEME} authorization` };
    const [, target, ts, nonce, sig] = match as unknown as [string, string, string, string, string];
    return { target, ts, nonce, sig };
  }

  #forgetOldNonces(now: number): void {
    // Insertion order is expiry order: stop at the first live one.
    for (const [nonce, expiry] of this.#seenNonces) {
      if (expiry > now) break;
      this.#seenNonces.delete(nonce);
    }
  }
}
