import { describe, expect, it } from '@jest/globals';
import { RtccdnError } from '../../media-node/contract/errors.js';
import { type HlsUrlClaims, HlsUrlSigner } from '../../media-node/src/hls/HlsUrlSigner.js';

const SECRET = 'test-cluster-secret-0123456789';
const claims: HlsUrlClaims = {
  grantId: 'grant-0123456789',
  expiresAt: Date.now() + 60_000,
  keyId: 'k1',
  keyFingerprint: HlsUrlSigner.fromClusterSecret(SECRET).fingerprint('a'.repeat(64)),
};

const codeOf = (run: () => unknown): string | undefined => {
  try {
    run();
  } catch (error) {
    return error instanceof RtccdnError ? error.code : `not coded: ${String(error)}`;
  }
  return undefined;
};

describe('signed HLS URLs', () => {
  const signer = HlsUrlSigner.fromClusterSecret(SECRET);

  it('verifies its own signature for the same resource and returns the claims', () => {
    const token = signer.sign('live/source/media.m3u8', claims);
    expect(signer.verify('live/source/media.m3u8', token)).toEqual(claims);
    // Another edge of the same CDN (same CLUSTER_SECRET) accepts it too.
    expect(HlsUrlSigner.fromClusterSecret(SECRET).verify('live/source/media.m3u8', token)).toEqual(claims);
  });

  it('refuses another resource, another secret, a tampered payload or signature, and garbage', () => {
    const token = signer.sign('live/source/media.m3u8', claims);
    const [payload, signature] = token.split('.') as [string, string];
    expect(codeOf(() => signer.verify('live/source/seg1.m4s', token))).toBe('HLS_URL_INVALID');
    expect(codeOf(() => signer.verify('other/source/media.m3u8', token))).toBe('HLS_URL_INVALID');
    expect(
      codeOf(() => HlsUrlSigner.fromClusterSecret(`${SECRET}x`).verify('live/source/media.m3u8', token)),
    ).toBe('HLS_URL_INVALID');
    expect(codeOf(() => HlsUrlSigner.random().verify('live/source/media.m3u8', token))).toBe(
      'HLS_URL_INVALID',
    );
    const later = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(payload, 'base64url').toString()),
        e: claims.expiresAt + 1,
      }),
    ).toString('base64url');
    expect(codeOf(() => signer.verify('live/source/media.m3u8', `${later}.${signature}`))).toBe(
      'HLS_URL_INVALID',
    );
    const flipped = `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
    expect(codeOf(() => signer.verify('live/source/media.m3u8', `${payload}.${flipped}`))).toBe(
      'HLS_URL_INVALID',
    );
    for (const garbage of [undefined, '', 'x', `${payload}.`, `${token}.x`, 'a'.repeat(600)]) {
      expect(codeOf(() => signer.verify('live/source/media.m3u8', garbage))).toBe('HLS_URL_INVALID');
    }
  });

  it('names the edge that issued the URL in its claims; a player cannot change it', () => {
    const issued = { ...claims, keyId: 'k'.repeat(63), nodeId: `edge-${'a'.repeat(123)}` };
    const token = signer.sign('live/source/part7.2.m4s', issued);
    // The longest key id and node id still fit the token length limit.
    expect(signer.verify('live/source/part7.2.m4s', token)).toEqual(issued);
    const [payload, signature] = token.split('.') as [string, string];
    const elsewhere = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), n: 'edge-b' }),
    ).toString('base64url');
    expect(codeOf(() => signer.verify('live/source/part7.2.m4s', `${elsewhere}.${signature}`))).toBe(
      'HLS_URL_INVALID',
    );
    // A node id that is not one (e.g. a path) is not accepted even when signed.
    const odd = signer.sign('live/source/part7.2.m4s', { ...claims, nodeId: '../edge b' });
    expect(codeOf(() => signer.verify('live/source/part7.2.m4s', odd))).toBe('HLS_URL_INVALID');
  });

  it('refuses a signed but malformed payload', () => {
    // Signed with the right key, but not claims this node issues (e.g. from an older version).
    const token = signer.sign('live/source/media.m3u8', { ...claims, grantId: 'short' });
    expect(codeOf(() => signer.verify('live/source/media.m3u8', token))).toBe('HLS_URL_INVALID');
  });

  it('refuses an expired URL with its own code, and accepts it just before', () => {
    const token = signer.sign('live/source/seg3.m4s', claims);
    expect(codeOf(() => signer.verify('live/source/seg3.m4s', token, claims.expiresAt - 1))).toBeUndefined();
    expect(codeOf(() => signer.verify('live/source/seg3.m4s', token, claims.expiresAt))).toBe(
      'HLS_URL_EXPIRED',
    );
  });

  it('fingerprints a key hash without revealing it, differently per secret', () => {
    const hash = 'b'.repeat(64);
    const fingerprint = signer.fingerprint(hash);
    expect(fingerprint).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(fingerprint).toBe(HlsUrlSigner.fromClusterSecret(SECRET).fingerprint(hash));
    expect(fingerprint).not.toBe(signer.fingerprint('c'.repeat(64)));
    expect(fingerprint).not.toBe(HlsUrlSigner.fromClusterSecret(`${SECRET}x`).fingerprint(hash));
    const token = signer.sign('live/source/media.m3u8', { ...claims, keyFingerprint: fingerprint });
    expect(Buffer.from(token.split('.')[0]!, 'base64url').toString()).not.toContain('bbbb');
  });

  it('refuses a signing key shorter than 32 bytes', () => {
    expect(() => new HlsUrlSigner(Buffer.alloc(16))).toThrow(/32 bytes/);
  });
});
