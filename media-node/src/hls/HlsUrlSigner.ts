import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { RtccdnError } from '../../contract/errors.js';

/**
 * What a signed HLS URL grants: who was admitted (a grant id for logs, the key's id and a
 * fingerprint of its hash — never the key, nor the hash the ACL stores) and until when.
 */
export interface HlsUrlClaims {
  /** Random id of the admission that issued the URL (one per multivariant playlist request). */
  grantId: string;
  /** Unix ms after which the URL is refused. */
  expiresAt: number;
  /** Id of the access key the player was admitted with; absent: admitted without a key. */
  keyId?: string | undefined;
  /** Fingerprint of that key's hash (see fingerprint()); absent when no key was presented. */
  keyFingerprint?: string | undefined;
  /**
   * In a CDN, the edge whose packager serves this player (the one that answered its multivariant
   * playlist): another edge passes the request on to it. Signed, so a player cannot pick a node.
   */
  nodeId?: string | undefined;
}

const ClaimsSchema = z.strictObject({
  g: z.string().regex(/^[A-Za-z0-9_-]{8,32}$/),
  e: z.number().int().positive(),
  k: z.string().max(63).optional(),
  f: z
    .string()
    .regex(/^[A-Za-z0-9_-]{22}$/)
    .optional(),
  n: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,128}$/)
    .optional(),
});

/** A token is at most this long: anything longer is refused before it is decoded. */
const MAX_TOKEN_LENGTH = 512;

/**
 * Signs and verifies the URLs of media playlists and segments that an admitted HLS player gets
 * (`?t=<payload>.<signature>`): HMAC-SHA256 over the resource (stream, variant, file), the
 * payload (grant id, expiry, key id and fingerprint). The URL carries no key: a leaked segment
 * URL is good for that one resource until its expiry — and only while the key it was issued for
 * still opens the stream, which every request re-checks.
 *
 * In a CDN the signing key is derived from CLUSTER_SECRET (HKDF, its own label), so any edge
 * verifies any edge's URLs (a Service without session affinity); standalone it is random.
 */
export class HlsUrlSigner {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length < 32) throw new Error('HLS URL signing key must be at least 32 bytes');
    this.#key = key;
  }

  static fromClusterSecret(clusterSecret: string): HlsUrlSigner {
    return new HlsUrlSigner(Buffer.from(hkdfSync('sha256', clusterSecret, 'rtccdn', 'hls url hmac v1', 32)));
  }

  static random(): HlsUrlSigner {
    return new HlsUrlSigner(randomBytes(32));
  }

  static newGrantId(): string {
    return randomBytes(12).toString('base64url');
  }

  /** A short, keyed digest of an ACL key hash: ties a URL to one key without revealing its hash. */
  fingerprint(keyHash: string): string {
    return createHmac('sha256', this.#key)
      .update(`key\n${keyHash}`)
      .digest()
      .subarray(0, 16)
      .toString('base64url');
  }

  /** The `t` value for `resource` (`{stream}/{variant}/{file}`). */
  sign(resource: string, claims: HlsUrlClaims): string {
    const payload = Buffer.from(
      JSON.stringify({
        g: claims.grantId,
        e: claims.expiresAt,
        ...(claims.keyId !== undefined ? { k: claims.keyId } : {}),
        ...(claims.keyFingerprint !== undefined ? { f: claims.keyFingerprint } : {}),
        ...(claims.nodeId !== undefined ? { n: claims.nodeId } : {}),
      }),
    ).toString('base64url');
    return `${payload}.${this.#signature(resource, payload).toString('base64url')}`;
  }

  /**
   * The claims of `token` for `resource`, or throws HLS_URL_INVALID (missing, malformed, signed
   * for another resource, tampered) or HLS_URL_EXPIRED.
   */
  verify(resource: string, token: string | undefined, now = Date.now()): HlsUrlClaims {
    const invalid = (why: string) => new RtccdnError('HLS_URL_INVALID', `invalid HLS URL: ${why}`);
    if (!token) throw invalid('no signature (?t=); load the multivariant playlist with your key');
    if (token.length > MAX_TOKEN_LENGTH) throw invalid('signature too long');
    const [payload, signature, ...rest] = token.split('.');
    if (!payload || !signature || rest.length > 0) throw invalid('malformed signature');
    const presented = Buffer.from(signature, 'base64url');
    const expected = this.#signature(resource, payload);
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
      throw invalid('signature does not match');
    }
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw invalid('malformed signature');
    }
    const parsed = ClaimsSchema.safeParse(decoded);
    if (!parsed.success) throw invalid('malformed signature');
    const claims = parsed.data;
    if (claims.e <= now) {
      throw new RtccdnError(
        'HLS_URL_EXPIRED',
        'this HLS URL has expired; load the multivariant playlist again with your key',
      );
    }
    return {
      grantId: claims.g,
      expiresAt: claims.e,
      keyId: claims.k,
      keyFingerprint: claims.f,
      nodeId: claims.n,
    };
  }

  #signature(resource: string, payload: string): Buffer {
    return createHmac('sha256', this.#key).update(`hls-url\n${resource}\n${payload}`).digest();
  }
}
