/**
 * The node-to-node API's security primitives, as functions: request and answer signatures (what
 * they cover, what the verifier refuses and why), the key sealer, and the relay protocol's
 * bodies. test/security/internal-api.test.ts attacks the same on real node processes.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import type { z } from 'zod';
import {
  DRAIN_PATH,
  DrainRequestSchema,
  deriveSigningKey,
  HMAC_SCHEME,
  hlsPath,
  KeySealer,
  openSrtp,
  PipeEndpointSchema,
  RELAYS_PATH,
  RENDITIONS_PATH,
  RESPONSE_SIGNATURE_HEADER,
  RelayRequestSchema,
  RelayResponseSchema,
  RenditionRequestSchema,
  RequestVerifier,
  SealError,
  SealedSrtpParametersSchema,
  sealSrtp,
  sessionPath,
  signRequest,
  signResponse,
  verifyResponse,
} from '../../media-node/contract/internal-api.js';

const SECRET = 'a-cluster-secret';
const key = deriveSigningKey(SECRET);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** The signature as hmac.ts documents it, computed here independently. */
const documentedSignature = (lines: string[]) =>
  createHmac('sha256', key).update(lines.join('\n')).digest('hex');

function parseAuthorization(authorization: string) {
  const match = /^RTCCDN-HMAC-SHA256 node=([^,]+),ts=(\d+),nonce=([0-9a-f]+),sig=([0-9a-f]+)$/.exec(
    authorization,
  );
  expect(match).not.toBeNull();
  const [, node, ts, nonce, sig] = match!;
  return { node: node!, ts: ts!, nonce: nonce!, sig: sig! };
}

/** An Authorization header with chosen fields, signed as documented. */
function authorizationWith(fields: {
  method?: string;
  path?: string;
  target?: string;
  ts: number;
  nonce: string;
  body?: string;
}) {
  const { method = 'POST', path = '/internal/v1/drain', target = 'edge-a', ts, nonce, body = '' } = fields;
  const sig = documentedSignature(['request', method, path, target, String(ts), nonce, sha256(body)]);
  return `${HMAC_SCHEME} node=${target},ts=${ts},nonce=${nonce},sig=${sig}`;
}

const drain = { method: 'POST', path: '/internal/v1/drain', body: '{"draining":true}' };

describe('request signatures', () => {
  it('derives the signing key from CLUSTER_SECRET with its own label (fixed: nodes of two versions agree)', () => {
    expect(key.toString('hex')).toBe('b1faaed9ab08c69dad5035e3b621f4c95874e4baff21b1b0ad4bd667af4429b8');
    expect(deriveSigningKey('another-secret').equals(key)).toBe(false);
  });

  it('signs method, path, target, time, nonce and body hash, as documented', () => {
    const before = Date.now();
    const { authorization, nonce } = signRequest(key, { ...drain, method: 'post', target: 'edge-a' });
    const after = Date.now();
    const fields = parseAuthorization(authorization);
    expect(fields.node).toBe('edge-a');
    expect(fields.nonce).toBe(nonce);
    expect(nonce).toMatch(/^[0-9a-f]{24}$/);
    expect(Number(fields.ts)).toBeGreaterThanOrEqual(before);
    expect(Number(fields.ts)).toBeLessThanOrEqual(after);
    expect(fields.sig).toBe(
      documentedSignature(['request', 'POST', drain.path, 'edge-a', fields.ts, nonce, sha256(drain.body)]),
    );
    // A fresh nonce every time.
    expect(signRequest(key, { ...drain, target: 'edge-a' }).nonce).not.toBe(nonce);
    expect(parseAuthorization(signRequest(key, { ...drain, target: 'edge-a' }, 1234).authorization).ts).toBe(
      '1234',
    );
  });

  it('signs answers over the request nonce, the status and the body hash', () => {
    const header = signResponse(key, 'ab'.repeat(12), 201, '{"ok":true}');
    expect(header).toBe(
      `sig=${documentedSignature(['response', 'ab'.repeat(12), '201', sha256('{"ok":true}')])}`,
    );
    expect(RESPONSE_SIGNATURE_HEADER).toBe('x-rtccdn-signature');
  });

  it('accepts an answer only with the signature of that very answer to that very request', () => {
    const nonce = 'ab'.repeat(12);
    const header = signResponse(key, nonce, 200, 'body');
    expect(verifyResponse(key, nonce, 200, 'body', header)).toBe(true);
    expect(verifyResponse(key, nonce, 201, 'body', header)).toBe(false);
    expect(verifyResponse(key, nonce, 200, 'other', header)).toBe(false);
    expect(verifyResponse(key, 'cd'.repeat(12), 200, 'body', header)).toBe(false);
    expect(verifyResponse(deriveSigningKey('another-secret'), nonce, 200, 'body', header)).toBe(false);
    expect(verifyResponse(key, nonce, 200, 'body', undefined)).toBe(false);
    expect(verifyResponse(key, nonce, 200, 'body', null)).toBe(false);
    expect(verifyResponse(key, nonce, 200, 'body', '')).toBe(false);
    expect(verifyResponse(key, nonce, 200, 'body', `x${header}`)).toBe(false);
    expect(verifyResponse(key, nonce, 200, 'body', `${header}0`)).toBe(false);
    expect(verifyResponse(key, nonce, 200, 'body', header.slice(0, -1))).toBe(false);
    expect(verifyResponse(key, nonce, 200, 'body', header.toUpperCase().replace('SIG=', 'sig='))).toBe(false);
  });
});

describe('RequestVerifier', () => {
  const NONCE = '0123456789abcdef';
  const malformed = 'missing or malformed RTCCDN-HMAC-SHA256 authorization';

  it('accepts a call signed for this node, once, and gives its nonce', () => {
    const verifier = new RequestVerifier(key, 'edge-a');
    const { authorization, nonce } = signRequest(key, { ...drain, target: 'edge-a' });
    expect(verifier.precheck(authorization)).toEqual({ ok: true, nonce });
    expect(verifier.verify(drain, authorization)).toEqual({ ok: true, nonce });
    expect(verifier.verify(drain, authorization)).toEqual({ ok: false, reason: 'replayed request' });
  });

  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['another scheme', `Bearer node=edge-a,ts=1,nonce=${NONCE},sig=${'a'.repeat(64)}`],
    ['text before the scheme', `x${HMAC_SCHEME} node=edge-a,ts=1,nonce=${NONCE},sig=${'a'.repeat(64)}`],
    ['text after the signature', `${HMAC_SCHEME} node=edge-a,ts=1,nonce=${NONCE},sig=${'a'.repeat(64)} `],
    ['a node id with a slash', `${HMAC_SCHEME} node=edge/a,ts=1,nonce=${NONCE},sig=${'a'.repeat(64)}`],
    [
      'a node id over 128 characters',
      `${HMAC_SCHEME} node=${'e'.repeat(129)},ts=1,nonce=${NONCE},sig=${'a'.repeat(64)}`,
    ],
    ['an empty node id', `${HMAC_SCHEME} node=,ts=1,nonce=${NONCE},sig=${'a'.repeat(64)}`],
    [
      'a timestamp over 16 digits',
      `${HMAC_SCHEME} node=edge-a,ts=${'1'.repeat(17)},nonce=${NONCE},sig=${'a'.repeat(64)}`,
    ],
    ['a non-numeric timestamp', `${HMAC_SCHEME} node=edge-a,ts=1e3,nonce=${NONCE},sig=${'a'.repeat(64)}`],
    [
      'a nonce under 16 hex digits',
      `${HMAC_SCHEME} node=edge-a,ts=1,nonce=${'a'.repeat(15)},sig=${'a'.repeat(64)}`,
    ],
    [
      'a nonce over 64 hex digits',
      `${HMAC_SCHEME} node=edge-a,ts=1,nonce=${'a'.repeat(65)},sig=${'a'.repeat(64)}`,
    ],
    ['an upper-case nonce', `${HMAC_SCHEME} node=edge-a,ts=1,nonce=${'A'.repeat(16)},sig=${'a'.repeat(64)}`],
    ['a short signature', `${HMAC_SCHEME} node=edge-a,ts=1,nonce=${NONCE},sig=${'a'.repeat(63)}`],
    ['a long signature', `${HMAC_SCHEME} node=edge-a,ts=1,nonce=${NONCE},sig=${'a'.repeat(65)}`],
    ['an upper-case signature', `${HMAC_SCHEME} node=edge-a,ts=1,nonce=${NONCE},sig=${'A'.repeat(64)}`],
  ])('refuses %s as malformed', (_what, authorization) => {
    const verifier = new RequestVerifier(key, 'edge-a');
    expect(verifier.precheck(authorization, 1)).toEqual({ ok: false, reason: malformed });
    expect(verifier.verify(drain, authorization, 1)).toEqual({ ok: false, reason: malformed });
  });

  it('accepts the widest well-formed header', () => {
    const verifier = new RequestVerifier(key, 'e'.repeat(128));
    const authorization = authorizationWith({ target: 'e'.repeat(128), ts: 1, nonce: 'a'.repeat(64) });
    expect(verifier.precheck(authorization, 1)).toEqual({ ok: true, nonce: 'a'.repeat(64) });
  });

  it('refuses a call made for another node', () => {
    const verifier = new RequestVerifier(key, 'edge-a');
    const { authorization } = signRequest(key, { ...drain, target: 'edge-b' });
    expect(verifier.precheck(authorization)).toEqual({ ok: false, reason: 'request made for another node' });
    expect(verifier.verify(drain, authorization)).toEqual({
      ok: false,
      reason: 'request made for another node',
    });
  });

  it('refuses a timestamp more than the allowed skew away, either way (30 s by default)', () => {
    const skewed = { ok: false, reason: 'request timestamp outside the allowed clock skew' };
    const now = 1_000_000;
    const at = (ts: number) => authorizationWith({ ts, nonce: NONCE, body: drain.body });
    const verifier = new RequestVerifier(key, 'edge-a');
    expect(verifier.precheck(at(now - 30_000), now).ok).toBe(true);
    expect(verifier.precheck(at(now + 30_000), now).ok).toBe(true);
    expect(verifier.precheck(at(now - 30_001), now)).toEqual(skewed);
    expect(verifier.precheck(at(now + 30_001), now)).toEqual(skewed);
    expect(verifier.verify(drain, at(now + 30_001), now)).toEqual(skewed);
    const strict = new RequestVerifier(key, 'edge-a', 1000);
    expect(strict.precheck(at(now - 1000), now).ok).toBe(true);
    expect(strict.precheck(at(now - 1001), now)).toEqual(skewed);
    // Without `now`: the clock.
    expect(strict.precheck(at(Date.now())).ok).toBe(true);
    expect(strict.precheck(at(Date.now() - 60_000))).toEqual(skewed);
  });

  it('refuses a call whose method, path, body, target or key differ from what was signed', () => {
    const now = 1_000_000;
    const verifier = new RequestVerifier(key, 'edge-a');
    const bad = { ok: false, reason: 'bad signature' };
    const signed = (fields: Partial<Parameters<typeof authorizationWith>[0]>, nonce: string) =>
      authorizationWith({ ts: now, nonce, body: drain.body, ...fields });
    expect(verifier.verify({ ...drain, body: '{"draining":false}' }, signed({}, `${NONCE}01`), now)).toEqual(
      bad,
    );
    expect(verifier.verify({ ...drain, path: '/internal/v1/dump' }, signed({}, `${NONCE}02`), now)).toEqual(
      bad,
    );
    expect(verifier.verify({ ...drain, method: 'DELETE' }, signed({}, `${NONCE}03`), now)).toEqual(bad);
    // Signed for edge-b, header rewritten to name edge-a: the signature still names edge-b.
    const forB = signed({ target: 'edge-b' }, `${NONCE}04`).replace('node=edge-b', 'node=edge-a');
    expect(verifier.verify(drain, forB, now)).toEqual(bad);
    const otherKey = new RequestVerifier(deriveSigningKey('another-secret'), 'edge-a');
    expect(otherKey.verify(drain, signed({}, `${NONCE}05`), now)).toEqual(bad);
    // The method is compared upper-cased on both sides; the rest as it is.
    expect(verifier.verify({ ...drain, method: 'post' }, signed({}, `${NONCE}06`), now)).toEqual({
      ok: true,
      nonce: `${NONCE}06`,
    });
    // A refused call does not burn its nonce.
    expect(verifier.verify(drain, signed({}, `${NONCE}01`), now)).toEqual({ ok: true, nonce: `${NONCE}01` });
  });

  it('remembers a nonce for twice the skew window, then forgets it', () => {
    const skew = 1000;
    const verifier = new RequestVerifier(key, 'edge-a', skew);
    const replayed = { ok: false, reason: 'replayed request' };
    const at = (ts: number, nonce = NONCE) => authorizationWith({ ts, nonce, body: drain.body });
    expect(verifier.verify(drain, at(0), 0).ok).toBe(true);
    expect(verifier.verify(drain, at(1000, `${NONCE}aa`), 1000).ok).toBe(true);
    // Re-signed with a timestamp inside the window (a forged one could not be): still refused.
    expect(verifier.verify(drain, at(1999), 1999)).toEqual(replayed);
    expect(verifier.verify(drain, at(1000, `${NONCE}aa`), 1999)).toEqual(replayed);
    // At 2 × skew after first use, the first nonce is forgotten; the later one is not.
    expect(verifier.verify(drain, at(2000), 2000)).toEqual({ ok: true, nonce: NONCE });
    expect(verifier.verify(drain, at(2000, `${NONCE}aa`), 2000)).toEqual(replayed);
  });
});

describe('KeySealer', () => {
  /** The sealing key as KeySealer documents it, derived here independently. */
  const sealingKey = Buffer.from(hkdfSync('sha256', SECRET, 'rtccdn', 'relay key sealing v1', 32));

  it('seals as base64(iv | AES-256-GCM ciphertext | tag) with the context as additional data', () => {
    const sealed = Buffer.from(new KeySealer(SECRET).seal('srtp-key-bytes', 'ctx'), 'base64');
    const decipher = createDecipheriv('aes-256-gcm', sealingKey, sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from('ctx'));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    const plain = Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    expect(plain.toString('utf8')).toBe('srtp-key-bytes');
    expect(sealed.length).toBe(12 + 'srtp-key-bytes'.length + 16);
  });

  it('opens what another node of the cluster sealed', () => {
    const iv = Buffer.alloc(12, 1);
    const cipher = createCipheriv('aes-256-gcm', sealingKey, iv);
    cipher.setAAD(Buffer.from('ctx'));
    const ciphertext = Buffer.concat([cipher.update('clé', 'utf8'), cipher.final()]);
    const sealed = Buffer.concat([iv, ciphertext, cipher.getAuthTag()]).toString('base64');
    expect(new KeySealer(SECRET).open(sealed, 'ctx')).toBe('clé');
  });

  it('uses a fresh IV for every seal', () => {
    const sealer = new KeySealer(SECRET);
    expect(sealer.seal('x', 'ctx')).not.toBe(sealer.seal('x', 'ctx'));
  });

  it('refuses to open a value sealed for another context, with another secret, altered or too short', () => {
    const sealer = new KeySealer(SECRET);
    const sealed = sealer.seal('secret', 'ctx');
    const doesNotOpen = 'sealed value does not open with this cluster secret';
    expect(() => sealer.open(sealed, 'other')).toThrow(doesNotOpen);
    expect(() => new KeySealer('another-secret').open(sealed, 'ctx')).toThrow(doesNotOpen);
    const bytes = Buffer.from(sealed, 'base64');
    bytes[13]! ^= 1;
    expect(() => sealer.open(bytes.toString('base64'), 'ctx')).toThrow(doesNotOpen);
    // The shortest value that can be one: IV, one byte, tag.
    expect(() => sealer.open(Buffer.alloc(29).toString('base64'), 'ctx')).toThrow(doesNotOpen);
    expect(() => sealer.open(Buffer.alloc(28).toString('base64'), 'ctx')).toThrow(
      'sealed value is too short',
    );
    try {
      sealer.open('', 'ctx');
    } catch (error) {
      expect(error).toBeInstanceOf(SealError);
      expect((error as Error).name).toBe('SealError');
    }
    expect.assertions(7);
  });
});

describe('relay protocol bodies', () => {
  const refusal = (schema: z.ZodType, value: unknown) => {
    const parsed = schema.safeParse(value);
    return parsed.success ? undefined : parsed.error.issues[0]!.message;
  };
  const sealer = new KeySealer(SECRET);
  const srtp = { cryptoSuite: 'AEAD_AES_256_GCM' as const, keyBase64: 'a2V5LWJ5dGVz' };
  const endpoint = { ip: '10.0.0.1', port: 40000, srtpParameters: sealSrtp(sealer, srtp) };

  it('seals the SRTP key of a pipe, bound to its crypto suite', () => {
    const sealed = sealSrtp(sealer, srtp);
    expect(sealed.cryptoSuite).toBe('AEAD_AES_256_GCM');
    expect(sealed.sealedKey).not.toContain('a2V5');
    expect(openSrtp(sealer, sealed)).toEqual(srtp);
    // The same context the other node uses: "srtp <suite>".
    expect(sealer.open(sealed.sealedKey, 'srtp AEAD_AES_256_GCM')).toBe(srtp.keyBase64);
    // A sealed key moved to another suite does not open.
    expect(() => openSrtp(sealer, { ...sealed, cryptoSuite: 'AEAD_AES_128_GCM' })).toThrow(SealError);
    expect(() => openSrtp(new KeySealer('another-secret'), sealed)).toThrow(SealError);
  });

  it('takes the four SRTP suites mediasoup offers, and sealed keys of 1-512 characters', () => {
    for (const cryptoSuite of [
      'AEAD_AES_256_GCM',
      'AEAD_AES_128_GCM',
      'AES_CM_128_HMAC_SHA1_80',
      'AES_CM_128_HMAC_SHA1_32',
    ])
      expect(refusal(SealedSrtpParametersSchema, { cryptoSuite, sealedKey: 'x' })).toBeUndefined();
    expect(refusal(SealedSrtpParametersSchema, { cryptoSuite: 'NULL', sealedKey: 'x' })).toBeDefined();
    expect(
      refusal(SealedSrtpParametersSchema, { cryptoSuite: 'AEAD_AES_256_GCM', sealedKey: '' }),
    ).toBeDefined();
    expect(
      refusal(SealedSrtpParametersSchema, { cryptoSuite: 'AEAD_AES_256_GCM', sealedKey: 'x'.repeat(512) }),
    ).toBeUndefined();
    expect(
      refusal(SealedSrtpParametersSchema, { cryptoSuite: 'AEAD_AES_256_GCM', sealedKey: 'x'.repeat(513) }),
    ).toBeDefined();
  });

  it('takes pipe endpoints at an IPv4 or IPv6 address and a port of 1-65535', () => {
    expect(refusal(PipeEndpointSchema, endpoint)).toBeUndefined();
    expect(refusal(PipeEndpointSchema, { ...endpoint, ip: 'fd00::1' })).toBeUndefined();
    expect(refusal(PipeEndpointSchema, { ...endpoint, port: 1 })).toBeUndefined();
    expect(refusal(PipeEndpointSchema, { ...endpoint, port: 65535 })).toBeUndefined();
    // Not a host name: a registry entry must not point pipes at a name someone else resolves.
    expect(refusal(PipeEndpointSchema, { ...endpoint, ip: 'evil.example' })).toBeDefined();
    for (const port of [0, 65536, 1.5])
      expect(refusal(PipeEndpointSchema, { ...endpoint, port })).toBeDefined();
  });

  it('takes relay requests for a stream from a node id of 1-128 characters', () => {
    const request = { stream: 'show', nodeId: 'edge-a', pipe: endpoint };
    expect(refusal(RelayRequestSchema, request)).toBeUndefined();
    expect(refusal(RelayRequestSchema, { ...request, stream: 'show~360p' })).toBeUndefined();
    expect(refusal(RelayRequestSchema, { ...request, nodeId: 'e'.repeat(128) })).toBeUndefined();
    for (const nodeId of ['', 'e'.repeat(129), 'edge a', '/edge', 'edge/'])
      expect(refusal(RelayRequestSchema, { ...request, nodeId })).toBeDefined();
  });

  it('takes relay answers with one or two producers whose RTP parameters have codecs', () => {
    const producer = { id: 'p1', kind: 'video', rtpParameters: { codecs: [] }, paused: false };
    const answer = { relayId: 'r1', pipe: endpoint, producers: [producer] };
    expect(refusal(RelayResponseSchema, answer)).toBeUndefined();
    expect(
      refusal(RelayResponseSchema, { ...answer, producers: [producer, { ...producer, kind: 'audio' }] }),
    ).toBeUndefined();
    expect(refusal(RelayResponseSchema, { ...answer, producers: [] })).toBeDefined();
    expect(
      refusal(RelayResponseSchema, { ...answer, producers: [producer, producer, producer] }),
    ).toBeDefined();
    expect(refusal(RelayResponseSchema, { ...answer, relayId: '' })).toBeDefined();
    expect(refusal(RelayResponseSchema, { ...answer, producers: [{ ...producer, id: '' }] })).toBeDefined();
    expect(
      refusal(RelayResponseSchema, { ...answer, producers: [{ ...producer, kind: 'data' }] }),
    ).toBeDefined();
    expect(
      refusal(RelayResponseSchema, { ...answer, producers: [{ ...producer, paused: 'no' }] }),
    ).toBeDefined();
    for (const rtpParameters of [null, 'codecs', {}, { codecs: {} }])
      expect(refusal(RelayResponseSchema, { ...answer, producers: [{ ...producer, rtpParameters }] })).toBe(
        'rtpParameters must be an object with codecs',
      );
  });

  it('takes rendition requests for a published name and a profile of 1-64 characters, and drain flags', () => {
    expect(refusal(RenditionRequestSchema, { stream: 'show', profile: '360p' })).toBeUndefined();
    expect(refusal(RenditionRequestSchema, { stream: 'show', profile: 'p'.repeat(64) })).toBeUndefined();
    expect(refusal(RenditionRequestSchema, { stream: 'show~360p', profile: '360p' })).toBeDefined();
    expect(refusal(RenditionRequestSchema, { stream: 'show', profile: '' })).toBeDefined();
    expect(refusal(RenditionRequestSchema, { stream: 'show', profile: 'p'.repeat(65) })).toBeDefined();
    expect(DrainRequestSchema.parse({ draining: true })).toEqual({ draining: true });
    expect(refusal(DrainRequestSchema, { draining: 'yes' })).toBeDefined();
  });

  it('names a session and an HLS file of another node by path, every part %-encoded', () => {
    expect(sessionPath('whep', 'show', 's-1')).toBe('/internal/v1/sessions/whep/show/s-1');
    expect(sessionPath('whip', 'a/b?c', 'x#y')).toBe('/internal/v1/sessions/whip/a%2Fb%3Fc/x%23y');
    expect(hlsPath('show', 'source', 'part3.1.m4s', { token: 'a.b', clientIp: '10.0.0.1' })).toBe(
      '/internal/v1/hls/show/source/part3.1.m4s?t=a.b&ip=10.0.0.1',
    );
    // A blocking reload keeps its parameters (part only with msn, as players send them); 0 is a value.
    expect(hlsPath('show', 'source', 'media.m3u8', { token: 't', clientIp: '::1', msn: 0, part: 2 })).toBe(
      '/internal/v1/hls/show/source/media.m3u8?t=t&_HLS_msn=0&_HLS_part=2&ip=%3A%3A1',
    );
    expect(hlsPath('a/b', 'v&1', 'x?y', { token: 't=1&u', clientIp: '10.0.0.1', msn: 5 })).toBe(
      '/internal/v1/hls/a%2Fb/v%261/x%3Fy?t=t%3D1%26u&_HLS_msn=5&ip=10.0.0.1',
    );
  });

  it('serves the relay, rendition and drain calls under /internal/v1/', () => {
    expect([RELAYS_PATH, RENDITIONS_PATH, DRAIN_PATH]).toEqual([
      '/internal/v1/relays',
      '/internal/v1/renditions',
      '/internal/v1/drain',
    ]);
  });
});
